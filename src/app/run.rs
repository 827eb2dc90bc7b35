//! One run, top-down: [`Rig::setup`] stands everything up, [`drive`] runs the engine over
//! the one protocol chosen by the one `match` on [`ProtocolKind`], [`finish`] tears down,
//! judges and writes the results folder. `execute` adds what surrounds a run: its
//! dependencies, and one run per protocol of `target.parity`.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{HeaderMap, HeaderValue};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::rig::{Dependencies, Rig};
use super::{Exit, RUN_STOP_NOTE, command_line, out, stop_on_signal};
use crate::cli::OutputArgs;
use crate::conformance::Expect;
use crate::dashboard;
use crate::engine::{self, Finish, Job};
use crate::metrics::{Collector, Progress};
use crate::proto::{self, Endpoint, Extras, Prepared, Protocol, Tagging};
use crate::report::{self, Intervals, ResultsDir, Summary};
use crate::scenario::{ProtocolKind, Scenario, TagMode, TokenSource};

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
    /// Replace gauntlet's files in a non-empty `out` instead of refusing it.
    pub force: bool,
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
    /// Where to serve live OpenMetrics (`--metrics-listen`, bound by the caller).
    pub metrics: Option<tokio::net::TcpListener>,
    /// A sharded run (`--shard i/N`): this process's part, its run id and start instant.
    pub shard: Option<ShardRun>,
}

/// One shard of a run spread over several generators.
#[derive(Debug, Clone)]
pub struct ShardRun {
    /// The part of the schedule this process sends.
    pub shard: crate::plan::Shard,
    /// The run id every shard shares (in every tag).
    pub run_id: String,
    /// The wall-clock instant every shard starts at, and how it was written.
    pub start_at: Option<(SystemTime, String)>,
    /// How late a shard may start against `start_at` before it refuses to.
    pub max_late: std::time::Duration,
    /// Print the result as one base64 line on stdout (for `kubectl logs … | gauntlet merge -`).
    pub result_line: bool,
}

impl ShardRun {
    /// Refuses to start later than `max_late` past `start_at`.
    pub(super) fn late(&self) -> Result<(), String> {
        let Some((at, text)) = &self.start_at else { return Ok(()) };
        match SystemTime::now().duration_since(*at) {
            Ok(late) if late > self.max_late => Err(format!(
                "shard {}/{}: it is {:.3}s past --start-at {text}, more than --max-late {}s allows: not \
                 started (its results would not line up with the other shards')",
                self.shard.index,
                self.shard.count,
                late.as_secs_f64(),
                self.max_late.as_secs_f64()
            )),
            _ => Ok(()),
        }
    }

    /// The shard's results folder under the run's folder `base`.
    pub fn folder(&self, base: &std::path::Path) -> std::path::PathBuf {
        base.join(format!("shard-{}-of-{}", self.shard.index, self.shard.count))
    }
}

/// What the live metrics server (`--metrics-listen`) shows, when one runs.
type LiveRef<'a> = Option<&'a Arc<super::live::Live>>;

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// How gauntlet exits.
    pub exit: Exit,
    /// Results folder, when one was written.
    pub dir: Option<std::path::PathBuf>,
    /// The summary, when the run happened (a parity run: the last protocol's).
    pub summary: Option<Summary>,
    /// A parity run's comparison.
    pub parity: Option<report::parity::ParitySummary>,
}

impl RunOutcome {
    fn early(exit: Exit) -> Self {
        RunOutcome { exit, dir: None, summary: None, parity: None }
    }
}

pub(super) fn opts(o: &OutputArgs) -> ExecOptions {
    ExecOptions { out: o.out.clone(), headless: o.headless, no_wait: o.no_wait, force: o.force, ..Default::default() }
}

