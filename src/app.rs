//! Wiring: commands → domains. The one place that dispatches on protocol kind, prints for
//! humans and chooses exit codes (0 pass, 1 verdict failed, 2 bad usage or scenario,
//! 3 the run could not start or its results could not be written).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderValue};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::conformance::Expect;
use crate::dashboard;
use crate::engine::{self, Job};
use crate::metrics::{Collector, Dims, Progress, Snapshot};
use crate::oracle::{self, Oracle, Rules};
use crate::proto::{self, Connector, Endpoint, Prepared, Protocol, Tagging};
use crate::report::{self, Hlog, ResultsDir, Summary};
use crate::scenario::{self, Backend, Behind, CLIENT_LINK, Overrides, ProtocolKind, Scenario, TagMode, TokenSource};
use crate::timeline::Timeline;
use crate::{netem, plan, tls};

use crate::cli::{
    CertsCommand, CertsInitArgs, Cli, Command, DemoArgs, GatewayArgs, NetemArgs, OracleArgs, OutputArgs, ProbeArgs,
    ProbeProtocol, RunArgs, ValidateArgs,
};

pub mod probe;
use crate::gateway::{self, Flaw};

/// stderr output that never panics (a closed pipe must not stop a run or its results).
macro_rules! errln {
    () => {{ let _ = writeln!(std::io::stderr()); }};
    ($($t:tt)*) => {{ let _ = writeln!(std::io::stderr(), $($t)*); }};
}
macro_rules! errp {
    ($($t:tt)*) => {{ let _ = write!(std::io::stderr(), $($t)*); }};
}

/// How long the oracle keeps counting after the last response.
const ORACLE_SETTLE: Duration = Duration::from_millis(300);

const PASS: u8 = 0;
const FAIL: u8 = 1;
const USAGE: u8 = 2;
const RUNTIME: u8 = 3;

/// Runs one command; returns the exit code.
pub async fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Run(a) => run_cmd(a).await,
        Command::Validate(a) => validate(a),
        Command::Certs(CertsCommand::Init(a)) => certs_init(a),
        Command::Demo(a) => demo(a).await,
        Command::Gateway(a) => gateway_cmd(a).await,
        Command::Oracle(a) => oracle_cmd(a).await,
        Command::Netem(a) => netem_cmd(*a).await,
        Command::Probe(a) => probe_cmd(a).await,
    }
}

async fn probe_cmd(a: ProbeArgs) -> u8 {
    let ov = Overrides { target_url: a.target_url, target_ca: a.target_ca, duration: None };
    let s = match load(&a.scenario, &ov) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let protocol = a.protocol.map(|p| match p {
        ProbeProtocol::H1 => ProtocolKind::H1,
        ProbeProtocol::H2 => ProtocolKind::H2,
        ProbeProtocol::H3 => ProtocolKind::H3,
        ProbeProtocol::Auto => ProtocolKind::Auto,
    });
    match probe::probe(&s, &a.check, protocol, None).await {
        Ok(r) => {
            out(&r.text());
            if r.conforming { PASS } else { FAIL }
        }
        Err(e) => {
            errln!("gauntlet: {e}");
            match e {
                probe::Error::UnknownCheck(_) => USAGE,
                probe::Error::Setup(_) => RUNTIME,
            }
        }
    }
}

fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

fn command_line() -> String {
    std::env::args().map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect::<Vec<_>>().join(" ")
}

/// Loads a scenario, printing problems; `Err(code)` when it cannot be used.
fn load(path: &Path, ov: &Overrides) -> Result<Scenario, u8> {
    match scenario::load(path, ov) {
        Ok(s) => {
            for w in &s.warnings {
                errln!("warning: {w}");
            }
            for n in &s.notes {
                errln!("note: {n}");
            }
            Ok(s)
        }
        Err(e @ scenario::Error::Read { .. }) => {
            errln!("gauntlet: {e}");
            Err(RUNTIME)
        }
        Err(scenario::Error::Invalid { problems }) => {
            for p in &problems {
                errln!("{p}");
            }
            errln!("gauntlet: {} problem(s) in {}; nothing was sent", problems.len(), path.display());
            Err(USAGE)
        }
    }
}

async fn run_cmd(a: RunArgs) -> u8 {
    let ov = Overrides { target_url: a.target_url, target_ca: a.target_ca, duration: a.duration };
    match load(&a.scenario, &ov) {
        Ok(s) => execute(s, opts(&a.output)).await.code,
        Err(code) => code,
    }
}

fn validate(a: ValidateArgs) -> u8 {
    let mut code = PASS;
    for f in &a.files {
        match load(f, &Overrides::default()) {
            Ok(s) => {
                let n = |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
                out(&format!(
                    "ok: {} — {}, {}, {}, {} (sha256 {})\n",
                    f.display(),
                    n(s.checks.len(), "check", "checks"),
                    n(s.identities.len(), "identity", "identities"),
                    n(s.phases.len(), "phase", "phases"),
                    n(s.thresholds.len(), "threshold", "thresholds"),
                    &s.sha256[..12]
                ))
            }
            Err(_) => code = USAGE,
        }
    }
    code
}

fn certs_init(a: CertsInitArgs) -> u8 {
    match tls::pki::init(&a.dir, a.force) {
        Ok(o) => {
            out(&format!(
                "certs: {} written, {} kept in {} (see {}/README.md)\n",
                o.written.len(),
                o.kept.len(),
                a.dir.display(),
                a.dir.display()
            ));
            PASS
        }
        Err(e) => {
            errln!("gauntlet: {e}");
            RUNTIME
        }
    }
}

