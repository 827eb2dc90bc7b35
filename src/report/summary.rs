//! `summary.json`: the machine-readable result of a run, and its text rendering. Renders a
//! [`Judgement`]; decides nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::conformance::{ErrorKind, HeaderFinding, Severity, UpstreamCounts, Violation};
use crate::judge::{CheckResult, Envelope, Judgement, LimitJudgement, RunVerdict, UnsentCause};
use crate::metrics::{CheckCauses, Counts, Dims, Progress, histogram};
use crate::plan::Plan;
use crate::scenario::Scenario;

/// Everything a summary is computed from, besides the judgement.
pub struct Inputs<'a> {
    /// The scenario.
    pub scenario: &'a Scenario,
    /// Its plan.
    pub plan: &'a Plan,
    /// Key dimensions.
    pub dims: Dims,
    /// Generator lag by phase.
    pub lag: &'a [Histogram<u64>],
    /// Error causes per check.
    pub causes: &'a [CheckCauses],
    /// How long each phase ran (`None`: never started).
    pub spans: &'a [Option<Duration>],
    /// How long the run ran.
    pub run_span: Duration,
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
    /// Oracle totals and header findings per check, when an oracle ran.
    pub oracle: Option<OracleInputs<'a>>,
    /// Per timed event: whether it fired, and the recovery time measured after it.
    pub events: &'a [EventFacts],
    /// HTTP/3: QUIC close codes of refused handshakes, described, with counts.
    pub quic_refusals: BTreeMap<String, u64>,
    /// WebSocket sessions, when the scenario has WebSocket checks.
    pub websocket: Option<WebSocketSummary>,
    /// Replay phases: (phase, what its capture gave).
    pub replays: &'a [(String, crate::replay::Summary)],
    /// `auto`: HTTP/3 was followed after an `Alt-Svc` announcement.
    pub followed_h3: bool,
}

/// What the oracle contributes to a summary.
#[derive(Debug, Clone, Copy)]
pub struct OracleInputs<'a> {
    /// Requests received.
    pub received: u64,
    /// Without a valid tag.
    pub untagged: u64,
    /// Tagged by another run.
    pub foreign: u64,
    /// Header findings per check.
    pub headers: &'a [crate::conformance::HeaderFindings],
}

/// How long each phase ran (`None`: it never started), from its start to its end or `run_end`.
pub fn spans(progress: &Progress, phases: usize, run_end: Instant) -> Vec<Option<Duration>> {
    (0..phases)
        .map(|p| progress.started(p).map(|s| progress.ended(p).unwrap_or(run_end).saturating_duration_since(s)))
        .collect()
}

/// The shards of a merged run (`gauntlet merge`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShardsSummary {
    /// Shards the run was split into.
    pub count: u32,
    /// Those whose results were merged.
    pub merged: Vec<ShardInfo>,
    /// Those missing (their part of the schedule is not in the counts; the verdict fails).
    pub missing: Vec<u32>,
    /// What else the merge lacks, each failing the verdict: the oracle's findings not given,
    /// or an oracle that did not listen for the whole run.
    pub incomplete: Vec<String>,
}

/// One merged shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShardInfo {
    /// Shard index.
    pub index: u32,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// How late it started against the common `--start-at`, ms.
    pub lateness_ms: Option<f64>,
    /// Requests it sent.
    pub sent: u64,
    /// Stopped early.
    pub interrupted: bool,
}

/// What the network timeline did with one timed event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFacts {
    /// It came into force.
    pub fired: bool,
    /// Time to the first allow-class success after it ended, µs.
    pub recovery_us: Option<u64>,
}

/// WebSocket sessions of a run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct WebSocketSummary {
    /// Upgrades answered 101.
    pub sessions: u64,
    /// Held to the end and closed by gauntlet.
    pub completed: u64,
    /// Ended early by the gateway or the upstream.
    pub closed_by_peer: u64,
    /// Ended because an echo did not come back in time (not completed).
    pub echo_lost: u64,
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

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
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
    /// The figures of `h` (µs) in milliseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
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
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Requests {
    /// Attempted.
    pub sent: u64,
    /// Answered (any status) or refused at TLS.
    pub completed: u64,
    /// Without an answer: transport errors and timeouts.
    pub errors: u64,
    /// Timeouts alone.
    pub timeouts: u64,
    /// Abandoned at shutdown.
    pub cancelled: u64,
    /// Held by a duration-bounded schedule but never sent (not part of `sent`).
    pub unsent: u64,
    /// Sent once more on a new connection after the gateway closed a kept-alive one without
    /// answering (each counted once in `sent`).
    pub stale_retries: u64,
}

