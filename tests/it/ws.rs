//! WebSocket through the reference gateway to the oracle (which echoes): the upgrade carries
//! the identity and the tag, a deny-class upgrade must not get 101, and every message's round
//! trip lands in the session histogram.

use std::path::Path;

use gauntlet::gateway::Flaw;

use super::common;

async fn ws_run(flaws: &[Flaw]) -> (u8, gauntlet::report::Summary) {
    ws_scenario(
        flaws,
        "checks:\n\
         - { id: WS-ALLOW, role: user, request: { route: api, path: /stream, websocket: { messages: [hello, world], interval: 20ms, hold: 300ms } }, expect: allow }\n\
         - { id: WS-ADMIN, role: user, request: { route: admin, path: /stream, websocket: { hold: 200ms } }, expect: { deny: [403] } }\n\
         - { id: WS-TRAVERSAL, role: user, request: { path: \"{route:public}/..{route:admin}/stream\", websocket: { hold: 200ms } }, expect: { deny: [400, 403] } }\n\
         phases:\n\
         - { name: sessions, requests: 30, users: 6, mix: [WS-ALLOW, WS-ADMIN, WS-TRAVERSAL] }\n",
    )
    .await
}

/// Runs `body` (checks, phases, extra identities) with the pack's identities and profile over
/// h1 against the reference gateway with `flaws` and an in-process oracle.
async fn ws_scenario(flaws: &[Flaw], body: &str) -> (u8, gauntlet::report::Summary) {
    let (gw, oracle) = common::reference(flaws).await;
    let yaml = common::pack_scenario("ws", gw.addr, "protocol: h1, max_in_flight: 16", body);
    let (_d, out) = common::run_with(&yaml, oracle, None).await;
    gw.stop().await;
    (out.exit.code(), out.summary.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sessions_pass_the_gateway_with_identity_and_their_messages_are_timed() {
    let (code, s) = ws_run(&[]).await;
    assert_eq!(code, 0, "{:?}", s.reasons);
    let allow = s.checks.iter().find(|c| c.id == "WS-ALLOW").unwrap();
    assert_eq!(allow.statuses.get("101").copied(), Some(allow.sent), "{allow:?}");
    // The oracle counted the upgrades and saw the identity the gateway injected.
    let up = allow.upstream.as_ref().unwrap();
    assert_eq!(up.counts.arrivals, allow.sent);
    assert_eq!((up.counts.missing, up.counts.spoofed), (0, 0));
    let ws = s.websocket.as_ref().expect("websocket section");
    assert_eq!(ws.sessions, allow.sent);
    assert_eq!(ws.completed, ws.sessions, "{ws:?}");
    assert!(ws.messages >= ws.sessions, "every session sent: {ws:?}");
    assert_eq!(ws.echoes, ws.messages, "{ws:?}");
    assert_eq!(ws.message_rtt_ms.count, ws.echoes);
    for id in ["WS-ADMIN", "WS-TRAVERSAL"] {
        let c = s.checks.iter().find(|c| c.id == id).unwrap();
        assert_eq!(c.result.name(), "pass", "{c:?}");
        assert!(!c.statuses.contains_key("101"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_past_a_path_bypass_is_a_leak() {
    let (code, s) = ws_run(&[Flaw::NoPathNormalization]).await;
    assert_eq!(code, 1);
    let c = s.checks.iter().find(|c| c.id == "WS-TRAVERSAL").unwrap();
    assert!(c.violations["leak"] > 0, "{c:?}");
    assert!(c.upstream.as_ref().unwrap().counts.leaks > 0, "the oracle saw the upgrade arrive");
    assert_eq!(s.checks.iter().find(|c| c.id == "WS-ADMIN").unwrap().result.name(), "pass");
}

/// Ctrl-C during long sessions: they close cleanly (close frames) within the grace period and
/// the results folder is complete.
#[cfg(unix)]
#[test]
fn sigint_closes_long_websocket_sessions_cleanly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    common::repo_certs();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = format!(
        "gauntlet: 1\nname: ws-long\ninclude: [\"{root}/scenarios/targets/reference.yaml\", \"{root}/scenarios/checks/zt-core.yaml\"]\n\
         target: {{ url: \"https://127.0.0.1:8443\", ca: \"{root}/certs/ca.pem\", server_name: localhost, protocol: h1, max_in_flight: 64 }}\n\
         oracle: {{ listen: \"127.0.0.1:0\" }}\n\
         checks:\n\
         - {{ id: WS-LONG, role: user, request: {{ route: api, path: /stream, websocket: {{ interval: 200ms, hold: 60s }} }}, expect: allow }}\n\
         phases:\n\
         - {{ name: hold, requests: 20, users: 20, mix: [WS-LONG] }}\n",
        root = root.display(),
    );
    let (d, p) = common::scenario_file(&yaml);
    let out = d.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .current_dir(root)
        .args(["demo", "--headless", "--scenario"])
        .arg(&p)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Sessions count as sent only when they end, so wait for the run clock instead: 20 users
    // open their sessions at once; the summary then shows how many did, all of them stopped.
    let stderr = child.stderr.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = false;
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    for line in lines.by_ref() {
        let line = line.unwrap_or_default();
        log.lock().unwrap().push(line.clone());
        let elapsed = line
            .trim_start()
            .strip_prefix('[')
            .and_then(|r| r.split('s').next())
            .and_then(|n| n.trim().parse::<f64>().ok());
        if elapsed.is_some_and(|t| t >= 3.0) {
            seen = true;
            break;
        }
        if Instant::now() > deadline {
            break;
        }
    }
    let rest = log.clone();
    std::thread::spawn(move || {
        for l in lines {
            rest.lock().unwrap().push(l.unwrap_or_default());
        }
    });
    assert!(seen, "the sessions never opened: {:?}", log.lock().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = common::wait_exit(&mut child, 30).expect("gauntlet exited after SIGINT");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(status.code(), Some(1), "an interrupted run is not a pass: {:?}", log.lock().unwrap());
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["interrupted"], true);
    let ws = &json["websocket"];
    assert!(ws["sessions"].as_u64() > Some(0), "{ws}");
    assert_eq!(ws["stopped"], ws["sessions"], "every open session was closed by gauntlet: {ws}");
    assert_eq!(json["requests"]["cancelled"], 0, "none abandoned: {}", json["requests"]);
}

/// A session opened with a token that expires 3 s later: the gateway must end it then.
async fn expiring(flaws: &[Flaw]) -> (u8, gauntlet::report::Summary) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).display().to_string();
    let body = format!(
        "identities:\n\
         \x20 alice-3s: {{ principal: alice, cert: \"{root}/certs/alice.pem\", key: \"{root}/certs/alice.key\", token: {{ jwt: {{ alg: RS256, key: \"{root}/certs/jwt-rs256.key\", kid: rs256-1, claims: {{ sub: alice, groups: [eng], aud: gauntlet-gateway, iss: \"https://idp.gauntlet.test\", exp: +3s, iat: now }} }} }} }}\n\
         checks:\n\
         - {{ id: WS-EXPIRY, identity: alice-3s, request: {{ route: api, path: /stream, websocket: {{ interval: 200ms, hold: 8s, must_close: true }} }}, expect: allow }}\n\
         phases:\n\
         - {{ name: sessions, requests: 4, users: 4, mix: [WS-EXPIRY] }}\n"
    );
    ws_scenario(flaws, &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_must_end_when_its_token_expires() {
    let (code, s) = expiring(&[]).await;
    assert_eq!(code, 0, "{:?}", s.reasons);
    let ws = s.websocket.as_ref().unwrap();
    assert_eq!((ws.sessions, ws.closed_by_peer), (4, 4), "{ws:?}");

    let (code, s) = expiring(&[Flaw::WsOutlivesToken]).await;
    assert_eq!(code, 1);
    let c = s.checks.iter().find(|c| c.id == "WS-EXPIRY").unwrap();
    assert_eq!(c.violations["leak"], 4, "{c:?}");
    assert_eq!(s.websocket.as_ref().unwrap().completed, 4);
}
