//! Declared scope: a profile says what the gateway claims to enforce; checks outside the
//! claim are skipped (never sent) with that reason, not failed.

use gauntlet::gateway::Flaw;
use gauntlet::judge::CheckResult;

use super::common;

fn no_jwt() -> String {
    format!("{NO_JWT}{}", common::bindings(None))
}

const NO_JWT: &str = "profile:\n  name: no-jwt\n  routes: { public: /public, api: /api, limited: /api/limited, reports: /reports, admin: /admin, unmapped: /internal }\n  \
    identity_header: x-forwarded-user\n  deny_status: [401, 403]\n  rate_limit: { requests: 5, per: 1s }\n  \
    features: [mtls, rbac, method-rbac, path-normalisation, header-hygiene, rate-limit, default-deny]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_outside_the_declared_scope_are_skipped_not_failed() {
    // A gateway that lets a request without a token through: a JWT defect.
    let (gw, oracle) = common::reference(&[Flaw::IgnoreMissingToken]).await;
    let yaml = common::pack_scenario(
        "scope",
        gw.addr,
        "protocol: h1, max_in_flight: 8",
        &format!(
            "{}phases:\n- {{ name: p, requests: 120, users: 4 }}\n- {{ name: burst, requests: 40, users: 4, mix: [ZT-DOS-RATE-001] }}\n",
            no_jwt()
        ),
    );
    let (d, out) = common::run_with(&yaml, oracle, None).await;
    gw.stop().await;
    let s = out.summary.unwrap();
    let jwt = s.checks.iter().find(|c| c.id == "ZT-AUTHN-JWT-001").unwrap();
    assert_eq!((jwt.result, jwt.sent), (CheckResult::Skipped, 0));
    assert!(jwt.reason.contains("does not claim `jwt`"), "{}", jwt.reason);
    let bound = s.checks.iter().find(|c| c.id == "ZT-AUTHN-MTLS-008").unwrap();
    assert_eq!(bound.result, CheckResult::Skipped, "needs mtls and jwt");
    // Everything claimed was tested and held.
    assert!(s.checks.iter().filter(|c| c.result == CheckResult::Pass).all(|c| c.sent > 0));
    assert_eq!(out.exit.code(), 0, "{:?}", s.reasons);
    let report = std::fs::read_to_string(d.path().join("out/conformance.yaml")).unwrap();
    assert!(report.contains("skippedChecks") && report.contains("ZT-AUTHN-JWT-001"), "{report}");
    let lines = std::fs::read_to_string(d.path().join("out/results.jsonl")).unwrap();
    let jwt_line = lines.lines().find(|l| l.contains("\"ZT-AUTHN-JWT-001\"")).unwrap();
    assert!(jwt_line.contains("\"SKIPPED\"") && jwt_line.contains("declared scope"), "{jwt_line}");
}

#[test]
fn an_unknown_feature_is_an_error_with_a_suggestion() {
    let (_d, p) = common::scenario_file(
        "gauntlet: 1\nname: f\ntarget: { url: \"http://127.0.0.1:9\", protocol: h1 }\n\
         profile: { name: p, features: [jwt, rate-limits] }\nidentities: { anon: {} }\n\
         checks: [ { id: A, identity: anon, request: { path: / }, expect: allow } ]\n\
         phases: [ { name: p, requests: 1, rate: 1/s } ]\n",
    );
    let err = gauntlet::scenario::load(&p, &Default::default()).unwrap_err().to_string();
    assert!(err.contains("features[1]") && err.contains("did you mean `rate-limit`"), "{err}");
}

/// A profile that declares what its gateway strips has the claim tested: a check that sends a
/// declared-stripped header fails when the header arrives, even without an `upstream:` rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_strip_is_verified_at_the_oracle() {
    let run = |declared: bool| async move {
        // This gateway forwards x-debug-user untouched.
        let (gw, oracle) = common::reference(&[]).await;
        let forwarding = if declared { "  forwarding: { strips: [x-debug-user] }\n" } else { "" };
        let yaml = common::pack_scenario(
            "strips",
            gw.addr,
            "protocol: h1, max_in_flight: 4",
            &format!(
                "{}{forwarding}checks:\n- {{ id: DEBUG-USER, role: user, request: {{ route: api, path: /x, headers: {{ x-debug-user: root }} }}, expect: allow }}\n\
                 phases:\n- {{ name: p, requests: 20, users: 2, mix: [DEBUG-USER] }}\n",
                no_jwt()
            ),
        );
        let (_d, out) = common::run_with(&yaml, oracle, None).await;
        gw.stop().await;
        out
    };
    let out = run(false).await;
    let s = out.summary.unwrap();
    let c = s.checks.iter().find(|c| c.id == "DEBUG-USER").unwrap();
    assert_eq!((c.result, out.exit.code()), (CheckResult::Pass, 0), "{:?}", s.reasons);
    let out = run(true).await;
    let s = out.summary.unwrap();
    let c = s.checks.iter().find(|c| c.id == "DEBUG-USER").unwrap();
    assert_eq!((c.result, out.exit.code()), (CheckResult::Fail, 1), "{:?}", s.reasons);
    assert!(c.reason.contains("x-debug-user"), "{}", c.reason);
}
