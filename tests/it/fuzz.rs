//! Property tests over generated and mutated scenario files (issue 13): `scenario::load`
//! (parse, include, merge, validate) never panics, never hangs, and every problem it reports
//! has a position (or is one of the few that has none: an empty file) and prints no raw
//! control character. Stable toolchain, proptest; each case is bounded in time.

use std::sync::mpsc;
use std::time::Duration;

use gauntlet::scenario::{self, Error, Overrides};
use proptest::prelude::*;

use super::common;

/// A valid scenario the mutations start from (paths into the test PKI).
fn base() -> String {
    format!(
        "gauntlet: 1\nname: fuzz\n\
         target: {{ url: \"https://127.0.0.1:9\", ca: \"{ca}\", server_name: localhost, protocol: h2 }}\n\
         profile:\n  name: p\n  routes: {{ admin: /admin, api: /api }}\n  identity_header: x-forwarded-user\n\
         identities:\n  alice: {{ principal: alice, cert: \"{cert}\", key: \"{key}\" }}\n  anon: {{}}\n\
         checks:\n  - {{ id: A, identity: alice, request: {{ route: api, path: /x }}, expect: allow }}\n\
         \x20 - {{ id: B, identity: anon, request: {{ path: /admin }}, expect: deny }}\n\
         phases:\n  - {{ name: p, duration: 2s, rate: 10/s }}\n  - {{ name: q, requests: 5, users: 2 }}\n\
         thresholds: [ \"leak == 0\", \"p99 < 250ms during p\" ]\n",
        ca = common::cert("ca.pem"),
        cert = common::cert("alice.pem"),
        key = common::cert("alice.key"),
    )
}

/// Fragments a hostile or careless author writes.
const FRAGMENTS: &[&str] = &[
    "\u{feff}",
    "\u{1b}]0;x\u{7}",
    "\r\n",
    "\0",
    "\t",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "? ",
    "|",
    ">",
    "'",
    "\"",
    "#",
    "%YAML 1.2\n",
    "---\n",
    "...\n",
    "~",
    "null",
    "1e12/s",
    "18446744073709551616",
    "-1",
    "1000000",
    "+banana",
    "200%",
    "0s",
    "/dev/zero",
    "admin: /public",
    "\u{9b}",
    "\u{fffd}",
    "ü",
    "\\",
    "include: [x]",
    "users: 0",
    "rate: 0/s",
    "{from: 1/s}",
    "exp: now",
    "\n  ",
    "\n- ",
];

/// Keys gauntlet knows, at any level.
const KEYS: &[&str] = &[
    "gauntlet",
    "name",
    "target",
    "url",
    "ca",
    "protocol",
    "profile",
    "routes",
    "identities",
    "principal",
    "cert",
    "key",
    "token",
    "jwt",
    "alg",
    "claims",
    "exp",
    "checks",
    "id",
    "identity",
    "request",
    "path",
    "method",
    "headers",
    "body",
    "expect",
    "phases",
    "duration",
    "rate",
    "users",
    "requests",
    "mix",
    "thresholds",
    "network",
    "oracle",
    "listen",
    "seed",
    "error_budget",
    "upstream",
    "limit",
    "from",
    "to",
    "replay",
    "unknown_key",
    "threads",
    "max_in_flight",
];

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..8).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), 0..FRAGMENTS.len()).prop_map(|(a, f)| Edit::Insert(a, f)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    for e in edits {
        let n = b.len().max(1);
        match *e {
            Edit::Delete(a, k) => {
                let a = a % n;
                let end = (a + k).min(b.len());
                if a < end {
                    b.drain(a..end);
                }
            }
            Edit::Insert(a, f) => {
                let a = a % (b.len() + 1);
                b.splice(a..a, FRAGMENTS[f].bytes());
            }
            Edit::DuplicateLine(l) | Edit::SwapLines(l, _) | Edit::Truncate(l) if b.is_empty() => {
                let _ = l;
            }
            Edit::DuplicateLine(l) => {
                let mut lines: Vec<Vec<u8>> = b.split(|c| *c == b'\n').map(<[u8]>::to_vec).collect();
                let i = l % lines.len();
                let copy = lines[i].clone();
                lines.insert(i, copy);
                b = lines.join(&b'\n');
            }
            Edit::SwapLines(x, y) => {
                let mut lines: Vec<Vec<u8>> = b.split(|c| *c == b'\n').map(<[u8]>::to_vec).collect();
                let n = lines.len();
                lines.swap(x % n, y % n);
                b = lines.join(&b'\n');
            }
            Edit::Truncate(at) => b.truncate(at % n),
        }
    }
    b
}

