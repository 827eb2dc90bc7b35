//! The commands besides a run: validate, certs, demo, gateway, oracle, netem, probe.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::run::opts;
use super::{Dependencies, Exit, execute, load, out, probe as probe_run, stop_on_signal};
use crate::cli::{
    CertsInitArgs, DemoArgs, GatewayArgs, NetemArgs, OracleArgs, ProbeArgs, ProbeProtocol, RunArgs, ValidateArgs,
};
use crate::gateway::{self, Flaw};
use crate::oracle::{self, Oracle, Rules};
use crate::scenario::{Overrides, ProtocolKind};
use crate::{netem, plan, tls};

pub(super) async fn probe(a: ProbeArgs) -> Exit {
    let ov = Overrides { target_url: a.target_url, target_ca: a.target_ca, ..Default::default() };
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
    match probe_run::probe(&s, &a.check, protocol, None).await {
        Ok(r) => {
            out(&r.text());
            if r.conforming { Exit::Pass } else { Exit::Fail }
        }
        Err(e) => {
            errln!("gauntlet: {e}");
            match e {
                probe_run::Error::UnknownCheck(_) => Exit::Usage,
                probe_run::Error::Setup(_) => Exit::Runtime,
            }
        }
    }
}

pub(super) async fn run(a: RunArgs) -> Exit {
    let ov = Overrides {
        target_url: a.target_url.clone(),
        target_ca: a.target_ca.clone(),
        duration: a.duration.clone(),
        speed: a.speed.clone(),
    };
    if a.dry_run {
        return match load(&a.scenario, &ov) {
            Ok(s) => dry_run(&s),
            Err(code) => code,
        };
    }
    match load(&a.scenario, &ov) {
        Ok(s) => {
            let mut o = opts(&a.output);
            match super::shard::shard_run(&a, &s) {
                Ok(sh) => o.shard = sh,
                Err(e) => {
                    errln!("gauntlet: {e}");
                    return Exit::Usage;
                }
            }
            match metrics_listener(&a.output).await {
                Ok(l) => o.metrics = l,
                Err(code) => return code,
            }
            execute(s, o).await.exit
        }
        Err(code) => code,
    }
}

/// Binds `--metrics-listen`, saying where the metrics are.
async fn metrics_listener(o: &crate::cli::OutputArgs) -> Result<Option<tokio::net::TcpListener>, Exit> {
    let Some(addr) = o.metrics_listen else { return Ok(None) };
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => {
            let at = l.local_addr().map_or(addr, |a| a);
            errln!("metrics: http://{at}/metrics (OpenMetrics, while the run runs)");
            Ok(Some(l))
        }
        Err(e) => {
            errln!("gauntlet: --metrics-listen {addr}: {e}");
            Err(Exit::Runtime)
        }
    }
}

