//! `gauntlet probe`: one request of one check against the reference gateway, shown whole.

use gauntlet::app::probe::probe;
use gauntlet::gateway::Flaw;
use gauntlet::scenario::ProtocolKind;

use super::common;

async fn probe_against(flaws: &[Flaw], check: &str, protocol: ProtocolKind) -> gauntlet::app::probe::Report {
    let (gw, oracle) = common::reference(flaws).await;
    let yaml =
        common::pack_scenario("probe", gw.addr, "protocol: auto", "phases: [ { name: p, requests: 1, rate: 1/s } ]\n");
    let (_d, p) = common::scenario_file(&yaml);
    let s = common::load(&p);
    let r = tokio::time::timeout(std::time::Duration::from_secs(60), probe(&s, check, Some(protocol), Some(oracle)))
        .await
        .expect("in time")
        .expect("a report");
    gw.stop().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_shows_the_request_the_answer_what_arrived_and_the_verdict() {
    let r = probe_against(&[], "ZT-AUTHZ-POL-002", ProtocolKind::H1).await;
    assert!(r.conforming, "{}", r.text());
    let text = r.text();
    assert!(text.contains("> GET /admin/users HTTP/1.1"), "{text}");
    assert!(text.contains("> authorization: Bearer <redacted,"), "{text}");
    assert!(text.contains("< 403") && text.contains("nothing arrived"), "{text}");
    assert!(text.contains("verdict: PASS: denied as expected (403)"), "{text}");
    assert!(!text.contains("eyJ"), "no token is printed: {text}");
    // An allowed request: what the gateway forwarded, with the injected identity.
    let r = probe_against(&[], "ZT-BASE-CTRL-001", ProtocolKind::H2).await;
    assert!(r.conforming, "{}", r.text());
    let (_, seen) = r.upstream.as_ref().unwrap();
    assert!(seen[0].headers.iter().any(|(n, v)| n == "x-forwarded-user" && v == "alice"), "{:?}", seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_names_the_header_a_flawed_gateway_let_through() {
    let r = probe_against(&[Flaw::ForwardSpoofedHeaders], "ZT-HDR-PROP-002", ProtocolKind::H1).await;
    assert!(!r.conforming);
    assert!(r.judgement.starts_with("FAIL: spoofed_header"), "{}", r.judgement);
    assert!(r.judgement.contains("x-forwarded-groups"), "{}", r.judgement);
    let r = probe_against(&[Flaw::AcceptAnyClientCert], "ZT-AUTHN-MTLS-001", ProtocolKind::H3).await;
    assert!(!r.conforming);
    assert!(r.judgement.contains("tls_accept"), "{}", r.judgement);
}
