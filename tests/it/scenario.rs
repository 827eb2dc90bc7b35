//! Every shipped scenario loads; every invalid fixture fails with its stated message.

use std::path::Path;

use gauntlet::scenario::{self, Overrides};

#[test]
fn every_shipped_scenario_loads() {
    super::common::repo_certs();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            if let Err(err) = scenario::load(&p, &Overrides::default()) {
                panic!("{} does not load:\n{err}", p.display());
            }
            n += 1;
        }
    }
    assert!(n >= 1);
}

/// Each file in scenarios/invalid/ starts with `# expect: TEXT` and `# at: LINE:COL` (or
/// `# at: none` for a problem with no place, e.g. an empty file): the problem carrying TEXT
/// must point there.
#[test]
fn every_invalid_fixture_fails_with_its_message_and_position() {
    super::common::repo_certs();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/invalid");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let mut lines = text.lines();
        let want = lines.next().and_then(|l| l.strip_prefix("# expect: ")).expect("first line `# expect: ...`");
        let at = lines.next().and_then(|l| l.strip_prefix("# at: ")).expect("second line `# at: LINE:COL`");
        let err = match scenario::load(&p, &Overrides::default()) {
            Ok(_) => panic!("{} loaded but must fail", p.display()),
            Err(e) => e.to_string(),
        };
        let Some(line) = err.lines().find(|l| l.contains(want)) else {
            panic!("{}:\n  want: {want}\n  got:  {err}", p.display())
        };
        let file = p.display().to_string();
        let place = if at == "none" { format!("{file}: ") } else { format!("{file}:{at}: ") };
        assert!(line.starts_with(&place), "{}: the problem must point at {at}\n  got: {line}", p.display());
        n += 1;
    }
    assert!(n >= 15, "only {n} invalid fixtures");
}

#[test]
fn include_merges_a_check_pack_and_a_target_profile_from_other_files() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("packs")).unwrap();
    std::fs::write(
        d.path().join("packs/pack.yaml"),
        "checks:\n  - { id: P-1, identity: anon, request: { route: admin }, expect: deny }\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("gw.yaml"),
        "profile: { name: gw, routes: { admin: /private/admin }, deny_status: [401] }\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("main.yaml"),
        "gauntlet: 1\nname: inc\ninclude: [packs/pack.yaml, gw.yaml]\ntarget: { url: \"http://127.0.0.1:9/base\" }\n\
         identities: { anon: {} }\nphases: [ { name: p, requests: 10, rate: 10/s } ]\n",
    )
    .unwrap();
    let s = super::common::load(&d.path().join("main.yaml"));
    assert_eq!(s.checks.len(), 1);
    assert_eq!(s.checks[0].request.path, "/base/private/admin");
    assert_eq!(s.checks[0].expect, gauntlet::conformance::Expect::Deny { statuses: vec![401] });
    assert_eq!(s.sources.len(), 3);
    assert!(s.resolved_yaml.contains("P-1"));
}

#[test]
fn several_problems_are_reported_together() {
    let (_d, p) = super::common::scenario_file(
        "gauntlet: 1\nname: multi\ntarget: { url: \"http://127.0.0.1:9\" }\nidentities: { a: {} }\n\
         checks: [ { id: X, identity: nobody, request: { path: / }, expect: allow } ]\n\
         phases: [ { name: p, duration: 3 fortnights, rate: 10/s } ]\n",
    );
    let err = scenario::load(&p, &Overrides::default()).unwrap_err().to_string();
    assert!(err.contains("no identity named `nobody`"), "{err}");
    assert!(err.contains("3 fortnights"), "{err}");
    assert!(err.contains("scenario.yaml:5:"), "{err}");
}