/// Runs a validated scenario end to end and writes its results folder — once, or once per
/// protocol of `target.parity` with a parity report on top.
pub async fn execute(s: Scenario, mut opt: ExecOptions) -> RunOutcome {
    if let Some(sh) = &opt.shard {
        // A shard writes into its own subfolder of the run's folder (shared by every shard),
        // replacing what an earlier attempt at the same index left there.
        if let Err(e) = sharded(&s, sh) {
            say(&opt, format!("gauntlet: {e}"));
            return RunOutcome::early(Exit::Usage);
        }
        if let Err(e) = sh.late() {
            say(&opt, format!("gauntlet: {e}"));
            return RunOutcome::early(Exit::Runtime);
        }
        let base = opt
            .out
            .clone()
            .unwrap_or_else(|| std::path::PathBuf::from("results").join(format!("{}-{}", s.name, sh.run_id)));
        let dir = sh.folder(&base);
        if let Err(e) = ResultsDir::claim(&dir, true) {
            say(&opt, format!("gauntlet: {e}"));
            return RunOutcome::early(Exit::Runtime);
        }
        opt.out = Some(dir);
    } else if let Some(out) = &opt.out {
        if let Err(e) = ResultsDir::claim(out, opt.force) {
            say(&opt, format!("gauntlet: {e}"));
            return RunOutcome::early(Exit::Usage);
        }
    }
    let s = Arc::new(s);
    let deps = match opt.dependencies.take() {
        Some(d) => d,
        None => match Dependencies::start(&s, false).await {
            Ok(d) => d,
            Err(e) => {
                say(&opt, format!("gauntlet: {e}"));
                return RunOutcome::early(Exit::Runtime);
            }
        },
    };
    let listener = opt.oracle_listener.take();
    let metrics = match opt.metrics.take() {
        Some(l) => {
            let live = Arc::new(super::live::Live::default());
            match super::live::serve(l, live.clone()) {
                Ok(server) => Some((server, live)),
                Err(e) => {
                    say(&opt, format!("gauntlet: --metrics-listen: {e}"));
                    deps.stop().await;
                    return RunOutcome::early(Exit::Runtime);
                }
            }
        }
        None => None,
    };
    let live = metrics.as_ref().map(|(_, l)| l);
    let out = if s.target.parity.is_empty() {
        run_once(s.clone(), s.target.protocol, &opt, &deps, listener, opt.out.as_deref(), live).await
    } else {
        parity(s.clone(), &opt, &deps, listener, live).await
    };
    if let Some((m, _)) = metrics {
        m.stop().await;
    }
    deps.stop().await;
    out
}

/// What a sharded run cannot do yet, refused before anything starts.
fn sharded(s: &Scenario, sh: &ShardRun) -> Result<(), String> {
    if sh.shard.count > 1 {
        if let Some(p) = s.phases.iter().find(|p| p.replay.is_some()) {
            return Err(format!(
                "phase `{}` replays a capture, and a replay cannot be split over shards (its \
                 connections are replayed in order by one generator): run it on one machine",
                p.name
            ));
        }
    }
    if !s.target.parity.is_empty() {
        return Err("target.parity runs once per protocol and cannot be sharded: shard one protocol's run".into());
    }
    Ok(())
}

/// Runs the scenario once per protocol of `target.parity`, each into its own subfolder, then
/// compares the verdicts (`summary.json` of schema `gauntlet.parity/v1` on top).
async fn parity(
    s: Arc<Scenario>,
    opt: &ExecOptions,
    deps: &Dependencies,
    listener: Option<tokio::net::TcpListener>,
    live: LiveRef<'_>,
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
                    return RunOutcome::early(Exit::Runtime);
                }
            },
            (None, None) => None,
        };
        say(opt, format!("parity: running over {}", p.as_str()));
        let out = run_once(s.clone(), p, opt, deps, l, Some(&parent.join(p.as_str())), live).await;
        match out.summary {
            Some(summary) => runs.push((p.as_str().to_string(), p.as_str().to_string(), summary)),
            None => {
                // Later protocols are not run; what ran is still compared and written below.
                not_run = Some((p, out.exit));
                break;
            }
        }
        if runs.last().is_some_and(|r| r.2.interrupted) {
            break;
        }
    }
    if runs.is_empty() {
        return RunOutcome::early(not_run.map_or(Exit::Runtime, |(_, exit)| exit));
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
            return RunOutcome::early(Exit::Runtime);
        }
    };
    let written = dir
        .write("report.html", report::html::parity(&report).as_bytes())
        .and_then(|_| dir.write("summary.json", report.to_json().as_bytes()))
        .and_then(|_| report::evidence::write_manifest(&dir.path));
    if !opt.quiet {
        out(&report.text());
        out(&format!("results: {}\n", dir.path.display()));
    }
    if let Err(e) = written {
        say(opt, format!("gauntlet: {e}"));
    }
    let exit = match (not_run, report.verdict) {
        (Some((_, exit)), _) => exit,
        (None, crate::judge::RunVerdict::Pass) => Exit::Pass,
        _ => Exit::Fail,
    };
    RunOutcome { exit, dir: Some(dir.path), summary: runs.pop().map(|r| r.2), parity: Some(report) }
}

