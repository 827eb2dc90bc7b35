//! `summary.json`: the machine-readable result of a run, and its text rendering.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::conformance::{ErrorKind, Expect, Severity, Violation, limit_bypassed};
use crate::metrics::{Cell, Counts, Dims, Progress, histogram};
use crate::plan::Plan;
use crate::scenario::{Metric, Scenario, Stat};

/// Everything a summary is computed from.
pub struct Inputs<'a> {
    /// The scenario.
    pub scenario: &'a Scenario,
    /// Its plan.
    pub plan: &'a Plan,
    /// Key dimensions.
    pub dims: Dims,
    /// Cumulative cells by flat key.
    pub cells: &'a [Option<Box<Cell>>],
    /// Generator lag by phase.
    pub lag: &'a [Histogram<u64>],
    /// Phase timing.
    pub progress: &'a Progress,
    /// When the engine returned.
    pub run_end: Instant,
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// Run id (tags).
    pub run_id: &'a str,
    /// Protocol name.
    pub protocol: &'a str,
    /// Stopped early.
    pub interrupted: bool,
    /// The command line, for reproduction.
    pub command: String,
    /// The oracle's counters, when an oracle ran.
    pub oracle: Option<&'a crate::oracle::Report>,
    /// The network timeline (events fired, recovery times).
    pub timeline: &'a crate::timeline::Timeline,
    /// HTTP/3: QUIC close codes of refused handshakes, with counts.
    pub quic_refusals: &'a BTreeMap<u64, u64>,
    /// WebSocket session counters, when the scenario has WebSocket checks.
    pub websocket: Option<&'a crate::proto::ws::Stats>,
    /// `auto`: HTTP/3 was followed after an `Alt-Svc` announcement.
    pub followed_h3: bool,
}

/// WebSocket sessions of a run.
#[derive(Debug, Clone, Serialize)]
pub struct WebSocketSummary {
    /// Upgrades answered 101.
    pub sessions: u64,
    /// Held to the end and closed by gauntlet.
    pub completed: u64,
    /// Ended early by the gateway or the upstream.
    pub closed_by_peer: u64,
    /// Most sessions open at once.
    pub max_concurrent: u64,
    /// Messages sent.
    pub messages: u64,
    /// Echoes received.
    pub echoes: u64,
    /// Closed cleanly by gauntlet because the run was stopped (Ctrl-C).
    pub stopped: u64,
    /// Round trip per message.
    pub message_rtt_ms: Latency,
    /// Resident memory growth per open session at the most sessions (KiB; this process).
    pub memory_per_session_kb: f64,
}

/// Adds `limit_bypass` violations: a `limit` check sent faster than its limit in a phase
/// without a single 429.
pub fn add_limit_bypass(s: &Scenario, dims: Dims, cells: &mut [Option<Box<Cell>>], progress: &Progress, end: Instant) {
    for (i, cell) in cells.iter_mut().enumerate() {
        let Some(cell) = cell else { continue };
        let k = dims.key(i);
        let Expect::Limit { requests, per } = s.checks[usize::from(k.check)].expect else { continue };
        let p = usize::from(k.phase);
        let Some(start) = progress.started(p) else { continue };
        let elapsed = progress.ended(p).unwrap_or(end).saturating_duration_since(start);
        if limit_bypassed(requests, per, cell.counts.sent, elapsed, cell.counts.limited) {
            cell.counts.violations[Violation::LimitBypass.index()] += 1;
        }
    }
}

