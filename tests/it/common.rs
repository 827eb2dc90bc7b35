use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use gauntlet::app::{ExecOptions, RunOutcome, execute};
use gauntlet::scenario::{self, Overrides, Scenario};
use gauntlet::testkit;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A test PKI generated once per test binary.
pub fn pki() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        gauntlet::tls::pki::init(d.path(), false).unwrap();
        d
    })
    .path()
}

/// The repository's own `certs/` (scenarios under `scenarios/` refer to it).
pub fn repo_certs() -> PathBuf {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs");
        gauntlet::tls::pki::init(&dir, false).unwrap();
        dir
    })
    .clone()
}

pub fn cert(name: &str) -> String {
    pki().join(name).display().to_string()
}

/// TLS setup for the test target from the test PKI.
pub fn tls_setup(require_client_cert: bool) -> testkit::TlsSetup {
    let read = |n: &str| std::fs::read(pki().join(n)).unwrap();
    testkit::TlsSetup {
        chain: CertificateDer::pem_slice_iter(&read("server.pem")).collect::<Result<Vec<_>, _>>().unwrap(),
        key: PrivateKeyDer::from_pem_slice(&read("server.key")).unwrap(),
        client_ca: Some(CertificateDer::pem_slice_iter(&read("ca.pem")).collect::<Result<Vec<_>, _>>().unwrap()),
        require_client_cert,
    }
}

/// Writes `yaml` as a scenario file in a fresh temp dir.
pub fn scenario_file(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("scenario.yaml");
    std::fs::write(&p, yaml).unwrap();
    (d, p)
}

pub fn load(path: &Path) -> Scenario {
    match scenario::load(path, &Overrides::default()) {
        Ok(s) => s,
        Err(e) => panic!("scenario does not load:\n{e}"),
    }
}

/// Runs a scenario in-process, quietly, into `out`, with a hard time bound.
pub async fn run(s: Scenario, out: &Path) -> RunOutcome {
    let opts = ExecOptions { out: Some(out.to_path_buf()), headless: true, quiet: true, ..Default::default() };
    tokio::time::timeout(Duration::from_secs(120), execute(s, opts)).await.expect("run finished in time")
}

/// The identities every run test uses, with absolute paths into the test PKI.
pub fn identities() -> String {
    let id = |name: &str, stem: &str| {
        format!(
            "  {name}: {{ cert: \"{}\", key: \"{}\" }}\n",
            cert(&format!("{stem}.pem")),
            cert(&format!("{stem}.key"))
        )
    };
    let mut s = String::from("identities:\n");
    s += &id("alice", "alice");
    s += &id("bob", "bob");
    s += &id("expired", "alice-expired");
    s += &id("rogue", "alice-rogue");
    s += &id("noclientauth", "alice-noclientauth");
    s += "  stranger: {}\n";
    s
}

/// The reference gateway (from `scenarios/gateway/reference.yaml`, with `flaws`) on a free
/// port, its upstream pointed at a listener bound for the run's oracle.
pub async fn reference(flaws: &[gauntlet::gateway::Flaw]) -> (gauntlet::gateway::Running, tokio::net::TcpListener) {
    reference_with(flaws, |_| {}).await
}

/// [`reference`] with its configuration edited by `edit` first.
pub async fn reference_with(
    flaws: &[gauntlet::gateway::Flaw],
    edit: impl FnOnce(&mut gauntlet::gateway::Config),
) -> (gauntlet::gateway::Running, tokio::net::TcpListener) {
    repo_certs();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cfg = gauntlet::gateway::Config::load(&root.join("scenarios/gateway/reference.yaml")).unwrap();
    edit(&mut cfg);
    let oracle = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    cfg.upstream = format!("http://{}", oracle.local_addr().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (gauntlet::gateway::spawn(&cfg, Some(listener), flaws).await.unwrap(), oracle)
}

/// The reference profile's role bindings, identity provider and client CA (the test PKI),
/// indented to sit under `profile:`; `user`, `other-group` and `admin` are bound to `roles`
/// (YAML for each binding) when given, else to alice, bob and carol.
pub fn bindings(roles: Option<[String; 3]>) -> String {
    let c = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs").display().to_string();
    let [user, other, admin] = roles.unwrap_or_else(|| {
        [
            format!("{{ cert: \"{c}/alice.pem\", key: \"{c}/alice.key\", principal: alice, groups: [eng] }}"),
            format!("{{ cert: \"{c}/bob.pem\", key: \"{c}/bob.key\", principal: bob, groups: [finance], signing: {{ alg: ES256, key: \"{c}/jwt-es256.key\", kid: es256-1 }} }}"),
            format!("{{ cert: \"{c}/carol.pem\", key: \"{c}/carol.key\", principal: carol, groups: [admin] }}"),
        ]
    });
    format!(
        "  roles:\n    user: {user}\n    other-group: {other}\n    admin: {admin}\n\
         \x20 idp: {{ alg: RS256, key: \"{c}/jwt-rs256.key\", kid: rs256-1, iss: \"https://idp.gauntlet.test\", aud: gauntlet-gateway }}\n\
         \x20 client_ca: {{ cert: \"{c}/ca.pem\", key: \"{c}/ca.key\" }}\n"
    )
}

/// A scenario that includes the reference profile and the zt-core pack (identities and
/// checks), aims at `https://ADDR` with `target` extra fields (e.g. `protocol: h3`), then `body`.
pub fn pack_scenario(name: &str, addr: impl std::fmt::Display, target: &str, body: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).display().to_string();
    format!(
        "gauntlet: 1\nname: {name}\ninclude: [\"{root}/scenarios/targets/reference.yaml\", \"{root}/scenarios/checks/zt-core.yaml\"]\n\
         target: {{ url: \"https://{addr}\", ca: \"{root}/certs/ca.pem\", server_name: localhost, {target} }}\n{body}"
    )
}

