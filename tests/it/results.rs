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

/// `junit.xml` and `summary.md` for CI: one testcase per check (a leak a failure with its
/// reason, a check the mix never sends skipped), the run's verdict and failing checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junit_and_markdown_reports_say_what_the_summary_says() {
    let target = testkit::spawn(testkit::Config::default()).await.unwrap();
    let yaml = format!(
        "gauntlet: 1\nname: ci-reports\ntarget: {{ url: \"http://{}\", protocol: h1 }}\nidentities: {{ anon: {{}} }}\n\
         checks:\n\
         - {{ id: OK, identity: anon, request: {{ path: /public }}, expect: allow }}\n\
         - {{ id: LEAKS, title: \"admin <must> & be 'denied'\", identity: anon, request: {{ path: /admin }}, expect: deny }}\n\
         - {{ id: NOT-SENT, identity: anon, request: {{ path: /x }}, expect: allow }}\n\
         phases: [ {{ name: p, requests: 40, users: 2, mix: {{ OK: 1, LEAKS: 1 }} }} ]\n",
        target.addr
    );
    let (d, p) = common::scenario_file(&yaml);
    let out_dir = d.path().join("out");
    let out = common::run(common::load(&p), &out_dir).await;
    target.stop().await;
    assert_eq!(out.exit.code(), 1);
    let junit = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap();
    assert!(junit.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"gauntlet\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""), "{junit}");
    assert_eq!(junit.matches("<testcase ").count(), 3);
    let leaks = junit.split("<testcase name=\"LEAKS\"").nth(1).unwrap().split("</testcase>").next().unwrap();
    assert!(leaks.contains("<failure message=\"") && leaks.contains("leak"), "{leaks}");
    assert!(
        junit
            .split("<testcase name=\"NOT-SENT\"")
            .nth(1)
            .unwrap()
            .trim_start()
            .starts_with("classname=\"allow\">\n      <skipped"),
        "{junit}"
    );
    // Well formed: every element opened is closed, in order.
    let mut stack: Vec<String> = Vec::new();
    for tag in junit.split('<').skip(2) {
        let body = tag.split('>').next().unwrap();
        if let Some(name) = body.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "{junit}");
        } else if !body.ends_with('/') {
            stack.push(body.split([' ', '\n']).next().unwrap().to_string());
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    let md = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(md.starts_with("## gauntlet: ci-reports — ❌ FAIL"), "{md}");
    assert!(md.contains("**Checks**: 1 passed, 1 failed, 0 inconclusive, 1 skipped"), "{md}");
    assert!(md.contains("| `LEAKS` | fail | deny | 20 | leak 20 |"), "{md}");
}