/// Joins the oracle's findings into the client-side cells: spoofed and missing identity come
/// only from the oracle; a leak is counted once whether the client saw 2xx, the oracle saw
/// the request, or both (the larger of the two counts per phase and check).
pub fn add_oracle(dims: Dims, cells: &mut [Option<Box<Cell>>], report: &crate::oracle::Report) {
    for cc in &report.by_condition {
        let counts = &cc.counts;
        {
            let key =
                crate::metrics::Key { phase: cc.phase as u16, condition: cc.condition as u16, check: cc.check as u16 };
            let Some(slot) = cells.get_mut(dims.index(key)) else { continue };
            let cell = slot.get_or_insert_with(Box::default);
            let v = &mut cell.counts.violations;
            v[Violation::Leak.index()] = v[Violation::Leak.index()].max(counts.leaks);
            v[Violation::SpoofedHeader.index()] += counts.spoofed;
            v[Violation::MissingIdentity.index()] += counts.missing;
        }
    }
}

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p999: f64,
    /// Max.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

fn ms(us: f64) -> f64 {
    (us / 1000.0 * 1000.0).round() / 1000.0
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency { count: 0, p50: 0.0, p90: 0.0, p99: 0.0, p999: 0.0, max: 0.0, mean: 0.0 };
        }
        let q = |x: f64| ms(h.value_at_quantile(x) as f64);
        Latency {
            count: h.len(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: ms(h.max() as f64),
            mean: ms(h.mean()),
        }
    }
}

/// Request counters.
#[derive(Debug, Clone, Serialize)]
pub struct Requests {
    /// Attempted.
    pub sent: u64,
    /// Reached a verdict.
    pub completed: u64,
    /// Transport errors and timeouts.
    pub errors: u64,
    /// Timeouts alone.
    pub timeouts: u64,
    /// Abandoned at shutdown.
    pub cancelled: u64,
}

impl Requests {
    fn of(c: &Counts) -> Self {
        Requests {
            sent: c.sent,
            completed: c.completed,
            errors: c.error_total(),
            timeouts: c.error(ErrorKind::Timeout),
            cancelled: c.cancelled,
        }
    }
}

fn violations(c: &Counts) -> BTreeMap<&'static str, u64> {
    let mut m: BTreeMap<&'static str, u64> = Violation::ALL.iter().map(|v| (v.name(), c.violation(*v))).collect();
    m.insert("total", c.violation_total());
    m
}

fn errors(c: &Counts) -> BTreeMap<&'static str, u64> {
    ErrorKind::ALL.iter().map(|e| (e.name(), c.error(*e))).collect()
}

fn statuses(c: &Counts) -> BTreeMap<String, u64> {
    let mut m: BTreeMap<String, u64> = c.statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect();
    if c.tls_rejected > 0 {
        m.insert("tls_rejected".into(), c.tls_rejected);
    }
    m
}

/// One phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseSummary {
    /// Name.
    pub name: String,
    /// Load model.
    pub load: String,
    /// Actual length, seconds.
    pub duration_s: f64,
    /// Planned arrivals per second (sent / length for closed loop).
    pub offered_rps: f64,
    /// Verdicts per second.
    pub achieved_rps: f64,
    /// Counters.
    pub requests: Requests,
    /// From the intended send time.
    pub latency_ms: Latency,
    /// From the actual send.
    pub service_time_ms: Latency,
    /// How late sends left.
    pub generator_lag_ms: Latency,
    /// By kind.
    pub violations: BTreeMap<&'static str, u64>,
}

/// One network condition: everything sent while it was in force.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionSummary {
    /// Name.
    pub name: String,
    /// The event it belongs to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Counters.
    pub requests: Requests,
    /// From the intended send time.
    pub latency_ms: Latency,
    /// By kind.
    pub violations: BTreeMap<&'static str, u64>,
    /// Refusals with a declared outage status (expected, not violations).
    pub outage_denials: u64,
}

