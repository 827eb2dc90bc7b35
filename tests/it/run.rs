//! End-to-end classification against the in-process HTTPS target with client-cert checks.

use std::collections::BTreeMap;

use gauntlet::report::Summary;
use gauntlet::testkit;

use super::common;

fn mixed_scenario(url: &str, protocol: &str) -> String {
    format!(
        "gauntlet: 1\nname: classify-{protocol}\n\
         target: {{ url: \"{url}\", ca: \"{ca}\", server_name: localhost, protocol: {protocol}, max_in_flight: 16, connections: 2 }}\n\
         {ids}\
         checks:\n\
         - {{ id: ALLOW, identity: alice, request: {{ path: /api/items }}, expect: allow }}\n\
         - {{ id: DENY, identity: alice, request: {{ path: /admin/users }}, expect: {{ deny: [403] }} }}\n\
         - {{ id: NO-CERT, identity: stranger, request: {{ path: /api/items }}, expect: tls_reject }}\n\
         - {{ id: EXPIRED, identity: expired, request: {{ path: /api/items }}, expect: tls_reject }}\n\
         - {{ id: ROGUE, identity: rogue, request: {{ path: /api/items }}, expect: tls_reject }}\n\
         - {{ id: NO-EKU, identity: noclientauth, request: {{ path: /api/items }}, expect: tls_reject }}\n\
         - {{ id: LEAKY, identity: bob, request: {{ path: /reports/secret }}, expect: deny }}\n\
         - {{ id: REFUSED, identity: bob, request: {{ path: /admin/x }}, expect: allow }}\n\
         - {{ id: WRONG, identity: bob, request: {{ path: /admin/y }}, expect: {{ deny: [401] }} }}\n\
         phases:\n\
         - {{ name: warm, requests: 90, rate: 300/s }}\n\
         - {{ name: main, requests: 270, rate: 600/s }}\n\
         thresholds: [ \"leak == 0\", \"p99 < 1h\" ]\n",
        ca = common::cert("ca.pem"),
        ids = common::identities(),
    )
}

fn by_id(s: &Summary) -> BTreeMap<String, &gauntlet::report::CheckSummary> {
    s.checks.iter().map(|c| (c.id.clone(), c)).collect()
}