pub(super) fn validate(a: ValidateArgs) -> Exit {
    let mut code = Exit::Pass;
    for f in &a.files {
        let loaded = load(f, &Overrides::default()).map(|s| {
            let ready = super::run::ready_to_send(&s);
            (s, ready)
        });
        match loaded {
            Ok((_, Err(e))) => {
                errln!("{}: {}", f.display(), crate::input::printable(&e));
                code = Exit::Usage;
            }
            Ok((s, Ok(()))) => {
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
            Err(_) => code = Exit::Usage,
        }
    }
    code
}

pub(super) fn certs_init(a: CertsInitArgs) -> Exit {
    match tls::pki::init(&a.dir, a.force) {
        Ok(o) => {
            out(&format!(
                "certs: {} written, {} kept in {} (see {}/README.md)\n",
                o.written.len(),
                o.kept.len(),
                a.dir.display(),
                a.dir.display()
            ));
            for (path, mode) in &o.fixed {
                out(&format!(
                    "certs: {} was readable by others (mode {mode:04o}): now 0600, as a private key must be\n",
                    path.display()
                ));
            }
            Exit::Pass
        }
        Err(e) => {
            errln!("gauntlet: {e}");
            Exit::Runtime
        }
    }
}

fn flaws(names: &[String]) -> Result<Vec<Flaw>, Exit> {
    names
        .iter()
        .map(|n| {
            Flaw::parse(n).ok_or_else(|| {
                errln!("gauntlet: unknown flaw `{n}`; known: {}", Flaw::NAMES.join(", "));
                Exit::Usage
            })
        })
        .collect()
}

fn gateway_config(path: &Path) -> Result<gateway::Config, Exit> {
    gateway::Config::load(path).map_err(|e| {
        errln!("gauntlet: {e}");
        Exit::Usage
    })
}

pub(super) async fn demo(a: DemoArgs) -> Exit {
    let certs = Path::new("certs");
    if let Err(e) = tls::pki::init(certs, false) {
        errln!("gauntlet: cannot prepare the test PKI: {e}");
        return Exit::Runtime;
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
            Exit::Runtime
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
        speed: a.speed,
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
            return Exit::Runtime;
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
            return Exit::Runtime;
        }
    };
    let flaw_note = if a.flaws.is_empty() { "no flaws".to_string() } else { format!("flaws: {}", a.flaws.join(", ")) };
    errln!("demo: reference gateway on https://{} ({flaw_note}), oracle upstream on http://{oracle_addr}", gw.addr);
    let mut o = opts(&a.output);
    match metrics_listener(&a.output).await {
        Ok(l) => o.metrics = l,
        Err(code) => {
            gw.stop().await;
            deps.stop().await;
            return code;
        }
    }
    o.oracle_listener = Some(oracle_listener);
    o.dependencies = Some(deps);
    let code = execute(s, o).await.exit;
    gw.stop().await;
    code
}

pub(super) async fn gateway(a: GatewayArgs) -> Exit {
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
            Exit::Pass
        }
        Err(e) => {
            errln!("gauntlet: {e}");
            Exit::Runtime
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

pub(super) async fn netem(a: NetemArgs) -> Exit {
    match netem_serve(&a).await {
        Ok(()) => Exit::Pass,
        Err((code, msg)) => {
            errln!("gauntlet: {msg}");
            code
        }
    }
}

/// Runs the standalone link until Ctrl-C; `Err((exit code, message))` when it cannot start.
async fn netem_serve(a: &NetemArgs) -> Result<(), (Exit, String)> {
    let upstream = tokio::net::lookup_host(&a.upstream).await.ok().and_then(|mut i| i.next()).ok_or_else(|| {
        (Exit::Usage, format!("--upstream `{}` is not a reachable address (write host:port)", a.upstream))
    })?;
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone(), None, "stopping"));
    if a.udp {
        let imp = netem_udp_impairment(a).map_err(|e| (Exit::Usage, e))?;
        let socket = tokio::net::UdpSocket::bind(&a.listen)
            .await
            .map_err(|e| (Exit::Runtime, format!("cannot listen (UDP) on {}: {e}", a.listen)))?;
        let link = netem::udp::spawn_udp(socket, upstream, imp.clone()).map_err(|e| (Exit::Runtime, e.to_string()))?;
        errln!("netem: udp {} → {upstream}: {} (Ctrl-C to stop)", link.addr, imp.describe());
        stop.cancelled().await;
        let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let st = &link.stats;
        errln!("netem: {} datagrams in, {} lost, {} out", n(&st.received), n(&st.lost), n(&st.sent));
        link.stop().await;
        return Ok(());
    }
    let imp = netem_impairment(a).map_err(|e| (Exit::Usage, e))?;
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(|e| (Exit::Runtime, format!("cannot listen on {}: {e}", a.listen)))?;
    let link = netem::spawn(listener, upstream, Arc::new(netem::Switch::new(imp.clone())))
        .map_err(|e| (Exit::Runtime, e.to_string()))?;
    errln!("netem: {} → {upstream}: {} (Ctrl-C to stop)", link.addr, imp.describe());
    stop.cancelled().await;
    link.stop().await;
    Ok(())
}