/// The evidence pack: every run writes `manifest.json`; `sign` signs it, `verify` checks the
/// signature and every digest and names what changed; a folder that drifted is not signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_results_folder_verifies_until_a_file_is_changed() {
    use std::process::Command;
    let target = testkit::spawn(testkit::Config::default()).await.unwrap();
    let yaml = format!(
        "gauntlet: 1\nname: evidence\ntarget: {{ url: \"http://{}\", protocol: h1 }}\nidentities: {{ anon: {{}} }}\n\
         checks: [ {{ id: OK, identity: anon, request: {{ path: / }}, expect: allow }} ]\n\
         phases: [ {{ name: p, requests: 10, users: 1 }} ]\n",
        target.addr
    );
    let (d, p) = common::scenario_file(&yaml);
    let out = d.path().join("out");
    assert_eq!(common::run(common::load(&p), &out).await.exit.code(), 0);
    target.stop().await;
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let listed: Vec<&str> = manifest["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    for f in ["summary.json", "scenario.yaml", "latency.hlog", "conformance.yaml", "junit.xml", "summary.md"] {
        assert!(listed.contains(&f), "{f} not in the manifest: {listed:?}");
    }
    let g = || Command::new(env!("CARGO_BIN_EXE_gauntlet"));
    let key = common::pki().join("lab-signing.key");
    let public = common::pki().join("lab-signing.pub.pem");
    let verify = |pubkey: &std::path::Path| g().arg("verify").arg(&out).arg("--pubkey").arg(pubkey).output().unwrap();
    let signed = g().arg("sign").arg(&out).arg("--key").arg(&key).output().unwrap();
    assert_eq!(signed.status.code(), Some(0), "{}", String::from_utf8_lossy(&signed.stderr));
    let ok = verify(&public);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("verified:"));
    // Another lab's key.
    let other = tempfile::tempdir().unwrap();
    gauntlet::tls::pki::init(other.path(), false).unwrap();
    let wrong = verify(&other.path().join("lab-signing.pub.pem"));
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("signed by key"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    // A verdict edited after signing.
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    std::fs::write(out.join("summary.json"), summary.replace("\"verdict\": \"pass\"", "\"verdict\": \"fail\""))
        .unwrap();
    let tampered = verify(&public);
    let err = String::from_utf8_lossy(&tampered.stderr);
    assert_eq!(tampered.status.code(), Some(1), "{err}");
    assert!(
        err.contains("summary.json: changed since the manifest was written") && err.contains("NOT verified"),
        "{err}"
    );
    // The manifest itself edited to match: the signature no longer does.
    let m = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    std::fs::write(out.join("manifest.json"), m.replace("\"bytes\"", "\"bytes\" ")).unwrap();
    let err = String::from_utf8_lossy(&verify(&public).stderr).into_owned();
    assert!(err.contains("manifest.json: the signature does not match it"), "{err}");
    // A drifted folder is not signed.
    std::fs::write(out.join("manifest.json"), m).unwrap();
    let refused = g().arg("sign").arg(&out).arg("--key").arg(&key).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("summary.json: changed"));
}

/// A lab's `certification:` block is required whole and goes into conformance.yaml.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certification_block_names_lab_product_and_standard_in_the_report() {
    let target = testkit::spawn(testkit::Config::default()).await.unwrap();
    let cert = "certification:\n  lab: Example Test Lab\n  lab_id: ACC-0042\n  report_id: ETL-2026-117\n  \
                product: { class: cloud security gateway with zero-trust policy enforcement, vendor: Acme, model: ZT-9, version: 4.2.1 }\n  \
                standard: { name: ZT-GW, edition: \"2026\" }\n";
    let yaml = format!(
        "gauntlet: 1\nname: certified\ntarget: {{ url: \"http://{}\", protocol: h1 }}\nidentities: {{ anon: {{}} }}\n\
         checks: [ {{ id: OK, identity: anon, request: {{ path: / }}, expect: allow }} ]\n\
         phases: [ {{ name: p, requests: 5, users: 1 }} ]\n{cert}",
        target.addr
    );
    let (d, p) = common::scenario_file(&yaml);
    let out = d.path().join("out");
    assert_eq!(common::run(common::load(&p), &out).await.exit.code(), 0);
    target.stop().await;
    let report = std::fs::read_to_string(out.join("conformance.yaml")).unwrap();
    for want in [
        "certification:",
        "lab: Example Test Lab",
        "labId: ACC-0042",
        "reportId: ETL-2026-117",
        "model: ZT-9",
        "edition: '2026'",
    ] {
        assert!(report.contains(want), "`{want}` missing:\n{report}");
    }
    // The HTML names them too, in the run's table.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for want in ["Example Test Lab (accreditation ACC-0042)", "ETL-2026-117", "ZT-9", "2026"] {
        assert!(html.contains(want), "`{want}` missing from report.html");
    }
    let (_d, p) = common::scenario_file(&yaml.replace("  lab_id: ACC-0042\n", ""));
    let err = gauntlet::scenario::load(&p, &Default::default()).unwrap_err().to_string();
    assert!(err.contains(":8:") && err.contains("certification.lab_id: missing `lab_id`"), "{err}");
}