impl Requests {
    /// The counters of `c`.
    pub fn of(c: &Counts) -> Self {
        Requests {
            sent: c.sent,
            completed: c.completed,
            errors: c.error_total(),
            timeouts: c.error(ErrorKind::Timeout),
            cancelled: c.cancelled,
            unsent: c.unsent,
            stale_retries: c.stale_retries,
        }
    }
}

/// Where every sent request ended, client-side: the buckets add up to `total`, which is
/// `sent`. (Violations the oracle proved beyond the client's view are in `violations`.)
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Outcomes {
    /// Allowed and answered with a success status.
    pub passed: u64,
    /// Refused as expected (a deny status or a TLS refusal).
    pub denied: u64,
    /// 429 on a `limit` check.
    pub limited: u64,
    /// Refused with a declared outage status while a dependency was down.
    pub outage_denied: u64,
    /// Answered with a status the expectation names neither as success nor as refusal.
    pub unexpected_status: u64,
    /// Violations seen by the client, by kind.
    pub violations: BTreeMap<String, u64>,
    /// No answer, by kind.
    pub no_answer: BTreeMap<String, u64>,
    /// Abandoned at shutdown.
    pub cancelled: u64,
    /// The sum: equals `sent`.
    pub total: u64,
}

impl Outcomes {
    fn of(c: &Counts) -> Self {
        Outcomes {
            passed: c.passed,
            denied: c.denied,
            limited: c.limited,
            outage_denied: c.outage_denied,
            unexpected_status: c.unexpected,
            violations: Violation::ALL
                .iter()
                .filter(|v| c.violations[v.index()] > 0)
                .map(|v| (v.name().to_string(), c.violations[v.index()]))
                .collect(),
            no_answer: ErrorKind::ALL
                .iter()
                .filter(|e| c.error(**e) > 0)
                .map(|e| (e.name().to_string(), c.error(*e)))
                .collect(),
            cancelled: c.cancelled,
            total: c.bucket_total(),
        }
    }
}

fn violations(c: &Counts) -> BTreeMap<String, u64> {
    let mut m: BTreeMap<String, u64> = Violation::ALL.iter().map(|v| (v.name().to_string(), c.violation(*v))).collect();
    m.insert("total".into(), c.violation_total());
    m
}

fn errors(c: &Counts) -> BTreeMap<String, u64> {
    ErrorKind::ALL.iter().map(|e| (e.name().to_string(), c.error(*e))).collect()
}

fn statuses(c: &Counts) -> BTreeMap<String, u64> {
    let mut m: BTreeMap<String, u64> = c.statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect();
    if c.tls_rejected > 0 {
        m.insert("tls_rejected".into(), c.tls_rejected);
    }
    if c.tls_closed > 0 {
        m.insert("tls_closed_before_answer".into(), c.tls_closed);
    }
    m
}

/// One distinct error message of a check.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ErrorCause {
    /// Error kind.
    pub kind: String,
    /// What was seen (`other` when further messages were not kept).
    pub message: String,
    /// How many errors carried it.
    pub count: u64,
}

fn error_causes(c: &CheckCauses) -> Vec<ErrorCause> {
    let mut out = Vec::new();
    for k in ErrorKind::ALL {
        let cs = &c[k.index()];
        for (m, n) in &cs.kept {
            out.push(ErrorCause { kind: k.name().into(), message: m.to_string(), count: *n });
        }
        if cs.other > 0 {
            out.push(ErrorCause { kind: k.name().into(), message: "other".into(), count: cs.other });
        }
    }
    out
}

