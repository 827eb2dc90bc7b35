//! Verdicts a lab can sign (issue 10): every observation of a wrong PASS, a false alarm or an
//! error of gauntlet's own, reproduced against a small server that behaves that way.

use std::collections::BTreeMap;

use gauntlet::judge::{CheckResult, RunVerdict, UnsentCause};
use gauntlet::report::{CheckSummary, Summary};

use super::common::{self, Act, reply};

fn by_id(s: &Summary) -> BTreeMap<String, &CheckSummary> {
    s.checks.iter().map(|c| (c.id.clone(), c)).collect()
}

const ANON: &str = "identities: { anon: {} }\n";

/// A plain-http scenario with one check (sent as `anon`) and one phase, both as flow maps'
/// inner text.
fn one_check(name: &str, addr: std::net::SocketAddr, target: &str, check: &str, phase: &str) -> String {
    common::http_scenario(name, addr, target, &format!("{ANON}checks: [ {{ {check} }} ]\nphases: [ {{ {phase} }} ]\n"))
}

/// [`one_check`] with the allow check `OK` (GET /api).
fn allow_only(name: &str, addr: std::net::SocketAddr, target: &str, phase: &str) -> String {
    one_check(name, addr, target, "id: OK, identity: anon, request: { path: /api }, expect: allow", phase)
}

/// An allow check whose every answer is 404, 500, 302 or 503 fails; with allow checks only
/// the run is FAIL and the conformance report does not say success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_check_passes_only_on_its_success_statuses() {
    for status in [404u16, 500, 302, 503] {
        let (addr, stop) = common::raw_server(move |_, _, _| reply(status)).await;
        let yaml = allow_only("allow-only", addr, "max_in_flight: 4", "name: p, requests: 30, rate: 300/s");
        let (d, code, s) = common::run_yaml(&yaml).await;
        stop.cancel();
        let c = by_id(&s)["OK"];
        assert_eq!(c.result, CheckResult::Fail, "{status}: {:?}", c.reason);
        assert!(c.reason.contains(&format!("{status} ×30")) && c.reason.contains("expected 2xx"), "{}", c.reason);
        assert_eq!(c.outcomes.unexpected_status, 30);
        assert_eq!((code, s.verdict), (1, RunVerdict::Fail), "{status}");
        let report = std::fs::read_to_string(d.path().join("out/conformance.yaml")).unwrap();
        assert!(!report.contains("result: success"), "{status}: {report}");
    }
    // A declared success status is a success.
    let (addr, stop) = common::raw_server(|_, _, _| reply(204)).await;
    let yaml = common::http_scenario(
        "allow-204",
        addr,
        "max_in_flight: 4",
        &format!(
            "{ANON}checks: [ {{ id: OK, identity: anon, request: {{ path: /api }}, expect: {{ allow: [204] }} }} ]\n\
             phases: [ {{ name: p, requests: 10, rate: 300/s }} ]\n"
        ),
    );
    let (_d, code, s) = common::run_yaml(&yaml).await;
    stop.cancel();
    assert_eq!((code, s.verdict), (0, RunVerdict::Pass), "{:?}", s.reasons);
}

/// The target dies mid-run: the run fails and the reason says how many got no answer and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_dies_mid_run_fails_the_run_with_the_cause() {
    // After 150 answers the server closes its connections and its listener: later connects
    // are refused.
    let dead = tokio_util::sync::CancellationToken::new();
    let d2 = dead.clone();
    let (addr, stop) = common::raw_server(move |n, _, _| {
        if n + 1 >= 150 {
            d2.cancel();
        }
        if n >= 150 { Act::Close } else { reply(200) }
    })
    .await;
    let killer = tokio::spawn(async move {
        dead.cancelled().await;
        stop.cancel();
    });
    let yaml = allow_only("dies", addr, "max_in_flight: 8, timeout: 2s", "name: p, requests: 500, rate: 1000/s");
    let (_d, code, s) = common::run_yaml(&yaml).await;
    killer.abort();
    assert_eq!(s.requests.sent, 500);
    assert!(s.requests.errors >= 300, "{:?}", s.errors);
    assert_eq!((code, s.verdict), (1, RunVerdict::Fail));
    let r = s.reasons.iter().find(|r| r.contains("got no answer")).expect("an error-budget reason");
    assert!(r.contains("of 500 requests") && r.contains("error budget"), "{r}");
    assert!(r.contains("connect"), "{r}");
    assert!(r.contains("the last answer came at"), "{r}");
    let c = by_id(&s)["OK"];
    assert!(!c.error_causes.is_empty(), "the errors carry their causes");
    assert_ne!(c.result, CheckResult::Pass);
}