/// One run over `protocol` into `into` (default: a new folder under `results/`).
async fn run_once(
    s: Arc<Scenario>,
    protocol: ProtocolKind,
    opt: &ExecOptions,
    deps: &Dependencies,
    listener: Option<tokio::net::TcpListener>,
    into: Option<&std::path::Path>,
    live: LiveRef<'_>,
) -> RunOutcome {
    // What to send is built first: a credential that cannot be minted is a usage error,
    // whether or not the target is up.
    let ws = Arc::new(proto::ws::Stats::default());
    let prepared = credentials(&s).and_then(|c| Ok((prepare(&s, &c, &ws)?, c)));
    let (requests, credentials) = match prepared {
        Ok(r) => r,
        Err(e) => {
            say(opt, format!("gauntlet: {e}"));
            return RunOutcome::early(Exit::Usage);
        }
    };
    let mut rig = match Rig::setup(s.clone(), protocol, opt, deps, listener, into).await {
        Ok(r) => r,
        Err(exit) => return RunOutcome::early(exit),
    };
    let Some(connector) = rig.connector.take() else { return RunOutcome::early(Exit::Runtime) };
    rig.live = live.cloned();
    // Replay phases stream their capture; the producers start now, ahead of the engine.
    let credentials = Arc::new(credentials);
    let replays: Vec<Option<Arc<crate::replay::ReplayFeed>>> = (0..s.phases.len())
        .map(|i| {
            s.phases[i].replay.as_ref().map(|_| {
                let to = crate::replay::Upstream { oracle: rig.has_oracle() };
                crate::replay::start(s.clone(), i, credentials.clone(), endpoint(&s), ws.clone(), to)
            })
        })
        .collect();
    let source = Source { requests, ws, replays };
    // The one dispatch on the protocol.
    let driven = match protocol {
        ProtocolKind::H1 => drive(&mut rig, proto::h1::Http1::new(connector), source, opt).await,
        ProtocolKind::H2 => drive(&mut rig, proto::h2::Http2::new(connector), source, opt).await,
        ProtocolKind::Auto => {
            // HTTP/3 is followed when a response announces it (Alt-Svc), for https targets —
            // not when the client link is impaired: QUIC would go around the TCP link.
            let h3 = match (s.target.tls, rig.client_link()) {
                (true, None) => proto::h3::Http3::new(&s.target, &s.identities).await.ok(),
                _ => None,
            };
            drive(&mut rig, proto::auto::Auto::new(connector, h3), source, opt).await
        }
        ProtocolKind::H3 => match proto::h3::Http3::new(&s.target, &s.identities).await {
            Ok(mut h3) => {
                if let Some(l) = rig.client_link() {
                    h3.via(l);
                }
                drive(&mut rig, h3, source, opt).await
            }
            Err(e) => {
                say(opt, format!("gauntlet: cannot prepare HTTP/3 connections to {}: {e}", s.target.url));
                rig.stop_link().await;
                let _ = rig.stop_oracle().await;
                return RunOutcome::early(Exit::Runtime);
            }
        },
    };
    finish(rig, driven, opt).await
}

/// What a run sends: one prepared request per check and credential, and the WebSocket
/// counters its sessions share.
struct Source {
    requests: Vec<Vec<Prepared>>,
    ws: Arc<proto::ws::Stats>,
    /// Per phase: a replay phase's feed.
    replays: Vec<Option<Arc<crate::replay::ReplayFeed>>>,
}

