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
    repo_certs();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cfg = gauntlet::gateway::Config::load(&root.join("scenarios/gateway/reference.yaml")).unwrap();
    let oracle = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    cfg.upstream = format!("http://{}", oracle.local_addr().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (gauntlet::gateway::spawn(&cfg, Some(listener), flaws).await.unwrap(), oracle)
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