/// One timed event.
#[derive(Debug, Clone, Serialize)]
pub struct EventSummary {
    /// Name.
    pub name: String,
    /// `client` or a dependency.
    pub link: String,
    /// Start, seconds into the run.
    pub at_s: f64,
    /// Length, seconds.
    pub for_s: f64,
    /// What the link did, in words.
    pub apply: String,
    /// Declared outage statuses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outage_statuses: Vec<u16>,
    /// Whether the run reached it.
    pub fired: bool,
    /// Sent while it was in force.
    pub requests: Requests,
    /// Of those.
    pub latency_ms: Latency,
    /// Of those, by kind.
    pub violations: BTreeMap<&'static str, u64>,
    /// Of those, refused with a declared outage status.
    pub outage_denials: u64,
    /// From the end of the event to the first allow-class success sent after it
    /// (`null`: none seen before the run ended).
    pub recovery_ms: Option<f64>,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckSummary {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Severity.
    pub severity: Severity,
    /// Expectation kind.
    pub expect: &'static str,
    /// Identity name.
    pub identity: String,
    /// Attempted.
    pub sent: u64,
    /// Reached a verdict.
    pub completed: u64,
    /// Transport errors.
    pub errors: u64,
    /// By kind.
    pub violations: BTreeMap<&'static str, u64>,
    /// Status histogram.
    pub statuses: BTreeMap<String, u64>,
    /// Latency.
    pub latency_ms: Latency,
    /// What the oracle saw of this check (absent when no oracle ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<crate::oracle::CheckCounts>,
    /// `pass`, `fail`, `inconclusive` (sent, no verdict) or `not_run`.
    pub result: &'static str,
}

/// One threshold.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdResult {
    /// As written.
    pub expr: String,
    /// Held.
    pub ok: bool,
    /// Measured value (ms for times, a fraction for rates).
    pub value: f64,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Always `gauntlet.summary/v1`.
    pub schema: &'static str,
    /// gauntlet version.
    pub gauntlet_version: &'static str,
    /// Run id, as found in request tags.
    pub run_id: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// Run length, seconds.
    pub duration_s: f64,
    /// Stopped early (Ctrl-C or signal).
    pub interrupted: bool,
    /// Scenario identity.
    pub scenario: ScenarioInfo,
    /// Target.
    pub target: TargetInfo,
    /// Counters.
    pub requests: Requests,
    /// Verdicts per second over the run.
    pub achieved_rps: f64,
    /// From the intended send time (coordinated-omission free).
    pub latency_ms: Latency,
    /// From the actual send.
    pub service_time_ms: Latency,
    /// How late sends left (generator saturation).
    pub generator_lag_ms: Latency,
    /// By kind.
    pub violations: BTreeMap<&'static str, u64>,
    /// By kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// Status histogram.
    pub statuses: BTreeMap<String, u64>,
    /// Per phase.
    pub phases: Vec<PhaseSummary>,
    /// Per check.
    pub checks: Vec<CheckSummary>,
    /// Per network condition in force at the send (every condition that saw a request).
    pub conditions: Vec<ConditionSummary>,
    /// Timed events.
    pub events: Vec<EventSummary>,
    /// Thresholds.
    pub thresholds: Vec<ThresholdResult>,
    /// `pass` or `fail`.
    pub verdict: &'static str,
    /// Why it failed, one line each.
    pub reasons: Vec<String>,
    /// How to run it again.
    pub reproduce: Reproduce,
    /// Oracle totals, when an oracle ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oracle: Option<OracleInfo>,
    /// HTTP/3: how refused QUIC handshakes were closed (`0x12a (bad_certificate 42)` → count).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub quic_refusals: BTreeMap<String, u64>,
    /// WebSocket sessions, when the scenario has WebSocket checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WebSocketSummary>,
}

/// Oracle totals.
#[derive(Debug, Clone, Serialize)]
pub struct OracleInfo {
    /// Requests received.
    pub received: u64,
    /// Without a valid tag (a gateway that strips the tag makes every check unverifiable upstream).
    pub untagged: u64,
    /// Tagged by another run.
    pub foreign: u64,
}

/// Scenario identity.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioInfo {
    /// Name.
    pub name: String,
    /// sha256 over all source files.
    pub sha256: String,
    /// Source files.
    pub sources: Vec<String>,
}