/// On https, a server that accepts TCP and closes before any ServerHello refused nothing:
/// `tls_reject` checks cannot pass on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_before_speaking_tls_proves_nothing() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            drop(s);
        }
    });
    let yaml = format!(
        "gauntlet: 1\nname: no-tls\ntarget: {{ url: \"https://{addr}\", ca: \"{ca}\", server_name: localhost, protocol: h1, max_in_flight: 4 }}\n\
         {ids}checks: [ {{ id: NO-CERT, identity: stranger, request: {{ path: /api }}, expect: tls_reject }} ]\n\
         phases: [ {{ name: p, requests: 20, rate: 200/s }} ]\n",
        ca = common::cert("ca.pem"),
        ids = common::identities(),
    );
    let (_d, code, s) = common::run_yaml(&yaml).await;
    server.abort();
    let c = by_id(&s)["NO-CERT"];
    assert_eq!(c.outcomes.denied, 0, "{:?}", c.statuses);
    assert_eq!(c.outcomes.no_answer.get("connect"), Some(&20), "{:?}", c.outcomes);
    assert_ne!(c.result, CheckResult::Pass);
    assert!(c.error_causes.iter().any(|e| e.message.contains("before any TLS handshake byte")), "{:?}", c.error_causes);
    assert_eq!(code, 1);
}

/// A 101 to a plain request is not a success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_101_to_a_plain_request_is_not_a_success() {
    let (addr, stop) = common::raw_server(|_, _, _| {
        Act::Reply(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n".to_vec())
    })
    .await;
    let yaml = allow_only("switch", addr, "max_in_flight: 2", "name: p, requests: 10, rate: 200/s");
    let (_d, code, s) = common::run_yaml(&yaml).await;
    stop.cancel();
    let c = by_id(&s)["OK"];
    assert_eq!(c.outcomes.passed, 0);
    assert_eq!(c.outcomes.no_answer.get("protocol"), Some(&10), "{:?}", c.outcomes);
    assert!(c.error_causes[0].message.contains("did not ask to upgrade"), "{:?}", c.error_causes);
    assert_eq!(code, 1);
}

/// `false_deny` uses the profile's deny statuses: a gateway refusing with 302-to-login or 407.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn false_deny_uses_the_profiles_deny_statuses() {
    for status in [302u16, 407] {
        let (addr, stop) = common::raw_server(move |_, _, _| reply(status)).await;
        let yaml = common::http_scenario(
            "login",
            addr,
            "max_in_flight: 2",
            &format!(
                "profile: {{ name: sso, deny_status: [302, 407] }}\n{ANON}\
                 checks: [ {{ id: OK, identity: anon, request: {{ path: /api }}, expect: allow }} ]\n\
                 phases: [ {{ name: p, requests: 12, rate: 200/s }} ]\n"
            ),
        );
        let (_d, code, s) = common::run_yaml(&yaml).await;
        stop.cancel();
        let c = by_id(&s)["OK"];
        assert_eq!(c.violations["false_deny"], 12, "{status}: {:?}", c.outcomes);
        assert_eq!(c.result, CheckResult::Fail);
        assert_eq!(code, 1);
    }
}

/// A duration-bounded open-loop phase stops sending at its duration against a stalled
/// target; what it could not send is counted, with its cause, and fails the phase's rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duration_bounded_phase_ends_on_time_against_a_stalled_target() {
    let (addr, stop) = common::raw_server(|n, _, _| if n < 20 { reply(200) } else { Act::Hang }).await;
    let yaml = allow_only("stalled", addr, "max_in_flight: 16, timeout: 2s", "name: p, duration: 1s, rate: 200/s");
    let (_d, code, s) =
        tokio::time::timeout(std::time::Duration::from_secs(60), common::run_yaml(&yaml)).await.unwrap();
    stop.cancel();
    let p = &s.phases[0];
    assert_eq!(p.duration_s, 1.0, "the phase ends at its duration");
    assert_eq!(p.scheduled, Some(200));
    assert_eq!(p.requests.sent + p.requests.unsent, 200, "{:?}", p.requests);
    assert!(p.requests.unsent > 100, "{:?}", p.requests);
    assert_eq!(p.unsent_cause, Some(UnsentCause::InFlightCap));
    assert!(
        s.reasons.iter().any(|r| r.contains("did not keep its rate") && r.contains("in-flight cap")),
        "{:?}",
        s.reasons
    );
    assert_eq!(code, 1);
}