/// One phase.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PhaseSummary {
    /// Name.
    pub name: String,
    /// Load model.
    pub load: String,
    /// Actual length, seconds (from its start to its end: a duration-bounded phase ends at
    /// its duration).
    pub duration_s: f64,
    /// Planned arrivals per second (sent / length for closed loop).
    pub offered_rps: f64,
    /// Answers per second.
    pub achieved_rps: f64,
    /// Requests its schedule held (open loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<u64>,
    /// Why some were never sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsent_cause: Option<UnsentCause>,
    /// Counters.
    pub requests: Requests,
    /// From the intended send time.
    pub latency_ms: Latency,
    /// From the actual send.
    pub service_time_ms: Latency,
    /// How late sends left.
    pub generator_lag_ms: Latency,
    /// By kind.
    pub violations: BTreeMap<String, u64>,
}

/// One network condition: everything sent while it was in force.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ConditionSummary {
    /// Name.
    pub name: String,
    /// The event it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Counters.
    pub requests: Requests,
    /// From the intended send time.
    pub latency_ms: Latency,
    /// By kind.
    pub violations: BTreeMap<String, u64>,
    /// Refusals with a declared outage status (expected, not violations).
    pub outage_denials: u64,
}

/// One timed event.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outage_statuses: Vec<u16>,
    /// Whether the run reached it.
    pub fired: bool,
    /// Sent while it was in force.
    pub requests: Requests,
    /// Of those.
    pub latency_ms: Latency,
    /// Of those, by kind.
    pub violations: BTreeMap<String, u64>,
    /// Of those, refused with a declared outage status.
    pub outage_denials: u64,
    /// From the end of the event to the first allow-class success sent after it
    /// (`null`: none seen before the run ended).
    pub recovery_ms: Option<f64>,
}

/// What the oracle saw of one check.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct UpstreamSummary {
    /// Counters.
    #[serde(flatten)]
    pub counts: UpstreamCounts,
    /// What was wrong with the headers that arrived: per (header, problem), with a sample.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderFinding>,
    /// Header problems not kept individually.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub other_header_problems: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One check.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CheckSummary {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Severity.
    pub severity: Severity,
    /// Expectation kind.
    pub expect: String,
    /// Identity name.
    pub identity: String,
    /// Credentials its requests round-robin over (1 unless the identity is a pool).
    pub credentials: usize,
    /// Attempted.
    pub sent: u64,
    /// Answered or refused at TLS.
    pub completed: u64,
    /// Without an answer.
    pub errors: u64,
    /// Where every request ended (sums to `sent`).
    pub outcomes: Outcomes,
    /// By kind (client-side and upstream-proven, joined).
    pub violations: BTreeMap<String, u64>,
    /// Status histogram (and TLS refusals).
    pub statuses: BTreeMap<String, u64>,
    /// The first few distinct error messages, per kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_causes: Vec<ErrorCause>,
    /// Latency.
    pub latency_ms: Latency,
    /// What the oracle saw of this check (absent when no oracle ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamSummary>,
    /// Rate-limit windows (`limit` checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitJudgement>,
    /// Generated for a replay phase (counts one class of replayed requests).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay: bool,
    /// `pass`, `fail`, `inconclusive` or `skipped`.
    pub result: CheckResult,
    /// Why, for anything but a pass.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// One threshold.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ThresholdResult {
    /// As written.
    pub expr: String,
    /// Held.
    pub ok: bool,
    /// Measured value (ms for times, a fraction for rates).
    pub value: f64,
}

/// The schema `summary.json` follows (its `schema` field).
pub const SCHEMA: &str = "gauntlet.summary/v1";

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// Always `gauntlet.summary/v1`.
    pub schema: String,
    /// gauntlet version.
    pub gauntlet_version: String,
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
    /// Where every request ended (sums to `requests.sent`).
    pub outcomes: Outcomes,
    /// The share of requests that may go without an answer.
    pub error_budget: f64,
    /// Answers per second over the run.
    pub achieved_rps: f64,
    /// From the intended send time (coordinated-omission free).
    pub latency_ms: Latency,
    /// From the actual send.
    pub service_time_ms: Latency,
    /// How late sends left (generator saturation).
    pub generator_lag_ms: Latency,
    /// By kind.
    pub violations: BTreeMap<String, u64>,
    /// Without an answer, by kind.
    pub errors: BTreeMap<String, u64>,
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
    /// Where violations start, if they depend on the rate.
    pub load_envelope: Envelope,
    /// `pass` or `fail`.
    pub verdict: RunVerdict,
    /// Why it failed, one line each.
    pub reasons: Vec<String>,
    /// Findings about the gateway that do not fail the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// How to run it again.
    pub reproduce: Reproduce,
    /// Oracle totals, when an oracle ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle: Option<OracleInfo>,
    /// HTTP/3: how refused QUIC handshakes were closed (`0x12a (bad_certificate 42)` → count).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quic_refusals: BTreeMap<String, u64>,
    /// WebSocket sessions, when the scenario has WebSocket checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WebSocketSummary>,
    /// Replay phases: what each capture gave and how replayed answers compare with recorded ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replay: Vec<ReplaySummary>,
    /// A run merged from shards (`gauntlet merge`): which were merged and which are missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardsSummary>,
}

