//! Many generators, one run (issue 15): N local `gauntlet run --shard i/N` processes against
//! one target, a standalone `gauntlet oracle` as the gateway's upstream, then `gauntlet merge`.
//! The contract: the union of the shards is the one-machine schedule, exactly; the merged
//! histogram is the sum of the shards' samples; an upstream-proven leak is joined; a missing
//! shard makes a `partial` failing result; a re-run index replaces its result; result lines
//! on stdin merge like folders.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use gauntlet::metrics::histogram;
use gauntlet::report::record::ShardFile;
use gauntlet::testkit;

use super::common;

fn gauntlet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
}

async fn output(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap()).await.unwrap()
}

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// A standalone oracle for run `run`, on a free port; returns it and its address.
fn oracle(s: &Path, run: &str, out: &Path) -> (std::process::Child, String) {
    let mut child = gauntlet()
        .args(["oracle", "--listen", "127.0.0.1:0", "--run-id", run, "--scenario"])
        .arg(s)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the oracle says where it listens").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

const SHARDS: u32 = 3;

fn scenario(dir: &Path, target: std::net::SocketAddr) -> PathBuf {
    let p = dir.join("scenario.yaml");
    std::fs::write(
        &p,
        format!(
            "gauntlet: 1\nname: sharded\ntarget: {{ url: \"http://{target}\", protocol: h1 }}\n\
             identities: {{ a: {{}} }}\n\
             checks:\n\
             \x20 - {{ id: OK, identity: a, request: {{ path: /ok }}, expect: allow }}\n\
             \x20 - {{ id: ADMIN, identity: a, request: {{ path: /admin }}, expect: deny }}\n\
             phases:\n\
             \x20 - {{ name: open, requests: 301, rate: 1500/s, mix: [OK, OK, ADMIN] }}\n\
             \x20 - {{ name: closed, requests: 40, users: 4, mix: [OK] }}\n"
        ),
    )
    .unwrap();
    p
}

fn shard(s: &Path, i: u32, out: &Path, line: bool) -> Command {
    let mut c = gauntlet();
    c.arg("run").arg(s).args(["--shard", &format!("{i}/{SHARDS}"), "--run-id", "contract1", "--headless", "--out"]);
    c.arg(out);
    if line {
        c.arg("--result-line");
    }
    c
}

fn merge(s: &Path, sources: &[&Path], oracle: Option<&Path>, out: &Path) -> Command {
    let mut c = gauntlet();
    c.arg("merge").args(sources).arg("--scenario").arg(s).arg("--out").arg(out).arg("--force");
    if let Some(o) = oracle {
        c.arg("--oracle").arg(o);
    }
    c
}

/// The sum of the shards' latency samples, from their own records.
fn shard_latency(run: &Path, s: &gauntlet::scenario::Scenario) -> (hdrhistogram::Histogram<u64>, u64) {
    let plan = gauntlet::plan::build(s);
    let dims = gauntlet::report::record::dims(s, &plan);
    let mut all = histogram();
    let mut sent = 0;
    for i in 0..SHARDS {
        let f: ShardFile = serde_json::from_slice(
            &std::fs::read(run.join(format!("shard-{i}-of-{SHARDS}")).join("shard.json")).unwrap(),
        )
        .unwrap();
        let r = f.record(dims, plan.events.len()).unwrap();
        for c in r.cells.iter().flatten() {
            all.add(&c.latency).unwrap();
            sent += c.counts.sent;
        }
    }
    (all, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_merge_into_the_one_machine_run_with_upstream_leaks_joined() {
    let d = tempfile::tempdir().unwrap();
    // The oracle is the gateway's upstream; the "gateway" forwards /admin and then denies it:
    // only the oracle can prove the leak.
    let probe_scenario = scenario(d.path(), "127.0.0.1:9".parse().unwrap());
    let oracle_out = d.path().join("oracle");
    let (mut orc, orc_addr) = oracle(&probe_scenario, "contract1", &oracle_out);
    let target = testkit::spawn(testkit::Config {
        rules: vec![("/admin".into(), 403)],
        forward_to: Some(orc_addr.parse().unwrap()),
        ..Default::default()
    })
    .await
    .unwrap();
    let s = scenario(d.path(), target.addr);
    let run = d.path().join("run");
    // N shards side by side, each printing its result line too.
    let shards: Vec<_> = (0..SHARDS).map(|i| output(shard(&s, i, &run, true))).collect();
    let mut lines = String::new();
    for (i, o) in futures_util::future::join_all(shards).await.into_iter().enumerate() {
        assert_eq!(o.status.code(), Some(0), "shard {i}: {}", text(&o));
        assert!(!text(&o).contains("PASS") && !text(&o).contains("FAIL"), "a shard gives no verdict: {}", text(&o));
        assert!(text(&o).contains("the verdict comes from `gauntlet merge`"), "{}", text(&o));
        lines.push_str(&String::from_utf8_lossy(&o.stdout));
    }
    // The oracle writes its findings when it stops.
    assert!(Command::new("kill").arg("-TERM").arg(orc.id().to_string()).status().unwrap().success());
    let _ = tokio::task::spawn_blocking(move || orc.wait()).await.unwrap();
    let oracle_file = oracle_out.join("oracle.json");
    assert!(oracle_file.exists(), "the oracle wrote no findings");

    // Each shard sent exactly its share of both phases: k ≡ i (mod 3) of 301 and of 40.
    let loaded = common::load(&s);
    for i in 0..SHARDS {
        let f = json(&run.join(format!("shard-{i}-of-{SHARDS}")).join("shard.json"));
        assert_eq!(f["shard"], i);
        assert_eq!(f["shards"], SHARDS);
        assert_eq!(f["record"]["run_id"], "contract1");
        assert_eq!(f["scenario_sha256"], loaded.sha256.as_str());
        let share = |n: u64| (0..n).filter(|k| k % u64::from(SHARDS) == u64::from(i)).count() as u64;
        let sent: u64 =
            f["record"]["cells"].as_array().unwrap().iter().map(|c| c["counts"]["sent"].as_u64().unwrap()).sum();
        assert_eq!(sent, share(301) + share(40), "shard {i}");
    }

    // Merged: the whole schedule, exactly; the upstream leak joined; judged once.
    let merged = d.path().join("merged");
    let o = output(merge(&s, &[&run], Some(&oracle_file), &merged)).await;
    assert_eq!(o.status.code(), Some(1), "ADMIN leaks upstream: the run fails\n{}", text(&o));
    let sum = json(&merged.join("summary.json"));
    assert_eq!(sum["requests"]["sent"], 341, "{sum}");
    assert_eq!(sum["requests"]["unsent"], 0);
    let admin = sum["checks"].as_array().unwrap().iter().find(|c| c["id"] == "ADMIN").unwrap().clone();
    // The wheel [OK, OK, ADMIN] over 301 requests: indices 2, 5, … 299 carry ADMIN.
    assert_eq!(admin["sent"], 100);
    assert_eq!(admin["result"], "fail");
    assert_eq!(admin["violations"]["leak"], 100, "every ADMIN request arrived upstream: {admin}");
    assert_eq!(sum["shards"]["count"], SHARDS);
    assert_eq!(sum["shards"]["missing"].as_array().unwrap().len(), 0);
    let ok = sum["checks"].as_array().unwrap().iter().find(|c| c["id"] == "OK").unwrap().clone();
    assert_eq!(ok["result"], "pass", "{ok}");
    for f in
        ["report.html", "junit.xml", "summary.md", "latency.hlog", "series.jsonl", "histograms.hlog", "manifest.json"]
    {
        assert!(merged.join(f).exists(), "{f} missing in the merged folder");
    }

    // The merged histogram is the sum of every shard's samples, value for value.
    let (want, shard_sent) = shard_latency(&run, &loaded);
    assert_eq!(shard_sent, 341);
    let hs = gauntlet::report::read_histograms(&std::fs::read(merged.join("histograms.hlog")).unwrap()).unwrap();
    assert_eq!(hs["run"], want, "the merged run histogram must be the shards' samples added");
    assert_eq!(hs["run"].len(), 341);

    // One machine, same scenario: the same schedule per check.
    let single = d.path().join("single");
    let mut c = gauntlet();
    c.arg("run").arg(&s).arg("--headless").arg("--out").arg(&single);
    let o = output(c).await;
    assert_eq!(o.status.code(), Some(0), "no oracle here: the leak is not seen, and ADMIN is denied\n{}", text(&o));
    let one = json(&single.join("summary.json"));
    for (a, b) in one["checks"].as_array().unwrap().iter().zip(sum["checks"].as_array().unwrap()) {
        assert_eq!(a["sent"], b["sent"], "check {}", a["id"]);
    }
    for (a, b) in one["phases"].as_array().unwrap().iter().zip(sum["phases"].as_array().unwrap()) {
        assert_eq!(a["requests"]["sent"], b["requests"]["sent"], "phase {}", a["name"]);
    }

    // The result lines merge like the folders.
    let from_lines = d.path().join("from-lines");
    let mut c = merge(&s, &[Path::new("-")], Some(&oracle_file), &from_lines);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let o = tokio::task::spawn_blocking(move || {
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(format!("some pod output\n{lines}").as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let again = json(&from_lines.join("summary.json"));
    assert_eq!(again["requests"], sum["requests"]);
    assert_eq!(again["checks"], sum["checks"]);

    // A missing shard: a partial result that fails, saying which.
    let partial = d.path().join("partial");
    let o = output(merge(
        &s,
        &[&run.join(format!("shard-0-of-{SHARDS}")), &run.join(format!("shard-2-of-{SHARDS}"))],
        Some(&oracle_file),
        &partial,
    ))
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let p = json(&partial.join("summary.json"));
    assert_eq!(p["shards"]["missing"], serde_json::json!([1]));
    assert_eq!(p["verdict"], "fail");
    assert!(p["reasons"].to_string().contains("partial result: shard(s) 1 of 3 missing"), "{}", p["reasons"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("PARTIAL"), "{}", text(&o));

    // A re-run index replaces its own result, and the merge still counts the schedule once.
    let before =
        json(&run.join(format!("shard-1-of-{SHARDS}")).join("shard.json"))["record"]["started_at_unix_ns"].clone();
    let o = output(shard(&s, 1, &run, false)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let after =
        json(&run.join(format!("shard-1-of-{SHARDS}")).join("shard.json"))["record"]["started_at_unix_ns"].clone();
    assert_ne!(before, after, "the re-run's result replaced the first");
    let rerun = d.path().join("rerun");
    let o = output(merge(&s, &[&run], None, &rerun)).await;
    assert_eq!(json(&rerun.join("summary.json"))["requests"]["sent"], 341, "{}", text(&o));

    // Another scenario (another digest) is refused.
    let other = d.path().join("other.yaml");
    std::fs::write(&other, std::fs::read_to_string(&s).unwrap().replace("301", "302")).unwrap();
    let o = output(merge(&other, &[&run], None, &d.path().join("refused"))).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("digest"), "{}", text(&o));
    target.stop().await;
}

/// The review's wrong-PASS paths and hostile inputs: a shard of another target, a shard file
/// that does not hold together, a histogram header asking for 4 GiB, an oracle that listened
/// for part of the run, a scenario with an oracle merged without its findings, and a
/// closed-loop phase with fewer users than shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_refuse_what_does_not_hold_together_and_fail_what_is_incomplete() {
    let d = tempfile::tempdir().unwrap();
    let target = testkit::spawn(testkit::Config::default()).await.unwrap();
    let body = |oracle: &str| {
        format!(
            "gauntlet: 1\nname: strict\ntarget: {{ url: \"http://{}\", protocol: h1 }}\n{oracle}\
             identities: {{ a: {{}} }}\n\
             checks: [ {{ id: OK, identity: a, request: {{ path: /ok }}, expect: allow }} ]\n\
             phases: [ {{ name: p, requests: 20, rate: 400/s }} ]\n",
            target.addr
        )
    };
    let s = d.path().join("s.yaml");
    std::fs::write(&s, body("")).unwrap();
    let run = d.path().join("run");
    let one = |scenario: &Path, i: u32, n: u32| {
        let mut c = gauntlet();
        c.arg("run").arg(scenario).args(["--shard", &format!("{i}/{n}"), "--run-id", "strict1", "--headless", "--out"]);
        c.arg(&run);
        c
    };
    for i in 0..2 {
        let o = output(one(&s, i, 2)).await;
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    let ok = output(merge(&s, &[&run], None, &d.path().join("ok"))).await;
    assert_eq!(ok.status.code(), Some(0), "the whole run merges and passes: {}", text(&ok));

    // Tampered copies of shard 1, each merged with the intact shard 0.
    let shard0 = run.join("shard-0-of-2");
    let tamper = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let dir = d.path().join(name).join("shard-1-of-2");
        std::fs::create_dir_all(&dir).unwrap();
        let mut f = json(&run.join("shard-1-of-2/shard.json"));
        edit(&mut f);
        std::fs::write(dir.join("shard.json"), serde_json::to_vec(&f).unwrap()).unwrap();
        dir
    };
    let refused = |dir: PathBuf, want: &'static str| {
        let out = d.path().join(format!("out-{want}"));
        let c = merge(&s, &[&shard0, &dir], None, &out);
        async move {
            let o = output(c).await;
            assert_eq!(o.status.code(), Some(2), "{want}: {}", text(&o));
            assert!(text(&o).contains(want), "{want}: {}", text(&o));
            assert!(!text(&o).contains("panicked"), "{}", text(&o));
        }
    };
    refused(tamper("other-target", &|f| f["target"] = "http://127.0.0.1:1".into()), "it sent to").await;
    refused(tamper("zero-shards", &|f| f["shards"] = 0.into()), "expected 0 ≤ shard").await;
    refused(tamper("far-future", &|f| f["record"]["started_at_unix_ns"] = serde_json::json!(u64::MAX)), "2262").await;
    // A V2 header claiming a 4 GiB payload, 40 bytes long.
    let mut bomb = 0x1c84_9313u32.to_be_bytes().to_vec();
    bomb.extend_from_slice(&u32::MAX.to_be_bytes());
    bomb.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 3]);
    bomb.extend_from_slice(&1u64.to_be_bytes());
    bomb.extend_from_slice(&u64::MAX.to_be_bytes());
    bomb.extend_from_slice(&1f64.to_be_bytes());
    use base64::Engine as _;
    let bomb = base64::engine::general_purpose::STANDARD.encode(bomb);
    refused(
        tamper("bomb", &|f| {
            for c in f["record"]["cells"].as_array_mut().unwrap() {
                c["latency"] = bomb.clone().into();
            }
        }),
        "claims",
    )
    .await;

    // An oracle that began listening after the run ended: its window does not cover it.
    let late = d.path().join("late-oracle.json");
    let started = json(&shard0.join("shard.json"))["record"]["started_at_unix_ns"].as_u64().unwrap();
    let plan_sha = {
        // A real oracle file for this scenario, then moved in time.
        let (mut orc, _) = oracle(&s, "strict1", &d.path().join("orc"));
        assert!(Command::new("kill").arg("-TERM").arg(orc.id().to_string()).status().unwrap().success());
        let _ = tokio::task::spawn_blocking(move || orc.wait()).await.unwrap();
        json(&d.path().join("orc/oracle.json"))
    };
    let mut moved = plan_sha.clone();
    moved["listening_from_unix_ns"] = (started + 3_600_000_000_000).into();
    moved["listening_until_unix_ns"] = (started + 3_700_000_000_000).into();
    std::fs::write(&late, serde_json::to_vec(&moved).unwrap()).unwrap();
    let out = d.path().join("late");
    let o = output(merge(&s, &[&run], Some(&late), &out)).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let sum = json(&out.join("summary.json"));
    assert_eq!(sum["verdict"], "fail");
    assert!(sum["reasons"].to_string().contains("listened from"), "{}", sum["reasons"]);
    assert_eq!(sum["shards"]["incomplete"].as_array().unwrap().len(), 1);
    // The oracle file written now did not cover the earlier run either.
    let o = output(merge(&s, &[&run], Some(&d.path().join("orc/oracle.json")), &d.path().join("after"))).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // A scenario with an oracle upstream, merged without the oracle's findings: partial.
    let with_oracle = d.path().join("with-oracle.yaml");
    std::fs::write(&with_oracle, body("oracle: { listen: \"127.0.0.1:0\" }\n")).unwrap();
    let _ = std::fs::remove_dir_all(&run);
    for i in 0..2 {
        let o = output(one(&with_oracle, i, 2)).await;
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    let out = d.path().join("no-oracle");
    let o = output(merge(&with_oracle, &[&run], None, &out)).await;
    assert_eq!(o.status.code(), Some(1), "no oracle findings: no PASS\n{}", text(&o));
    let sum = json(&out.join("summary.json"));
    assert!(sum["reasons"].to_string().contains("no --oracle findings"), "{}", sum["reasons"]);

    // Closed loop: 1 user cannot be split over 2 shards (one would own requests it never sends).
    let closed = d.path().join("closed.yaml");
    std::fs::write(&closed, body("").replace("rate: 400/s", "users: 1")).unwrap();
    let o = output(one(&closed, 1, 2)).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("fewer than the 2 shards"), "{}", text(&o));
    let o = gauntlet().args(["k8s", "job"]).arg(&closed).args(["--shards", "2", "--image", "x"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    target.stop().await;
}

#[test]
fn a_shard_without_a_common_run_id_or_start_instant_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = scenario(d.path(), "127.0.0.1:9".parse().unwrap());
    let o = gauntlet().arg("run").arg(&s).args(["--shard", "0/2", "--headless"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--start-at") && text(&o).contains("--run-id"), "{}", text(&o));
    for bad in ["2/2", "x/2", "0/0"] {
        let o = gauntlet().arg("run").arg(&s).args(["--shard", bad, "--run-id", "r1"]).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        assert!(text(&o).contains("expected I/N"), "{}", text(&o));
    }
    // Past the start instant by more than --max-late: not started.
    let o = gauntlet()
        .arg("run")
        .arg(&s)
        .args(["--shard", "0/2", "--start-at", "2020-01-01T00:00:00Z", "--headless"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("past --start-at"), "{}", text(&o));
    // --shards takes its index from JOB_COMPLETION_INDEX.
    let o = gauntlet()
        .arg("run")
        .arg(&s)
        .args(["--shards", "2", "--run-id", "r1"])
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("JOB_COMPLETION_INDEX"), "{}", text(&o));
}

/// `gauntlet k8s job`: the manifest parses as Kubernetes types (nothing dropped on the way),
/// says what the issue asks (Indexed, completions = parallelism = N, a failure policy on the
/// config-error exit code), and its pods' command works: each index is run here as the Job
/// would run it — files laid out from the ConfigMap and the Secret's items, JOB_COMPLETION_INDEX
/// set — and their result lines merge into the whole schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_k8s_job_manifest_parses_and_its_pods_command_runs_as_an_indexed_job() {
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::ConfigMap;
    let target = testkit::spawn(testkit::Config::default()).await.unwrap();
    let d = tempfile::tempdir().unwrap();
    // A scenario with an include in a sibling folder and a CA file: relative paths must survive.
    std::fs::create_dir_all(d.path().join("suite/packs")).unwrap();
    std::fs::write(
        d.path().join("suite/packs/checks.yaml"),
        "checks:\n  - { id: OK, identity: a, request: { path: /ok }, expect: allow }\n",
    )
    .unwrap();
    let s = d.path().join("suite/run.yaml");
    std::fs::write(
        &s,
        format!(
            "gauntlet: 1\nname: Kube_Suite.v2\ninclude: [packs/checks.yaml]\n\
             target: {{ url: \"http://{}\", protocol: h1 }}\nidentities: {{ a: {{}} }}\n\
             phases: [ {{ name: p, requests: 50, rate: 500/s }} ]\n",
            target.addr
        ),
    )
    .unwrap();
    let o = gauntlet()
        .args(["k8s", "job"])
        .arg(&s)
        .args(["--shards", "3", "--image", "registry.local/gauntlet:1", "--start-in", "3s"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let manifest = String::from_utf8(o.stdout).unwrap();
    let docs: Vec<serde_json::Value> = manifest.split("\n---\n").skip(1).map(gauntlet::scenario::yaml_value).collect();
    assert_eq!(docs.len(), 2, "{manifest}");
    // Typed, and nothing unknown: the typed value serialises back to the same document.
    let cm: ConfigMap = serde_json::from_value(docs[0].clone()).unwrap();
    assert_eq!(serde_json::to_value(&cm).unwrap(), docs[0], "the ConfigMap has fields Kubernetes does not know");
    let job: Job = serde_json::from_value(docs[1].clone()).unwrap();
    assert_eq!(serde_json::to_value(&job).unwrap(), docs[1], "the Job has fields Kubernetes does not know");
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!((spec.completions, spec.parallelism), (Some(3), Some(3)));
    assert!(spec.backoff_limit_per_index.is_some());
    let rules = &spec.pod_failure_policy.as_ref().unwrap().rules;
    let fail_job = rules.iter().find(|r| r.action == "FailJob").unwrap();
    assert_eq!(fail_job.on_exit_codes.as_ref().unwrap().values, vec![2], "the config-error exit code fails the Job");
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let args = pod.containers[0].args.clone().unwrap();
    assert_eq!(pod.containers[0].image.as_deref(), Some("registry.local/gauntlet:1"));
    assert!(job.metadata.name.as_ref().unwrap().starts_with("gauntlet-kube-suite-"));

    // Lay the files out as the projected volume would.
    let mount = d.path().join("mount");
    let data = cm.data.clone().unwrap();
    let volume = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == "scenario").unwrap();
    for src in &volume.projected.as_ref().unwrap().sources.clone().unwrap() {
        if let Some(c) = &src.config_map {
            for item in c.items.as_ref().unwrap() {
                let dest = mount.join(&item.path);
                std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
                std::fs::write(&dest, &data[&item.key]).unwrap();
            }
        }
    }
    let results = d.path().join("results");
    let local = |a: &String| {
        a.replace(gauntlet::k8s::MOUNT, mount.to_str().unwrap()).replace("/results", results.to_str().unwrap())
    };
    let pods: Vec<_> = (0..3)
        .map(|i| {
            let mut c = gauntlet();
            c.args(args.iter().map(local)).env("JOB_COMPLETION_INDEX", i.to_string());
            output(c)
        })
        .collect();
    let mut logs = String::new();
    for (i, o) in futures_util::future::join_all(pods).await.into_iter().enumerate() {
        assert_eq!(o.status.code(), Some(0), "pod {i}: {}", text(&o));
        logs.push_str(&String::from_utf8_lossy(&o.stdout));
    }
    let merged = d.path().join("merged");
    let mut c = merge(&s, &[Path::new("-")], None, &merged);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let o = tokio::task::spawn_blocking(move || {
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(logs.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let sum = json(&merged.join("summary.json"));
    assert_eq!(sum["requests"]["sent"], 50);
    assert_eq!(sum["shards"]["merged"].as_array().unwrap().len(), 3);
    for sh in sum["shards"]["merged"].as_array().unwrap() {
        assert!(sh["lateness_ms"].as_f64().is_some(), "each shard reports its lateness: {sh}");
    }
    target.stop().await;
}

/// SIGTERM (a pod evicted) flushes a partial shard result: exit 1 (the index is run again),
/// `interrupted` in its record, and what it sent is merged as a failing, interrupted run.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_a_partial_shard_result() {
    let target = testkit::spawn(testkit::Config::default()).await.unwrap();
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("long.yaml");
    std::fs::write(
        &s,
        format!(
            "gauntlet: 1\nname: long\ntarget: {{ url: \"http://{}\", protocol: h1 }}\nidentities: {{ a: {{}} }}\n\
             checks: [ {{ id: A, identity: a, request: {{ path: / }}, expect: allow }} ]\n\
             phases: [ {{ name: long, duration: 60s, rate: 100/s }} ]\n",
            target.addr
        ),
    )
    .unwrap();
    let run = d.path().join("run");
    let mut child = shard(&s, 0, &run, false).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let sending = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr).lines();
        while let Some(Ok(line)) = lines.next() {
            if line.contains("sent ") && !line.contains("sent 0 ") {
                std::thread::spawn(move || for _ in lines {});
                return true;
            }
        }
        false
    });
    let seen = tokio::time::timeout(std::time::Duration::from_secs(60), sending).await;
    assert!(matches!(seen, Ok(Ok(true))), "the shard never started sending");
    assert!(Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert_eq!(status.code(), Some(1), "an evicted shard is run again");
    let f = json(&run.join(format!("shard-0-of-{SHARDS}")).join("shard.json"));
    assert_eq!(f["record"]["interrupted"], true);
    let merged = d.path().join("merged");
    let o = output(merge(&s, &[&run], None, &merged)).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let sum = json(&merged.join("summary.json"));
    assert_eq!(sum["interrupted"], true);
    assert!(sum["requests"]["sent"].as_u64().unwrap() > 0);
    assert_eq!(sum["shards"]["missing"], serde_json::json!([1, 2]));
    target.stop().await;
}
