//! The binary as a user meets it: exit codes, messages, files, signals.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gauntlet::testkit;

use super::common;

fn gauntlet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["validate", "--help"],
        &["certs", "--help"],
        &["certs", "init", "--help"],
        &["demo", "--help"],
        &["gateway", "--help"],
        &["oracle", "--help"],
        &["netem", "--help"],
    ] {
        let o = gauntlet().args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stdout).contains("Usage"), "{args:?}");
    }
}

#[test]
fn validate_exits_2_with_located_messages_and_0_on_shipped_scenarios() {
    common::repo_certs();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = gauntlet().current_dir(root).args(["validate", "scenarios/invalid/parsecs.yaml"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("scenarios/invalid/parsecs.yaml:9:"), "{err}");
    assert!(err.contains("10 parsecs"), "{err}");
    assert!(!err.contains("panicked"));
    let o = gauntlet().current_dir(root).args(["validate", "scenarios/demo.yaml"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("ok: "));
}

#[test]
fn a_missing_scenario_file_exits_3() {
    let o = gauntlet().args(["run", "/nonexistent/scenario.yaml", "--headless"]).output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read scenario /nonexistent/scenario.yaml"));
}

#[test]
fn an_unreachable_target_exits_3_and_writes_nothing() {
    // A port that was just free: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (d, p) = common::scenario_file(&format!(
        "gauntlet: 1\nname: dead\ntarget: {{ url: \"http://127.0.0.1:{port}\", timeout: 2s }}\nidentities: {{ a: {{}} }}\n\
         checks: [ {{ id: A, identity: a, request: {{ path: / }}, expect: allow }} ]\nphases: [ {{ name: p, requests: 5, rate: 5/s }} ]\n"
    ));
    let out = d.path().join("out");
    let o = gauntlet().arg("run").arg(&p).arg("--headless").arg("--out").arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot reach target"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.exists());
}

#[test]
fn certs_init_writes_private_keys_0600_and_is_idempotent() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("certs");
    let o = gauntlet().args(["certs", "init", "--dir"]).arg(&dir).output().unwrap();
    assert!(o.status.success());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!stdout.contains("PRIVATE KEY"));
    for f in [
        "ca.pem",
        "server.pem",
        "alice.pem",
        "bob.pem",
        "alice-expired.pem",
        "alice-future.pem",
        "alice-rogue.pem",
        "alice-noclientauth.pem",
        "rogue-ca.pem",
        "jwks.json",
        "jwt-rs256.pub.pem",
        "jwt-es256.pub.pem",
        "README.md",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["ca.key", "server.key", "alice.key", "jwt-rs256.key", "jwt-es256.key", "jwt-hs256.secret"] {
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
    }
    let jwks: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("jwks.json")).unwrap()).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let before = std::fs::read(dir.join("ca.pem")).unwrap();
    let o = gauntlet().args(["certs", "init", "--dir"]).arg(&dir).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 written"), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(before, std::fs::read(dir.join("ca.pem")).unwrap());
    // A missing leaf is re-issued by the kept CA.
    std::fs::remove_file(dir.join("bob.pem")).unwrap();
    let o = gauntlet().args(["certs", "init", "--dir"]).arg(&dir).output().unwrap();
    assert!(o.status.success());
    assert_eq!(before, std::fs::read(dir.join("ca.pem")).unwrap());
    assert!(dir.join("bob.pem").exists());
}

/// Starts `gauntlet run` on a long scenario (with `extra` YAML), interrupts it with SIGINT
/// once it is sending, and returns its exit status, results folder and pid.
#[cfg(unix)]
async fn interrupted(
    extra: &str,
    network: &str,
) -> (std::process::ExitStatus, tempfile::TempDir, std::path::PathBuf, u32) {
    signalled(extra, network, "INT", |_| true).await
}