/// `rate: 1e6/s, duration: 1s` ends after its second, whatever it managed to send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_rate_ends_on_time_too() {
    let (addr, stop) = common::raw_server(|_, _, _| reply(200)).await;
    let yaml = allow_only("flood", addr, "max_in_flight: 32, timeout: 2s", "name: p, duration: 1s, rate: 1000000/s");
    let (_d, code, s) =
        tokio::time::timeout(std::time::Duration::from_secs(60), common::run_yaml(&yaml)).await.unwrap();
    stop.cancel();
    let p = &s.phases[0];
    assert_eq!(p.duration_s, 1.0);
    assert_eq!(p.requests.sent + p.requests.unsent, p.scheduled.unwrap(), "{:?}", p.requests);
    assert!(p.requests.unsent > 0);
    assert!(p.unsent_cause.is_some());
    assert_eq!(code, 1);
}

/// A server that closes a kept-alive connection without answering the next request (what
/// HAProxy did): idempotent requests are retried once on a new connection and counted,
/// not reported as errors; a POST is not retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_keep_alive_connections_are_retried_once_for_idempotent_requests() {
    // Every connection answers two requests, then closes on the third without a byte.
    let (addr, stop) = common::raw_server(|_, k, _| if k >= 2 { Act::Close } else { reply(200) }).await;
    let yaml = one_check(
        "stale",
        addr,
        "max_in_flight: 4",
        "id: GET, identity: anon, request: { path: /api }, expect: allow",
        "name: p, requests: 200, rate: 400/s",
    );
    let (_d, code, s) = common::run_yaml(&yaml).await;
    assert_eq!(s.requests.errors, 0, "{:?} {:?}", s.errors, s.checks[0].error_causes);
    assert!(s.requests.stale_retries > 0);
    assert_eq!((code, s.verdict), (0, RunVerdict::Pass), "{:?}", s.reasons);
    assert!(s.notes.iter().any(|n| n.contains("kept-alive connection(s) without answering")), "{:?}", s.notes);
    // A POST on a stale connection is not sent twice.
    let yaml = one_check(
        "stale-post",
        addr,
        "max_in_flight: 1",
        "id: POST, identity: anon, request: { method: POST, path: /api, body: x }, expect: allow",
        "name: p, requests: 9, users: 1",
    );
    let (_d, _, s) = common::run_yaml(&yaml).await;
    stop.cancel();
    assert_eq!(s.requests.stale_retries, 0);
    assert_eq!(s.errors["reset"], 3, "{:?}", s.errors);
    let c = by_id(&s)["POST"];
    assert!(c.error_causes.iter().any(|e| e.message.contains("kept-alive connection without answering")));
}

/// A gateway that injects its own correct identity headers is not a spoof; one that lets
/// the client's forged value through is, and the finding names the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_findings_name_the_header_and_a_gateways_own_value_is_no_spoof() {
    let check = "checks:\n\
         - { id: SPOOF, identity: alice, request: { path: /api, headers: { x-forwarded-user: admin, x-forwarded-groups: admins } }, expect: allow,\n\
             upstream: { stripped: [x-forwarded-groups] } }\n\
         phases: [ { name: p, requests: 20, rate: 200/s } ]\n";
    let run = |edits: Vec<(String, Option<String>)>| async move {
        let oracle = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gw = gauntlet::testkit::spawn(gauntlet::testkit::Config {
            forward_to: Some(oracle.local_addr().unwrap()),
            forward_headers: edits,
            ..Default::default()
        })
        .await
        .unwrap();
        let yaml = common::http_scenario(
            "hdr",
            gw.addr,
            "max_in_flight: 2",
            &format!(
                "profile: {{ name: p, identity_header: x-forwarded-user }}\nidentities: {{ alice: {{ principal: alice }} }}\n{check}"
            ),
        );
        let (_d, out) = common::run_with(&yaml, oracle, None).await;
        gw.stop().await;
        (out.exit.code(), out.summary.unwrap())
    };
    // Correct hygiene: the gateway replaces both with its own (correct) values.
    let (code, s) =
        run(vec![("x-forwarded-user".into(), Some("alice".into())), ("x-forwarded-groups".into(), Some("eng".into()))])
            .await;
    assert_eq!((code, s.verdict), (0, RunVerdict::Pass), "{:?}", s.reasons);
    // No hygiene: the forged values arrive.
    let (code, s) = run(vec![]).await;
    assert_eq!(code, 1);
    let c = by_id(&s)["SPOOF"];
    assert_eq!(c.violations["spoofed_header"], 20);
    let found = &c.upstream.as_ref().unwrap().headers;
    let names: Vec<(&str, &str)> = found.iter().map(|f| (f.header.as_str(), f.problem.name())).collect();
    assert!(names.contains(&("x-forwarded-groups", "forged")), "{names:?}");
    assert!(names.contains(&("x-forwarded-user", "forged")), "{names:?}");
    assert!(c.reason.contains("x-forwarded-groups"), "{}", c.reason);
    // Half hygiene: the identity header is set, the groups are appended to.
    let (_, s) = run(vec![
        ("x-forwarded-user".into(), Some("alice".into())),
        ("x-forwarded-groups".into(), Some("admins, eng".into())),
    ])
    .await;
    let c = by_id(&s)["SPOOF"];
    let found = &c.upstream.as_ref().unwrap().headers;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].header, "x-forwarded-groups");
    assert_eq!(found[0].sample.as_deref(), Some("admins, eng"));
}

