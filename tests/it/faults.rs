//! Dependency faults: the reference gateway calls an authorization service and fetches its
//! keys through dependency links; events blackhole them during load. A conforming gateway
//! refuses while it cannot decide (expected outage denials, no leak); the
//! `fail-open-on-authz-timeout` flaw leaks, and the leaks are attributed to the event.

use std::path::Path;

use gauntlet::app::Dependencies;
use gauntlet::gateway::{self, Flaw};
use gauntlet::report::Summary;

use super::common;

/// Runs two zt-core checks (one allow, one RBAC deny) at a steady rate for 5 s while the
/// authz link is blackholed from 1 s to 3 s, against the reference gateway with `flaws`.
async fn blackholed_authz(flaws: &[Flaw]) -> (u8, Summary) {
    common::repo_certs();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let oracle = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let yaml = common::pack_scenario(
        "faults",
        gw_listener.local_addr().unwrap(),
        // Room for every request held by the blackholed decision (200/s × the 1 s timeout), and a
        // count bound: the verdict must not hinge on how fast a loaded machine catches up.
        "protocol: h2, max_in_flight: 512",
        &format!(
            "dependencies:\n\
             \x20 authz: {{ listen: \"127.0.0.1:0\", serve: authz, policy: \"{root}/scenarios/gateway/reference.yaml\" }}\n\
             \x20 jwks: {{ listen: \"127.0.0.1:0\", serve: jwks, file: \"{root}/certs/jwks.json\" }}\n\
             phases:\n\
             - {{ name: steady, requests: 1000, rate: 200/s, mix: [ZT-BASE-CTRL-001, ZT-AUTHZ-POL-002] }}\n\
             events:\n\
             - {{ name: authz-down, at: 1s, for: 2s, link: authz, apply: {{ blackhole: true }}, outage: {{ status: [503], grace: 1s }} }}\n",
            root = root.display(),
        ),
    );
    // The dependencies come first: the gateway's config points at them.
    let (_d, p) = common::scenario_file(&yaml);
    let deps = Dependencies::start(&common::load(&p), true).await.unwrap();
    let mut cfg = gateway::Config::load(&root.join("scenarios/gateway/reference.yaml")).unwrap();
    cfg.upstream = format!("http://{}", oracle.local_addr().unwrap());
    cfg.authz = Some(gateway::AuthzCfg {
        url: format!("http://{}/authorize", deps.served("authz").unwrap().server.addr),
        // Generous: under a loaded CI machine a healthy decision must never time out.
        timeout: Some("1s".into()),
        failure_status: None,
    });
    // Keys from the key endpoint only: allow-class passes prove the gateway fetched them.
    cfg.jwt.jwks = None;
    cfg.jwt.jwks_url = Some(format!("http://{}/jwks.json", deps.served("jwks").unwrap().server.addr));
    let gw = gateway::spawn(&cfg, Some(gw_listener), flaws).await.unwrap();
    let (_d, out) = common::run_with(&yaml, oracle, Some(deps)).await;
    gw.stop().await;
    (out.exit.code(), out.summary.unwrap())
}

fn condition<'a>(s: &'a Summary, name: &str) -> &'a gauntlet::report::ConditionSummary {
    s.conditions.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no condition {name}: {:?}", s.conditions))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_gateway_fails_closed_while_its_authorization_service_is_blackholed() {
    let (code, s) = blackholed_authz(&[]).await;
    let statuses: Vec<_> = s.checks.iter().map(|c| (&c.id, &c.statuses)).collect();
    assert_eq!(code, 0, "{:?} {statuses:?} {:?}", s.reasons, s.conditions);
    assert_eq!(s.violations["total"], 0, "{:?}", s.violations);
    let down = condition(&s, "authz-down");
    assert!(down.requests.sent > 0);
    // Both checks were refused with 503 while no decision could be had.
    assert!(down.outage_denials > 0, "{down:?}");
    assert_eq!(down.violations["leak"], 0);
    // Outside the fault, the gateway decided normally. (A request sent just before the fault
    // and refused by it is excused, but still counted under `unimpaired`.)
    let clear = condition(&s, "unimpaired");
    assert!(clear.requests.completed > clear.outage_denials, "{clear:?}");
    let ev = &s.events[0];
    assert!(ev.fired && ev.link == "authz" && ev.apply == "blackhole", "{ev:?}");
    assert_eq!(ev.outage_denials, down.outage_denials);
    assert!(ev.recovery_ms.is_some(), "an allow-class request succeeded after the fault: {ev:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_fails_open_on_authz_timeout_leaks_under_the_fault_and_fails() {
    let (code, s) = blackholed_authz(&[Flaw::FailOpenOnAuthzTimeout]).await;
    assert_eq!(code, 1, "{:?}", s.reasons);
    let down = condition(&s, "authz-down");
    assert!(down.violations["leak"] > 0, "{down:?}");
    assert!(s.events[0].violations["leak"] > 0);
    assert!(s.reasons.iter().any(|r| r.contains("under network condition `authz-down`")), "{:?}", s.reasons);
    let failed: Vec<&str> = s.checks.iter().filter(|c| c.result.name() == "fail").map(|c| c.id.as_str()).collect();
    assert_eq!(failed, ["ZT-AUTHZ-POL-002"]);
}