fn flaws(names: &[String]) -> Result<Vec<Flaw>, u8> {
    names
        .iter()
        .map(|n| {
            Flaw::parse(n).ok_or_else(|| {
                errln!("gauntlet: unknown flaw `{n}`; known: {}", Flaw::NAMES.join(", "));
                USAGE
            })
        })
        .collect()
}

fn gateway_config(path: &Path) -> Result<gateway::Config, u8> {
    gateway::Config::load(path).map_err(|e| {
        errln!("gauntlet: {e}");
        USAGE
    })
}

async fn demo(a: DemoArgs) -> u8 {
    let certs = Path::new("certs");
    if let Err(e) = tls::pki::init(certs, false) {
        errln!("gauntlet: cannot prepare the test PKI: {e}");
        return RUNTIME;
    }
    let flaws = match flaws(&a.flaws) {
        Ok(f) => f,
        Err(c) => return c,
    };
    let mut cfg = match gateway_config(&a.gateway) {
        Ok(c) => c,
        Err(c) => return c,
    };
    let bind = |what: &'static str| async move {
        tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| {
            errln!("gauntlet: cannot listen for the {what}: {e}");
            RUNTIME
        })
    };
    let (oracle_listener, gw_listener) = match (bind("oracle").await, bind("gateway").await) {
        (Ok(o), Ok(g)) => (o, g),
        (Err(c), _) | (_, Err(c)) => return c,
    };
    let local = |l: &tokio::net::TcpListener| l.local_addr().map_or_else(|_| "127.0.0.1:0".into(), |a| a.to_string());
    let (oracle_addr, gw_addr) = (local(&oracle_listener), local(&gw_listener));
    cfg.upstream = format!("http://{oracle_addr}");
    let ov = Overrides {
        target_url: Some(format!("https://{gw_addr}")),
        target_ca: Some(certs.join("ca.pem")),
        duration: a.duration,
    };
    let s = match load(&a.scenario, &ov) {
        Ok(s) => s,
        Err(c) => return c,
    };
    // Dependencies first: the gateway calls them, and fetches its keys as it starts.
    let deps = match Dependencies::start(&s, true).await {
        Ok(d) => d,
        Err(e) => {
            errln!("gauntlet: {e}");
            return RUNTIME;
        }
    };
    if let Some(l) = deps.served("authz") {
        let authz = cfg.authz.get_or_insert_with(|| gateway::AuthzCfg {
            url: String::new(),
            timeout: None,
            failure_status: None,
        });
        authz.url = format!("http://{}/authorize", l.server.addr);
    }
    if let Some(l) = deps.served("jwks") {
        // The keys come from the endpoint only, so its faults are real to the gateway.
        cfg.jwt.jwks = None;
        cfg.jwt.jwks_url = Some(format!("http://{}/.well-known/jwks.json", l.server.addr));
    }
    let gw = match gateway::spawn(&cfg, Some(gw_listener), &flaws).await {
        Ok(g) => g,
        Err(e) => {
            errln!("gauntlet: cannot start the reference gateway: {e}");
            deps.stop().await;
            return RUNTIME;
        }
    };
    let flaw_note = if a.flaws.is_empty() { "no flaws".to_string() } else { format!("flaws: {}", a.flaws.join(", ")) };
    errln!("demo: reference gateway on https://{} ({flaw_note}), oracle upstream on http://{oracle_addr}", gw.addr);
    let mut o = opts(&a.output);
    o.oracle_listener = Some(oracle_listener);
    o.dependencies = Some(deps);
    let code = execute(s, o).await.code;
    gw.stop().await;
    code
}

async fn gateway_cmd(a: GatewayArgs) -> u8 {
    let flaws = match flaws(&a.flaws) {
        Ok(f) => f,
        Err(c) => return c,
    };
    let mut cfg = match gateway_config(&a.config) {
        Ok(c) => c,
        Err(c) => return c,
    };
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if let Some(u) = a.upstream {
        cfg.upstream = u;
    }
    match gateway::spawn(&cfg, None, &flaws).await {
        Ok(gw) => {
            errln!("gateway: listening on https://{} → {} (Ctrl-C to stop)", gw.addr, cfg.upstream);
            let stop = CancellationToken::new();
            tokio::spawn(stop_on_signal(stop.clone(), None, "stopping"));
            stop.cancelled().await;
            gw.stop().await;
            PASS
        }
        Err(e) => {
            errln!("gauntlet: {e}");
            RUNTIME
        }
    }
}

/// A TLS server config from PEM files (for the standalone oracle).
fn server_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    let chain = rustls_pki_types::CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--cert {}: {e}", cert.display()))?;
    let key =
        rustls_pki_types::PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--key {}: {e}", key.display()))?;
    tls::server_config(chain, key, None, false, &[b"h2", b"http/1.1"]).map_err(|e| e.to_string())
}

/// The flags as the scenario's `network:` keys, built by the one impairment builder, so the
/// CLI and YAML accept and refuse the same values (`--slice 0` included).
fn netem_impairment(a: &NetemArgs) -> Result<netem::Impairment, String> {
    let raw = crate::scenario::RawNetwork {
        latency: a.latency.clone(),
        jitter: a.jitter.clone(),
        distribution: Some(a.distribution.clone()),
        bandwidth: a.bandwidth.clone(),
        seed: Some(a.seed),
        slice: a.slice,
        slice_delay: a.slice_delay.clone(),
        reset_after: a.reset_after.clone(),
        reset_after_bytes: a.reset_after_bytes,
        blackhole: Some(a.blackhole),
        refuse: Some(a.refuse),
        limit_bytes: a.limit_bytes,
        slow_close: a.slow_close.clone(),
        ..Default::default()
    };
    crate::scenario::build_impairment(&raw).map_err(|problems| {
        problems.iter().map(|(key, msg)| format!("--{}: {msg}", key.replace('_', "-"))).collect::<Vec<_>>().join("; ")
    })
}

