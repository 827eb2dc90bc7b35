//! HTTP/3 against the reference gateway (which serves QUIC on its TCP port number): the pack
//! passes over h3 as over TCP, a refused QUIC handshake is `tls_rejected`, a gateway that
//! accepts any client certificate over QUIC leaks, and QUIC recovers from datagram loss.

use std::time::Duration;

use gauntlet::gateway::Flaw;
use gauntlet::netem::Impairment;
use gauntlet::netem::udp::{Loss, UdpImpairment};

use super::gateway::{failing, pack_over, set};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pack_passes_over_h3_against_the_clean_gateway() {
    let (_d, code, s, _) = pack_over(&[], "protocol: h3", None).await;
    assert_eq!(s.target.protocol, "h3");
    assert_eq!(code, 0, "{:?}", s.reasons);
    assert!(failing(&s).is_empty(), "{:?}", failing(&s));
    // The oracle saw allow-class requests with the identity header the gateway injected.
    let ctrl = s.checks.iter().find(|c| c.id == "ZT-BASE-CTRL-001").unwrap();
    let up = ctrl.upstream.as_ref().unwrap();
    assert!(up.counts.arrivals > 0 && up.counts.missing == 0 && up.counts.spoofed == 0, "{up:?}");
    // Handshakes without a valid client certificate were refused, with their QUIC codes kept.
    let mtls = s.checks.iter().find(|c| c.id == "ZT-AUTHN-MTLS-001").unwrap();
    assert!(mtls.statuses.contains_key("tls_rejected"), "{mtls:?}");
    assert!(!s.quic_refusals.is_empty(), "refusal codes are reported");
    assert!(s.quic_refusals.keys().all(|k| k.starts_with("0x1")), "{:?}", s.quic_refusals);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_accepting_any_client_certificate_over_quic_leaks() {
    let (_d, code, s, _) = pack_over(&[Flaw::AcceptAnyClientCert], "protocol: h3", None).await;
    assert_eq!(code, 1);
    assert_eq!(
        failing(&s),
        set(&[
            "ZT-AUTHN-MTLS-001:tls_accept",
            "ZT-AUTHN-MTLS-002:tls_accept",
            "ZT-AUTHN-MTLS-003:tls_accept",
            "ZT-AUTHN-MTLS-004:tls_accept",
            "ZT-AUTHN-MTLS-005:tls_accept",
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_recovers_from_two_percent_datagram_loss() {
    let imp = UdpImpairment {
        loss: Some(Loss::Bernoulli(0.02)),
        delay: Impairment { latency: Duration::from_millis(2), ..Default::default() },
        reorder: 0.01,
        reorder_gap: Duration::from_millis(5),
        ..Default::default()
    };
    // A lost handshake flight is sent again after a probe timeout that doubles each time
    // (about 1, 2, 4, 8 s: a run here saw a 7.8 s handshake), so the default 10 s timeout
    // would turn four lost flights in a row into a timed-out request. This test is about
    // recovery, not a deadline: the timeout is well above that.
    let (_d, code, s, _) = pack_over(&[], "protocol: h3, timeout: 60s", Some(imp)).await;
    // Every request got its verdict: QUIC retransmitted what the link lost.
    assert_eq!(code, 0, "{:?} errors {:?}", s.reasons, s.errors);
    assert_eq!(s.requests.completed, s.requests.sent);
    assert_eq!(s.requests.errors, 0, "{:?}", s.errors);
    // Loss recovery shows in the tail of the histogram, not in the verdicts.
    assert!(s.latency_ms.count > 0 && s.latency_ms.max >= s.latency_ms.p50);
    eprintln!(
        "h3 through 2% loss: {} requests, p50 {} ms, p99 {} ms, max {} ms",
        s.requests.completed, s.latency_ms.p50, s.latency_ms.p99, s.latency_ms.max
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_passes_on_the_clean_gateway_and_flags_a_gateway_that_skips_certificates_over_quic() {
    let (_d, code, _, report) = pack_over(&[], "parity: [h2, h3]", None).await;
    let report = report.expect("a parity report");
    assert_eq!(code, 0, "{:?}", report.reasons);
    assert_eq!(report.protocols.iter().map(|p| p.protocol.as_str()).collect::<Vec<_>>(), ["h2", "h3"]);
    assert!(report.protocols.iter().all(|p| p.requests.completed > 0 && p.latency_ms.count > 0));
    assert_eq!(report.violations["protocol_mismatch"], 0);

    let (d, code, _, report) = pack_over(&[Flaw::NoClientCertOverH3], "parity: [h2, h3]", None).await;
    let report = report.expect("a parity report");
    assert_eq!(code, 1);
    let mismatched: Vec<&str> = report.checks.iter().filter(|c| c.mismatch).map(|c| c.id.as_str()).collect();
    assert_eq!(
        mismatched,
        ["ZT-AUTHN-MTLS-001", "ZT-AUTHN-MTLS-002", "ZT-AUTHN-MTLS-003", "ZT-AUTHN-MTLS-004", "ZT-AUTHN-MTLS-005"]
    );
    let c = report.checks.iter().find(|c| c.id == "ZT-AUTHN-MTLS-001").unwrap();
    assert_eq!(c.severity, Some(gauntlet::conformance::Severity::Critical));
    assert_eq!(c.verdicts["h2"], "pass");
    assert!(c.verdicts["h3"].contains("tls_accept"), "{:?}", c.verdicts);
    assert_eq!(report.violations["protocol_mismatch"], 5);
    // The parity summary and one full results folder per protocol.
    let out = d.path().join("out");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["schema"], "gauntlet.parity/v1");
    assert_eq!(json["violations"]["protocol_mismatch"], 5);
    assert!(out.join("h2/summary.json").exists() && out.join("h3/summary.json").exists());
    // A page on top: the protocols and each check's verdict on each, mismatches first.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("verdict fail") && html.contains("h2/report.html") && html.contains("h3/report.html"));
    let first = html.find("ZT-AUTHN-MTLS-001").unwrap();
    assert!(first < html.find("ZT-BASE-CTRL-001").unwrap(), "mismatches first");
    assert!(html.contains("mismatch (critical)"));
    assert!(out.join("h2/report.html").exists() && out.join("h3/report.html").exists());
    // `gauntlet report` draws the whole parity folder again, elsewhere.
    let again = d.path().join("again");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("report")
        .arg(&out)
        .arg("--out")
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(again.join("report.html")).unwrap(), html);
    assert_eq!(
        std::fs::read(again.join("h3/report.html")).unwrap(),
        std::fs::read(out.join("h3/report.html")).unwrap()
    );
}

/// A phase condition on an h3 target runs through the UDP link: datagram loss and delay,
/// labelled like any condition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h3_phase_condition_goes_through_the_udp_link() {
    let s = wan_run("h3", "latency: 10ms, loss: 2%").await;
    assert!(!s.target.followed_alt_svc_h3);
}

/// With `auto`, an impaired client link keeps the traffic on TCP: following Alt-Svc to QUIC
/// would go around the link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_does_not_follow_alt_svc_around_an_impaired_link() {
    let s = wan_run("auto", "latency: 10ms").await;
    assert!(!s.target.followed_alt_svc_h3);
}

/// 60 requests clear, then 60 under `network` (which must add ≥ 2 × 10 ms per round trip).
async fn wan_run(protocol: &str, network: &str) -> gauntlet::report::Summary {
    let (gw, oracle) = super::common::reference(&[]).await;
    let yaml = super::common::pack_scenario(
        "h3-wan",
        gw.addr,
        &format!("protocol: {protocol}, max_in_flight: 8"),
        &format!(
            "phases:\n\
             - {{ name: clear, requests: 60, users: 4, mix: [ZT-BASE-CTRL-001, ZT-AUTHZ-POL-002] }}\n\
             - {{ name: wan, requests: 60, users: 4, mix: [ZT-BASE-CTRL-001, ZT-AUTHZ-POL-002], network: {{ name: lossy-wan, {network} }} }}\n"
        ),
    );
    let (_d, out) = super::common::run_with(&yaml, oracle, None).await;
    gw.stop().await;
    let s = out.summary.unwrap();
    assert_eq!(out.exit.code(), 0, "{:?}", s.reasons);
    let wan = s.conditions.iter().find(|c| c.name == "lossy-wan").unwrap();
    let clear = s.conditions.iter().find(|c| c.name == "unimpaired").unwrap();
    assert_eq!((clear.requests.completed, wan.requests.completed), (60, 60));
    // Each round trip crosses the delay twice.
    assert!(wan.latency_ms.p50 >= 20.0, "{wan:?} {clear:?}");
    s
}

/// A parity run whose first protocol cannot start writes nothing and exits 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parity_run_that_cannot_start_writes_nothing() {
    super::common::repo_certs();
    // A port nothing listens on (bound, then released).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let yaml = super::common::pack_scenario(
        "parity-dead",
        dead,
        "parity: [h1, h2], timeout: 2s",
        "phases:\n- { name: p, requests: 4, users: 1 }\n",
    );
    let (d, p) = super::common::scenario_file(&yaml);
    let out = super::common::run(super::common::load(&p), &d.path().join("out")).await;
    assert_eq!(out.exit.code(), 3);
    assert!(out.parity.is_none());
    assert!(!d.path().join("out").exists(), "nothing written");
}