#[test]
fn the_documented_example_validates() {
    let certs = super::common::repo_certs();
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/scenario.md")).unwrap();
    let start = doc.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let yaml = &doc[start..start + doc[start..].find("```").unwrap()];
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("docs")).unwrap();
    std::os::unix::fs::symlink(&certs, d.path().join("certs")).unwrap();
    let p = d.path().join("docs/example.yaml");
    std::fs::write(&p, yaml).unwrap();
    let s = super::common::load(&p);
    assert_eq!(s.checks.len(), 7);
    assert_eq!(s.error_budget, 0.01);
    let spoof = s.checks.iter().find(|c| c.id == "ZT-HDR-PROP-002").unwrap();
    assert_eq!(spoof.upstream.stripped[0].1, "admins");
    let rate = s.checks.iter().find(|c| c.id == "ZT-DOS-RATE-001").unwrap();
    assert_eq!(rate.request.varying.len(), 1);
    assert_eq!(s.phases.len(), 4);
    assert!(s.phases[2].network.is_some());
    assert_eq!(s.thresholds.len(), 5);
    assert_eq!(s.identities.len(), 11);
    let team = s.identities.iter().find(|i| i.name == "team").unwrap();
    assert_eq!((team.members(), team.principal_of(19)), (20, "team-20".to_string()));
    assert_eq!(s.slots().last().copied(), Some(30));
    assert_eq!(s.dependencies.len(), 2);
    assert_eq!(s.events.len(), 2);
    assert_eq!(s.events[0].outage.as_ref().map(|o| o.statuses.clone()), Some(vec![503]));
}

/// A limit check sent slower than `drive` × its limit is run, but `validate` says why it will
/// be inconclusive, at its position.
#[test]
fn an_underdriven_limit_check_is_a_warning_with_its_position() {
    let (_d, p) = super::common::scenario_file(
        "gauntlet: 1\nname: limit\ntarget: { url: \"http://127.0.0.1:9\", protocol: h1 }\n\
         identities: { anon: {} }\nchecks:\n\
         - { id: OK, identity: anon, request: { path: / }, expect: allow }\n\
         - { id: RATE, identity: anon, request: { path: /l }, expect: { limit: { requests: 50, per: 1s } } }\n\
         phases:\n  - { name: p, duration: 10s, rate: 100/s, mix: { OK: 70, RATE: 30 } }\n",
    );
    let s = super::common::load(&p);
    assert_eq!(s.warnings.len(), 1);
    let w = s.warnings[0].to_string();
    assert!(w.contains(":7:") && w.contains("= 60.0/s or more") && w.contains("inconclusive"), "{w}");
}

/// A scenario may override an identity or a check of a file it includes; each override is
/// reported. Two files neither of which includes the other may not define the same name.
#[test]
fn a_scenario_overrides_what_it_includes_and_says_so() {
    let d = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| std::fs::write(d.path().join(name), text).unwrap();
    w(
        "pack.yaml",
        "identities: { alice: { principal: alice } }\n\
         checks: [ { id: A, identity: alice, request: { path: /a }, expect: allow } ]\n",
    );
    w("other.yaml", "identities: { alice: { principal: someone-else } }\n");
    let base = "gauntlet: 1\nname: o\ntarget: { url: \"http://127.0.0.1:9\", protocol: h1 }\n\
                phases: [ { name: p, requests: 1, rate: 1/s } ]\n";
    w(
        "main.yaml",
        &format!(
            "{base}include: [pack.yaml]\nidentities: {{ alice: {{ principal: alice-prod }} }}\n\
                  checks: [ {{ id: A, identity: alice, request: {{ path: /b }}, expect: {{ deny: [403] }} }} ]\n"
        ),
    );
    let s = super::common::load(&d.path().join("main.yaml"));
    assert_eq!(s.identities.len(), 1);
    assert_eq!(s.identities[0].principal, "alice-prod");
    assert_eq!(s.checks.len(), 1);
    assert_eq!(s.checks[0].request.path, "/b");
    let notes: Vec<String> = s.notes.iter().map(|n| n.to_string()).collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].contains("main.yaml:6:") && notes[0].contains("identity `alice` overrides"), "{notes:?}");
    assert!(notes[1].contains("check `A` overrides the one defined in") && notes[1].contains("pack.yaml"), "{notes:?}");
    // Siblings: an error, with the other file named.
    w("siblings.yaml", &format!("{base}include: [pack.yaml, other.yaml]\n"));
    let err = scenario::load(&d.path().join("siblings.yaml"), &Overrides::default()).unwrap_err().to_string();
    assert!(err.contains("identity `alice` is already defined in") && err.contains("pack.yaml"), "{err}");
}
