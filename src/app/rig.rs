//! What a run stands up and tears down: the client's impairment link, the dependency
//! links and their services, the oracle on its listener, the results folder and its
//! latency log. Everything that can refuse to start does so in [`Rig::setup`], before the
//! results folder exists: a run that cannot start leaves no folder behind.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Exit;
use super::run::{ExecOptions, say};
use crate::metrics::Dims;
use crate::oracle::{self, Oracle, Rules};
use crate::plan::Plan;
use crate::proto::Connector;
use crate::report::{Intervals, ResultsDir};
use crate::scenario::{Backend, Behind, CLIENT_LINK, ProtocolKind, Scenario};
use crate::timeline::Timeline;
use crate::{gateway, netem};

/// How long the oracle keeps counting after the last response.
const ORACLE_SETTLE: Duration = Duration::from_millis(300);

/// One run's stood-up parts.
pub(super) struct Rig {
    /// The scenario.
    pub(super) s: Arc<Scenario>,
    /// The wire protocol of this run.
    pub(super) protocol: ProtocolKind,
    /// The schedule.
    pub(super) plan: Arc<Plan>,
    /// Connections to the target (through the client link when there is one); taken by the
    /// protocol that drives the run.
    pub(super) connector: Option<Connector>,
    client_link: Option<ClientLink>,
    /// The network timeline over the client and dependency links.
    pub(super) timeline: Arc<Timeline>,
    oracle: Option<oracle::Running>,
    /// The oracle's counters, shared with the collector.
    pub(super) upstream: Option<Arc<Oracle>>,
    /// The results folder.
    pub(super) dir: ResultsDir,
    /// Its latency log (taken by the collector).
    pub(super) hlog: Option<Intervals>,
    /// When the run started (wall clock).
    pub(super) started_at: SystemTime,
    /// This run's id (in every tag).
    pub(super) run_id: String,
    /// Counter dimensions.
    pub(super) dims: Dims,
    /// The live metrics server's view, when `--metrics-listen` serves one.
    pub(super) live: Option<Arc<super::live::Live>>,
    /// A shard: how late it started against `--start-at`, ms.
    pub(super) lateness_ms: Option<f64>,
}