fn netem_udp_impairment(a: &NetemArgs) -> Result<netem::udp::UdpImpairment, String> {
    use crate::scenario::units::duration;
    use netem::udp::Loss;
    let tcp_only = [
        ("bandwidth", a.bandwidth.is_some()),
        ("slice", a.slice.is_some()),
        ("reset-after-bytes", a.reset_after_bytes.is_some()),
        ("reset-after", a.reset_after.is_some()),
        ("limit-bytes", a.limit_bytes.is_some()),
        ("slow-close", a.slow_close.is_some()),
        ("blackhole", a.blackhole),
        ("refuse", a.refuse),
    ];
    if let Some((flag, _)) = tcp_only.iter().find(|(_, set)| *set) {
        return Err(format!("--{flag} applies to TCP links, not with --udp (use --loss 100% to drop everything)"));
    }
    let prob = |flag: &str, v: &Option<String>| -> Result<f64, String> {
        match v.as_deref().map(Loss::parse) {
            None => Ok(0.0),
            Some(Ok(Loss::Bernoulli(p))) => Ok(p),
            Some(Ok(_)) => Err(format!("--{flag}: give a probability, e.g. `1%`")),
            Some(Err(e)) => Err(format!("--{flag}: {e}")),
        }
    };
    Ok(netem::udp::UdpImpairment {
        delay: netem_impairment(a)?,
        loss: a.loss.as_deref().map(Loss::parse).transpose().map_err(|e| format!("--loss: {e}"))?,
        duplicate: prob("duplicate", &a.duplicate)?,
        reorder: prob("reorder", &a.reorder)?,
        reorder_gap: duration(&a.reorder_gap).map_err(|e| format!("--reorder-gap: {e}"))?,
    })
}

async fn netem_cmd(a: NetemArgs) -> u8 {
    match netem_serve(&a).await {
        Ok(()) => PASS,
        Err((code, msg)) => {
            errln!("gauntlet: {msg}");
            code
        }
    }
}

/// Runs the standalone link until Ctrl-C; `Err((exit code, message))` when it cannot start.
async fn netem_serve(a: &NetemArgs) -> Result<(), (u8, String)> {
    let upstream =
        tokio::net::lookup_host(&a.upstream).await.ok().and_then(|mut i| i.next()).ok_or_else(|| {
            (USAGE, format!("--upstream `{}` is not a reachable address (write host:port)", a.upstream))
        })?;
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone(), None, "stopping"));
    if a.udp {
        let imp = netem_udp_impairment(a).map_err(|e| (USAGE, e))?;
        let socket = tokio::net::UdpSocket::bind(&a.listen)
            .await
            .map_err(|e| (RUNTIME, format!("cannot listen (UDP) on {}: {e}", a.listen)))?;
        let link = netem::udp::spawn_udp(socket, upstream, imp.clone()).map_err(|e| (RUNTIME, e.to_string()))?;
        errln!("netem: udp {} → {upstream}: {} (Ctrl-C to stop)", link.addr, imp.describe());
        stop.cancelled().await;
        let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let st = &link.stats;
        errln!("netem: {} datagrams in, {} lost, {} out", n(&st.received), n(&st.lost), n(&st.sent));
        link.stop().await;
        return Ok(());
    }
    let imp = netem_impairment(a).map_err(|e| (USAGE, e))?;
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(|e| (RUNTIME, format!("cannot listen on {}: {e}", a.listen)))?;
    let link = netem::spawn(listener, upstream, Arc::new(netem::Switch::new(imp.clone())))
        .map_err(|e| (RUNTIME, e.to_string()))?;
    errln!("netem: {} → {upstream}: {} (Ctrl-C to stop)", link.addr, imp.describe());
    stop.cancelled().await;
    link.stop().await;
    Ok(())
}

async fn oracle_cmd(a: OracleArgs) -> u8 {
    let s = match load(&a.scenario, &Overrides::default()) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let listener = match tokio::net::TcpListener::bind(&a.listen).await {
        Ok(l) => l,
        Err(e) => {
            errln!("gauntlet: cannot listen on {}: {e}", a.listen);
            return RUNTIME;
        }
    };
    let tls = match (&a.cert, &a.key) {
        (Some(c), Some(k)) => match server_tls(c, k) {
            Ok(t) => Some(t),
            Err(e) => {
                errln!("gauntlet: {e}");
                return USAGE;
            }
        },
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let conditions = plan::build(&s).conditions.len();
    match oracle::spawn(listener, Arc::new(Oracle::new(Rules::from_scenario(&s, oracle::ANY_RUN, conditions))), tls) {
        Ok(o) => {
            errln!(
                "oracle: listening on {scheme}://{} for `{}`; counters at {scheme}://{}/__gauntlet/oracle",
                o.addr,
                s.name,
                o.addr
            );
            let stop = CancellationToken::new();
            tokio::spawn(stop_on_signal(stop.clone(), None, "stopping"));
            stop.cancelled().await;
            let r = o.stop().await.report();
            out(&format!("{}\n", serde_json::to_string_pretty(&r).unwrap_or_default()));
            PASS
        }
        Err(e) => {
            errln!("gauntlet: {e}");
            RUNTIME
        }
    }
}

/// How [`execute`] runs.
#[derive(Debug, Default)]
pub struct ExecOptions {
    /// Results folder (default: `results/<stamp>-<name>/`).
    pub out: Option<std::path::PathBuf>,
    /// No dashboard.
    pub headless: bool,
    /// Leave the dashboard when the run ends.
    pub no_wait: bool,
    /// Print nothing (tests).
    pub quiet: bool,
    /// Stops the run early when cancelled (in addition to Ctrl-C / SIGTERM).
    pub stop: Option<CancellationToken>,
    /// A pause switch shared with the caller (the dashboard has its own otherwise).
    pub pause: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// A listener for the oracle already bound by the caller (the demo binds it before it
    /// configures the gateway); otherwise the scenario's `oracle.listen` is bound.
    pub oracle_listener: Option<tokio::net::TcpListener>,
    /// Dependency links already started by the caller (the demo starts them before its
    /// gateway, which fetches keys at start); otherwise started from the scenario.
    pub dependencies: Option<Dependencies>,
}

/// The client's impairment link, user-space or through the kernel backend.
enum ClientLink {
    User(crate::serve::Server),
    Kernel(netem::kernel::KernelLink),
    Udp(netem::udp::UdpLink),
}

impl ClientLink {
    fn addr(&self) -> std::net::SocketAddr {
        match self {
            ClientLink::User(s) => s.addr,
            ClientLink::Kernel(k) => k.addr,
            ClientLink::Udp(u) => u.addr,
        }
    }

    async fn stop(self) {
        match self {
            ClientLink::User(s) => s.stop().await,
            ClientLink::Kernel(k) => k.stop().await,
            ClientLink::Udp(u) => u.stop().await,
        }
    }
}

/// The dependency links of a run and the built-in services behind them.
#[derive(Default)]
pub struct Dependencies {
    /// One per `dependencies:` entry.
    pub links: Vec<DependencyLink>,
    services: Vec<gateway::deps::Service>,
}

impl std::fmt::Debug for Dependencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.links.iter().map(|l| (&l.name, l.server.addr))).finish()
    }
}