/// What driving produced, for [`finish`].
struct Driven {
    protocol: &'static str,
    extras: Extras,
    progress: Arc<Progress>,
    collector: Option<(Collector, Intervals)>,
    run_end: Instant,
    interrupted: bool,
    ws: Arc<proto::ws::Stats>,
    replays: Vec<Option<Arc<crate::replay::ReplayFeed>>>,
}

/// Runs the engine over `proto`, with the collector, the timeline, the signals and the
/// dashboard (or progress line) around it, until the plan is done or the run is stopped.
async fn drive<P: Protocol>(rig: &mut Rig, proto: P, source: Source, opt: &ExecOptions) -> Driven {
    let s = rig.s.clone();
    let plan = rig.plan.clone();
    let timeline = rig.timeline.clone();
    let dims = rig.dims;
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
        requests: Arc::new(source.requests),
        expects: expects.clone(),
        check_ids: Arc::new(s.checks.iter().map(|c| c.id.clone()).collect()),
        run_id: rig.run_id.clone(),
        identities: s.slots().last().copied().unwrap_or(0),
        threads,
        max_in_flight: s.target.max_in_flight as usize,
        connections: s.target.connections as usize,
        multiplexed: rig.protocol != ProtocolKind::H1,
        timeout: s.target.timeout,
        dims,
        feeds: Arc::new(source.replays.iter().map(|f| f.clone().map(|f| f as Arc<dyn engine::Feed>)).collect()),
        shard: opt.shard.as_ref().map_or(crate::plan::Shard::WHOLE, |x| x.shard),
    };
    let wall = SystemTime::now();
    let progress = Arc::new(Progress::new(plan.phases.len(), Instant::now()));
    let (tx, rx) = mpsc::unbounded_channel();
    let mut collector = Collector::new(dims, plan.clone(), progress.clone()).with_timeline(timeline.clone());
    if let Some(sh) = &opt.shard {
        // A shard's clock is the wall clock: its log intervals end on whole UNIX seconds, so
        // `gauntlet merge` adds every shard's second to the others'.
        rig.started_at = wall;
        let into = wall.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        collector = collector.with_aligned_intervals(std::time::Duration::from_nanos(u64::from(1_000_000_000 - into)));
        rig.lateness_ms = sh.start_at.as_ref().map(|(at, _)| match wall.duration_since(*at) {
            Ok(d) => d.as_secs_f64() * 1000.0,
            Err(e) => -e.duration().as_secs_f64() * 1000.0,
        });
        say(
            opt,
            format!(
                "shard {}/{} of run {}: sending requests k ≡ {} (mod {}) of the schedule{}",
                sh.shard.index,
                sh.shard.count,
                rig.run_id,
                sh.shard.index,
                sh.shard.count,
                rig.lateness_ms.map(|l| format!(", started {l:.1} ms after --start-at")).unwrap_or_default()
            ),
        );
    }
    if let Some(o) = &rig.upstream {
        collector = collector.with_upstream(o.clone(), expects.clone());
    }
    let first = Arc::new(collector.snapshot(false));
    let (snap_tx, snap_rx) = watch::channel(first);
    if let Some(live) = &rig.live {
        live.show(
            snap_rx.clone(),
            crate::report::openmetrics::Names {
                run_id: rig.run_id.clone(),
                scenario: s.name.clone(),
                phases: plan.phases.iter().map(|p| p.name.clone()).collect(),
                conditions: plan.conditions.iter().map(|c| c.name.clone()).collect(),
                checks: s.checks.iter().map(|c| c.id.clone()).collect(),
            },
        );
    }
    let mut hlog = rig.hlog.take();
    let collecting = tokio::spawn(async move {
        let mut h = hlog.take()?;
        let c = collector.run(rx, snap_tx, &mut h).await;
        Some((c, h))
    });
    let stop = CancellationToken::new();
    let signals = tokio::spawn(stop_on_signal(stop.clone(), opt.stop.clone(), RUN_STOP_NOTE));
    // Open WebSocket sessions close cleanly (close frame) as soon as the run is stopped.
    let ws_stop = source.ws.stop.clone();
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
            protocol: rig.protocol.as_str().to_string(),
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
        let tty = std::io::stderr().is_terminal();
        tokio::spawn(dashboard::headless::progress_line(snap_rx, tty, opt.quiet))
    };
    let proto = Arc::new(proto);
    let Finish { interrupted } = engine::run(proto.clone(), job, progress.clone(), tx, stop.clone()).await;
    let run_end = Instant::now();
    // Stopped by the user (Ctrl-C, SIGTERM, `q`) even if every scheduled request then
    // finished (WebSocket sessions close at once on a stop).
    let interrupted = interrupted || stop.is_cancelled();
    timeline_done.cancel();
    ws_watch.abort();
    let _ = driving.await;
    rig.stop_link().await;
    signals.abort();
    let collector = collecting.await.ok().flatten();
    let _ = printer.await;
    Driven {
        protocol: P::NAME,
        extras: proto.extras(),
        progress,
        collector,
        run_end,
        interrupted,
        ws: source.ws,
        replays: source.replays,
    }
}