impl Rig {
    /// Stands up a run of `s` over `protocol`: probes the target, starts the client link
    /// when anything impairs it, binds the oracle (the caller's `listener`, else
    /// `oracle.listen`), then creates the results folder `into` (default: a new one under
    /// `results/`). Every failure is said and mapped to its exit.
    pub(super) async fn setup(
        s: Arc<Scenario>,
        protocol: ProtocolKind,
        opt: &ExecOptions,
        deps: &Dependencies,
        listener: Option<tokio::net::TcpListener>,
        into: Option<&std::path::Path>,
    ) -> Result<Rig, Exit> {
        let plan = Arc::new(crate::plan::build(&s));
        let mut connector = match Connector::new(&s.target, &s.identities, crate::proto::alpn(protocol)).await {
            Ok(c) => c,
            Err(e) => {
                say(opt, format!("gauntlet: cannot prepare connections to {}: {e}", s.target.url));
                return Err(Exit::Runtime);
            }
        };
        reachable(&s, protocol, &connector, opt).await?;
        // The client goes through an impairment link when a phase or an event impairs it;
        // dependency links stand where the gateway calls its dependencies.
        let mut links: Vec<(String, Arc<netem::Switch>)> = Vec::new();
        let client_link = if plan.impaired() {
            let switch = Arc::new(netem::Switch::new(netem::Impairment::default()));
            match ClientLink::start(s.backend, protocol, connector.addr(), switch.clone()).await {
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
                    return Err(Exit::Runtime);
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
        // Every shard of a run carries the same id (the oracle and `merge` join them by it).
        let run_id = match &opt.shard {
            Some(sh) => sh.run_id.clone(),
            None => format!("{:08x}", rand::random::<u32>()),
        };
        let stop_link = |l: Option<ClientLink>| async move {
            if let Some(l) = l {
                l.stop().await;
            }
        };
        let listener = match (listener, s.oracle) {
            (Some(l), _) => Some(l),
            // Shards share one gateway, and so one upstream: the standalone `gauntlet oracle`.
            (None, Some(_)) if opt.shard.is_some() => {
                say(
                    opt,
                    "oracle: a shard starts no oracle of its own — run `gauntlet oracle --run-id RUN --out DIR` as \
                     the gateway's upstream and give its findings to `gauntlet merge --oracle`",
                );
                None
            }
            (None, Some(spec)) => match tokio::net::TcpListener::bind(spec.listen).await {
                Ok(l) => Some(l),
                Err(e) => {
                    say(opt, format!("gauntlet: cannot listen for the oracle on {}: {e}", spec.listen));
                    stop_link(client_link).await;
                    return Err(Exit::Runtime);
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
                stop_link(client_link).await;
                return Err(Exit::Runtime);
            }
            None => None,
        };
        let stop_all = |l: Option<ClientLink>, o: Option<oracle::Running>| async move {
            stop_link(l).await;
            if let Some(o) = o {
                o.stop().await;
            }
        };
        let dir = match ResultsDir::create(into, &s.name) {
            Ok(d) => d,
            Err(e) => {
                say(opt, format!("gauntlet: {e}"));
                stop_all(client_link, oracle).await;
                return Err(Exit::Runtime);
            }
        };
        // A shard waits for the instant every shard starts at, and refuses to start too late.
        if let Some(sh) = &opt.shard {
            if let Some((at, text)) = &sh.start_at {
                if let Ok(wait) = at.duration_since(SystemTime::now()) {
                    say(
                        opt,
                        format!(
                            "shard {}/{}: starting at {text} (in {:.1}s)",
                            sh.shard.index,
                            sh.shard.count,
                            wait.as_secs_f64()
                        ),
                    );
                    tokio::time::sleep(wait).await;
                }
            }
            if let Err(e) = sh.late() {
                say(opt, format!("gauntlet: {e}"));
                stop_all(client_link, oracle).await;
                let _ = std::fs::remove_dir(&dir.path);
                return Err(Exit::Runtime);
            }
        }
        let started_at = SystemTime::now();
        let hlog = match Intervals::create(&dir.path, started_at) {
            Ok(h) => h,
            Err(e) => {
                say(opt, format!("gauntlet: {e}"));
                stop_all(client_link, oracle).await;
                return Err(Exit::Runtime);
            }
        };
        let dims = Dims { phases: plan.phases.len(), conditions: plan.conditions.len(), checks: s.checks.len() };
        let upstream = oracle.as_ref().map(|o| o.oracle.clone());
        Ok(Rig {
            s,
            protocol,
            plan,
            connector: Some(connector),
            client_link,
            timeline,
            oracle,
            upstream,
            dir,
            hlog: Some(hlog),
            started_at,
            run_id,
            dims,
            live: None,
            lateness_ms: None,
        })
    }

    /// Where the client link listens, when the client is impaired.
    pub(super) fn client_link(&self) -> Option<SocketAddr> {
        self.client_link.as_ref().map(ClientLink::addr)
    }

    /// Stops the client link (the engine is done with it).
    pub(super) async fn stop_link(&mut self) {
        if let Some(l) = self.client_link.take() {
            l.stop().await;
        }
    }

    /// Whether gauntlet's oracle runs as the gateway's upstream.
    pub(super) fn has_oracle(&self) -> bool {
        self.oracle.is_some()
    }

    /// Stops the oracle, once requests the gateway is still forwarding had time to arrive,
    /// and reads its counters.
    pub(super) async fn stop_oracle(&mut self) -> Option<oracle::Report> {
        let o = self.oracle.take()?;
        tokio::time::sleep(ORACLE_SETTLE).await;
        Some(o.stop().await.report())
    }
}

/// A TCP probe of the target first (QUIC has none: an unreachable h3 target shows up as
/// connect errors).
async fn reachable(s: &Scenario, protocol: ProtocolKind, c: &Connector, opt: &ExecOptions) -> Result<(), Exit> {
    if protocol == ProtocolKind::H3 {
        return Ok(());
    }
    match tokio::time::timeout(s.target.timeout, tokio::net::TcpStream::connect(c.addr())).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            say(opt, format!("gauntlet: cannot reach target {} ({}): {e}; nothing was sent", s.target.url, c.addr()));
            Err(Exit::Runtime)
        }
        Err(_) => {
            say(
                opt,
                format!(
                    "gauntlet: target {} ({}) did not accept a connection within {:?}; nothing was sent",
                    s.target.url,
                    c.addr(),
                    s.target.timeout
                ),
            );
            Err(Exit::Runtime)
        }
    }
}

enum ClientLink {
    User(crate::serve::Server),
    Kernel(netem::kernel::KernelLink),
    Udp(netem::udp::UdpLink),
}

impl ClientLink {
    /// Starts the link in front of `target`: datagrams for QUIC whatever the backend, else
    /// the user-space TCP proxy or the kernel backend.
    async fn start(
        backend: Backend,
        protocol: ProtocolKind,
        target: SocketAddr,
        switch: Arc<netem::Switch>,
    ) -> Result<Self, String> {
        match (backend, protocol) {
            (_, ProtocolKind::H3) => {
                let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
                netem::udp::spawn_switched(sock, target, switch).map(ClientLink::Udp).map_err(|e| e.to_string())
            }
            (Backend::User, _) => {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
                netem::spawn(l, target, switch).map(ClientLink::User).map_err(|e| e.to_string())
            }
            (Backend::Kernel, _) => netem::kernel::KernelLink::spawn(target, switch).await.map(ClientLink::Kernel),
        }
    }

    fn addr(&self) -> SocketAddr {
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