/// A limiter keyed on a client-controlled header never engages when the header rotates: the
/// limit check catches it at 1.2× the limit. One that refuses nearly everything is a false
/// deny.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_check_measures_the_allowed_rate_per_window() {
    // A token bucket of 20/s (burst 20) keyed on `x-forwarded-for` (or "-" without it).
    fn limiter(key_from_xff: bool) -> impl Fn(u64, u64, &str) -> Act + Send + Sync + 'static {
        let buckets = std::sync::Mutex::new(std::collections::HashMap::<String, (f64, std::time::Instant)>::new());
        move |_, _, head| {
            let key = if key_from_xff {
                head.lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-forwarded-for:").map(|v| v.trim().to_string()))
                    .unwrap_or_else(|| "-".into())
            } else {
                "-".into()
            };
            let now = std::time::Instant::now();
            let mut b = buckets.lock().unwrap();
            let (tokens, at) = b.entry(key).or_insert((20.0, now));
            *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * 20.0).min(20.0);
            *at = now;
            if *tokens >= 1.0 {
                *tokens -= 1.0;
                reply(200)
            } else {
                reply(429)
            }
        }
    }
    let scenario = |addr, headers: &str| {
        common::http_scenario(
            "limit",
            addr,
            "max_in_flight: 8",
            &format!(
                "{ANON}checks:\n\
                 - {{ id: RATE, identity: anon, request: {{ path: /api{headers} }}, expect: {{ limit: {{ requests: 20, per: 1s }} }} }}\n\
                 phases: [ {{ name: p, duration: 16s, rate: 24/s }} ]\n"
            ),
        )
    };
    // A correct limiter (keyed on the identity): 24/s sent, 20/s allowed. Passes.
    let (addr, stop) = common::raw_server(limiter(false)).await;
    let (_d, code, s) = common::run_yaml(&scenario(addr, ", headers: { x-forwarded-for: \"{seq:ipv4}\" }")).await;
    stop.cancel();
    let c = by_id(&s)["RATE"];
    assert_eq!((code, c.result), (0, CheckResult::Pass), "{} {:?}", c.reason, c.limit);
    assert!(c.limit.as_ref().unwrap().windows_driven >= 10);
    // Keyed on the rotating header: every request gets a fresh bucket.
    let (addr, stop) = common::raw_server(limiter(true)).await;
    let (_d, code, s) = common::run_yaml(&scenario(addr, ", headers: { x-forwarded-for: \"{seq:ipv4}\" }")).await;
    stop.cancel();
    let c = by_id(&s)["RATE"];
    assert_eq!(c.result, CheckResult::Fail);
    assert!(c.violations["limit_bypass"] >= 1, "{:?}", c.limit);
    assert!(c.reason.contains("allowed more than the limit"), "{}", c.reason);
    assert_eq!(code, 1);
    // Refusing 98 % of requests is not a working limiter either.
    let (addr, stop) = common::raw_server(|n, _, _| if n % 50 == 0 { reply(200) } else { reply(429) }).await;
    let (_d, code, s) = common::run_yaml(&scenario(addr, "")).await;
    stop.cancel();
    let c = by_id(&s)["RATE"];
    assert!(c.violations["false_deny"] >= 10, "{:?}", c.limit);
    assert_eq!((code, c.result), (1, CheckResult::Fail));
}