/// Target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetInfo {
    /// URL.
    pub url: String,
    /// Protocol requested.
    pub protocol: String,
    /// Target profile name.
    pub profile: String,
    /// `auto` only: the target announced HTTP/3 (`Alt-Svc`) and later connections used it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub followed_alt_svc_h3: bool,
}

/// Reproduction block.
#[derive(Debug, Clone, Serialize)]
pub struct Reproduce {
    /// Command line.
    pub command: String,
    /// Scenario digest.
    pub scenario_sha256: String,
}

struct View<'a> {
    inp: &'a Inputs<'a>,
}

impl View<'_> {
    fn merged(&self, phase: Option<usize>, check: Option<usize>) -> Cell {
        self.merged_where(|k| {
            phase.is_none_or(|p| p == usize::from(k.phase)) && check.is_none_or(|x| x == usize::from(k.check))
        })
    }

    fn merged_where(&self, keep: impl Fn(crate::metrics::Key) -> bool) -> Cell {
        let mut out = Cell::default();
        for (i, c) in self.inp.cells.iter().enumerate() {
            let Some(c) = c else { continue };
            if keep(self.inp.dims.key(i)) {
                out.add(c);
            }
        }
        out
    }

    fn phase_span(&self, p: usize) -> Duration {
        match self.inp.progress.started(p) {
            Some(s) => self.inp.progress.ended(p).unwrap_or(self.inp.run_end).saturating_duration_since(s),
            None => Duration::ZERO,
        }
    }

    fn run_span(&self) -> Duration {
        self.inp.run_end.saturating_duration_since(self.inp.progress.run_start)
    }
}

fn per_sec(n: u64, d: Duration) -> f64 {
    if d.is_zero() { 0.0 } else { (n as f64 / d.as_secs_f64() * 10.0).round() / 10.0 }
}

fn stat(h: &Histogram<u64>, s: Stat) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    match s.quantile() {
        Some(1.0) => h.max() as f64 / 1000.0,
        Some(q) => h.value_at_quantile(q) as f64 / 1000.0,
        None => h.mean() / 1000.0,
    }
}

