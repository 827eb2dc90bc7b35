//! Identity pools: a role bound to many client certificates, so a per-certificate rate limit
//! does not turn legitimate load into 429s. The shipped pack at 1,000 req/s (85 % legitimate)
//! against the reference gateway with a 50 req/s per-certificate limit.

use std::path::Path;

use gauntlet::gateway::RateCfg;

use super::common;

fn scenario(addr: std::net::SocketAddr, pooled: bool) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).display().to_string();
    let certs = format!("{root}/certs");
    let pool = |name: &str, ou: &str, signing: &str| {
        format!(
            "{{ principal: \"{name}-{{n}}\", groups: [{ou}], pool: {{ mint: {{ count: 20, ca_cert: \"{certs}/ca.pem\", ca_key: \"{certs}/ca.key\", subject: \"CN={name}-{{n}},OU={ou}\" }} }}{signing} }}"
        )
    };
    let roles = pooled.then(|| {
        [
            pool("alice", "eng", ""),
            pool(
                "bob",
                "finance",
                &format!(", signing: {{ alg: ES256, key: \"{certs}/jwt-es256.key\", kid: es256-1 }}"),
            ),
            pool("carol", "admin", ""),
        ]
    });
    common::pack_scenario(
        "pools",
        addr,
        "protocol: h2, max_in_flight: 64, connections: 1",
        &format!(
            "profile:\n  name: reference-client-limited\n  routes: {{ public: /public, api: /api, limited: /api/limited, reports: /reports, admin: /admin, unmapped: /internal }}\n  \
             identity_header: x-forwarded-user\n  deny_status: [401, 403]\n  rate_limit: {{ requests: 5, per: 1s }}\n  client_rate_limit: {{ requests: 50, per: 1s }}\n\
             {}\
             phases: [ {{ name: load, requests: 3000, rate: 1000/s, mix: {{ \"tag:legit\": 85, \"tag:attack\": 13, \"tag:limit\": 2 }} }} ]\n",
            common::bindings(roles)
        ),
    )
}

async fn run(pooled: bool) -> (Vec<String>, gauntlet::report::Summary) {
    let (gw, oracle) = common::reference_with(&[], |cfg| {
        cfg.client_rate_limit = Some(RateCfg { requests: 50, per: "1s".into() });
    })
    .await;
    let yaml = scenario(gw.addr, pooled);
    let (_d, p) = common::scenario_file(&yaml);
    let warnings = common::load(&p).warnings.iter().map(|w| w.to_string()).collect();
    let (_d, out) = common::run_with(&yaml, oracle, None).await;
    gw.stop().await;
    (warnings, out.summary.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_certificate_per_role_meets_a_per_certificate_limit_and_a_pool_does_not() {
    // One certificate per role: validation warns, and the gateway's 429s look like false denies.
    let (warnings, s) = run(false).await;
    assert!(warnings.iter().any(|w| w.contains("role `user`") && w.contains("client_rate_limit")), "{warnings:?}");
    assert!(s.violations["false_deny"] > 0, "{:?}", s.violations);
    // A pool of 20 minted certificates per role: no warning, no false deny, no error.
    let (warnings, s) = run(true).await;
    assert!(!warnings.iter().any(|w| w.contains("client_rate_limit")), "{warnings:?}");
    assert_eq!(s.violations["false_deny"], 0, "{:?}", s.reasons);
    assert_eq!(s.requests.errors, 0, "{:?}", s.errors);
    assert_eq!(s.violations["total"], 0, "{:?}", s.reasons);
    let legit: u64 = s.checks.iter().filter(|c| c.expect == "allow").map(|c| c.sent).sum();
    assert!(legit * 100 >= s.requests.sent * 80, "{legit} legitimate of {}", s.requests.sent);
    // Each member arrived as itself (the oracle checked every principal).
    let ctrl = s.checks.iter().find(|c| c.id == "ZT-BASE-CTRL-001").unwrap();
    assert_eq!(ctrl.upstream.as_ref().unwrap().counts.arrivals, ctrl.sent);
    assert_eq!(ctrl.upstream.as_ref().unwrap().counts.missing + ctrl.upstream.as_ref().unwrap().counts.spoofed, 0);
}