/// A TLS verification failure carries rustls's reason all the way to the summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_their_cause() {
    let target = gauntlet::testkit::spawn(gauntlet::testkit::Config {
        tls: Some(common::tls_setup(false)),
        ..Default::default()
    })
    .await
    .unwrap();
    let yaml = format!(
        "gauntlet: 1\nname: wrong-name\ntarget: {{ url: \"https://{}\", ca: \"{}\", server_name: not-the-server.test, protocol: h1, max_in_flight: 2 }}\n\
         {ANON}checks: [ {{ id: OK, identity: anon, request: {{ path: /api }}, expect: allow }} ]\n\
         phases: [ {{ name: p, requests: 10, rate: 200/s }} ]\n",
        target.addr,
        common::cert("ca.pem"),
    );
    let (_d, code, s) = common::run_yaml(&yaml).await;
    target.stop().await;
    let c = by_id(&s)["OK"];
    assert_eq!(c.errors, 10);
    let cause = &c.error_causes[0];
    assert_eq!(cause.kind, "tls");
    assert!(cause.message.contains("not valid for name"), "{cause:?}");
    assert!(s.text().contains("not valid for name"), "the text summary shows it");
    assert!(c.reason.contains("not valid for name"), "{}", c.reason);
    assert_eq!(code, 1);
}

fn ws_upgrade(head: &str, accept: Option<&str>) -> Act {
    // The key is case-sensitive base64: only the name is matched without case.
    let key = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("sec-websocket-key:"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(String::new, |(_, v)| v.trim().to_string());
    let accept = accept
        .map_or_else(|| tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()), str::to_string);
    Act::Reply(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
        )
        .into_bytes(),
    )
}

fn ws_scenario(addr: std::net::SocketAddr) -> String {
    common::http_scenario(
        "ws",
        addr,
        "max_in_flight: 2, timeout: 3s",
        &format!(
            "{ANON}checks: [ {{ id: WS, identity: anon, request: {{ path: /ws, websocket: {{ messages: [hi], interval: 100ms, hold: 500ms }} }}, expect: allow }} ]\n\
             phases: [ {{ name: p, requests: 4, users: 2 }} ]\n"
        ),
    )
}

/// The upgrade's `Sec-WebSocket-Key` is random and the answer's `Sec-WebSocket-Accept` must
/// match it; a server that echoes nothing does not complete a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_handshakes_are_verified_and_lost_echoes_are_not_sessions() {
    let keys = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let k2 = keys.clone();
    let (addr, stop) = common::raw_server(move |_, _, head| {
        if let Some(l) = head.lines().find(|l| l.to_ascii_lowercase().starts_with("sec-websocket-key:")) {
            k2.lock().unwrap().insert(l.to_string());
        }
        ws_upgrade(head, Some("dGhlIHNhbXBsZSBub25jZQ=="))
    })
    .await;
    let (_d, code, s) = common::run_yaml(&ws_scenario(addr)).await;
    stop.cancel();
    let c = by_id(&s)["WS"];
    assert_eq!(c.outcomes.passed, 0);
    assert_eq!(c.outcomes.no_answer.get("protocol"), Some(&4), "{:?}", c.outcomes);
    assert!(c.error_causes[0].message.contains("Sec-WebSocket-Accept"), "{:?}", c.error_causes);
    assert_eq!(keys.lock().unwrap().len(), 4, "a fresh key per upgrade");
    assert_eq!(code, 1);
    // A correct handshake, then silence: the echo is lost, the session is not completed.
    let (addr, stop) = common::raw_server(|_, _, head| ws_upgrade(head, None)).await;
    let (_d, code, s) = common::run_yaml(&ws_scenario(addr)).await;
    stop.cancel();
    let w = s.websocket.as_ref().unwrap();
    assert_eq!((w.sessions, w.completed, w.echo_lost), (4, 0, 4), "{w:?}");
    assert_eq!(by_id(&s)["WS"].outcomes.no_answer.get("timeout"), Some(&4));
    assert_eq!(code, 1);
}