/// Reads the oracle, judges, and writes the results folder (`summary.json` last); a shard
/// writes its record instead, for `gauntlet merge` to judge with the others.
async fn finish(mut rig: Rig, d: Driven, opt: &ExecOptions) -> RunOutcome {
    let oracle_report = rig.stop_oracle().await;
    let mut d = d;
    let Some((collector, hlog)) = d.collector.take() else {
        say(opt, "gauntlet: the metrics collector failed; no results written");
        return RunOutcome::early(Exit::Runtime);
    };
    let record = record(&rig, &d, collector, oracle_report);
    if let Some(sh) = &opt.shard {
        return finish_shard(&rig, sh, &record, hlog, opt);
    }
    let (s, plan) = (&rig.s, &rig.plan);
    let concluded = report::record::conclude(s, plan, &record);
    let summary = concluded.summary.clone();
    let dir = &rig.dir;
    let failed = write_results(dir, s, &concluded, hlog, rig.started_at);
    if !opt.quiet {
        out(&summary.text());
        match failed.is_empty() {
            true => out(&format!("results: {}\n", dir.path.display())),
            false => {
                out(&format!("results: {} is INCOMPLETE ({} file(s) not written)\n", dir.path.display(), failed.len()))
            }
        }
    }
    for e in &failed {
        say(opt, format!("gauntlet: {e}"));
    }
    let exit = if summary.verdict == crate::judge::RunVerdict::Pass { Exit::Pass } else { Exit::Fail };
    RunOutcome { exit, dir: Some(rig.dir.path.clone()), summary: Some(summary), parity: None }
}

/// The run's measurements as plain data.
fn record(
    rig: &Rig,
    d: &Driven,
    collector: Collector,
    oracle: Option<crate::oracle::Report>,
) -> report::record::Record {
    let (s, plan, progress) = (&rig.s, &rig.plan, &d.progress);
    let micros = |t: std::time::Duration| u64::try_from(t.as_micros()).unwrap_or(u64::MAX);
    let ws = &d.ws;
    let websocket = (s.checks.iter().any(|c| c.request.websocket.is_some())
        || ws.opened.load(std::sync::atomic::Ordering::Relaxed) > 0)
        .then(|| websocket(ws));
    report::record::Record {
        run_id: rig.run_id.clone(),
        started_at: rig.started_at,
        protocol: d.protocol.to_string(),
        interrupted: d.interrupted,
        command: command_line(),
        spans: report::spans(progress, plan.phases.len(), d.run_end),
        run_span: d.run_end.saturating_duration_since(progress.run_start),
        cells: collector.cells,
        causes: collector.causes,
        windows: collector.windows,
        saturation: collector.saturation,
        lag: collector.lag,
        events: (0..plan.events.len())
            .map(|e| report::EventFacts {
                fired: rig.timeline.fired(e),
                recovery_us: rig.timeline.recovery(e).map(micros),
            })
            .collect(),
        oracle: oracle.map(oracle_record),
        quic_refusals: d.extras.quic_refusals.clone(),
        followed_h3: d.extras.followed_h3,
        websocket,
        replays: d
            .replays
            .iter()
            .zip(&plan.phases)
            .filter_map(|(f, p)| f.as_ref().map(|f| (p.name.clone(), f.counters.snapshot())))
            .collect(),
        shards: None,
    }
}