/// One running dependency link.
pub struct DependencyLink {
    /// Its name in the scenario.
    pub name: String,
    /// What it forwards to, in words.
    pub behind: String,
    /// The `serve:` kind (`authz`, `jwks`) or `upstream`.
    pub kind: &'static str,
    /// Its impairment switch.
    pub switch: Arc<netem::Switch>,
    /// The link (its `addr` is where the gateway calls).
    pub server: crate::serve::Server,
}

impl Dependencies {
    /// Starts every dependency of `s`: the built-in service (on a free loopback port) or
    /// the named upstream behind, and a link on `listen` — on a free loopback port instead
    /// when `any_port` (the demo, which then points its gateway at it).
    pub async fn start(s: &Scenario, any_port: bool) -> Result<Self, String> {
        let mut out = Dependencies::default();
        for d in &s.dependencies {
            let started = out.start_one(d, any_port).await;
            if let Err(e) = started {
                out.stop().await;
                return Err(format!("dependency `{}`: {e}", d.name));
            }
        }
        Ok(out)
    }

    async fn start_one(&mut self, d: &crate::scenario::Dependency, any_port: bool) -> Result<(), String> {
        let local = || tokio::net::TcpListener::bind("127.0.0.1:0");
        let (upstream, behind) = match &d.behind {
            Behind::Upstream(u) => {
                let addr = tokio::net::lookup_host(u.as_str())
                    .await
                    .ok()
                    .and_then(|mut i| i.next())
                    .ok_or_else(|| format!("upstream `{u}` does not resolve"))?;
                (addr, u.clone())
            }
            Behind::Authz(routes) => {
                let l = local().await.map_err(|e| e.to_string())?;
                let svc = gateway::deps::authz(l, Arc::new(routes.clone())).map_err(|e| e.to_string())?;
                let addr = svc.server.addr;
                self.services.push(svc);
                (addr, format!("authorization service on {addr}"))
            }
            Behind::Jwks(doc) => {
                let l = local().await.map_err(|e| e.to_string())?;
                let svc = gateway::deps::jwks(l, doc.clone()).map_err(|e| e.to_string())?;
                let addr = svc.server.addr;
                self.services.push(svc);
                (addr, format!("key endpoint on {addr}"))
            }
        };
        let listen = if any_port { "127.0.0.1:0".parse().map_err(|_| "address")? } else { d.listen };
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let switch = Arc::new(netem::Switch::new(netem::Impairment::default()));
        let server = netem::spawn(listener, upstream, switch.clone()).map_err(|e| e.to_string())?;
        self.links.push(DependencyLink { name: d.name.clone(), behind, kind: d.behind.kind(), switch, server });
        Ok(())
    }

    /// The link of the first dependency served by the built-in `kind`.
    pub fn served(&self, kind: &str) -> Option<&DependencyLink> {
        self.links.iter().find(|l| l.kind == kind)
    }