/// Reasons name the violations under every condition, the unimpaired one too; the load
/// envelope claims a breakdown only when a slower phase was clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reasons_name_every_condition_and_the_envelope_only_claims_real_breakdowns() {
    let deny = "id: NO, identity: anon, request: { path: /admin }, expect: { deny: [403] }";
    // Leaks at every rate, with and without an impaired link.
    let (addr, stop) = common::raw_server(|_, _, _| reply(200)).await;
    let yaml = common::http_scenario(
        "everywhere",
        addr,
        "max_in_flight: 8",
        &format!(
            "{ANON}checks: [ {{ {deny} }} ]\nphases:\n\
             - {{ name: calm, requests: 60, rate: 100/s }}\n\
             - {{ name: wan, requests: 60, rate: 300/s, network: {{ name: slow-link, latency: 2ms }} }}\n"
        ),
    );
    let (_d, code, s) = common::run_yaml(&yaml).await;
    stop.cancel();
    assert_eq!(code, 1);
    for cond in ["`unimpaired`", "`slow-link`"] {
        assert!(
            s.reasons.iter().any(|r| r.contains("under network condition") && r.contains(cond)),
            "{cond}: {:?}",
            s.reasons
        );
    }
    assert!(!s.load_envelope.load_dependent, "{:?}", s.load_envelope);
    assert_eq!(s.load_envelope.first_violation_rps, None);
    assert!(s.load_envelope.note.contains("every rate"), "{}", s.load_envelope.note);
    // Clean for the first 70 requests (the slow phase sends 60), leaking after: the
    // breakdown is where it happened.
    let (addr, stop) = common::raw_server(|n, _, _| if n < 70 { reply(403) } else { reply(200) }).await;
    let yaml = common::http_scenario(
        "breaks",
        addr,
        "max_in_flight: 8",
        &format!(
            "{ANON}checks: [ {{ {deny} }} ]\nphases:\n\
             - {{ name: calm, requests: 60, rate: 100/s }}\n\
             - {{ name: busy, requests: 60, rate: 300/s }}\n"
        ),
    );
    let (_d, _, s) = common::run_yaml(&yaml).await;
    stop.cancel();
    assert!(s.load_envelope.load_dependent, "{:?}", s.load_envelope);
    assert_eq!(s.load_envelope.first_violation_phase.as_deref(), Some("busy"));
}

/// A gateway that drops the tag makes every upstream finding unattributable: a deny-class
/// request it answers 403 but still forwards would be invisible. The run cannot pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_drops_the_tag_cannot_pass() {
    let oracle = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = gauntlet::testkit::spawn(gauntlet::testkit::Config {
        forward_to: Some(oracle.local_addr().unwrap()),
        forward_headers: vec![("x-gauntlet-tag".into(), None)],
        rules: vec![("/admin".into(), 403)],
        ..Default::default()
    })
    .await
    .unwrap();
    let yaml = common::http_scenario(
        "tagless",
        gw.addr,
        "max_in_flight: 2",
        &format!(
            "{ANON}checks:\n\
             - {{ id: OK, identity: anon, request: {{ path: /api }}, expect: allow }}\n\
             - {{ id: NO, identity: anon, request: {{ path: /admin }}, expect: {{ deny: [403] }} }}\n\
             phases: [ {{ name: p, requests: 20, rate: 200/s }} ]\n"
        ),
    );
    let (_d, out) = common::run_with(&yaml, oracle, None).await;
    gw.stop().await;
    let s = out.summary.unwrap();
    assert_eq!(out.exit.code(), 1);
    assert!(s.reasons.iter().any(|r| r.contains("does not forward x-gauntlet-tag")), "{:?}", s.reasons);
}

/// A server that floods an answer's body (one-byte chunks, without end) keeps the exchange
/// busy; the request's timeout still fires and the run ends with the requests counted as
/// timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_server_still_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                if s.write_all(head).await.is_err() {
                    return;
                }
                // One-byte chunks: the client spends more per byte than the server.
                let chunk = b"1\r\nx\r\n".repeat(1 << 13);
                while s.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    let yaml = allow_only("flood", addr, "max_in_flight: 1, timeout: 1s", "name: p, requests: 2, users: 1");
    let (_d, code, s) =
        tokio::time::timeout(std::time::Duration::from_secs(60), common::run_yaml(&yaml)).await.expect("no hang");
    server.abort();
    assert_eq!((s.requests.sent, s.requests.timeouts), (2, 2), "{:?}", s.requests);
    assert_eq!(by_id(&s)["OK"].result, CheckResult::Inconclusive);
    assert_eq!(code, 1);
}