/// As [`interrupted`], with `signal` (a `kill -SIGNAL` name), sent once `ready(out)` holds
/// (checked while the run is sending, for up to 30 s).
#[cfg(unix)]
pub(super) async fn signalled(
    extra: &str,
    network: &str,
    signal: &str,
    ready: impl Fn(&std::path::Path) -> bool + Send + 'static,
) -> (std::process::ExitStatus, tempfile::TempDir, std::path::PathBuf, u32) {
    let target = testkit::spawn(testkit::Config::default()).await.unwrap();
    let (d, p) = common::scenario_file(&format!(
        "gauntlet: 1\nname: sigint\ntarget: {{ url: \"http://{}\", protocol: h1 }}\nidentities: {{ a: {{}} }}\n{extra}\
         checks: [ {{ id: A, identity: a, request: {{ path: / }}, expect: allow }} ]\n\
         phases: [ {{ name: long, duration: 60s, rate: 100/s{network} }} ]\n",
        target.addr
    ));
    let out = d.path().join("out");
    let mut child = gauntlet()
        .arg("run")
        .arg(&p)
        .arg("--headless")
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child_pid = child.id();
    // Wait until the run is sending (a progress line with requests), bounded.
    let stderr = child.stderr.take().unwrap();
    let seen = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lines = BufReader::new(stderr).lines();
        while let Some(line) = lines.next() {
            let line = line.unwrap_or_default();
            if line.contains("sent ") && !line.contains("sent 0 ") {
                // Keep draining stderr so the child never writes into a closed pipe.
                std::thread::spawn(move || for _ in lines {});
                return true;
            }
            if Instant::now() > deadline {
                break;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(seen, "the run never reported progress");
    let o = out.clone();
    let ready = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready(&o) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        ready(&o)
    });
    assert!(ready.await.unwrap(), "the run never got ready for SIG{signal}");
    let pid = child.id().to_string();
    assert!(Command::new("kill").arg(format!("-{signal}")).arg(&pid).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || common::wait_exit(&mut child, 30))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("gauntlet exited after SIG{signal}"));
    target.stop().await;
    (status, d, out, child_pid)
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_still_leaves_a_valid_summary() {
    let (status, _d, out, _) = interrupted("", "").await;
    assert_eq!(status.code(), Some(1), "an interrupted run is not a pass");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["interrupted"], true);
    assert!(json["requests"]["sent"].as_u64().unwrap() > 0);
    assert!(out.join("latency.hlog").exists());
    assert!(out.join("scenario.yaml").exists());
}

/// The kernel backend removes its namespace on Ctrl-C (where it can run at all).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_removes_the_kernel_backend_namespace() {
    if let Err(why) = gauntlet::netem::kernel::available() {
        eprintln!("kernel backend test not run: {why}");
        return;
    }
    let (status, _d, out, pid) =
        interrupted("network: { backend: kernel }\n", ", network: { name: lossy, loss: 1% }").await;
    assert_eq!(status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert!(
        json["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "lossy" && c["requests"]["sent"].as_u64() > Some(0))
    );
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(!list.contains(&format!("gauntlet-{pid}-")), "left behind: {list}");
}

/// Under a pseudo-terminal (util-linux `script`), the run opens the dashboard, and when the
/// run ends the terminal leaves the alternate screen before the summary is printed.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_restores_the_terminal_when_the_run_ends() {
    let target = testkit::spawn(testkit::Config::default()).await.unwrap();
    let (d, p) = common::scenario_file(&format!(
        "gauntlet: 1\nname: tty\ntarget: {{ url: \"http://{}\", protocol: h1 }}\nidentities: {{ a: {{}} }}\n\
         checks: [ {{ id: A, identity: a, request: {{ path: / }}, expect: allow }} ]\n\
         phases: [ {{ name: p, requests: 60, rate: 60/s }} ]\n",
        target.addr
    ));
    let cmd = format!(
        "{} run {} --no-wait --out {}",
        env!("CARGO_BIN_EXE_gauntlet"),
        p.display(),
        d.path().join("out").display()
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("script").args(["-qfec", &cmd, "/dev/null"]).stdin(Stdio::null()).output()
    })
    .await
    .unwrap()
    .expect("util-linux `script` runs");
    target.stop().await;
    let text = String::from_utf8_lossy(&out.stdout);
    let enter = text.find("\x1b[?1049h").expect("the dashboard entered the alternate screen");
    let leave = text.rfind("\x1b[?1049l").expect("the terminal left the alternate screen");
    let verdict = text.rfind("verdict: PASS").expect("the summary was printed");
    assert!(enter < leave && leave < verdict, "restore happens before the summary");
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oracle_address_in_use_exits_3_and_leaves_no_results_folder() {
    let target = testkit::spawn(testkit::Config::default()).await.unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (d, p) = common::scenario_file(&format!(
        "gauntlet: 1\nname: busy\ntarget: {{ url: \"http://{}\" }}\noracle: {{ listen: \"{}\" }}\nidentities: {{ a: {{}} }}\n\
         checks: [ {{ id: A, identity: a, request: {{ path: / }}, expect: allow }} ]\nphases: [ {{ name: p, requests: 5, rate: 5/s }} ]\n",
        target.addr,
        taken.local_addr().unwrap()
    ));
    let out = d.path().join("out");
    let o = tokio::task::spawn_blocking({
        let (p, out) = (p.clone(), out.clone());
        move || gauntlet().arg("run").arg(&p).arg("--headless").arg("--out").arg(&out).output().unwrap()
    })
    .await
    .unwrap();
    target.stop().await;
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot listen for the oracle"));
    assert!(!out.exists(), "nothing half-written");
    drop(taken);
}