/// The oracle's report as plain data.
pub(super) fn oracle_record(r: crate::oracle::Report) -> report::record::OracleRecord {
    report::record::OracleRecord {
        received: r.received,
        untagged: r.untagged,
        foreign: r.foreign,
        cells: r.by_condition.iter().map(|c| ((c.phase, c.condition, c.check), c.counts)).collect(),
        headers: r.headers,
    }
}

/// WebSocket sessions' counters as plain data.
fn websocket(w: &proto::ws::Stats) -> report::record::WsRecord {
    use std::sync::atomic::Ordering::Relaxed;
    let rtt = w.rtt.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let summary = report::WebSocketSummary {
        sessions: w.opened.load(Relaxed),
        completed: w.completed.load(Relaxed),
        closed_by_peer: w.closed_by_peer.load(Relaxed),
        echo_lost: w.echo_lost.load(Relaxed),
        max_concurrent: w.open_max.load(Relaxed),
        messages: w.sent.load(Relaxed),
        echoes: w.echoed.load(Relaxed),
        stopped: w.stopped.load(Relaxed),
        message_rtt_ms: report::Latency::of(&rtt),
        memory_per_session_kb: {
            let (base, peak) = *w.rss.lock().unwrap_or_else(|p| p.into_inner());
            let n = w.open_max.load(Relaxed).saturating_sub(1).max(1);
            ((peak.saturating_sub(base) as f64 / 1024.0 / n as f64) * 10.0).round() / 10.0
        },
    };
    report::record::WsRecord { summary, rtt }
}

