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

fn gauntlet() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_gauntlet"))
}

/// A short scenario against `addr` (plain HTTP).
fn short(addr: std::net::SocketAddr) -> (tempfile::TempDir, std::path::PathBuf) {
    common::scenario_file(&format!(
        "gauntlet: 1\nname: short\ntarget: {{ url: \"http://{addr}\", protocol: h1 }}\nidentities: {{ a: {{}} }}\n\
         checks: [ {{ id: A, identity: a, request: {{ path: / }}, expect: allow }} ]\n\
         phases: [ {{ name: p, requests: 40, users: 2 }} ]\n"
    ))
}

/// 11. `--out` at a folder holding files is refused (nothing is sent, nothing touched);
///     `--force` replaces gauntlet's own files there and leaves the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_empty_out_folder_is_refused_unless_forced() {
    let target = gauntlet::testkit::spawn(gauntlet::testkit::Config::default()).await.unwrap();
    let (d, p) = short(target.addr);
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("summary.json"), "{\"from\": \"an earlier run\"}").unwrap();
    std::fs::write(out.join("latency.hlog.partial"), "stale").unwrap();
    std::fs::write(out.join("notes.txt"), "the lab's own notes").unwrap();
    let run = |force: bool| {
        let mut c = gauntlet();
        c.arg("run").arg(&p).arg("--headless").arg("--out").arg(&out);
        if force {
            c.arg("--force");
        }
        tokio::task::spawn_blocking(move || c.output().unwrap())
    };
    let refused = run(false).await.unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not empty") && stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(out.join("summary.json")).unwrap(), "{\"from\": \"an earlier run\"}");
    let forced = run(true).await.unwrap();
    assert_eq!(forced.status.code(), Some(0), "{}", String::from_utf8_lossy(&forced.stderr));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["requests"]["sent"], 40);
    assert!(!out.join("latency.hlog.partial").exists());
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "the lab's own notes");
    target.stop().await;
}

/// 4. A full disk: the run still prints its verdict and text summary, names what it could not
///    write, exits by the verdict, and leaves no `.partial` file. The disk is a tmpfs with no
///    free inodes, mounted in a private mount namespace (root only; said when skipped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_keeps_the_verdict_on_stdout_and_leaves_no_partial_file() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: a private tmpfs needs root (unshare --mount)");
        return;
    }
    let target = gauntlet::testkit::spawn(gauntlet::testkit::Config::default()).await.unwrap();
    let (d, p) = short(target.addr);
    let mnt = d.path().join("full");
    std::fs::create_dir_all(&mnt).unwrap();
    // Four inodes: the root, the results folder, the latency log, one more file.
    let script = "mount -t tmpfs -o size=1m,nr_inodes=4 gauntlet-full \"$0\" || exit 99; \
                  \"$1\" run \"$2\" --headless --out \"$0/res\"; rc=$?; echo '==listing'; ls -A \"$0/res\"; exit $rc";
    let mut c = std::process::Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c", script])
        .arg(&mnt)
        .arg(env!("CARGO_BIN_EXE_gauntlet"))
        .arg(&p);
    let o = tokio::task::spawn_blocking(move || c.output().unwrap()).await.unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    if o.status.code() == Some(99) {
        eprintln!("SKIPPED: cannot mount a tmpfs here: {stderr}");
        return;
    }
    assert_eq!(o.status.code(), Some(0), "the verdict (pass) decides the exit:\n{stdout}\n{stderr}");
    assert!(stdout.contains("verdict") && stdout.contains("PASS"), "no verdict on stdout:\n{stdout}");
    assert!(stdout.contains("INCOMPLETE"), "{stdout}");
    assert!(stderr.contains("cannot write") && stderr.contains("No space left"), "{stderr}");
    let listing = stdout.split("==listing").nth(1).unwrap_or_default();
    assert!(!listing.contains(".partial"), "partial files left: {listing}");
    target.stop().await;
}

/// 6. SIGHUP (the terminal closed) ends a run like SIGTERM: verdict and a whole folder.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_leaves_a_valid_results_folder() {
    let (status, _d, out, _) = super::cli::signalled("", "", "HUP", |_| true).await;
    assert_eq!(status.code(), Some(1), "an interrupted run is not a pass");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["interrupted"], true);
    assert!(out.join("latency.hlog").exists() && out.join("scenario.yaml").exists());
}

/// 6. SIGKILL cannot be handled: what survives is the latency log streamed so far, one
///    interval a second, each flushed as it is written.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_leaves_the_latency_log_up_to_the_last_second() {
    let intervals = |out: &Path| {
        std::fs::read_to_string(out.join("latency.hlog.partial"))
            .map(|t| t.lines().filter(|l| l.starts_with("Tag=latency,")).count())
            .unwrap_or(0)
    };
    let (status, _d, out, _) = super::cli::signalled("", "", "KILL", move |o| intervals(o) >= 2).await;
    assert_eq!(status.code(), None, "killed");
    assert!(intervals(&out) >= 2);
    assert!(!out.join("summary.json").exists());
}

