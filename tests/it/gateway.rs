//! The zt-core pack against the reference gateway: clean, then with each flaw planted. Each
//! flaw must be caught by exactly the checks it breaks, with the violation kind it causes.

use std::collections::BTreeSet;

use gauntlet::app::{ExecOptions, execute};
use gauntlet::gateway::Flaw;
use gauntlet::report::Summary;
use gauntlet::testkit;

use super::common;

async fn pack_against(flaws: &[Flaw]) -> (u8, Summary) {
    let (_dir, code, s) = pack_into(flaws).await;
    (code, s)
}

async fn pack_into(flaws: &[Flaw]) -> (tempfile::TempDir, u8, Summary) {
    let (d, code, s, _) = pack_over(flaws, "protocol: auto", None).await;
    (d, code, s)
}

/// The pack against the reference gateway with `flaws`, the target speaking as `protocol`
/// (a `target:` fragment: `protocol: h3` or `parity: [h2, h3]`); `via` puts a UDP
/// impairment link in front of the gateway's HTTP/3 port (the target URL points at it).
pub async fn pack_over(
    flaws: &[Flaw],
    protocol: &str,
    via: Option<gauntlet::netem::udp::UdpImpairment>,
) -> (tempfile::TempDir, u8, Summary, Option<gauntlet::report::parity::ParitySummary>) {
    let (gw, oracle) = common::reference(flaws).await;
    let link = match via {
        Some(imp) => {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            Some(gauntlet::netem::udp::spawn_udp(socket, gw.addr, imp).unwrap())
        }
        None => None,
    };
    let addr = link.as_ref().map_or(gw.addr, |l| l.addr);
    let yaml = common::pack_scenario(
        "pack",
        addr,
        &format!("{protocol}, max_in_flight: 8"),
        "phases:\n\
         - { name: pack, requests: 152, users: 4 }\n\
         - { name: burst, requests: 40, users: 4, mix: [ZT-DOS-RATE-001] }\n",
    );
    let (d, out) = common::run_with(&yaml, oracle, None).await;
    if let Some(l) = link {
        l.stop().await;
    }
    gw.stop().await;
    (d, out.exit.code(), out.summary.unwrap(), out.parity)
}

pub fn failing(s: &Summary) -> BTreeSet<String> {
    s.checks.iter().filter(|c| c.result.name() != "pass").map(|c| format!("{}:{}", c.id, kinds(c))).collect()
}

fn kinds(c: &gauntlet::report::CheckSummary) -> String {
    c.violations
        .iter()
        .filter(|(k, n)| **k != "total" && **n > 0)
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join("+")
}

pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clean_gateway_passes_every_check() {
    let (code, s) = pack_against(&[]).await;
    assert_eq!(failing(&s), BTreeSet::new(), "{:?}", s.reasons);
    assert_eq!(code, 0);
    assert!(s.checks.len() >= 30);
    assert!(s.checks.iter().all(|c| c.sent > 0), "every check was exercised");
    let oracle = s.oracle.unwrap();
    assert_eq!(oracle.untagged, 0);
    // Allowed requests arrived upstream with the injected identity; denied ones never did.
    let base = s.checks.iter().find(|c| c.id == "ZT-BASE-CTRL-001").unwrap();
    assert_eq!(base.upstream.as_ref().unwrap().counts.arrivals, base.sent);
    let deny = s.checks.iter().find(|c| c.id == "ZT-AUTHZ-POL-002").unwrap();
    assert_eq!(deny.upstream.as_ref().unwrap().counts.arrivals, 0);
    // `auto` followed the gateway's Alt-Svc to HTTP/3 (refused QUIC handshakes prove it).
    assert!(s.target.followed_alt_svc_h3);
    assert!(!s.quic_refusals.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_report_names_the_failed_check_and_carries_no_secret() {
    let (dir, code, _) = pack_into(&[Flaw::SkipExpCheck]).await;
    assert_eq!(code, 1);
    let text = std::fs::read_to_string(dir.path().join("out/conformance.yaml")).unwrap();
    let y: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(y["kind"], "ConformanceReport");
    assert_eq!(y["implementation"]["project"], "reference-gateway");
    assert_eq!(y["oracle"], "upstream-canary");
    let http = y["profiles"].as_sequence().unwrap().iter().find(|p| p["name"] == "ZT-GATEWAY-HTTP").unwrap();
    assert_eq!(http["extended"]["result"], "failure");
    assert_eq!(http["extended"]["failedChecks"][0], "ZT-AUTHN-JWT-006");
    assert_eq!(http["core"]["result"], "success");
    assert!(http["summary"].as_str().unwrap().contains("1 check failure."));
    assert!(y["reproduce"]["scenarioSha256"].as_str().unwrap().len() == 64);
    let lines = std::fs::read_to_string(dir.path().join("out/results.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 43);
    // Tokens and keys never appear in the published report.
    for secret in ["eyJ", "PRIVATE KEY", "Bearer "] {
        assert!(!text.contains(secret) && !lines.contains(secret), "{secret}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_flaw_is_caught_by_exactly_the_checks_it_breaks() {
    let cases: &[(Flaw, &[&str])] = &[
        (Flaw::SkipExpCheck, &["ZT-AUTHN-JWT-006:leak"]),
        (Flaw::NoPathNormalization, &["ZT-AUTHZ-PATH-001:leak", "ZT-AUTHZ-PATH-001-ENC:leak"]),
        (
            Flaw::ForwardSpoofedHeaders,
            &["ZT-HDR-PROP-002:spoofed_header", "ZT-HDR-PROP-003:spoofed_header", "ZT-HDR-PROP-004:spoofed_header"],
        ),
        (
            Flaw::AcceptAnyClientCert,
            &[
                "ZT-AUTHN-MTLS-001:tls_accept",
                "ZT-AUTHN-MTLS-002:tls_accept",
                "ZT-AUTHN-MTLS-003:tls_accept",
                "ZT-AUTHN-MTLS-004:tls_accept",
                "ZT-AUTHN-MTLS-005:tls_accept",
            ],
        ),
        (Flaw::IgnoreMissingToken, &["ZT-AUTHN-JWT-001:leak"]),
        (Flaw::RateLimitByXff, &["ZT-DOS-RATE-001:limit_bypass"]),
    ];
    for (flaw, want) in cases {
        let (code, s) = pack_against(&[*flaw]).await;
        assert_eq!(failing(&s), set(want), "{flaw:?}");
        assert_eq!(code, 1, "{flaw:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_answers_403_but_still_forwards_is_a_leak() {
    let oracle = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = oracle.local_addr().unwrap();
    let target = testkit::spawn(testkit::Config {
        tls: None,
        rules: vec![("/admin".into(), 403)],
        stall: None,
        forward_to: Some(upstream),
        ..Default::default()
    })
    .await
    .unwrap();
    let (d, p) = common::scenario_file(&format!(
        "gauntlet: 1\nname: late-deny\ntarget: {{ url: \"http://{}\", protocol: h1 }}\nidentities: {{ anon: {{}} }}\n\
         checks: [ {{ id: ADMIN, identity: anon, request: {{ path: /admin/x }}, expect: {{ deny: [403] }} }} ]\n\
         phases: [ {{ name: p, requests: 30, users: 2 }} ]\n",
        target.addr
    ));
    let opts = ExecOptions {
        out: Some(d.path().join("out")),
        quiet: true,
        oracle_listener: Some(oracle),
        ..Default::default()
    };
    let out = execute(common::load(&p), opts).await;
    target.stop().await;
    let s = out.summary.unwrap();
    let c = &s.checks[0];
    assert_eq!(c.statuses.get("403"), Some(&30), "the client saw only denials");
    assert_eq!(c.violations["leak"], 30, "yet every one reached the upstream");
    assert_eq!(out.exit.code(), 1);
}

/// A gateway whose cache keys on the path alone answers allowed requests itself, to whoever
/// asks: those answers never reach the oracle, so the identity they must carry upstream is
/// never checked — the allowed checks it answers fail (they passed before: some arrivals
/// were enough).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_that_ignores_who_asks_fails_the_allowed_checks_it_answers() {
    let (code, s) = pack_against(&[Flaw::SharedCache]).await;
    let failed = failing(&s);
    assert!(failed.contains("ZT-BASE-CTRL-001:"), "{failed:?}");
    for c in s.checks.iter().filter(|c| c.result.name() != "pass") {
        assert!(c.reason.contains("never arrived at the oracle"), "{}: {}", c.id, c.reason);
        assert_eq!(kinds(c), "", "{}: no violation of another kind", c.id);
    }
    assert_eq!(code, 1);
}