/// Writes a judged run's folder: the data files, the reports drawn from them, `summary.json`,
/// then the manifest. Each file is tried on its own: one that cannot be written (a full disk,
/// a folder gone read-only) costs that file, never the verdict, which the caller prints
/// whatever happens. What could not be written.
pub(super) fn write_results(
    dir: &ResultsDir,
    s: &Scenario,
    c: &report::record::Concluded,
    hlog: Intervals,
    started_at: SystemTime,
) -> Vec<report::Error> {
    let summary = &c.summary;
    let (report, lines) = report::conformance_report(s, summary);
    let sha = format!("{}  scenario (all source files, in order)\n", s.sha256);
    let mut failed: Vec<report::Error> = [
        dir.write("scenario.yaml", s.resolved_yaml.as_bytes()).map(drop),
        dir.write("scenario.sha256", sha.as_bytes()).map(drop),
        hlog.finish().map(drop),
        dir.write("results.jsonl", lines.as_bytes()).map(drop),
        dir.write("conformance.yaml", report.as_bytes()).map(drop),
        report::write_histograms(dir, started_at, summary.duration_s, &c.histograms),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    // The reports are drawn from the files above (as `gauntlet report DIR` draws them).
    failed.extend(report::write_reports(dir, summary));
    if let Err(e) = dir.write("summary.json", summary.to_json().as_bytes()) {
        failed.push(e);
    }
    // The manifest comes last: it lists the digest of every file above.
    if let Err(e) = report::evidence::write_manifest(&dir.path) {
        failed.push(e);
    }
    failed
}

/// A shard's end: its interval log and series, then `shard.json` (its record), and with
/// `--result-line` the whole result as one base64 line on stdout. No verdict: a shard sees a
/// part of the schedule, and only `gauntlet merge` judges the run.
fn finish_shard(
    rig: &Rig,
    sh: &ShardRun,
    r: &report::record::Record,
    hlog: Intervals,
    opt: &ExecOptions,
) -> RunOutcome {
    let start_at = sh.start_at.as_ref().map(|(_, t)| t.clone());
    let digest = super::shard::plan_digest(&rig.s, &rig.plan);
    let file =
        report::record::ShardFile::new(&rig.s, (sh.shard.index, sh.shard.count), start_at, rig.lateness_ms, digest, r);
    let written = hlog
        .finish()
        .and_then(|_| rig.dir.write(report::shard::FILE, &report::shard::to_json(&file)))
        .and_then(|_| report::shard::bundle(&rig.dir.path));
    let total = r.totals();
    let line = match written {
        Ok(line) => line,
        Err(e) => {
            say(opt, format!("gauntlet: {e}"));
            say(
                opt,
                format!(
                    "gauntlet: shard {}/{}: the result in {} is INCOMPLETE",
                    sh.shard.index,
                    sh.shard.count,
                    rig.dir.path.display()
                ),
            );
            return RunOutcome { exit: Exit::Runtime, dir: Some(rig.dir.path.clone()), summary: None, parity: None };
        }
    };
    if sh.result_line {
        out(&format!("{line}\n"));
    }
    say(
        opt,
        format!(
            "shard {}/{} of run {}: {} sent, {} answered, {} without an answer, {} unsent{}; result in {} — \
             the verdict comes from `gauntlet merge` over every shard",
            sh.shard.index,
            sh.shard.count,
            rig.run_id,
            total.sent,
            total.completed,
            total.error_total(),
            total.unsent,
            if r.interrupted { " (interrupted: partial)" } else { "" },
            rig.dir.path.display()
        ),
    );
    // An interrupted shard (a pod evicted) exits 1, so its index is run again.
    let exit = if r.interrupted { Exit::Fail } else { Exit::Pass };
    RunOutcome { exit, dir: Some(rig.dir.path.clone()), summary: None, parity: None }
}

/// What a run builds from the scenario before it sends anything (credentials minted, every
/// request prepared), built and dropped: `validate` refuses what `run` would.
pub(super) fn ready_to_send(s: &Scenario) -> Result<(), String> {
    let c = credentials(s)?;
    prepare(s, &c, &Arc::new(proto::ws::Stats::default())).map(drop)
}

/// Every credential's headers, `[identity][member]`: the identity's static headers and its
/// token, minted now (`{n}` per pool member).
pub(super) fn credentials(s: &Scenario) -> Result<crate::replay::Credentials, String> {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let mut out = Vec::with_capacity(s.identities.len());
    for id in &s.identities {
        let mut per = Vec::with_capacity(id.members());
        for m in 0..id.members() {
            let mut h: Vec<(http::HeaderName, HeaderValue)> = id.headers.clone();
            if let Some(t) = &id.token {
                let raw = match &t.source {
                    TokenSource::Static(v) => v.clone(),
                    TokenSource::Jwt(spec) => {
                        spec.mint_as(now, id.number(m)).map_err(|e| format!("identity `{}`: {e}", id.name))?
                    }
                };
                let value = if t.scheme.is_empty() { raw } else { format!("{} {raw}", t.scheme) };
                let hv = HeaderValue::from_str(&value)
                    .map_err(|_| format!("identity `{}`: the token cannot be sent as a header", id.name))?;
                h.push((t.header.clone(), hv));
            }
            per.push(h);
        }
        out.push(per);
    }
    Ok(out)
}

/// Where prepared requests go and how they are tagged.
pub(super) fn endpoint(s: &Scenario) -> Endpoint {
    let tagging = match s.profile.tag.unwrap_or(TagMode::Header) {
        TagMode::Header => Tagging::Header,
        TagMode::Query => Tagging::Query,
        TagMode::Off => Tagging::Off,
    };
    Endpoint { tls: s.target.tls, authority: s.target.authority.clone(), tagging }
}

/// One prepared request per check and credential (`[check][member]`: a check round-robins
/// over its identity's pool); WebSocket checks count into `ws`.
pub(super) fn prepare(
    s: &Scenario,
    credentials: &crate::replay::Credentials,
    ws: &Arc<proto::ws::Stats>,
) -> Result<Vec<Vec<Prepared>>, String> {
    let endpoint = endpoint(s);
    let slots = s.slots();
    let mut out = Vec::with_capacity(s.checks.len());
    for (ci, c) in s.checks.iter().enumerate() {
        let mut per = Vec::with_capacity(s.members_of(ci));
        for (m, creds) in credentials[c.identity].iter().take(s.members_of(ci)).enumerate() {
            let mut h = HeaderMap::new();
            for (k, v) in creds {
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

/// Prints `msg` on stderr unless the run is quiet.
pub(super) fn say(opt: &ExecOptions, msg: impl std::fmt::Display) {
    if !opt.quiet {
        errln!("{msg}");
    }
}
