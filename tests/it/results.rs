//! The results folder: complete, parseable, re-runnable.

use gauntlet::testkit;

use super::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_folder_is_complete_and_parseable() {
    let target = testkit::spawn(testkit::Config {
        tls: Some(common::tls_setup(true)),
        rules: vec![],
        stall: None,
        forward_to: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let yaml = format!(
        "gauntlet: 1\nname: results\ntarget: {{ url: \"https://{}\", ca: \"{}\", server_name: localhost, protocol: h2 }}\n{}\
         checks: [ {{ id: A, identity: alice, request: {{ path: /api, headers: {{ authorization: Bearer secret-token }} }}, expect: allow }} ]\n\
         phases:\n  - {{ name: one, requests: 50, rate: 500/s }}\n  - {{ name: two, requests: 30, users: 2 }}\n\
         thresholds: [ \"error_rate < 1%\", \"requests == 30 during two\" ]\n",
        target.addr,
        common::cert("ca.pem"),
        common::identities()
    );
    let (d, p) = common::scenario_file(&yaml);
    let out_dir = d.path().join("out");
    let out = common::run(common::load(&p), &out_dir).await;
    target.stop().await;
    assert_eq!(out.exit.code(), 0, "{:?}", out.summary.as_ref().map(|s| &s.reasons));

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["schema"], "gauntlet.summary/v1");
    assert_eq!(json["scenario"]["name"], "results");
    assert_eq!(json["requests"]["sent"], 80);
    assert_eq!(json["requests"]["completed"], 80);
    for k in ["p50", "p90", "p99", "p999", "max"] {
        assert!(json["latency_ms"][k].is_number() && json["service_time_ms"][k].is_number(), "{k}");
    }
    for k in [
        "total",
        "leak",
        "tls_accept",
        "spoofed_header",
        "false_deny",
        "wrong_status",
        "missing_identity",
        "limit_bypass",
    ] {
        assert_eq!(json["violations"][k], 0, "{k}");
    }
    assert_eq!(json["phases"].as_array().unwrap().len(), 2);
    assert_eq!(json["phases"][1]["requests"]["sent"], 30);
    assert_eq!(json["checks"][0]["result"], "pass");
    assert_eq!(json["thresholds"][1]["ok"], true);
    assert_eq!(json["verdict"], "pass");
    let sha = json["scenario"]["sha256"].as_str().unwrap();
    assert!(std::fs::read_to_string(out_dir.join("scenario.sha256")).unwrap().starts_with(sha));

    // The histogram log holds every completed request.
    assert_eq!(super::stall::latency_from_hlog(&out_dir).len(), 80);
    // The resolved scenario is re-runnable and carries no secret.
    let resolved = std::fs::read_to_string(out_dir.join("scenario.yaml")).unwrap();
    assert!(!resolved.contains("secret-token"), "{resolved}");
    assert!(resolved.contains("REDACTED"));
    let again = common::load(&out_dir.join("scenario.yaml"));
    assert_eq!(again.checks.len(), 1);
    // Nothing half-written is left behind.
    for e in std::fs::read_dir(&out_dir).unwrap() {
        assert!(!e.unwrap().file_name().to_string_lossy().ends_with(".partial"));
    }
}