/// One replay phase in the summary.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReplaySummary {
    /// The phase.
    pub phase: String,
    /// Replayed answers against recorded ones: `match`, `drift`, `verdict_flip` (of those with
    /// both a recorded and a replayed status).
    pub compared: BTreeMap<String, u64>,
    /// What the capture gave (requests replayed, filtered, unreplayable by reason, reading counts).
    #[serde(flatten)]
    pub source: crate::replay::Summary,
}

/// Oracle totals.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OracleInfo {
    /// Requests received.
    pub received: u64,
    /// Without a valid tag (a gateway that strips the tag makes every check unverifiable upstream).
    pub untagged: u64,
    /// Tagged by another run.
    pub foreign: u64,
}

/// Scenario identity.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioInfo {
    /// Name.
    pub name: String,
    /// sha256 over all source files.
    pub sha256: String,
    /// Source files.
    pub sources: Vec<String>,
}

/// Target.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TargetInfo {
    /// URL.
    pub url: String,
    /// Protocol requested.
    pub protocol: String,
    /// Target profile name.
    pub profile: String,
    /// `auto` only: the target announced HTTP/3 (`Alt-Svc`) and later connections used it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub followed_alt_svc_h3: bool,
}

/// Reproduction block.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Reproduce {
    /// Command line.
    pub command: String,
    /// Scenario digest.
    pub scenario_sha256: String,
}

fn per_sec(n: u64, d: Duration) -> f64 {
    if d.is_zero() { 0.0 } else { (n as f64 / d.as_secs_f64() * 10.0).round() / 10.0 }
}