async fn classify_over(protocol: &str) {
    let target = testkit::spawn(testkit::Config {
        tls: Some(common::tls_setup(true)),
        rules: vec![("/admin".into(), 403)],
        stall: None,
        forward_to: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let (d, p) = common::scenario_file(&mixed_scenario(&format!("https://{}", target.addr), protocol));
    let out = common::run(common::load(&p), &d.path().join("out")).await;
    target.stop().await;
    assert_eq!(out.exit.code(), 1, "violations must fail the run");
    let s = out.summary.unwrap();
    assert_eq!(s.requests.sent, 360);
    assert_eq!(s.requests.errors, 0, "{:?}", s.errors);
    let c = by_id(&s);
    for id in ["ALLOW", "DENY", "NO-CERT", "EXPIRED", "ROGUE", "NO-EKU"] {
        assert_eq!(c[id].result.name(), "pass", "{id}: {:?} {:?}", c[id].violations, c[id].statuses);
        assert!(c[id].sent > 0);
    }
    // Refused before HTTP: no status at all (h2 streams racing on a refused connection may
    // see the close rather than the alert, which still counts as refused).
    let refused = ["tls_rejected", "tls_closed_before_answer"];
    assert!(c["NO-CERT"].statuses.keys().all(|k| refused.contains(&k.as_str())), "{:?}", c["NO-CERT"].statuses);
    // Every request of every check lands in exactly one bucket.
    for ck in &s.checks {
        assert_eq!(ck.outcomes.total, ck.sent, "{}: {:?}", ck.id, ck.outcomes);
        let labelled: u64 = ck.statuses.values().sum::<u64>() + ck.errors + ck.outcomes.cancelled;
        assert_eq!(labelled, ck.sent, "{}: {:?}", ck.id, ck.statuses);
    }
    assert_eq!(s.outcomes.total, s.requests.sent);
    assert_eq!(c["LEAKY"].violations["leak"], c["LEAKY"].sent);
    assert_eq!(c["REFUSED"].violations["false_deny"], c["REFUSED"].sent);
    assert_eq!(c["WRONG"].violations["wrong_status"], c["WRONG"].sent);
    assert_eq!(s.violations["leak"], c["LEAKY"].sent);
    assert_eq!(s.violations["total"], c["LEAKY"].sent + c["REFUSED"].sent + c["WRONG"].sent);
    assert!(!s.thresholds[0].ok && s.thresholds[1].ok);
    assert_eq!(s.verdict.name(), "fail");
    assert!(s.reasons.iter().any(|r| r.contains("LEAKY")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classifies_allow_deny_and_tls_reject_over_h1() {
    classify_over("h1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classifies_allow_deny_and_tls_reject_over_h2() {
    classify_over("h2").await;
}

/// Runs `body` (checks and phases) against an mTLS test target that denies /admin with 403.
async fn against_target(require_client_cert: bool, protocol: &str, body: &str) -> (u8, Summary) {
    let target = testkit::spawn(testkit::Config {
        tls: Some(common::tls_setup(require_client_cert)),
        rules: vec![("/admin".into(), 403)],
        stall: None,
        forward_to: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let yaml = format!(
        "gauntlet: 1\nname: t\ntarget: {{ url: \"https://{}\", ca: \"{}\", server_name: localhost, protocol: {protocol} }}\n{}{body}",
        target.addr,
        common::cert("ca.pem"),
        common::identities()
    );
    let (d, p) = common::scenario_file(&yaml);
    let out = common::run(common::load(&p), &d.path().join("out")).await;
    target.stop().await;
    (out.exit.code(), out.summary.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conforming_target_passes_with_exit_zero() {
    let (code, s) = against_target(
        true,
        "auto",
        "checks:\n\
         - { id: A, identity: alice, request: { path: /api }, expect: allow }\n\
         - { id: D, identity: bob, request: { path: /admin }, expect: deny }\n\
         - { id: T, identity: stranger, request: { path: /api }, expect: tls_reject }\n\
         phases: [ { name: p, requests: 60, users: 3 } ]\n",
    )
    .await;
    assert_eq!((code, s.verdict.name(), s.requests.sent), (0, "pass", 60), "{:?}", s.reasons);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_ignores_client_certs_is_caught() {
    // Client certificates are optional here: the handshake without one succeeds.
    let (code, s) = against_target(
        false,
        "h1",
        "checks:\n\
         - { id: SERVED, identity: stranger, request: { path: /api }, expect: tls_reject }\n\
         - { id: DENIED-LATE, identity: stranger, request: { path: /admin }, expect: tls_reject }\n\
         phases: [ { name: p, requests: 40, rate: 200/s } ]\n",
    )
    .await;
    let c = by_id(&s);
    assert_eq!(c["SERVED"].violations["tls_accept"], c["SERVED"].sent);
    assert_eq!(
        c["DENIED-LATE"].violations["wrong_status"], c["DENIED-LATE"].sent,
        "refused after the handshake: the wrong layer, not served"
    );
    assert_eq!(code, 1);
}

/// A gateway that completes every TLS handshake (any client certificate, or none) and then
/// closes the connection without answering refused the request, not the credential: the
/// `tls_reject` checks fail (they passed before, a close being taken for a TLS refusal). A
/// gateway that refuses in the handshake passes them (`classify_over` above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_closes_after_the_handshake_fails_the_tls_reject_checks() {
    use tokio::io::AsyncReadExt;
    let t = common::tls_setup(false);
    let acceptor = tokio_rustls::TlsAcceptor::from(
        gauntlet::tls::server_config_accepting_any_client(t.chain, t.key, &[b"http/1.1"]).unwrap(),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                // Reads the request, then closes unanswered.
                let mut buf = vec![0u8; 4096];
                let _ = tls.read(&mut buf).await;
            });
        }
    });
    let yaml = format!(
        "gauntlet: 1\nname: late-close\n\
         target: {{ url: \"https://{addr}\", ca: \"{ca}\", server_name: localhost, protocol: h1, max_in_flight: 4 }}\n\
         {ids}\
         checks:\n\
         - {{ id: NO-CERT, identity: stranger, request: {{ path: /api/items }}, expect: tls_reject }}\n\
         - {{ id: ROGUE, identity: rogue, request: {{ path: /api/items }}, expect: tls_reject }}\n\
         phases: [ {{ name: p, requests: 20, rate: 200/s }} ]\n",
        ca = common::cert("ca.pem"),
        ids = common::identities(),
    );
    let (_d, code, s) = common::run_yaml(&yaml).await;
    server.abort();
    let c = by_id(&s);
    for id in ["NO-CERT", "ROGUE"] {
        assert_eq!(c[id].result.name(), "fail", "{id}: {:?} {:?}", c[id].reason, c[id].statuses);
        assert!(c[id].reason.contains("without a TLS alert"), "{id}: {}", c[id].reason);
    }
    assert_eq!(code, 1);
}