    /// Stops every link and service.
    pub async fn stop(self) {
        for l in self.links {
            l.server.stop().await;
        }
        for svc in self.services {
            svc.server.stop().await;
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// Exit code.
    pub code: u8,
    /// Results folder, when one was written.
    pub dir: Option<std::path::PathBuf>,
    /// The summary, when the run happened (a parity run: the last protocol's).
    pub summary: Option<Summary>,
    /// A parity run's comparison.
    pub parity: Option<report::parity::ParitySummary>,
}

impl RunOutcome {
    fn early(code: u8) -> Self {
        RunOutcome { code, dir: None, summary: None, parity: None }
    }
}

fn opts(o: &OutputArgs) -> ExecOptions {
    ExecOptions { out: o.out.clone(), headless: o.headless, no_wait: o.no_wait, ..Default::default() }
}

/// Runs a validated scenario end to end and writes its results folder — once, or once per
/// protocol of `target.parity` with a parity report on top.
pub async fn execute(s: Scenario, mut opt: ExecOptions) -> RunOutcome {
    let s = Arc::new(s);
    let deps = match opt.dependencies.take() {
        Some(d) => d,
        None => match Dependencies::start(&s, false).await {
            Ok(d) => d,
            Err(e) => {
                say(&opt, format!("gauntlet: {e}"));
                return RunOutcome::early(RUNTIME);
            }
        },
    };
    let listener = opt.oracle_listener.take();
    let out = if s.target.parity.is_empty() {
        run_once(s.clone(), s.target.protocol, &opt, &deps, listener, opt.out.clone()).await
    } else {
        parity(s.clone(), &opt, &deps, listener).await
    };
    deps.stop().await;
    out
}

/// Runs the scenario once per protocol of `target.parity`, each into its own subfolder, then
/// compares the verdicts (`summary.json` of schema `gauntlet.parity/v1` on top).
async fn parity(
    s: Arc<Scenario>,
    opt: &ExecOptions,
    deps: &Dependencies,
    listener: Option<tokio::net::TcpListener>,
) -> RunOutcome {
    // The folder appears with the first run that starts: a parity run that cannot start
    // writes nothing.
    let parent = ResultsDir::path_for(opt.out.as_deref(), &s.name);
    // Each run needs the oracle on the same address (the gateway's upstream): the first gets
    // the caller's listener, the next ones bind its address again.
    let oracle_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    let mut listener = listener;
    let mut runs = Vec::new();
    let mut not_run = None;
    for &p in &s.target.parity {
        let l = match (listener.take(), oracle_addr) {
            (Some(l), _) => Some(l),
            (None, Some(a)) => match tokio::net::TcpListener::bind(a).await {
                Ok(l) => Some(l),
                Err(e) => {
                    say(opt, format!("gauntlet: cannot listen for the oracle on {a} again: {e}"));
                    return RunOutcome::early(RUNTIME);
                }
            },
            (None, None) => None,
        };
        say(opt, format!("parity: running over {}", p.as_str()));
        let out = run_once(s.clone(), p, opt, deps, l, Some(parent.join(p.as_str()))).await;
        match out.summary {
            Some(summary) => runs.push((p.as_str().to_string(), p.as_str().to_string(), summary)),
            None => {
                // Later protocols are not run; what ran is still compared and written below.
                not_run = Some((p, out.code));
                break;
            }
        }
        if runs.last().is_some_and(|r| r.2.interrupted) {
            break;
        }
    }
    if runs.is_empty() {
        return RunOutcome::early(not_run.map_or(RUNTIME, |(_, code)| code));
    }
    let mut report = report::parity::ParitySummary::new(&runs);
    if let Some((p, _)) = not_run {
        report.reasons.push(format!("the {} run could not start; later protocols were not run", p.as_str()));
        report.verdict = crate::judge::RunVerdict::Fail;
    }
    let dir = match ResultsDir::create(Some(&parent), &s.name) {
        Ok(d) => d,
        Err(e) => {
            say(opt, format!("gauntlet: {e}"));
            return RunOutcome::early(RUNTIME);
        }
    };
    if let Err(e) = dir.write("summary.json", report.to_json().as_bytes()) {
        say(opt, format!("gauntlet: {e}"));
        return RunOutcome::early(RUNTIME);
    }
    if !opt.quiet {
        out(&report.text());
        out(&format!("results: {}\n", dir.path.display()));
    }
    let code = match (not_run, report.verdict) {
        (Some((_, code)), _) => code,
        (None, crate::judge::RunVerdict::Pass) => PASS,
        _ => FAIL,
    };
    RunOutcome { code, dir: Some(dir.path), summary: runs.pop().map(|r| r.2), parity: Some(report) }
}

/// One run over `protocol` into `into` (default: a new folder under `results/`).
async fn run_once(
    s: Arc<Scenario>,
    protocol: ProtocolKind,
    opt: &ExecOptions,
    deps: &Dependencies,
    opt_listener: Option<tokio::net::TcpListener>,
    into: Option<std::path::PathBuf>,
) -> RunOutcome {
    let code = RunOutcome::early;
    let plan = Arc::new(plan::build(&s));
    let alpn = match protocol {
        ProtocolKind::H1 => proto::h1::ALPN,
        ProtocolKind::H2 => proto::h2::ALPN,
        ProtocolKind::Auto => proto::auto::ALPN,
        ProtocolKind::H3 => tls::quic::ALPN,
    };
    let mut connector = match Connector::new(&s.target, &s.identities, alpn).await {
        Ok(c) => c,
        Err(e) => {
            say(opt, format!("gauntlet: cannot prepare connections to {}: {e}", s.target.url));
            return code(RUNTIME);
        }
    };
    // A TCP probe first (QUIC has none: an unreachable h3 target shows up as connect errors).
    let probe = match protocol {
        ProtocolKind::H3 => Ok(Ok(())),
        _ => tokio::time::timeout(s.target.timeout, tokio::net::TcpStream::connect(connector.addr()))
            .await
            .map(|r| r.map(drop)),
    };
    match probe {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            say(
                opt,
                format!("gauntlet: cannot reach target {} ({}): {e}; nothing was sent", s.target.url, connector.addr()),
            );
            return code(RUNTIME);
        }
        Err(_) => {
            say(
                opt,
                format!(
                    "gauntlet: target {} ({}) did not accept a connection within {:?}; nothing was sent",
                    s.target.url,
                    connector.addr(),
                    s.target.timeout
                ),
            );
            return code(RUNTIME);
        }
    }
    // The client goes through an impairment link when a phase or an event impairs it;
    // dependency links stand where the gateway calls its dependencies.
    let mut links: Vec<(String, Arc<netem::Switch>)> = Vec::new();
    let client_link = if plan.impaired() {
        let switch = Arc::new(netem::Switch::new(netem::Impairment::default()));
        let started = match (s.backend, protocol) {
            // QUIC: datagrams through the UDP link, whatever the backend.
            (_, ProtocolKind::H3) => match tokio::net::UdpSocket::bind("127.0.0.1:0").await {
                Ok(sock) => netem::udp::spawn_switched(sock, connector.addr(), switch.clone())
                    .map(ClientLink::Udp)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            (Backend::User, _) => match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(l) => {
                    netem::spawn(l, connector.addr(), switch.clone()).map(ClientLink::User).map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            },
            (Backend::Kernel, _) => {
                netem::kernel::KernelLink::spawn(connector.addr(), switch.clone()).await.map(ClientLink::Kernel)
            }
        };
        match started {
            Ok(l) => {
                connector.via(l.addr());
                if let ClientLink::Kernel(k) = &l {
                    say(opt, format!("network: kernel backend, client link through a namespace at {}", k.addr));
                }
                links.push((CLIENT_LINK.to_string(), switch));
                Some(l)
            }
            Err(e) => {
                say(opt, format!("gauntlet: cannot start the client impairment link: {e}"));
                return code(RUNTIME);
            }
        }
    } else {
        None
    };
    for d in &deps.links {
        say(opt, format!("dependency `{}`: link on {} → {}", d.name, d.server.addr, d.behind));
        links.push((d.name.clone(), d.switch.clone()));
    }
    let timeline = Arc::new(Timeline::new(plan.clone(), links));
    let ws_stats = Arc::new(proto::ws::Stats::default());
    let requests = match prepare(&s, &ws_stats) {
        Ok(r) => r,
        Err(e) => {
            say(opt, format!("gauntlet: {e}"));
            return code(USAGE);
        }
    };
    let run_id = format!("{:08x}", rand::random::<u32>());
    let listener = match (opt_listener, s.oracle) {
        (Some(l), _) => Some(l),
        (None, Some(spec)) => match tokio::net::TcpListener::bind(spec.listen).await {
            Ok(l) => Some(l),
            Err(e) => {
                say(opt, format!("gauntlet: cannot listen for the oracle on {}: {e}", spec.listen));
                return code(RUNTIME);
            }
        },
        (None, None) => None,
    };
    let rules = Rules::from_scenario(&s, &run_id, plan.conditions.len());
    let oracle = match listener.map(|l| oracle::spawn(l, Arc::new(Oracle::new(rules)), None)) {
        Some(Ok(o)) => {
            say(opt, format!("oracle: upstream oracle listening on http://{}", o.addr));
            Some(o)
        }
        Some(Err(e)) => {
            say(opt, format!("gauntlet: cannot start the oracle: {e}"));
            return code(RUNTIME);
        }
        None => None,
    };
    // The results folder is created only once everything that can refuse to start has
    // started: a run that cannot start leaves no folder behind.
    let dir = match ResultsDir::create(into.as_deref(), &s.name) {
        Ok(d) => d,
        Err(e) => {
            say(opt, format!("gauntlet: {e}"));
            return code(RUNTIME);
        }
    };
    let started_at = SystemTime::now();
    let mut hlog = match Hlog::create(&dir.path, started_at) {
        Ok(h) => h,
        Err(e) => {
            say(opt, format!("gauntlet: {e}"));
            return code(RUNTIME);
        }
    };
    let dims = Dims { phases: plan.phases.len(), conditions: plan.conditions.len(), checks: s.checks.len() };
    let threads = match s.target.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    let pause = opt.pause.clone().unwrap_or_default();
    let expects: Arc<Vec<Expect>> = Arc::new(s.checks.iter().map(|c| c.expect.clone()).collect());
    let job = Job {
        timeline: timeline.clone(),
        pause: pause.clone(),
        plan: plan.clone(),
        requests: Arc::new(requests),
        expects: expects.clone(),
        check_ids: Arc::new(s.checks.iter().map(|c| c.id.clone()).collect()),
        run_id: run_id.clone(),
        identities: s.slots().last().copied().unwrap_or(0),
        threads,
        max_in_flight: s.target.max_in_flight as usize,
        connections: s.target.connections as usize,
        multiplexed: protocol != ProtocolKind::H1,
        timeout: s.target.timeout,
        dims,
    };
    let progress = Arc::new(Progress::new(plan.phases.len(), Instant::now()));
    let (tx, rx) = mpsc::unbounded_channel();
    let mut collector = Collector::new(dims, plan.clone(), progress.clone()).with_timeline(timeline.clone());
    if let Some(o) = &oracle {
        collector = collector.with_upstream(o.oracle.clone(), expects.clone());
    }
    let first = Arc::new(collector.snapshot(false));
    let (snap_tx, snap_rx) = watch::channel(first);
    let collecting = tokio::spawn(async move {
        let c = collector.run(rx, snap_tx, &mut hlog).await;
        (c, hlog)
    });
    let stop = CancellationToken::new();
    let signals = tokio::spawn(stop_on_signal(stop.clone(), opt.stop.clone(), RUN_STOP_NOTE));
    // Open WebSocket sessions close cleanly (close frame) as soon as the run is stopped.
    let ws_stop = ws_stats.stop.clone();
    let stopping = stop.clone();
    let ws_watch = tokio::spawn(async move {
        stopping.cancelled().await;
        ws_stop.cancel();
    });
    let timeline_done = CancellationToken::new();
    let driving = tokio::spawn(timeline.clone().run(progress.clone(), pause.clone(), timeline_done.clone()));
    let tui = !opt.headless && !opt.quiet && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let printer = if tui {
        let info = dashboard::Info {
            scenario: s.name.clone(),
            target: s.target.url.clone(),
            protocol: protocol.as_str().to_string(),
            checks: s.checks.iter().map(|c| (c.id.clone(), c.expect.kind(), c.expect.is_deny_class())).collect(),
            denials: s.checks.iter().map(|c| c.expect.expected_refusals()).collect(),
            thresholds: s.thresholds.iter().map(dashboard::Threshold::from_scenario).collect(),
            outage_statuses: s
                .events
                .iter()
                .filter_map(|e| e.outage.as_ref())
                .flat_map(|o| o.statuses.clone())
                .collect(),
        };
        let (stop, no_wait) = (stop.clone(), opt.no_wait);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = dashboard::run(snap_rx, info, stop, pause, no_wait) {
                errln!("gauntlet: the dashboard failed ({e}); the run goes on");
            }
        })
    } else {
        tokio::spawn(progress_line(snap_rx, std::io::stderr().is_terminal(), opt.quiet))
    };

