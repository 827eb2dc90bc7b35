//! Hostile input, faults and signals (issue 13): what a security lab throws at gauntlet.
//! Each test is one observation of that review, as a regression test. No test here may hang:
//! files that would block (FIFOs) or never end (`/dev/zero`) must be refused before reading.

use std::path::Path;

use gauntlet::scenario::{self, Overrides};

use super::common;

/// A minimal valid scenario whose `target` and identities can be swapped.
fn minimal(target_extra: &str, identity: &str) -> String {
    format!(
        "gauntlet: 1\nname: hostile\n\
         target: {{ url: \"https://127.0.0.1:9\", ca: \"{ca}\", server_name: localhost{target_extra} }}\n\
         identities:\n  alice: {identity}\n\
         checks:\n  - {{ id: A, identity: alice, request: {{ path: /a }}, expect: allow }}\n\
         phases: [ {{ name: p, requests: 10, users: 1 }} ]\n",
        ca = common::cert("ca.pem"),
    )
}

fn alice() -> String {
    format!("{{ principal: alice, cert: \"{}\", key: \"{}\" }}", common::cert("alice.pem"), common::cert("alice.key"))
}

/// The load error of `yaml` (written to a temp file); panics when it loads.
fn refusal(yaml: &str) -> String {
    let (_d, p) = common::scenario_file(yaml);
    refusal_of(&p)
}

fn refusal_of(p: &Path) -> String {
    match scenario::load(p, &Overrides::default()) {
        Ok(_) => panic!("loaded, but must be refused:\n{}", std::fs::read_to_string(p).unwrap_or_default()),
        Err(e) => e.to_string(),
    }
}

fn fifo(dir: &Path) -> String {
    let f = dir.join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&f).status().unwrap().success());
    f.display().to_string()
}

#[test]
fn the_minimal_scenario_loads() {
    let (_d, p) = common::scenario_file(&minimal("", &alice()));
    common::load(&p);
}

/// 1. Unbounded reads: `/dev/zero`, `/dev/urandom` and FIFOs named as input files are refused
///    by what they are, at the field that names them, without reading (or blocking on) them.
#[test]
fn devices_and_fifos_named_as_input_files_are_refused_at_their_field() {
    let d = tempfile::tempdir().unwrap();
    let pipe = fifo(d.path());
    let base = minimal("", &alice());
    let cases = [
        (base.replace("gauntlet: 1\n", "gauntlet: 1\ninclude: [/dev/zero]\n"), "include[0]", "a character device"),
        (base.replace("gauntlet: 1\n", &format!("gauntlet: 1\ninclude: [\"{pipe}\"]\n")), "include[0]", "a FIFO"),
        (base.replace(&common::cert("ca.pem"), "/dev/zero"), "target.ca", "a character device"),
        (base.replace(&common::cert("ca.pem"), &pipe), "target.ca", "a FIFO"),
        (base.replace(&common::cert("alice.key"), "/dev/urandom"), "identities.alice.key", "a character device"),
        (base.replace(&common::cert("alice.pem"), d.path().to_str().unwrap()), "identities.alice.cert", "a directory"),
    ];
    for (yaml, field, what) in cases {
        let err = refusal(&yaml);
        let line = err.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no `{what}` in:\n{err}"));
        assert!(line.contains(field), "the problem must name `{field}`: {line}");
        assert!(line.contains("not a regular file"), "{line}");
    }
    // The scenario file itself.
    let err = refusal_of(Path::new(&pipe));
    assert!(err.contains("a FIFO (named pipe), not a regular file"), "{err}");
}

#[test]
fn an_oversized_key_file_is_refused_with_the_limit() {
    let d = tempfile::tempdir().unwrap();
    let big = d.path().join("big.key");
    std::fs::write(&big, vec![b'A'; 5 << 20]).unwrap();
    let err = refusal(&minimal("", &alice()).replace(&common::cert("alice.key"), big.to_str().unwrap()));
    assert!(err.contains("identities.alice.key") && err.contains("over the 4 MiB limit"), "{err}");
}

/// 2. A key given twice in one mapping is an error at the repeat, naming the first.
#[test]
fn a_duplicate_key_is_an_error_at_its_line_and_column() {
    let yaml = minimal("", &alice()) + "profile:\n  routes: {admin: /admin, admin: /public}\n";
    let err = refusal(&yaml);
    assert!(err.contains(":10:27: profile.routes.admin: the key `admin` is given twice"), "{err}");
    assert!(err.contains("first at 10:12"), "{err}");
    // Identities, and a block mapping.
    let yaml = minimal("", &alice()).replace("identities:\n", &format!("identities:\n  alice: {}\n", alice()));
    let err = refusal(&yaml);
    assert!(
        err.contains(":6:3: identities.alice: the key `alice` is given twice in one mapping (first at 5:3)"),
        "{err}"
    );
}

/// 3. Credentials in the target URL are refused, and never echoed.
#[test]
fn credentials_in_the_target_url_are_refused_without_echoing_them() {
    let yaml = minimal("", &alice()).replace("https://127.0.0.1:9", "https://labuser:s3cr3t-pw@127.0.0.1:9");
    let err = refusal(&yaml);
    assert!(err.contains("target.url") && err.contains("credentials in the URL"), "{err}");
    assert!(err.contains("identities:"), "the message points at identities: {err}");
    assert!(!err.contains("s3cr3t-pw") && !err.contains("labuser"), "the credential was echoed: {err}");
}