/// A run with a leak through a permissive target: its folder, for the report tests.
async fn leaking_run(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let target = testkit::spawn(testkit::Config::default()).await.unwrap();
    let yaml = format!(
        "gauntlet: 1\nname: {name}\ntarget: {{ url: \"http://{}\", protocol: h1 }}\nidentities: {{ anon: {{}} }}\n\
         checks:\n\
         - {{ id: OK, identity: anon, request: {{ path: /public }}, expect: allow }}\n\
         - {{ id: LEAKS, title: \"admin <script>alert(1)</script> & be 'denied'\", identity: anon, request: {{ path: /admin }}, expect: deny }}\n\
         phases:\n  - {{ name: warm, duration: 2s, rate: 40/s, mix: {{ OK: 1 }} }}\n  - {{ name: mixed, duration: 2s, rate: 60/s, mix: {{ OK: 1, LEAKS: 1 }} }}\n",
        target.addr
    );
    let (d, p) = common::scenario_file(&yaml);
    let out_dir = d.path().join("out");
    let out = common::run(common::load(&p), &out_dir).await;
    target.stop().await;
    assert_eq!(out.exit.code(), 1);
    (d, out_dir)
}

/// `report.html`: one self-contained page (no script, nothing fetched), the verdict and reasons
/// on top, a row per check, the charts drawn from the run's own per-second series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_is_self_contained_and_shows_the_run() {
    let (_d, out_dir) = leaking_run("html").await;
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    // Nothing runs, nothing is fetched: the check title's markup is text.
    assert!(!html.contains("<script"), "a script in the page");
    assert!(html.contains("admin &lt;script&gt;alert(1)&lt;/script&gt; &amp; be &#39;denied&#39;"));
    for attr in ["src=", "href=", "@import", "url("] {
        assert!(!html.contains(attr), "{attr} in the page");
    }
    let verdict = html.find("verdict fail").expect("the verdict on top");
    let why = html.find("Why it failed").expect("reasons");
    let checks = html.find("<h2>Checks</h2>").unwrap();
    assert!(verdict < why && why < checks, "verdict, then reasons, then checks");
    assert!(html.contains("check LEAKS failed"), "the reason");
    assert_eq!(html.matches("<tr><td><b>").count(), 2, "a row per check");
    // Charts: latency and rate over time, violations by kind, the histogram — each one SVG.
    for title in [
        "Latency over time",
        "Planned, finished and answered rate",
        "Violations over time, by kind",
        "Latency histogram (whole run)",
    ] {
        assert!(html.contains(&format!("<title>{title}")), "{title}");
    }
    assert_eq!(html.matches("<svg ").count(), html.matches("</svg>").count());
    // The series it is drawn from: one point a second, adding up to the run's totals.
    let series = gauntlet::report::read_series(&std::fs::read_to_string(out_dir.join("series.jsonl")).unwrap());
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    assert!(series.len() >= 4, "{} points", series.len());
    assert_eq!(series.iter().map(|p| p.finished).sum::<u64>(), s["requests"]["sent"].as_u64().unwrap());
    let leaks: u64 = series.iter().map(|p| p.violations.get("leak").copied().unwrap_or(0)).sum();
    assert_eq!(leaks, s["violations"]["leak"].as_u64().unwrap());
    assert!(leaks > 0);
    // The leaks start with the second phase (2 s in), not before. A point holds what the
    // collector received during it, so a busy machine's late tick can stretch the point
    // before the phase change over it: the first point with leaks must reach 2 s, wherever
    // it starts.
    let first = series.iter().find(|p| p.violations.contains_key("leak")).unwrap();
    assert!(first.t + first.len >= 1.998, "first leak in a point from {}s for {}s", first.t, first.len);
}