    let mut quic_refusals = std::collections::BTreeMap::new();
    let mut followed_h3 = false;
    let finish = match protocol {
        ProtocolKind::H1 => {
            engine::run(Arc::new(proto::h1::Http1::new(connector)), job, progress.clone(), tx, stop.clone()).await
        }
        ProtocolKind::H2 => {
            engine::run(Arc::new(proto::h2::Http2::new(connector)), job, progress.clone(), tx, stop.clone()).await
        }
        ProtocolKind::Auto => {
            // HTTP/3 is followed when a response announces it (Alt-Svc), for https targets —
            // not when the client link is impaired: QUIC would go around the TCP link.
            let h3 = match (s.target.tls, &client_link) {
                (true, None) => proto::h3::Http3::new(&s.target, &s.identities).await.ok(),
                _ => None,
            };
            let auto = Arc::new(proto::auto::Auto::new(connector, h3));
            let f = engine::run(auto.clone(), job, progress.clone(), tx, stop.clone()).await;
            quic_refusals = auto.quic_refusals();
            followed_h3 = auto.follows_h3();
            f
        }
        ProtocolKind::H3 => match proto::h3::Http3::new(&s.target, &s.identities).await {
            Ok(mut h3) => {
                if let Some(l) = &client_link {
                    h3.via(l.addr());
                }
                let h3 = Arc::new(h3);
                let f = engine::run(h3.clone(), job, progress.clone(), tx, stop.clone()).await;
                quic_refusals = h3.refusals();
                f
            }
            Err(e) => {
                say(opt, format!("gauntlet: cannot prepare HTTP/3 connections to {}: {e}", s.target.url));
                return code(RUNTIME);
            }
        },
    };
    let run_end = Instant::now();
    // Stopped by the user (Ctrl-C, SIGTERM, `q`) even if every scheduled request then
    // finished (WebSocket sessions close at once on a stop).
    let interrupted = finish.interrupted || stop.is_cancelled();
    timeline_done.cancel();
    ws_watch.abort();
    let _ = driving.await;
    if let Some(link) = client_link {
        link.stop().await;
    }
    signals.abort();
    let Ok((collector, hlog)) = collecting.await else {
        say(opt, "gauntlet: the metrics collector failed; no results written");
        return code(RUNTIME);
    };
    let _ = printer.await;
    let protocol_name = match protocol {
        ProtocolKind::H1 => <proto::h1::Http1 as Protocol>::NAME,
        ProtocolKind::H2 => <proto::h2::Http2 as Protocol>::NAME,
        ProtocolKind::Auto => <proto::auto::Auto as Protocol>::NAME,
        ProtocolKind::H3 => <proto::h3::Http3 as Protocol>::NAME,
    };
    let oracle_report = match oracle {
        Some(o) => {
            // Let requests the gateway is still forwarding arrive before the counters are read.
            tokio::time::sleep(ORACLE_SETTLE).await;
            Some(o.stop().await.report())
        }
        None => None,
    };
    let upstream_cells: Vec<((usize, usize, usize), crate::conformance::UpstreamCounts)> = oracle_report
        .as_ref()
        .map(|r| r.by_condition.iter().map(|c| ((c.phase, c.condition, c.check), c.counts)).collect())
        .unwrap_or_default();
    let spans = report::spans(&progress, plan.phases.len(), run_end);
    let judgement = crate::judge::judge(&crate::judge::Evidence {
        scenario: &s,
        plan: &plan,
        dims,
        cells: &collector.cells,
        causes: &collector.causes,
        upstream: oracle_report.as_ref().map(|r| crate::judge::Upstream {
            cells: &upstream_cells,
            headers: &r.headers,
            untagged: r.untagged,
        }),
        windows: &collector.windows,
        saturation: &collector.saturation,
        spans: &spans,
        run_span: run_end.saturating_duration_since(progress.run_start),
        interrupted,
        max_in_flight: s.target.max_in_flight,
    });
    let summary = Summary::new(
        &report::Inputs {
            scenario: &s,
            plan: &plan,
            dims,
            lag: &collector.lag,
            causes: &collector.causes,
            progress: &progress,
            run_end,
            started_at,
            run_id: &run_id,
            protocol: protocol_name,
            interrupted,
            oracle: oracle_report.as_ref().map(|r| report::OracleInputs {
                received: r.received,
                untagged: r.untagged,
                foreign: r.foreign,
                headers: &r.headers,
            }),
            timeline: &timeline,
            quic_refusals: quic_refusals.iter().map(|(c, n)| (proto::h3::describe_code(*c), *n)).collect(),
            websocket: s.checks.iter().any(|c| c.request.websocket.is_some()).then_some(&*ws_stats),
            followed_h3,
            command: command_line(),
        },
        &judgement,
    );
    let written = dir
        .write("scenario.yaml", s.resolved_yaml.as_bytes())
        .and_then(|_| {
            dir.write("scenario.sha256", format!("{}  scenario (all source files, in order)\n", s.sha256).as_bytes())
        })
        .and_then(|_| hlog.finish())
        .and_then(|_| {
            let (report, lines) = report::conformance_report(&s, &summary);
            dir.write("results.jsonl", lines.as_bytes())?;
            dir.write("conformance.yaml", report.as_bytes())
        })
        .and_then(|_| dir.write("summary.json", summary.to_json().as_bytes()));
    if let Err(e) = written {
        say(opt, format!("gauntlet: {e}"));
        return code(RUNTIME);
    }
    if !opt.quiet {
        out(&summary.text());
        out(&format!("results: {}\n", dir.path.display()));
    }
    let code = if summary.verdict == crate::judge::RunVerdict::Pass { PASS } else { FAIL };
    RunOutcome { code, dir: Some(dir.path), summary: Some(summary), parity: None }
}