impl Summary {
    /// Computes the summary.
    pub fn new(inp: &Inputs<'_>) -> Self {
        let v = View { inp };
        let s = inp.scenario;
        let all = v.merged(None, None);
        let mut lag_all = histogram();
        for h in inp.lag {
            let _ = lag_all.add(h);
        }
        let phases: Vec<PhaseSummary> = inp
            .plan
            .phases
            .iter()
            .enumerate()
            .map(|(p, pp)| {
                let c = v.merged(Some(p), None);
                let span = v.phase_span(p);
                let offered = match pp.planned_requests().zip(pp.nominal_end()) {
                    Some((n, d)) if pp.users().is_none() => per_sec(n, d),
                    _ => per_sec(c.counts.sent, span),
                };
                PhaseSummary {
                    name: pp.name.clone(),
                    load: match pp.users() {
                        Some(u) => format!("closed loop, {u} users"),
                        None => "open loop".into(),
                    },
                    duration_s: (span.as_secs_f64() * 1000.0).round() / 1000.0,
                    offered_rps: offered,
                    achieved_rps: per_sec(c.counts.completed, span),
                    requests: Requests::of(&c.counts),
                    latency_ms: Latency::of(&c.latency),
                    service_time_ms: Latency::of(&c.service),
                    generator_lag_ms: inp.lag.get(p).map(Latency::of).unwrap_or_else(|| Latency::of(&histogram())),
                    violations: violations(&c.counts),
                }
            })
            .collect();
        let checks: Vec<CheckSummary> = s
            .checks
            .iter()
            .enumerate()
            .map(|(i, ck)| {
                let c = v.merged(None, Some(i));
                let result = if c.counts.violation_total() > 0 {
                    "fail"
                } else if c.counts.sent == 0 {
                    "not_run"
                } else if c.counts.completed == 0 {
                    "inconclusive"
                } else {
                    "pass"
                };
                CheckSummary {
                    id: ck.id.clone(),
                    title: ck.title.clone(),
                    severity: ck.severity,
                    expect: ck.expect.kind(),
                    identity: s.identities[ck.identity].name.clone(),
                    sent: c.counts.sent,
                    completed: c.counts.completed,
                    errors: c.counts.error_total(),
                    violations: violations(&c.counts),
                    statuses: statuses(&c.counts),
                    latency_ms: Latency::of(&c.latency),
                    upstream: inp.oracle.map(|r| {
                        let mut sum = crate::oracle::CheckCounts::default();
                        for row in &r.cells {
                            if let Some(x) = row.get(i) {
                                sum.arrivals += x.arrivals;
                                sum.leaks += x.leaks;
                                sum.spoofed += x.spoofed;
                                sum.missing += x.missing;
                            }
                        }
                        sum
                    }),
                    result,
                }
            })
            .collect();
        let conditions: Vec<ConditionSummary> = inp
            .plan
            .conditions
            .iter()
            .enumerate()
            .filter_map(|(ci, cond)| {
                let c = v.merged_where(|k| usize::from(k.condition) == ci);
                (c.counts.sent > 0 || ci == 0).then(|| ConditionSummary {
                    name: cond.name.clone(),
                    event: cond.event.map(|e| inp.plan.events[e].name.clone()),
                    requests: Requests::of(&c.counts),
                    latency_ms: Latency::of(&c.latency),
                    violations: violations(&c.counts),
                    outage_denials: c.counts.outage_denied,
                })
            })
            .collect();
        let events: Vec<EventSummary> = inp
            .plan
            .events
            .iter()
            .enumerate()
            .map(|(ei, e)| {
                // Only the event's own conditions, not its recovery windows.
                let c = v.merged_where(|k| {
                    inp.plan
                        .conditions
                        .get(usize::from(k.condition))
                        .is_some_and(|x| x.event == Some(ei) && !x.name.ends_with(":recovery"))
                });
                EventSummary {
                    name: e.name.clone(),
                    link: e.link.clone(),
                    at_s: e.at.as_secs_f64(),
                    for_s: e.duration.as_secs_f64(),
                    apply: e.impairment.describe(),
                    outage_statuses: e.outage.as_ref().map(|o| o.statuses.clone()).unwrap_or_default(),
                    fired: inp.timeline.fired(ei),
                    requests: Requests::of(&c.counts),
                    latency_ms: Latency::of(&c.latency),
                    violations: violations(&c.counts),
                    outage_denials: c.counts.outage_denied,
                    recovery_ms: inp.timeline.recovery(ei).map(|d| ms(d.as_secs_f64() * 1e6)),
                }
            })
            .collect();

        let thresholds: Vec<ThresholdResult> = s
            .thresholds
            .iter()
            .map(|t| {
                let c = v.merged(t.phase, t.check);
                let span = t.phase.map_or_else(|| v.run_span(), |p| v.phase_span(p));
                let value = match t.metric {
                    Metric::Violation(k) => c.counts.violation(k) as f64,
                    Metric::Violations => c.counts.violation_total() as f64,
                    Metric::Errors => c.counts.error_total() as f64,
                    Metric::Timeouts => c.counts.error(ErrorKind::Timeout) as f64,
                    Metric::ErrorRate => {
                        if c.counts.sent == 0 {
                            0.0
                        } else {
                            c.counts.error_total() as f64 / c.counts.sent as f64
                        }
                    }
                    Metric::Latency(st) => stat(&c.latency, st),
                    Metric::ServiceTime(st) => stat(&c.service, st),
                    Metric::Rps => per_sec(c.counts.completed, span),
                    Metric::Requests => c.counts.completed as f64,
                };
                ThresholdResult {
                    expr: t.expr.clone(),
                    ok: t.op.holds(value, t.value),
                    value: (value * 1000.0).round() / 1000.0,
                }
            })
            .collect();
        let mut reasons = Vec::new();
        if inp.interrupted {
            reasons.push("the run was interrupted: results cover only what ran".to_string());
        }
        for c in &checks {
            match c.result {
                "fail" => reasons.push(format!(
                    "check {} failed: {}",
                    c.id,
                    c.violations
                        .iter()
                        .filter(|(k, n)| **k != "total" && **n > 0)
                        .map(|(k, n)| format!("{n} {k}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                "inconclusive" => {
                    reasons.push(format!("check {} is inconclusive: {} sent, none reached a verdict", c.id, c.sent))
                }
                _ => {}
            }
        }
        for t in thresholds.iter().filter(|t| !t.ok) {
            reasons.push(format!("threshold `{}` failed (value {})", t.expr, t.value));
        }
        for cnd in &conditions {
            let leaks = cnd.violations.get("leak").copied().unwrap_or(0);
            if leaks > 0 && cnd.name != crate::plan::UNIMPAIRED {
                reasons.push(format!("{leaks} leak(s) under network condition `{}`", cnd.name));
            }
        }
        let started_at = time::OffsetDateTime::from(inp.started_at)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Summary {
            schema: "gauntlet.summary/v1",
            gauntlet_version: env!("CARGO_PKG_VERSION"),
            run_id: inp.run_id.to_string(),
            started_at,
            duration_s: (v.run_span().as_secs_f64() * 1000.0).round() / 1000.0,
            interrupted: inp.interrupted,
            scenario: ScenarioInfo {
                name: s.name.clone(),
                sha256: s.sha256.clone(),
                sources: s.sources.iter().map(|p| p.display().to_string()).collect(),
            },
            target: TargetInfo {
                url: s.target.url.clone(),
                protocol: inp.protocol.to_string(),
                profile: s.profile.name.clone(),
                followed_alt_svc_h3: inp.followed_h3,
            },
            requests: Requests::of(&all.counts),
            achieved_rps: per_sec(all.counts.completed, v.run_span()),
            latency_ms: Latency::of(&all.latency),
            service_time_ms: Latency::of(&all.service),
            generator_lag_ms: Latency::of(&lag_all),
            violations: violations(&all.counts),
            errors: errors(&all.counts),
            statuses: statuses(&all.counts),
            phases,
            checks,
            conditions,
            events,
            thresholds,
            verdict: if reasons.is_empty() { "pass" } else { "fail" },
            reasons,
            reproduce: Reproduce { command: inp.command.clone(), scenario_sha256: s.sha256.clone() },
            oracle: inp.oracle.map(|r| OracleInfo { received: r.received, untagged: r.untagged, foreign: r.foreign }),
            quic_refusals: inp.quic_refusals.iter().map(|(c, n)| (crate::proto::h3::describe_code(*c), *n)).collect(),
            websocket: inp.websocket.map(|w| {
                use std::sync::atomic::Ordering::Relaxed;
                WebSocketSummary {
                    sessions: w.opened.load(Relaxed),
                    completed: w.completed.load(Relaxed),
                    closed_by_peer: w.closed_by_peer.load(Relaxed),
                    max_concurrent: w.open_max.load(Relaxed),
                    messages: w.sent.load(Relaxed),
                    echoes: w.echoed.load(Relaxed),
                    stopped: w.stopped.load(Relaxed),
                    message_rtt_ms: Latency::of(&w.rtt.lock().unwrap_or_else(|p| p.into_inner())),
                    memory_per_session_kb: {
                        let (base, peak) = *w.rss.lock().unwrap_or_else(|p| p.into_inner());
                        let n = w.open_max.load(Relaxed).saturating_sub(1).max(1);
                        ((peak.saturating_sub(base) as f64 / 1024.0 / n as f64) * 10.0).round() / 10.0
                    },
                }
            }),
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The human summary printed at the end of a run.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let l = &self.latency_ms;
        o.push_str(&format!(
            "gauntlet {} — scenario `{}` against {} ({})\n",
            self.gauntlet_version, self.scenario.name, self.target.url, self.target.protocol
        ));
        o.push_str(&format!(
            "  requests  {} sent, {} completed, {} errors ({} timeouts), {:.1}/s over {:.1}s\n",
            self.requests.sent,
            self.requests.completed,
            self.requests.errors,
            self.requests.timeouts,
            self.achieved_rps,
            self.duration_s
        ));
        o.push_str(&format!(
            "  latency   p50 {:.2}ms  p90 {:.2}ms  p99 {:.2}ms  p99.9 {:.2}ms  max {:.2}ms  (from intended send; service p99 {:.2}ms, generator lag p99 {:.2}ms)\n",
            l.p50, l.p90, l.p99, l.p999, l.max, self.service_time_ms.p99, self.generator_lag_ms.p99
        ));
        for p in &self.phases {
            o.push_str(&format!(
                "  phase {:<12} {:>7.1}s offered {:>8.1}/s achieved {:>8.1}/s p99 {:>8.2}ms violations {}\n",
                p.name,
                p.duration_s,
                p.offered_rps,
                p.achieved_rps,
                p.latency_ms.p99,
                p.violations.get("total").copied().unwrap_or(0)
            ));
        }
        if self.conditions.len() > 1 || !self.events.is_empty() {
            for c in &self.conditions {
                o.push_str(&format!(
                    "  condition {:<24} sent {:>7} p50 {:>8.2}ms p99 {:>8.2}ms violations {} (leak {}) outage denials {}\n",
                    c.name,
                    c.requests.sent,
                    c.latency_ms.p50,
                    c.latency_ms.p99,
                    c.violations.get("total").copied().unwrap_or(0),
                    c.violations.get("leak").copied().unwrap_or(0),
                    c.outage_denials
                ));
            }
        }
        for e in &self.events {
            let recovery = match (e.fired, e.recovery_ms) {
                (false, _) => "not reached".to_string(),
                (true, Some(r)) => format!("recovered {r:.0}ms after"),
                (true, None) => "no allow-class success after it".to_string(),
            };
            o.push_str(&format!(
                "  event     {:<24} {} at {}s for {}s: {}; {}\n",
                e.name, e.link, e.at_s, e.for_s, e.apply, recovery
            ));
        }
        if let Some(w) = &self.websocket {
            o.push_str(&format!(
                "  websocket {} sessions ({} held, {} closed by the peer, {} stopped), at most {} open; {} messages, rtt p50 {:.2}ms p99 {:.2}ms; ~{} KiB per open session\n",
                w.sessions,
                w.completed,
                w.closed_by_peer,
                w.stopped,
                w.max_concurrent,
                w.messages,
                w.message_rtt_ms.p50,
                w.message_rtt_ms.p99,
                w.memory_per_session_kb
            ));
        }
        let total = self.violations.get("total").copied().unwrap_or(0);
        let kinds: Vec<String> = self
            .violations
            .iter()
            .filter(|(k, n)| **k != "total" && **n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        o.push_str(&format!(
            "  violations {total}{}\n",
            if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) }
        ));
        let (pass, fail, other) = self.checks.iter().fold((0, 0, 0), |(p, f, x), c| match c.result {
            "pass" => (p + 1, f, x),
            "fail" => (p, f + 1, x),
            _ => (p, f, x + 1),
        });
        o.push_str(&format!("  checks    {pass} passed, {fail} failed, {other} without verdict\n"));
        for c in self.checks.iter().filter(|c| c.result != "pass") {
            o.push_str(&format!("    {:<13} {:<28} {}\n", c.result.to_uppercase(), c.id, c.title));
        }
        for t in &self.thresholds {
            o.push_str(&format!("  threshold {} {} (value {})\n", if t.ok { "ok  " } else { "FAIL" }, t.expr, t.value));
        }
        o.push_str(&format!("verdict: {}\n", self.verdict.to_uppercase()));
        for r in &self.reasons {
            o.push_str(&format!("  - {r}\n"));
        }
        o
    }
}