pub(super) async fn oracle(a: OracleArgs) -> Exit {
    let s = match load(&a.scenario, &Overrides::default()) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let listener = match tokio::net::TcpListener::bind(&a.listen).await {
        Ok(l) => l,
        Err(e) => {
            errln!("gauntlet: cannot listen on {}: {e}", a.listen);
            return Exit::Runtime;
        }
    };
    let tls = match (&a.cert, &a.key) {
        (Some(c), Some(k)) => match server_tls(c, k) {
            Ok(t) => Some(t),
            Err(e) => {
                errln!("gauntlet: {e}");
                return Exit::Usage;
            }
        },
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let conditions = plan::build(&s).conditions.len();
    let run = match &a.run_id {
        Some(r) if super::shard::valid_run_id(r) => r.as_str(),
        Some(r) => {
            errln!("gauntlet: --run-id {r}: letters, digits and `-` only, at most 32");
            return Exit::Usage;
        }
        None => oracle::ANY_RUN,
    };
    match oracle::spawn(listener, Arc::new(Oracle::new(Rules::from_scenario(&s, run, conditions))), tls) {
        Ok(o) => {
            let from = std::time::SystemTime::now();
            let stopped = super::signalled();
            errln!(
                "oracle: listening on {scheme}://{} for `{}`; counters at {scheme}://{}/__gauntlet/oracle",
                o.addr,
                s.name,
                o.addr
            );
            stopped.await;
            let until = std::time::SystemTime::now();
            let r = o.stop().await.report();
            out(&format!("{}\n", serde_json::to_string_pretty(&r).unwrap_or_default()));
            if let Some(dir) = &a.out {
                let findings = super::run::oracle_record(r);
                if let Err(e) = super::shard::write_oracle(dir, run, &s, (from, until), findings) {
                    errln!("gauntlet: {e}");
                    return Exit::Runtime;
                }
                errln!("oracle: findings of run {run} in {}", dir.join(super::shard::ORACLE_FILE).display());
            }
            Exit::Pass
        }
        Err(e) => {
            errln!("gauntlet: {e}");
            Exit::Runtime
        }
    }
}

/// `gauntlet replay inspect`: a capture's profile; a capture that cannot be read is bad input.
pub(super) fn replay_inspect(a: &crate::cli::InspectArgs) -> Exit {
    let decrypt = match (&a.keylog, a.decrypt) {
        (Some(k), _) => Some(Some(k.as_path())),
        (None, true) => Some(None),
        (None, false) => None,
    };
    match crate::replay::inspect(&a.capture, decrypt) {
        Ok(p) => {
            if a.json {
                out(&format!("{}\n", serde_json::to_string_pretty(&p).unwrap_or_default()));
            } else {
                out(&p.text(&a.capture));
            }
            Exit::Pass
        }
        Err(e) => {
            errln!("gauntlet: {e}");
            Exit::Usage
        }
    }
}

/// `gauntlet replay convert`: a scenario skeleton next to the capture it replays.
pub(super) fn replay_convert(a: &crate::cli::ConvertArgs) -> Exit {
    if a.out.exists() && !a.force {
        errln!("gauntlet: {} exists; pass --force to replace it", a.out.display());
        return Exit::Usage;
    }
    // The capture as the scenario names it: relative to the scenario's folder when it is
    // inside it, else absolute.
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (cap, dir) = (abs(&a.capture), abs(a.out.parent().unwrap_or(Path::new("."))));
    let capture_ref = cap.strip_prefix(&dir).map_or_else(|_| cap.display().to_string(), |r| r.display().to_string());
    if a.target.starts_with("https:") && a.ca.is_none() {
        errln!("gauntlet: an https --target needs --ca FILE (the CA its server certificate chains to)");
        return Exit::Usage;
    }
    let ca = a.ca.as_deref().map(abs);
    let yaml = match crate::replay::convert::convert(&a.capture, &capture_ref, &a.target, ca.as_deref()) {
        Ok(y) => y,
        Err(e) => {
            errln!("gauntlet: {e}");
            return Exit::Usage;
        }
    };
    match crate::report::write_atomic(&a.out, yaml.as_bytes()) {
        Ok(()) => {
            out(&format!(
                "wrote {} — give its identities credentials, add policy rules, then `gauntlet validate` it\n",
                a.out.display()
            ));
            Exit::Pass
        }
        Err(e) => {
            errln!("gauntlet: {e}");
            Exit::Runtime
        }
    }
}

/// `run --dry-run`: what every phase would send; nothing is sent.
fn dry_run(s: &crate::scenario::Scenario) -> Exit {
    let plan = plan::build(s);
    let mut exit = Exit::Pass;
    for (i, (p, pp)) in s.phases.iter().zip(&plan.phases).enumerate() {
        if p.replay.is_some() {
            match crate::replay::dry_run(s, i) {
                Ok(d) => {
                    if d.source.error.is_some() || d.requests == 0 {
                        exit = Exit::Fail;
                    }
                    out(&d.text());
                }
                Err(e) => {
                    errln!("gauntlet: phase `{}`: {e}", p.name);
                    exit = Exit::Runtime;
                }
            }
        } else {
            let n = pp
                .planned_requests()
                .map_or_else(|| "as many requests as answered".to_string(), |n| format!("{n} requests"));
            let d = pp.nominal_end().map_or_else(String::new, |d| format!(" over {:.1}s", d.as_secs_f64()));
            out(&format!("phase `{}`: would send {n}{d} ({} checks in its mix)\n", p.name, p.mix.len()));
        }
    }
    out("dry run: nothing was sent\n");
    exit
}

/// `gauntlet capture`: live capture into a pcap file (feature `live-capture`).
#[cfg(feature = "live-capture")]
pub(super) async fn capture(a: crate::cli::CaptureArgs) -> Exit {
    let duration = match humantime::parse_duration(&a.duration) {
        Ok(d) => d,
        Err(e) => {
            errln!("gauntlet: --duration `{}`: {e}", a.duration);
            return Exit::Usage;
        }
    };
    let live = crate::capture::live::Live {
        interface: a.interface,
        filter: a.filter,
        count: a.count,
        duration,
        out: a.out.clone(),
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let token = CancellationToken::new();
    tokio::spawn(stop_on_signal(token.clone(), None, "stopping the capture"));
    let s2 = stop.clone();
    tokio::spawn(async move {
        token.cancelled().await;
        s2.store(true, std::sync::atomic::Ordering::Release);
    });
    errln!(
        "capture: on `{}`{} into {} (at most {} packets, {:?}; Ctrl-C to stop)",
        live.interface,
        live.filter.as_ref().map(|f| format!(" ({f})")).unwrap_or_default(),
        live.out.display(),
        live.count,
        duration
    );
    match tokio::task::spawn_blocking(move || crate::capture::live::capture(&live, &stop)).await {
        Ok(Ok(c)) => {
            out(&format!(
                "captured {} packets into {} ({} dropped by the kernel)\n",
                c.packets,
                a.out.display(),
                c.dropped
            ));
            Exit::Pass
        }
        Ok(Err(e)) => {
            errln!("gauntlet: {e}");
            Exit::Runtime
        }
        Err(e) => {
            errln!("gauntlet: the capture stopped: {e}");
            Exit::Runtime
        }
    }
}

/// `gauntlet capture` in a build without libpcap.
#[cfg(not(feature = "live-capture"))]
pub(super) async fn capture(_a: crate::cli::CaptureArgs) -> Exit {
    errln!(
        "gauntlet: live capture is not in this build: install libpcap (Debian: apt-get install libpcap-dev) and build with `cargo build --release --features live-capture`; or record with `tcpdump -w FILE` and replay the file"
    );
    Exit::Usage
}