/// `gauntlet netem` flags and a scenario's `network:` go through one builder: what YAML
/// refuses, the CLI refuses with the same reason (it once clamped `--slice 0` to 1).
#[test]
fn netem_flags_are_refused_like_the_yaml_keys() {
    for (flags, want) in [
        (&["--slice", "0"][..], "--slice: a slice is at least 1 byte"),
        (&["--latency", "5 parsecs"][..], "--latency:"),
        (&["--distribution", "zipf"][..], "--distribution: `zipf` is not a distribution"),
    ] {
        let mut child = gauntlet()
            .args(["netem", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9"])
            .args(flags)
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Refused at once; a link that started would run until killed (bounded here).
        let mut status = None;
        for _ in 0..200 {
            if let Some(s) = child.try_wait().unwrap() {
                status = Some(s);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let Some(status) = status else {
            child.kill().unwrap();
            panic!("{flags:?}: the link started instead of refusing the flags");
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(want), "{flags:?}: {err}");
    }
}

/// SIGTERM after the schedule was all sent, while requests wait on a server that never
/// answers: the run ends within its grace, not at the requests' timeout (it used to wait the
/// whole 120 s), interrupted, with a summary.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_while_the_last_requests_wait_ends_the_run_within_its_grace() {
    let arrived = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = arrived.clone();
    let (addr, stop) = common::raw_server(move |_, _, _| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        common::Act::Hang
    })
    .await;
    let (d, p) = common::scenario_file(&format!(
        "gauntlet: 1\nname: drain\ntarget: {{ url: \"http://{addr}\", protocol: h1, timeout: 120s }}\n\
         identities: {{ a: {{}} }}\n\
         checks: [ {{ id: A, identity: a, request: {{ path: / }}, expect: allow }} ]\n\
         phases: [ {{ name: p, requests: 3, rate: 100/s }} ]\n"
    ));
    let out = d.path().join("out");
    let mut child = gauntlet()
        .args(["run", p.to_str().unwrap(), "--headless", "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until all 3 reached the server (the schedule is over), bounded.
    for _ in 0..600 {
        if arrived.load(std::sync::atomic::Ordering::SeqCst) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(arrived.load(std::sync::atomic::Ordering::SeqCst), 3, "the 3 requests reached the server");
    assert!(Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || common::wait_exit(&mut child, 60))
        .await
        .unwrap()
        .expect("the run ended after SIGTERM, not at its 120 s timeout");
    stop.cancel();
    assert_eq!(status.code(), Some(1), "an interrupted run is not a pass");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["interrupted"], true);
}