/// Runs `yaml` in-process, quietly, with the oracle on `oracle` (and `deps` already started),
/// bounded in time.
pub async fn run_with(
    yaml: &str,
    oracle: tokio::net::TcpListener,
    deps: Option<gauntlet::app::Dependencies>,
) -> (tempfile::TempDir, RunOutcome) {
    let (d, p) = scenario_file(yaml);
    let opts = ExecOptions {
        out: Some(d.path().join("out")),
        headless: true,
        quiet: true,
        oracle_listener: Some(oracle),
        dependencies: deps,
        ..Default::default()
    };
    let out =
        tokio::time::timeout(Duration::from_secs(180), execute(load(&p), opts)).await.expect("run finished in time");
    (d, out)
}

/// Waits up to `secs` for `child` to exit; kills it and returns `None` past that.
pub fn wait_exit(child: &mut std::process::Child, secs: u64) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a [`raw_server`] does with one request.
#[derive(Debug, Clone)]
pub enum Act {
    /// Write these bytes (a whole response) and keep the connection.
    Reply(Vec<u8>),
    /// Close the connection without answering (FIN, no byte).
    Close,
    /// Never answer (the connection stays open until the server stops).
    Hang,
}

/// `HTTP/1.1 STATUS` with a small body and a Content-Length (none for 204 and 304).
pub fn reply(status: u16) -> Act {
    if status == 204 || status == 304 {
        return Act::Reply(format!("HTTP/1.1 {status} X\r\n\r\n").into_bytes());
    }
    Act::Reply(format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok").into_bytes())
}

/// A hand-rolled HTTP/1.1 server on 127.0.0.1:0 (plain TCP) for behaviours no well-behaved
/// server has. `answer(n, k, head)`: `n` counts requests over the server (from 0), `k` on the
/// connection (from 0), `head` is the request head. Returns the address and a stop handle.
pub async fn raw_server<F>(answer: F) -> (std::net::SocketAddr, tokio_util::sync::CancellationToken)
where
    F: Fn(u64, u64, &str) -> Act + Send + Sync + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let answer = std::sync::Arc::new(answer);
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let s2 = stop.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = tokio::select! {
                a = l.accept() => match a { Ok(a) => a, Err(_) => continue },
                _ = s2.cancelled() => return,
            };
            let (answer, count, stop) = (answer.clone(), count.clone(), s2.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut k = 0;
                loop {
                    // One request head (bodies are read by Content-Length).
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        let n = tokio::select! {
                            r = sock.read(&mut chunk) => r.unwrap_or(0),
                            _ = stop.cancelled() => 0,
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    while buf.len() < end + len {
                        let mut chunk = [0u8; 4096];
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    buf.drain(..end + len);
                    let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    match answer(n, k, &head) {
                        Act::Reply(bytes) => {
                            if sock.write_all(&bytes).await.is_err() {
                                return;
                            }
                        }
                        Act::Close => {
                            let _ = sock.shutdown().await;
                            return;
                        }
                        Act::Hang => {
                            stop.cancelled().await;
                            return;
                        }
                    }
                    k += 1;
                }
            });
        }
    });
    (addr, stop)
}

/// A plain-http scenario against `addr` with `body` (identities, checks, phases, …).
pub fn http_scenario(name: &str, addr: std::net::SocketAddr, target: &str, body: &str) -> String {
    format!("gauntlet: 1\nname: {name}\ntarget: {{ url: \"http://{addr}\", protocol: h1, {target} }}\n{body}")
}

/// Runs `yaml` quietly into a temp dir; returns the dir, the exit code and the summary.
pub async fn run_yaml(yaml: &str) -> (tempfile::TempDir, u8, gauntlet::report::Summary) {
    let (d, p) = scenario_file(yaml);
    let out = run(load(&p), &d.path().join("out")).await;
    (d, out.exit.code(), out.summary.expect("a summary"))
}