/// One prepared request per check, tokens minted now; WebSocket checks count into `ws`.
/// One prepared request per check and credential (`[check][member]`: a check round-robins
/// over its identity's pool), tokens minted now (`{n}` per member); WebSocket checks count
/// into `ws`.
fn prepare(s: &Scenario, ws: &Arc<proto::ws::Stats>) -> Result<Vec<Vec<Prepared>>, String> {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    // tokens[identity][member]
    let mut tokens: Vec<Vec<Option<(http::HeaderName, HeaderValue)>>> = Vec::new();
    for id in &s.identities {
        let mut per = Vec::with_capacity(id.members());
        for m in 0..id.members() {
            let Some(t) = &id.token else {
                per.push(None);
                continue;
            };
            let raw = match &t.source {
                TokenSource::Static(v) => v.clone(),
                TokenSource::Jwt(spec) => {
                    spec.mint_as(now, id.number(m)).map_err(|e| format!("identity `{}`: {e}", id.name))?
                }
            };
            let value = if t.scheme.is_empty() { raw } else { format!("{} {raw}", t.scheme) };
            let hv = HeaderValue::from_str(&value)
                .map_err(|_| format!("identity `{}`: the token cannot be sent as a header", id.name))?;
            per.push(Some((t.header.clone(), hv)));
        }
        tokens.push(per);
    }
    let tagging = match s.profile.tag.unwrap_or(TagMode::Header) {
        TagMode::Header => Tagging::Header,
        TagMode::Query => Tagging::Query,
        TagMode::Off => Tagging::Off,
    };
    let endpoint = Endpoint { tls: s.target.tls, authority: s.target.authority.clone(), tagging };
    let slots = s.slots();
    let mut out = Vec::with_capacity(s.checks.len());
    for (ci, c) in s.checks.iter().enumerate() {
        let id = &s.identities[c.identity];
        let mut per = Vec::with_capacity(s.members_of(ci));
        for (m, token) in tokens[c.identity].iter().take(s.members_of(ci)).enumerate() {
            let mut h = HeaderMap::new();
            for (k, v) in &id.headers {
                h.append(k.clone(), v.clone());
            }
            if let Some((k, v)) = token {
                h.append(k.clone(), v.clone());
            }
            for (k, v) in &c.request.headers {
                h.append(k.clone(), v.clone());
            }
            let p = Prepared::new(
                slots[c.identity] + m,
                c.request.method.clone(),
                &c.request.path,
                h,
                c.request.body.clone(),
                &endpoint,
            )
            .map_err(|e| format!("check {}: cannot build its request: {e}", c.id))?
            .with_varying(c.request.varying.clone());
            per.push(match &c.request.websocket {
                Some(spec) => p.with_websocket(spec.clone(), ws.clone()),
                None => p,
            });
        }
        out.push(per);
    }
    Ok(out)
}