/// `gauntlet report DIR` draws the same reports from the folder's data that the run drew;
/// a signed folder is left as issued (`--out` renders elsewhere); a folder that is not a run's
/// is refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_draws_the_reports_again_from_the_folder() {
    use std::process::Command;
    let (d, out_dir) = leaking_run("rerender").await;
    let bin = env!("CARGO_BIN_EXE_gauntlet");
    let reports = ["report.html", "junit.xml", "summary.md"];
    let before: Vec<Vec<u8>> = reports.iter().map(|f| std::fs::read(out_dir.join(f)).unwrap()).collect();
    for f in reports {
        std::fs::remove_file(out_dir.join(f)).unwrap();
    }
    let o = Command::new(bin).arg("report").arg(&out_dir).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("verdict FAIL"));
    for (f, b) in reports.iter().zip(&before) {
        assert_eq!(&std::fs::read(out_dir.join(f)).unwrap(), b, "{f} drawn again differs from the run's");
    }
    let manifest = std::fs::read_to_string(out_dir.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"report.html\""), "the manifest lists the new files");
    // Signed: not in place.
    let keys = d.path().join("keys");
    gauntlet::tls::pki::init(&keys, false).unwrap();
    let sign =
        Command::new(bin).arg("sign").arg(&out_dir).arg("--key").arg(keys.join("lab-signing.key")).output().unwrap();
    assert_eq!(sign.status.code(), Some(0), "{}", String::from_utf8_lossy(&sign.stderr));
    let o = Command::new(bin).arg("report").arg(&out_dir).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is signed"), "{}", String::from_utf8_lossy(&o.stderr));
    let elsewhere = d.path().join("again");
    let o = Command::new(bin).arg("report").arg(&out_dir).arg("--out").arg(&elsewhere).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(elsewhere.join("report.html")).unwrap(), before[0]);
    assert!(elsewhere.join("summary.json").exists() && elsewhere.join("latency.hlog").exists());
    let v = Command::new(bin)
        .arg("verify")
        .arg(&out_dir)
        .arg("--pubkey")
        .arg(keys.join("lab-signing.pub.pem"))
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(0), "the signed folder is untouched: {}", String::from_utf8_lossy(&v.stdout));
    // Not a run's folder.
    let other = d.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("summary.json"), r#"{"schema":"gauntlet.summary/v9"}"#).unwrap();
    let o = Command::new(bin).arg("report").arg(&other).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("gauntlet.summary/v9"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A summary edited to say pass while a check failed is refused, not drawn green.
    let mut edited: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    edited["verdict"] = serde_json::json!("pass");
    std::fs::write(other.join("summary.json"), serde_json::to_vec(&edited).unwrap()).unwrap();
    let o = Command::new(bin).arg("report").arg(&other).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("says pass, but check LEAKS is fail"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::write(other.join("summary.json"), r#"{"schema":"gauntlet.summary/v1","run_id":1}"#).unwrap();
    let o = Command::new(bin).arg("report").arg(&other).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not match gauntlet.summary/v1"));
}

/// The committed schemas under `docs/schema/` are the ones the types give (regenerate with
/// `GAUNTLET_WRITE_SCHEMA=1 cargo test --test it schema`), and real outputs validate against
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_follow_the_committed_json_schemas() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema");
    let write = std::env::var_os("GAUNTLET_WRITE_SCHEMA").is_some();
    let mut stale = Vec::new();
    for (name, text) in gauntlet::report::schemas() {
        let path = dir.join(name);
        if write {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "docs/schema/{stale:?} differ from the types: if the change is meant, regenerate with \
         `GAUNTLET_WRITE_SCHEMA=1 cargo test --test it schema` (and bump the schema version if a consumer could break)"
    );
    let schema = |name: &str| {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap();
        jsonschema::validator_for(&v).unwrap()
    };
    // A failing run with a leak, and its per-second series.
    let (_d, out_dir) = leaking_run("schema").await;
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    let v = schema("summary.v1.json");
    let errors: Vec<String> = v.iter_errors(&summary).map(|e| format!("{}: {e}", e.instance_path)).collect();
    assert!(errors.is_empty(), "summary.json against its schema: {errors:#?}");
    let series = schema("series.v1.json");
    for line in std::fs::read_to_string(out_dir.join("series.jsonl")).unwrap().lines() {
        let p: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(series.is_valid(&p), "{line}");
    }
    // The schema has teeth: a summary with a wrong type or without its verdict fails it.
    let mut bad = summary.clone();
    bad["requests"]["sent"] = serde_json::json!("many");
    assert!(!v.is_valid(&bad));
    let mut bad = summary.clone();
    bad.as_object_mut().unwrap().remove("verdict");
    assert!(!v.is_valid(&bad));
    bad = summary.clone();
    bad["verdict"] = serde_json::json!("maybe");
    assert!(!v.is_valid(&bad));
}

/// A copy of results folder `from` at `to`, its summary edited by `edit` and its
/// `histograms.hlog` replaced by `run` and `phase=mixed` histograms of `n` samples of `us` µs.
fn crafted(from: &std::path::Path, to: &std::path::Path, n: u64, us: u64, edit: impl Fn(&mut serde_json::Value)) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    let mut s: serde_json::Value = serde_json::from_slice(&std::fs::read(to.join("summary.json")).unwrap()).unwrap();
    edit(&mut s);
    std::fs::write(to.join("summary.json"), serde_json::to_vec(&s).unwrap()).unwrap();
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    h.record_n(us, n).unwrap();
    let dir = gauntlet::report::ResultsDir { path: to.to_path_buf() };
    let hs = vec![("run".to_string(), h.clone()), ("phase=mixed".to_string(), h)];
    gauntlet::report::write_histograms(&dir, std::time::SystemTime::now(), 4.0, &hs).unwrap();
}

/// `gauntlet compare`: the default rules on crafted runs — latency from the histograms (p99
/// +10 % and at least +1 ms), new violations, a check that stopped passing or went missing,
/// the error rate; `--rules` changes them; JSON follows its schema; exit 0 / 1 / 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_finds_regressions_by_its_rules() {
    use std::process::Command;
    let (d, run) = leaking_run("compare").await;
    let bin = env!("CARGO_BIN_EXE_gauntlet");
    let cmp = |a: &std::path::Path, b: &std::path::Path, extra: &[&str]| {
        let o = Command::new(bin).arg("compare").arg(a).arg(b).args(extra).output().unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
    };
    let at = |name: &str| d.path().join(name);
    crafted(&run, &at("base"), 1000, 2000, |_| {});
    // The same run: nothing to say.
    let (code, out) = cmp(&at("base"), &at("base"), &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok: 0 regression(s)"), "{out}");
    // p99 2 ms → 3 ms (+50 %, +1 ms): a regression; 2 → 2.1 ms (+5 %): not; 2 → 2.6 ms (+30 %
    // but +0.6 ms): not either.
    crafted(&run, &at("slow"), 1000, 3000, |_| {});
    let (code, out) = cmp(&at("base"), &at("slow"), &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("REGRESSION run") && out.contains("latency.p99") && out.contains("+50.0 %"), "{out}");
    assert!(out.contains("REGRESSION phase mixed"), "{out}");
    for (name, us) in [("bit", 2100), ("small", 2600)] {
        crafted(&run, &at(name), 1000, us, |_| {});
        let (code, out) = cmp(&at("base"), &at(name), &[]);
        assert_eq!(code, Some(0), "{name}: {out}");
    }
    // Rules: p50 +20 % → the 2.6 ms run regresses.
    std::fs::write(at("rules.yaml"), "latency: [{ quantile: p50, pct: 20 }]\n").unwrap();
    let (code, out) = cmp(&at("base"), &at("small"), &["--rules", at("rules.yaml").to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("latency.p50"), "{out}");
    // Too few samples: not compared, said so.
    crafted(&run, &at("few"), 20, 9000, |_| {});
    let (code, out) = cmp(&at("base"), &at("few"), &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("latency not compared (1000 and 20 samples, fewer than 100)"), "{out}");
    // A new leak on the allow check, the error rate up, a check gone.
    crafted(&run, &at("worse"), 1000, 2000, |s| {
        let ok = s["checks"].as_array_mut().unwrap().iter_mut().find(|c| c["id"] == "OK").unwrap();
        ok["violations"]["false_deny"] = serde_json::json!(3);
        ok["result"] = serde_json::json!("fail");
        ok["errors"] = serde_json::json!(ok["sent"].as_u64().unwrap() / 10);
        s["checks"].as_array_mut().unwrap().retain(|c| c["id"] != "LEAKS");
    });
    let (code, out) = cmp(&at("base"), &at("worse"), &[]);
    assert_eq!(code, Some(1), "{out}");
    for want in [
        "REGRESSION check OK                     violations.false_deny      0 → 3  +3",
        "REGRESSION check OK                     result                     pass → fail",
        "REGRESSION check OK                     error_rate                 0 → 10  +10.00 pp",
        "REGRESSION check LEAKS                  result                     fail → not in this run",
    ] {
        assert!(out.contains(want), "`{want}` missing:\n{out}");
    }
    // A threshold that stops holding, and a check no longer sent, are regressions too; so is a
    // run that newly fails for a reason of its own.
    crafted(&run, &at("thresh"), 1000, 2000, |s| {
        s["thresholds"] = serde_json::json!([{ "expr": "p99 < 200ms", "ok": false, "value": 205.0 }]);
        let ok = s["checks"].as_array_mut().unwrap().iter_mut().find(|c| c["id"] == "OK").unwrap();
        ok["result"] = serde_json::json!("skipped");
        s["reasons"].as_array_mut().unwrap().push(serde_json::json!("the oracle saw nothing tagged"));
    });
    crafted(&run, &at("thresh-base"), 1000, 2000, |s| {
        s["thresholds"] = serde_json::json!([{ "expr": "p99 < 200ms", "ok": true, "value": 195.0 }]);
    });
    let (code, out) = cmp(&at("thresh-base"), &at("thresh"), &[]);
    assert_eq!(code, Some(1), "{out}");
    for want in [
        "REGRESSION threshold p99 < 200ms",
        "held → failed",
        "REGRESSION check OK                     result                     pass → skipped",
        "REGRESSION run                          reason                     new: the oracle saw nothing tagged",
    ] {
        assert!(out.contains(want), "`{want}` missing:\n{out}");
    }
    std::fs::write(at("lenient.yaml"), "missing_check_is_regression: false\n").unwrap();
    let (_, out) = cmp(&at("base"), &at("worse"), &["--rules", at("lenient.yaml").to_str().unwrap()]);
    assert!(!out.contains("REGRESSION check LEAKS"), "{out}");
    // Fewer leaks than the baseline is a change, not a regression.
    crafted(&run, &at("better"), 1000, 2000, |s| {
        let c = s["checks"].as_array_mut().unwrap().iter_mut().find(|c| c["id"] == "LEAKS").unwrap();
        c["violations"]["leak"] = serde_json::json!(1);
    });
    let (code, out) = cmp(&at("base"), &at("better"), &["--json"]);
    assert_eq!(code, Some(0), "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema/compare.v1.json"))
            .unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let leak = json["findings"].as_array().unwrap().iter().find(|f| f["metric"] == "violations.leak").unwrap();
    assert_eq!((leak["regression"].as_bool(), leak["current"].as_f64()), (Some(false), Some(1.0)));
    let (_, md) = cmp(&at("base"), &at("slow"), &["--markdown"]);
    assert!(
        md.starts_with("## gauntlet compare — ❌ regressions") && md.contains("| ❌ | run | `latency.p99` |"),
        "{md}"
    );
    // Bad rules and folders that are not runs: exit 2 with the reason.
    std::fs::write(at("bad.yaml"), "latency: [{ quantile: p42, pct: 1 }]\n").unwrap();
    let (code, out) = cmp(&at("base"), &at("slow"), &["--rules", at("bad.yaml").to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(out.contains("p42") && out.contains("use p50, p90, p99, p99.9 or max"), "{out}");
    std::fs::write(at("typo.yaml"), "error_rate: 1\n").unwrap();
    let (code, out) = cmp(&at("base"), &at("slow"), &["--rules", at("typo.yaml").to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(out.contains("unknown field `error_rate`"), "{out}");
    let (code, _) = cmp(&at("base"), &at("nowhere"), &[]);
    assert_eq!(code, Some(2));
}

/// The reports drawn from fixed run data (`tests/golden/*/`: a pass under network events and
/// a fail with leaks and forged headers) are the committed ones, byte for byte; regenerate with
/// `GAUNTLET_WRITE_GOLDEN=1 cargo test --test it golden` after a deliberate change.
#[test]
fn reports_from_fixed_data_match_the_golden_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let write = std::env::var_os("GAUNTLET_WRITE_GOLDEN").is_some();
    let tmp = tempfile::tempdir().unwrap();
    let mut differ = Vec::new();
    for run in ["fail-closed", "flawed"] {
        let out = tmp.path().join(run);
        let failed = gauntlet::report::rerender(&root.join(run), Some(&out)).unwrap().failed;
        assert!(failed.is_empty(), "{failed:?}");
        for f in ["report.html", "junit.xml", "summary.md"] {
            let got = std::fs::read(out.join(f)).unwrap();
            let golden = root.join("expected").join(format!("{run}.{f}"));
            if write {
                std::fs::write(&golden, &got).unwrap();
            } else if std::fs::read(&golden).ok() != Some(got) {
                differ.push(format!("{run}.{f}"));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "{differ:?} differ from tests/golden/expected/: look at the change; if it is meant, `GAUNTLET_WRITE_GOLDEN=1 cargo test --test it golden`"
    );
}

/// `--metrics-listen`: while a run runs, `/metrics` serves OpenMetrics text — requests,
/// violations by kind and latency buckets per (phase, condition) and per check — and the
/// numbers grow as the run goes; other paths are 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_are_served_while_the_run_runs() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = testkit::spawn(testkit::Config::default()).await.unwrap();
    let yaml = format!(
        "gauntlet: 1\nname: live\ntarget: {{ url: \"http://{}\", protocol: h1 }}\nidentities: {{ anon: {{}} }}\n\
         checks:\n\
         - {{ id: OK, identity: anon, request: {{ path: /public }}, expect: allow }}\n\
         - {{ id: LEAKS, identity: anon, request: {{ path: /admin }}, expect: deny }}\n\
         phases: [ {{ name: steady, duration: 3s, rate: 50/s }} ]\n",
        target.addr
    );
    let (d, p) = common::scenario_file(&yaml);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = gauntlet::app::ExecOptions {
        out: Some(d.path().join("out")),
        headless: true,
        quiet: true,
        metrics: Some(listener),
        ..Default::default()
    };
    let run = tokio::spawn(gauntlet::app::execute(common::load(&p), opts));
    let get = |path: &'static str| async move {
        let mut c = tokio::net::TcpStream::connect(addr).await.ok()?;
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.ok()?;
        let mut out = String::new();
        c.read_to_string(&mut out).await.ok()?;
        Some(out)
    };
    let sent = |page: &str| -> u64 {
        page.lines()
            .filter(|l| l.starts_with("gauntlet_requests_total{phase="))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while seen.len() < 2 && std::time::Instant::now() < deadline {
        if let Some(page) = get("/metrics").await {
            if page.starts_with("HTTP/1.1 200") && sent(&page) > 0 && seen.last().is_none_or(|(n, _)| sent(&page) > *n)
            {
                seen.push((sent(&page), page));
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert_eq!(seen.len(), 2, "two scrapes with growing counts during the run");
    let page = &seen[1].1;
    assert!(page.contains("content-type: application/openmetrics-text; version=1.0.0"), "{page}");
    assert!(page.trim_end().ends_with("# EOF"));
    assert!(page.contains("gauntlet_run_info{run_id=\""), "{page}");
    assert!(page.contains("gauntlet_violations_total{phase=\"steady\",condition=\"unimpaired\",kind=\"leak\"} "));
    assert!(page.contains("gauntlet_check_violations_total{check=\"LEAKS\",kind=\"leak\"} "));
    assert!(page.contains("gauntlet_latency_seconds_bucket{phase=\"steady\",condition=\"unimpaired\",le=\"+Inf\"} "));
    assert!(page.contains("gauntlet_phase{gauntlet_phase=\"steady\"} 1"));
    let other = get("/other").await.unwrap();
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    let out = run.await.unwrap();
    target.stop().await;
    assert_eq!(out.exit.code(), 1, "the leaks fail the run");
    // The server is gone with the run.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
