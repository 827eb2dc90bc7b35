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
    let (_d, code, s) = pack_over(&[], "h3", None).await;
    assert_eq!(s.target.protocol, "h3");
    assert_eq!(code, 0, "{:?}", s.reasons);
    assert!(failing(&s).is_empty(), "{:?}", failing(&s));
    // The oracle saw allow-class requests with the identity header the gateway injected.
    let ctrl = s.checks.iter().find(|c| c.id == "ZT-BASE-CTRL-001").unwrap();
    let up = ctrl.upstream.unwrap();
    assert!(up.arrivals > 0 && up.missing == 0 && up.spoofed == 0, "{up:?}");
    // Handshakes without a valid client certificate were refused, with their QUIC codes kept.
    let mtls = s.checks.iter().find(|c| c.id == "ZT-AUTHN-MTLS-001").unwrap();
    assert!(mtls.statuses.contains_key("tls_rejected"), "{mtls:?}");
    assert!(!s.quic_refusals.is_empty(), "refusal codes are reported");
    assert!(s.quic_refusals.keys().all(|k| k.starts_with("0x1")), "{:?}", s.quic_refusals);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_accepting_any_client_certificate_over_quic_leaks() {
    let (_d, code, s) = pack_over(&[Flaw::AcceptAnyClientCert], "h3", None).await;
    assert_eq!(code, 1);
    assert_eq!(
        failing(&s),
        set(&[
            "ZT-AUTHN-MTLS-001:leak",
            "ZT-AUTHN-MTLS-002:leak",
            "ZT-AUTHN-MTLS-003:leak",
            "ZT-AUTHN-MTLS-004:leak",
            "ZT-AUTHN-MTLS-005:leak",
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
    let (_d, code, s) = pack_over(&[], "h3", Some(imp)).await;
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