impl Summary {
    /// Renders the judgement of a run.
    pub fn new(inp: &Inputs<'_>, j: &Judgement) -> Self {
        let s = inp.scenario;
        let dims = inp.dims;
        let all = j.merged(dims, |_| true);
        let mut lag_all = histogram();
        for h in inp.lag {
            let _ = lag_all.add(h);
        }
        let run_span = inp.run_span;
        let spans = inp.spans;
        let phases: Vec<PhaseSummary> = inp
            .plan
            .phases
            .iter()
            .enumerate()
            .map(|(p, pp)| {
                let c = j.merged(dims, |k| usize::from(k.phase) == p);
                let span = spans[p].unwrap_or_default();
                let offered = match pp.planned_requests().zip(pp.nominal_end()) {
                    Some((n, d)) if pp.users().is_none() => per_sec(n, d),
                    _ => per_sec(c.counts.sent, span),
                };
                let pj = j.phases.get(p);
                PhaseSummary {
                    name: pp.name.clone(),
                    load: match pp.users() {
                        Some(u) => format!("closed loop, {u} users"),
                        None => "open loop".into(),
                    },
                    duration_s: (span.as_secs_f64() * 1000.0).round() / 1000.0,
                    offered_rps: offered,
                    achieved_rps: per_sec(c.counts.completed, span),
                    scheduled: pj.and_then(|x| x.scheduled),
                    unsent_cause: pj.and_then(|x| x.cause),
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
            .zip(&j.checks)
            .enumerate()
            .map(|(i, (ck, cj))| {
                let c = j.merged(dims, |k| usize::from(k.check) == i);
                CheckSummary {
                    replay: ck.replay,
                    id: ck.id.clone(),
                    title: ck.title.clone(),
                    severity: ck.severity,
                    expect: ck.expect.kind().into(),
                    identity: s.identities[ck.identity].name.clone(),
                    credentials: s.members_of(i),
                    sent: c.counts.sent,
                    completed: c.counts.completed,
                    errors: c.counts.error_total(),
                    outcomes: Outcomes::of(&c.counts),
                    violations: violations(&c.counts),
                    statuses: statuses(&c.counts),
                    error_causes: inp.causes.get(i).map(error_causes).unwrap_or_default(),
                    latency_ms: Latency::of(&c.latency),
                    upstream: cj.upstream.map(|counts| {
                        let h = inp.oracle.and_then(|o| o.headers.get(i));
                        UpstreamSummary {
                            counts,
                            headers: h.map(|h| h.kept.clone()).unwrap_or_default(),
                            other_header_problems: h.map_or(0, |h| h.other),
                        }
                    }),
                    limit: cj.limit.clone(),
                    result: cj.result,
                    reason: cj.reason.clone(),
                }
            })
            .collect();
        let conditions: Vec<ConditionSummary> = inp
            .plan
            .conditions
            .iter()
            .enumerate()
            .filter_map(|(ci, cond)| {
                let c = j.merged(dims, |k| usize::from(k.condition) == ci);
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
                let c = j.merged(dims, |k| {
                    inp.plan
                        .conditions
                        .get(usize::from(k.condition))
                        .is_some_and(|x| x.event == Some(ei) && !x.recovery)
                });
                EventSummary {
                    name: e.name.clone(),
                    link: e.link.clone(),
                    at_s: e.at.as_secs_f64(),
                    for_s: e.duration.as_secs_f64(),
                    apply: e.impairment.describe(),
                    outage_statuses: e.outage.as_ref().map(|o| o.statuses.clone()).unwrap_or_default(),
                    fired: inp.events.get(ei).is_some_and(|f| f.fired),
                    requests: Requests::of(&c.counts),
                    latency_ms: Latency::of(&c.latency),
                    violations: violations(&c.counts),
                    outage_denials: c.counts.outage_denied,
                    recovery_ms: inp.events.get(ei).and_then(|f| f.recovery_us).map(|us| ms(us as f64)),
                }
            })
            .collect();
        let thresholds =
            j.thresholds.iter().map(|t| ThresholdResult { expr: t.expr.clone(), ok: t.ok, value: t.value }).collect();
        let started_at = time::OffsetDateTime::from(inp.started_at)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Summary {
            schema: SCHEMA.into(),
            gauntlet_version: env!("CARGO_PKG_VERSION").into(),
            run_id: inp.run_id.to_string(),
            started_at,
            duration_s: (run_span.as_secs_f64() * 1000.0).round() / 1000.0,
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
            outcomes: Outcomes::of(&all.counts),
            error_budget: s.error_budget,
            achieved_rps: per_sec(all.counts.completed, run_span),
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
            load_envelope: j.envelope.clone(),
            verdict: j.verdict,
            reasons: j.reasons.clone(),
            notes: j.notes.clone(),
            reproduce: Reproduce { command: inp.command.clone(), scenario_sha256: s.sha256.clone() },
            oracle: inp.oracle.map(|o| OracleInfo { received: o.received, untagged: o.untagged, foreign: o.foreign }),
            quic_refusals: inp.quic_refusals.clone(),
            replay: inp
                .replays
                .iter()
                .map(|(phase, r)| {
                    let pi = inp.plan.phases.iter().position(|p| &p.name == phase);
                    let c = j.merged(inp.dims, |k| Some(usize::from(k.phase)) == pi).counts;
                    ReplaySummary {
                        phase: phase.clone(),
                        compared: crate::conformance::ReplayClass::NAMES
                            .iter()
                            .map(|n| n.to_string())
                            .zip(c.replay)
                            .collect(),
                        source: r.clone(),
                    }
                })
                .collect(),
            websocket: inp.websocket.clone(),
            shards: None,
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
        if let Some(sh) = &self.shards {
            let late = sh
                .merged
                .iter()
                .filter_map(|m| m.lateness_ms)
                .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))));
            o.push_str(&format!(
                "  shards    {} of {} merged{}{}\n",
                sh.merged.len(),
                sh.count,
                late.map(|l| format!(", started at most {l:.1} ms late")).unwrap_or_default(),
                if sh.missing.is_empty() {
                    String::new()
                } else {
                    format!(", MISSING {}", sh.missing.iter().map(u32::to_string).collect::<Vec<_>>().join(", "))
                }
            ));
        }
        let r = &self.requests;
        let mut extra = String::new();
        if r.unsent > 0 {
            extra.push_str(&format!(", {} scheduled but unsent", r.unsent));
        }
        if r.stale_retries > 0 {
            extra.push_str(&format!(", {} retried after a stale connection", r.stale_retries));
        }
        o.push_str(&format!(
            "  requests  {} sent, {} answered, {} without answer ({} timeouts){extra}, {:.1}/s over {:.1}s\n",
            r.sent, r.completed, r.errors, r.timeouts, self.achieved_rps, self.duration_s
        ));
        let oc = &self.outcomes;
        let mut buckets = vec![format!("passed {}", oc.passed), format!("denied {}", oc.denied)];
        for (name, n) in [
            ("limited", oc.limited),
            ("outage-denied", oc.outage_denied),
            ("unexpected status", oc.unexpected_status),
            ("cancelled", oc.cancelled),
        ] {
            if n > 0 {
                buckets.push(format!("{name} {n}"));
            }
        }
        let v: u64 = oc.violations.values().sum();
        let e: u64 = oc.no_answer.values().sum();
        if v > 0 {
            buckets.push(format!("violations {v}"));
        }
        if e > 0 {
            buckets.push(format!("no answer {e}"));
        }
        o.push_str(&format!("  outcomes  {} (= {} sent)\n", buckets.join(", "), oc.total));
        o.push_str(&format!(
            "  latency   p50 {:.2}ms  p90 {:.2}ms  p99 {:.2}ms  p99.9 {:.2}ms  max {:.2}ms  (from intended send; service p99 {:.2}ms, generator lag p99 {:.2}ms)\n",
            l.p50, l.p90, l.p99, l.p999, l.max, self.service_time_ms.p99, self.generator_lag_ms.p99
        ));
        for p in &self.phases {
            let unsent = if p.requests.unsent > 0 {
                format!(" UNSENT {} of {}", p.requests.unsent, p.scheduled.unwrap_or_default())
            } else {
                String::new()
            };
            o.push_str(&format!(
                "  phase {:<12} {:>7.1}s offered {:>8.1}/s achieved {:>8.1}/s p99 {:>8.2}ms violations {}{unsent}\n",
                p.name,
                p.duration_s,
                p.offered_rps,
                p.achieved_rps,
                p.latency_ms.p99,
                p.violations.get("total").copied().unwrap_or(0)
            ));
        }
        for r in &self.replay {
            let cmp: Vec<String> = r.compared.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let skipped: u64 = r.source.unreplayable.values().sum();
            o.push_str(&format!(
                "  replay {:<11} {} replayed, {} filtered, {} outside the window, {} unreplayable; against the recording ({}): {}\n",
                r.phase,
                r.source.replayed,
                r.source.filtered,
                r.source.outside_window,
                skipped,
                if r.source.bodies_compared { "status and body" } else { "status" },
                cmp.join(", ")
            ));
            if r.source.connections == "keep" {
                o.push_str("    captured connections kept: each one's requests in order on a connection of its own\n");
            }
            for (u, n) in &r.source.unreplayable {
                o.push_str(&format!("    {n} unreplayable: {}\n", u.describe()));
            }
            if let Some(c) = &r.source.capture {
                o.push_str(&crate::replay::stats_text(c).replace("\n  ", "\n    ").replacen("  ", "    ", 1));
            }
            if let Some(e) = &r.source.error {
                o.push_str(&format!("    capture error: {e}\n"));
            }
            if r.source.stopped_at_bound {
                o.push_str("    the phase's duration/requests bound ended the replay before the capture's end\n");
            }
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
                "  websocket {} sessions ({} held, {} closed by the peer, {} echo lost, {} stopped), at most {} open; {} messages, rtt p50 {:.2}ms p99 {:.2}ms; ~{} KiB per open session\n",
                w.sessions,
                w.completed,
                w.closed_by_peer,
                w.echo_lost,
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
        let count = |r: CheckResult| self.checks.iter().filter(|c| c.result == r).count();
        o.push_str(&format!(
            "  checks    {} passed, {} failed, {} inconclusive, {} skipped\n",
            count(CheckResult::Pass),
            count(CheckResult::Fail),
            count(CheckResult::Inconclusive),
            count(CheckResult::Skipped)
        ));
        // Replay classes no replayed request fell into are not listed one by one.
        let quiet = |c: &&CheckSummary| c.replay && c.result == CheckResult::Skipped;
        let unlisted = self.checks.iter().filter(quiet).count();
        if unlisted > 0 {
            o.push_str(&format!(
                "    ({unlisted} replay classes without traffic are not listed; summary.json has them)\n"
            ));
        }
        for c in self.checks.iter().filter(|c| c.result != CheckResult::Pass && !quiet(c)) {
            o.push_str(&format!("    {:<13} {:<28} {}\n", c.result.name().to_uppercase(), c.id, c.title));
            if !c.reason.is_empty() {
                o.push_str(&format!("                  {}\n", c.reason));
            }
        }
        let causes: Vec<String> = self
            .checks
            .iter()
            .flat_map(|c| c.error_causes.iter().map(move |e| (c, e)))
            .take(8)
            .map(|(c, e)| format!("    {:<28} {} ×{}: {}", c.id, e.kind, e.count, e.message))
            .collect();
        if !causes.is_empty() {
            o.push_str("  errors (first causes per check and kind)\n");
            for line in causes {
                o.push_str(&line);
                o.push('\n');
            }
        }
        for t in &self.thresholds {
            o.push_str(&format!("  threshold {} {} (value {})\n", if t.ok { "ok  " } else { "FAIL" }, t.expr, t.value));
        }
        for n in &self.notes {
            o.push_str(&format!("  note      {n}\n"));
        }
        o.push_str(&format!("verdict: {}\n", self.verdict.name().to_uppercase()));
        for r in &self.reasons {
            o.push_str(&format!("  - {r}\n"));
        }
        o
    }
}

/// The latency histograms of a run by what they cover, for `histograms.hlog` (and so for
/// `gauntlet compare`, which compares histograms, not rounded percentiles): `run`, then
/// `phase=NAME`, `condition=NAME` (conditions that saw a request) and `check=ID`, names
/// escaped by [`tag`].
pub fn histograms(inp: &Inputs<'_>, j: &Judgement) -> Vec<(String, Histogram<u64>)> {
    let dims = inp.dims;
    let mut out = vec![("run".to_string(), j.merged(dims, |_| true).latency)];
    for (p, pp) in inp.plan.phases.iter().enumerate() {
        out.push((format!("phase={}", tag(&pp.name)), j.merged(dims, |k| usize::from(k.phase) == p).latency));
    }
    for (ci, cond) in inp.plan.conditions.iter().enumerate() {
        let c = j.merged(dims, |k| usize::from(k.condition) == ci);
        if c.counts.sent > 0 {
            out.push((format!("condition={}", tag(&cond.name)), c.latency));
        }
    }
    for (i, ck) in inp.scenario.checks.iter().enumerate() {
        out.push((format!("check={}", tag(&ck.id)), j.merged(dims, |k| usize::from(k.check) == i).latency));
    }
    out
}

/// A name as an interval-log tag: `%`, `,`, space, CR and LF percent-encoded (a tag may not
/// hold them). [`untag`] reverses it.
pub fn tag(name: &str) -> String {
    let mut o = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' | ',' | ' ' | '\r' | '\n' => o.push_str(&format!("%{:02X}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

/// The name a [`tag`] was made from.
pub fn untag(t: &str) -> String {
    let mut o = String::with_capacity(t.len());
    let mut it = t.chars();
    while let Some(c) = it.next() {
        if c == '%' {
            let h: String = it.by_ref().take(2).collect();
            match u8::from_str_radix(&h, 16) {
                Ok(b) => o.push(char::from(b)),
                Err(_) => {
                    o.push('%');
                    o.push_str(&h);
                }
            }
        } else {
            o.push(c);
        }
    }
    o
}