/// A YAML value in flow style, up to `depth` levels of nesting.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f}")),
        Just("18446744073709551616".to_string()),
        (0..FRAGMENTS.len()).prop_map(|f| format!("{:?}", FRAGMENTS[f])),
        "[a-z0-9/:%.+-]{0,12}",
        Just("~".to_string()),
        Just("true".to_string()),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((0..KEYS.len(), inner), 0..6).prop_map(|kv| {
                let items: Vec<String> = kv.into_iter().map(|(k, v)| format!("{}: {v}", KEYS[k])).collect();
                format!("{{{}}}", items.join(", "))
            }),
        ]
    })
}

/// A whole document of known top-level keys with generated values.
fn document() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((0..KEYS.len(), value()), 0..10).prop_map(|kv| {
        let mut s = String::from("gauntlet: 1\n");
        for (k, v) in kv {
            s.push_str(&format!("{}: {v}\n", KEYS[k]));
        }
        s.into_bytes()
    })
}

/// Loads `bytes` as a scenario file on another thread, bounded in time; checks the result.
fn check(bytes: Vec<u8>) -> Result<(), TestCaseError> {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s.yaml");
    std::fs::write(&p, &bytes).unwrap();
    let (tx, rx) = mpsc::channel();
    let path = p.clone();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| scenario::load(&path, &Overrides::default()).map(|_| ()));
        let _ = tx.send(r);
    });
    let shown = String::from_utf8_lossy(&bytes).into_owned();
    let r = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(r) => r,
        Err(_) => return Err(TestCaseError::fail(format!("load hung on:\n{shown}"))),
    };
    let Ok(r) = r else { return Err(TestCaseError::fail(format!("load panicked on:\n{shown}"))) };
    if let Err(e) = r {
        let text = e.to_string();
        prop_assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "raw control character in: {text:?}");
        if let Error::Invalid { problems } = e {
            prop_assert!(!problems.is_empty());
            for pr in &problems {
                prop_assert!(
                    pr.pos.is_some() || pr.msg.contains("empty"),
                    "a problem without a position: {pr}\nin:\n{shown}"
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_scenarios_never_panic_hang_or_lose_the_position(edits in prop::collection::vec(edit(), 1..6)) {
        check(apply(&base(), &edits))?;
    }

    #[test]
    fn generated_documents_never_panic_hang_or_lose_the_position(doc in document()) {
        check(doc)?;
    }
}

#[test]
fn the_base_scenario_is_valid() {
    let (_d, p) = common::scenario_file(&base());
    common::load(&p);
}

/// Found by the mutation test: a stray indented first line makes a second document, which
/// serde reports with no position.
#[test]
fn a_second_document_is_reported_where_it_starts() {
    let (_d, p) = common::scenario_file("  name: p\nname: fuzz\n");
    let Error::Invalid { problems } = scenario::load(&p, &Overrides::default()).unwrap_err() else { panic!() };
    assert!(problems.iter().all(|p| p.pos.is_some()), "{problems:?}");
    let (_d, p) = common::scenario_file("gauntlet: 1\n---\nname: x\n");
    let err = scenario::load(&p, &Overrides::default()).unwrap_err().to_string();
    assert!(err.contains("scenario.yaml:2:1: a second YAML document starts here"), "{err}");
}