/// 5. Values that can only be a mistake, or would exhaust the machine, are refused with the
///    bound and what to do.
#[test]
fn values_beyond_what_one_process_can_do_are_refused_with_their_bound() {
    let base = minimal("", &alice());
    let cases = [
        (base.replace("users: 1", "users: 1000000"), "phases[0].users", "over the 100000"),
        (base.replace("users: 1", "rate: 1e12/s, duration: 1s"), "phases[0].rate", "over 1000000/s"),
        (base.replace("users: 1", "rate: 18446744073709551616/s, duration: 1s"), "phases[0].rate", "over 1000000/s"),
        (minimal(", threads: 100000", &alice()), "target.threads", "100000 threads is over 1024"),
        (minimal(", max_in_flight: 4000000000", &alice()), "target.max_in_flight", "over the 100000"),
        (base.clone() + "thresholds: [ \"error_rate < 200%\" ]\n", "thresholds[0]", "from 0% to 100%"),
        (base.replace("name: hostile", &format!("name: {}", "n".repeat(5000))), "name", "at most 128"),
    ];
    for (yaml, field, want) in cases {
        let err = refusal(&yaml);
        let line = err.lines().find(|l| l.contains(want)).unwrap_or_else(|| panic!("no `{want}` in:\n{err}"));
        assert!(line.contains(field) || field == "name", "the problem must name `{field}`: {line}");
        assert!(line.split(": ").next().is_some_and(|f| f.contains(".yaml:")), "a position: {line}");
    }
}

/// 8. A byte-order mark is not content; control characters in a scenario never reach the
///    terminal raw.
#[test]
fn a_byte_order_mark_is_accepted_and_control_characters_are_escaped() {
    let (_d, p) = common::scenario_file(&format!("\u{feff}{}", minimal("", &alice())));
    common::load(&p);
    let evil = minimal("", &alice()).replace("name: hostile", "name: \"x\\e]0;owned\\a\\e[2J\\r\\nforged: line\\0\"");
    let err = refusal(&evil);
    assert!(!err.chars().any(|c| c.is_control() && c != '\n'), "raw control characters: {err:?}");
    assert!(err.contains("\\u{1b}]0;owned"), "{err}");
    assert_eq!(err.lines().count(), 1, "a forged line: {err}");
}

/// 9. A relative time that does not parse is an error, unless the claim is marked raw.
#[test]
fn a_malformed_relative_time_is_an_error_unless_marked_raw() {
    let with_claim = |exp: &str| {
        let token = format!(
            ", token: {{ jwt: {{ alg: RS256, key: \"{}\", claims: {{ sub: alice, exp: {exp} }} }} }}",
            common::cert("jwt-rs256.key")
        );
        minimal("", &alice().replace(" }", &format!("{token} }}")))
    };
    let err = refusal(&with_claim("\"+banana\""));
    assert!(err.contains("identities.alice.token.jwt.claims.exp") && err.contains("not a relative time"), "{err}");
    assert!(err.contains("{ raw: \"+banana\" }"), "the message says how to mark it raw: {err}");
    let err = refusal(&with_claim("tomorrow"));
    assert!(err.contains("not a relative time"), "{err}");
    let (_d, p) = common::scenario_file(&with_claim("{ raw: \"+banana\" }"));
    common::load(&p);
    let (_d, p) = common::scenario_file(&with_claim("+5m"));
    common::load(&p);
}

/// 10. Redaction goes by rule: secret-looking header names, query parameters and request
///     bodies never reach the results' `scenario.yaml` in clear.
#[test]
fn secrets_are_redacted_by_rule_in_the_resolved_scenario() {
    let yaml = minimal("", &alice()).replace(
        "request: { path: /a }",
        "request: { path: \"/a?access_token=tok-9f8e&page=2\", method: POST, body: \"password=hunter2\", \
         headers: { x-client-secret: cs-1234, x-password: pw-5678, x-session-id: sid-0001, x-trace: keep-me } }",
    )
    .replace(
        "phases:",
        "  - { id: B, identity: alice, request: { path: /b, method: POST, body: \"{\\\"q\\\": 1}\", body_public: true }, expect: allow }\nphases:",
    );
    let (_d, p) = common::scenario_file(&yaml);
    let s = common::load(&p);
    for secret in ["tok-9f8e", "hunter2", "cs-1234", "pw-5678", "sid-0001"] {
        assert!(!s.resolved_yaml.contains(secret), "`{secret}` in clear:\n{}", s.resolved_yaml);
    }
    for kept in ["keep-me", "page=2", "access_token=REDACTED", "{\"q\": 1}"] {
        assert!(s.resolved_yaml.contains(kept), "`{kept}` missing:\n{}", s.resolved_yaml);
    }
}

/// 7. `validate` refuses what `run` would: a certificate given another identity's key.
#[test]
fn a_certificate_with_another_identitys_key_is_refused_at_validation() {
    let yaml = minimal("", &alice()).replace(&common::cert("alice.key"), &common::cert("bob.key"));
    let err = refusal(&yaml);
    assert!(err.contains("identities.alice.key") && err.contains("another identity's key"), "{err}");
    let (_d, p) = common::scenario_file(&yaml);
    let out = gauntlet().arg("validate").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "validate must refuse it");
}

/// 11. `certs init` keeping a private key others can read makes it 0600 and says so.
#[cfg(unix)]
#[test]
fn certs_init_fixes_a_kept_private_key_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    gauntlet::tls::pki::init(d.path(), false).unwrap();
    let key = d.path().join("alice.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = gauntlet().args(["certs", "init", "--dir"]).arg(d.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(
        stdout.contains("alice.key was readable by others (mode 0644): now 0600, as a private key must be"),
        "{stdout}"
    );
    // Nothing to fix the second time.
    let again = gauntlet().args(["certs", "init", "--dir"]).arg(d.path()).output().unwrap();
    assert!(!String::from_utf8_lossy(&again.stdout).contains("readable by others"));
}