fn say(opt: &ExecOptions, msg: impl std::fmt::Display) {
    if !opt.quiet {
        errln!("{msg}");
    }
}

/// What a run says when it is interrupted.
const RUN_STOP_NOTE: &str = "stopping — in-flight requests get 2s, then results are written";

/// Cancels `stop` on Ctrl-C or SIGTERM (printing `note`) or when `external` is.
async fn stop_on_signal(stop: CancellationToken, external: Option<CancellationToken>, note: &'static str) {
    let external = async {
        match external {
            Some(t) => t.cancelled().await,
            None => std::future::pending().await,
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut t) => {
                t.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    let by_signal = tokio::select! {
        _ = tokio::signal::ctrl_c() => true,
        _ = term => true,
        _ = external => false,
    };
    if by_signal {
        errln!("\ngauntlet: {note}");
    }
    stop.cancel();
}

async fn progress_line(mut rx: watch::Receiver<Arc<Snapshot>>, tty: bool, quiet: bool) {
    let mut last = Instant::now() - Duration::from_secs(2);
    while rx.changed().await.is_ok() {
        let s = rx.borrow_and_update().clone();
        if s.done {
            break;
        }
        if quiet {
            continue;
        }
        if !tty && last.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last = Instant::now();
        let line = line(&s);
        if tty {
            errp!("\r{line}\x1b[K");
        } else {
            errln!("{line}");
        }
    }
    if tty && !quiet {
        errln!();
    }
}

fn line(s: &Snapshot) -> String {
    let q = |x: f64| s.window_latency.value_at_quantile(x) as f64 / 1000.0;
    let (p50, p99) = if s.window_latency.is_empty() { (0.0, 0.0) } else { (q(0.5), q(0.99)) };
    let phase_len = s.phase_length.map_or_else(|| "?".to_string(), |d| format!("{:.0}s", d.as_secs_f64()));
    let offered = s.offered_rps.map_or_else(|| "closed".to_string(), |r| format!("{r:.0}/s"));
    format!(
        "[{:>6.1}s] {} {:.1}/{} | offered {} achieved {:.0}/s | p50 {:.2}ms p99 {:.2}ms | sent {} err {} | violations {}",
        s.elapsed.as_secs_f64(),
        s.phase_name,
        s.phase_elapsed.as_secs_f64(),
        phase_len,
        offered,
        s.achieved_rps,
        p50,
        p99,
        s.totals.sent,
        s.totals.error_total(),
        s.totals.violation_total()
    )
}
