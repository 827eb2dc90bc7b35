//! The one judge: turns what was measured (client-side counts, the oracle's findings,
//! rate-limit windows, phase timing) into every check result, every run-level failure and
//! the verdict. Nothing else decides pass or fail; `report` renders a [`Judgement`].
//!
//! Pure: no IO, no clock. The rules, in the order they apply to a check:
//! 1. not sent → `skipped`;
//! 2. any violation (client-side, upstream-proven, or per rate-limit window) → `fail`;
//! 3. an allow-class check answered with a status that is neither its success nor a refusal
//!    → `fail` (an allow check passes only on its success statuses);
//! 4. upstream expectations without an oracle, or an allow-class check the oracle never saw
//!    arrive although it was answered → `inconclusive` (nothing upstream was verified);
//! 5. nothing answered, or more unanswered than the error budget allows beyond sampling noise
//!    ([`check_error_allowance`]) → `inconclusive`;
//! 6. a `limit` check never driven above its limit in a judged window → `inconclusive`;
//! 7. otherwise `pass`.
//!
//! The run fails on any failed or inconclusive check, a failed threshold, an interrupted run,
//! more requests without an answer than the error budget allows, or a duration-bounded phase
//! that did not send its schedule.

pub mod limit;

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::conformance::{ErrorKind, Expect, HeaderFindings, UpstreamCounts, Violation, upstream_found};
use crate::metrics::{Cell, CheckCauses, Counts, Dims, NEVER, Saturation, Windows};
use crate::plan::Plan;
use crate::scenario::{Metric, Scenario, Stat};

pub use limit::LimitJudgement;

/// What the oracle upstream saw, as plain data.
#[derive(Debug, Clone, Copy)]
pub struct Upstream<'a> {
    /// `((phase, condition, check), counts)` for every cell with an arrival.
    pub cells: &'a [((usize, usize, usize), UpstreamCounts)],
    /// Header findings per check.
    pub headers: &'a [HeaderFindings],
    /// Requests that arrived without a valid tag.
    pub untagged: u64,
}

/// Everything the judge decides from.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// The scenario (checks, thresholds, error budget).
    pub scenario: &'a Scenario,
    /// Its plan (phases, conditions).
    pub plan: &'a Plan,
    /// Key dimensions of `cells`.
    pub dims: Dims,
    /// Client-side cells by flat key.
    pub cells: &'a [Option<Box<Cell>>],
    /// Error causes per check.
    pub causes: &'a [CheckCauses],
    /// The oracle's findings, when an oracle ran.
    pub upstream: Option<Upstream<'a>>,
    /// Rate-limit windows of `limit` checks.
    pub windows: &'a Windows,
    /// Saturation per phase.
    pub saturation: &'a [Saturation],
    /// How long each phase ran (`None`: never started).
    pub spans: &'a [Option<Duration>],
    /// How long the run ran.
    pub run_span: Duration,
    /// Stopped early by the user or a signal.
    pub interrupted: bool,
    /// Most requests in flight (the in-flight cap), for reasons.
    pub max_in_flight: u32,
    /// What each replay phase could and could not send.
    pub replays: &'a [ReplayEvidence],
    /// A merged sharded run: how many shards it had, which of them are missing, and what
    /// else the merge lacks (the oracle's findings, or part of them).
    pub shards: Option<(u32, &'a [u32], &'a [String])>,
}

/// A replay phase's account of its capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayEvidence {
    /// The phase.
    pub phase: String,
    /// Requests handed to the engine.
    pub replayed: u64,
    /// Requests not replayable, by reason (in words).
    pub unreplayable: Vec<(String, u64)>,
    /// Why the capture was not read to its end.
    pub error: Option<String>,
}

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckResult {
    /// Every request got the expected treatment.
    Pass,
    /// A violation, or an answer the expectation does not allow.
    Fail,
    /// Sent, but the evidence does not decide (no answers, too many errors, nothing
    /// verified upstream, a limiter never driven past its limit).
    Inconclusive,
    /// Not sent at all.
    Skipped,
}

impl CheckResult {
    /// lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            CheckResult::Pass => "pass",
            CheckResult::Fail => "fail",
            CheckResult::Inconclusive => "inconclusive",
            CheckResult::Skipped => "skipped",
        }
    }
}

/// The run's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunVerdict {
    /// Every check passed, every threshold held, the run was whole.
    Pass,
    /// Anything else (the reasons say what).
    Fail,
}

impl RunVerdict {
    /// lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            RunVerdict::Pass => "pass",
            RunVerdict::Fail => "fail",
        }
    }
}

/// One check, judged.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckJudgement {
    /// The result.
    pub result: CheckResult,
    /// Why, in words a person can act on (empty for a pass).
    pub reason: String,
    /// Totals of the check, upstream findings and window violations joined.
    pub counts: Counts,
    /// What the oracle saw of it (when an oracle ran).
    pub upstream: Option<UpstreamCounts>,
    /// Rate-limit windows, for `limit` checks.
    pub limit: Option<LimitJudgement>,
}

/// Why a duration-bounded phase did not send its whole schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnsentCause {
    /// Every worker had a request in flight: the target answered too slowly for the rate.
    InFlightCap,
    /// Workers were free but late: the generator could not keep up (CPU).
    GeneratorBehind,
}

impl UnsentCause {
    /// In words.
    pub fn describe(self, cap: u32) -> String {
        match self {
            UnsentCause::InFlightCap => {
                format!("the in-flight cap of {cap} was reached: the target answered too slowly for the rate")
            }
            UnsentCause::GeneratorBehind => "the generator fell behind its schedule (CPU)".to_string(),
        }
    }
}

/// One phase, judged.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseJudgement {
    /// Requests the schedule held (open loop).
    pub scheduled: Option<u64>,
    /// Of those, never sent.
    pub unsent: u64,
    /// Why, when some were not sent.
    pub cause: Option<UnsentCause>,
}

/// One threshold, judged.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdJudgement {
    /// As written.
    pub expr: String,
    /// Held.
    pub ok: bool,
    /// Measured value (ms for times, a fraction for rates).
    pub value: f64,
}

/// Where violations start, if they depend on the rate at all.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// The highest achieved rate up to which every phase was clean.
    pub max_clean_rps: Option<f64>,
    /// The lowest achieved rate of a phase with violations — only when a slower phase was
    /// clean (violations that depend on the rate).
    pub first_violation_rps: Option<f64>,
    /// That phase.
    pub first_violation_phase: Option<String>,
    /// Whether violations appear only above some rate.
    pub load_dependent: bool,
    /// In words.
    pub note: String,
}

/// The judge's output: everything `report` renders.
#[derive(Debug, Clone)]
pub struct Judgement {
    /// Cells with upstream and window findings joined (`Counts::found`).
    pub cells: Vec<Option<Box<Cell>>>,
    /// Per check, in scenario order.
    pub checks: Vec<CheckJudgement>,
    /// Per phase, in plan order.
    pub phases: Vec<PhaseJudgement>,
    /// Per threshold, in scenario order.
    pub thresholds: Vec<ThresholdJudgement>,
    /// The verdict.
    pub verdict: RunVerdict,
    /// Why it failed, one line each (empty on a pass).
    pub reasons: Vec<String>,
    /// Findings about the gateway that do not fail the run.
    pub notes: Vec<String>,
    /// The load envelope.
    pub envelope: Envelope,
}

impl Judgement {
    /// The joined cells merged where `keep(key)` holds.
    pub fn merged(&self, dims: Dims, keep: impl Fn(crate::metrics::Key) -> bool) -> Cell {
        merged(&self.cells, dims, keep)
    }
}

fn merged(cells: &[Option<Box<Cell>>], dims: Dims, keep: impl Fn(crate::metrics::Key) -> bool) -> Cell {
    let mut out = Cell::default();
    for (i, c) in cells.iter().enumerate() {
        if let Some(c) = c {
            if keep(dims.key(i)) {
                out.add(c);
            }
        }
    }
    out
}

/// `mm:ss.s` from µs since the run start.
pub fn clock(us: u64) -> String {
    let s = us as f64 / 1e6;
    format!("{:02}:{:04.1}", (s / 60.0).floor() as u64, s % 60.0)
}

/// `12,345`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 { "0%".into() } else { format!("{:.1}%", part as f64 * 100.0 / whole as f64) }
}

/// `344 connect (connect to 127.0.0.1:9: Connection refused ×344), 6 reset (…)`.
pub fn describe_errors(c: &Counts, causes: Option<&CheckCauses>) -> String {
    ErrorKind::ALL
        .iter()
        .filter(|k| c.error(**k) > 0)
        .map(|k| {
            let why = causes
                .map(|cs| &cs[k.index()])
                .filter(|cs| !cs.kept.is_empty())
                .map(|cs| {
                    let kept: Vec<String> = cs.kept.iter().map(|(m, n)| format!("{m} ×{n}")).collect();
                    format!(" ({})", kept.join("; "))
                })
                .unwrap_or_default();
            format!("{} {}{why}", thousands(c.error(*k)), k.name())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `404 ×120, 503 ×3` for the statuses an allow check did not expect.
fn unexpected_statuses(c: &Counts, expect: &Expect) -> String {
    let ok = |s: u16| match expect {
        Expect::Allow { success, refusals } => success.contains(s) || refusals.contains(&s),
        Expect::Limit(l) => l.success.contains(s) || l.refusals.contains(&s) || s == 429,
        _ => true,
    };
    c.statuses.iter().filter(|(s, _)| !ok(*s)).map(|(s, n)| format!("{s} ×{n}")).collect::<Vec<_>>().join(", ")
}

fn success_of(expect: &Expect) -> String {
    match expect {
        Expect::Allow { success, .. } => success.describe(),
        Expect::Limit(l) => format!("{} or 429", l.success.describe()),
        _ => String::new(),
    }
}

/// Answers with the statuses the oracle gives (200, and 101 for a WebSocket): only these
/// can be proven to have come from it.
fn oracle_answers(c: &Counts) -> u64 {
    let n: u64 = c.statuses.iter().filter(|(s, _)| matches!(s, 200 | 101)).map(|(_, n)| n).sum();
    n.min(c.passed)
}

fn violations_text(c: &Counts) -> String {
    Violation::ALL
        .iter()
        .filter(|v| c.violation(**v) > 0)
        .map(|v| format!("{} {}", thousands(c.violation(*v)), v.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn header_text(h: &HeaderFindings) -> String {
    h.kept.iter().map(|f| format!("{}: {} ×{}", f.header, f.problem.describe(), f.count)).collect::<Vec<_>>().join("; ")
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

fn per_sec(n: u64, d: Duration) -> f64 {
    if d.is_zero() { 0.0 } else { (n as f64 / d.as_secs_f64() * 10.0).round() / 10.0 }
}

/// Judges a run.
pub fn judge(ev: &Evidence<'_>) -> Judgement {
    let s = ev.scenario;
    let dims = ev.dims;
    // 1. Join what was found beyond the client's view into the cells.
    let mut cells: Vec<Option<Box<Cell>>> = ev.cells.to_vec();
    if let Some(up) = ev.upstream {
        for ((phase, condition, check), counts) in up.cells {
            let key = crate::metrics::Key { phase: *phase as u16, condition: *condition as u16, check: *check as u16 };
            let (Some(slot), Some(c)) = (cells.get_mut(dims.index(key)), s.checks.get(*check)) else { continue };
            let cell = slot.get_or_insert_with(Box::default);
            let found = upstream_found(&cell.counts.violations, &c.expect, counts, cell.counts.sent);
            for (f, n) in cell.counts.found.iter_mut().zip(found) {
                *f += n;
            }
        }
    }
    let mut limits: Vec<Option<LimitJudgement>> = Vec::with_capacity(s.checks.len());
    for (i, c) in s.checks.iter().enumerate() {
        let Expect::Limit(l) = &c.expect else {
            limits.push(None);
            continue;
        };
        let j = limit::judge(i as u16, l, ev.windows);
        for (phase, condition, bypass) in &j.marks {
            let key = crate::metrics::Key { phase: *phase, condition: *condition, check: i as u16 };
            if let Some(slot) = cells.get_mut(dims.index(key)) {
                let v = if *bypass { Violation::LimitBypass } else { Violation::FalseDeny };
                slot.get_or_insert_with(Box::default).counts.found[v.index()] += 1;
            }
        }
        limits.push(Some(j));
    }

    // 2. Checks.
    // Whether any tagged request of any check reached the oracle: the oracle is the
    // gateway's upstream and the tag gets through, so a check none of whose successes
    // arrived was answered by the gateway itself.
    let any_arrived = ev.upstream.is_some_and(|u| u.cells.iter().any(|(_, x)| x.arrivals > 0));
    let mut checks = Vec::with_capacity(s.checks.len());
    for (i, (c, lim)) in s.checks.iter().zip(limits).enumerate() {
        let counts = merged(&cells, dims, |k| usize::from(k.check) == i).counts;
        let upstream = ev.upstream.map(|u| {
            let mut sum = UpstreamCounts::default();
            for ((_, _, check), x) in u.cells {
                if *check == i {
                    sum.arrivals += x.arrivals;
                    sum.leaks += x.leaks;
                    sum.spoofed += x.spoofed;
                    sum.missing += x.missing;
                }
            }
            sum
        });
        let headers = ev.upstream.and_then(|u| u.headers.get(i));
        let answered = counts.completed;
        let errors = counts.error_total();
        let verifiable_upstream =
            !c.upstream.is_empty() || (c.expect.is_allow() && s.profile.identity_header.is_some());
        let (result, reason) = if let (0, Some(why)) = (counts.sent, &c.out_of_scope) {
            (CheckResult::Skipped, why.clone())
        } else if counts.sent == 0 && c.replay {
            (CheckResult::Skipped, "no replayed request fell in this class".to_string())
        } else if counts.sent == 0 {
            let why = if ev.interrupted {
                "not sent: the run stopped before it".to_string()
            } else {
                "not sent: no phase's mix includes it".to_string()
            };
            (CheckResult::Skipped, why)
        } else if counts.violation_total() > 0 {
            let mut why = violations_text(&counts);
            if let Some(h) = headers.filter(|h| !h.kept.is_empty()) {
                why.push_str(&format!(" — headers: {}", header_text(h)));
            }
            if let Some(l) = lim.as_ref().filter(|l| l.bypass_windows + l.false_deny_windows > 0) {
                why.push_str(&format!(
                    " — {} of {} windows allowed more than the limit of {}, {} allowed well below it (at most {} allowed, median {}, per window)",
                    l.bypass_windows,
                    l.windows_driven,
                    l.limit_per_window,
                    l.false_deny_windows,
                    l.max_allowed_per_window,
                    l.median_allowed_per_window
                ));
            }
            let odd = unexpected_statuses(&counts, &c.expect);
            if counts.unexpected > 0 && !odd.is_empty() {
                why.push_str(&format!("; also answered {odd}"));
            }
            (CheckResult::Fail, why)
        } else if counts.unexpected > 0 {
            (
                CheckResult::Fail,
                format!(
                    "expected {}; got {} ({} of {} answers)",
                    success_of(&c.expect),
                    unexpected_statuses(&counts, &c.expect),
                    thousands(counts.unexpected),
                    thousands(answered)
                ),
            )
        } else if !c.upstream.is_empty() && ev.upstream.is_none() {
            (
                CheckResult::Inconclusive,
                "its upstream expectations (headers that must or must not arrive) need the oracle, and none ran"
                    .to_string(),
            )
        } else if verifiable_upstream && !any_arrived && counts.passed > 0 && upstream.is_some_and(|u| u.arrivals == 0)
        {
            (
                CheckResult::Inconclusive,
                format!(
                    "{} answered with success, but none arrived at the oracle: is the oracle the gateway's upstream, and does the gateway forward the x-gauntlet-tag header (or use `tag: query`)?",
                    thousands(counts.passed)
                ),
            )
        } else if let Some(short) = upstream
            .map(|u| oracle_answers(&counts).saturating_sub(u.arrivals))
            .filter(|short| c.expect.is_allow() && !c.replay && verifiable_upstream && *short > 0)
        {
            // The oracle counts an arrival before it answers, and answers only 200 (101 for
            // a WebSocket): such an answer that never arrived came from the gateway itself —
            // unless as many requests arrived with their tag lost.
            let untagged = ev.upstream.map_or(0, |up| up.untagged);
            if short > untagged {
                (
                    CheckResult::Fail,
                    format!(
                        "{} of {} answered as the oracle answers (200) never arrived at the oracle: the gateway answered them itself (a cache that does not key on who asks, or a page of its own), so the identity each must carry upstream was never checked",
                        thousands(short),
                        thousands(oracle_answers(&counts))
                    ),
                )
            } else {
                (
                    CheckResult::Inconclusive,
                    format!(
                        "{} answered with success did not arrive with their tag, and {} requests arrived without one: does the gateway forward the x-gauntlet-tag header (or the `gauntlet_tag` query parameter) on this route?",
                        thousands(short),
                        thousands(untagged)
                    ),
                )
            }
        } else if matches!(c.expect, Expect::TlsReject) && counts.tls_closed > 0 && counts.tls_rejected == 0 {
            // A gateway that refuses a client certificate says so in the handshake (a fatal
            // alert, RFC 8446 §4.4.2.4); one that completes every handshake and then closes
            // unanswered accepted the credential and refused the request afterwards.
            (
                CheckResult::Fail,
                format!(
                    "the gateway completed the TLS handshake with all {} of these clients and then closed the connection unanswered, without a TLS alert: it accepted the credential at the TLS layer and refused only the request (the right decision at the wrong layer), or its TLS stack drops the alert a refusal must send (RFC 8446 §4.4.2.4)",
                    thousands(counts.tls_closed)
                ),
            )
        } else if answered == 0 {
            (
                CheckResult::Inconclusive,
                format!(
                    "{} sent, none answered: {}",
                    thousands(counts.sent),
                    describe_errors(&counts, ev.causes.get(i))
                ),
            )
        } else if errors as f64 > check_error_allowance(counts.sent, s.error_budget) {
            (
                CheckResult::Inconclusive,
                format!(
                    "{} of {} ({}) got no answer, above the {} error budget: {}",
                    thousands(errors),
                    thousands(counts.sent),
                    percent(errors, counts.sent),
                    format_budget(s.error_budget),
                    describe_errors(&counts, ev.causes.get(i))
                ),
            )
        } else if let (Expect::Limit(spec), Some(l)) = (&c.expect, lim.as_ref().filter(|l| l.windows_driven == 0)) {
            (
                CheckResult::Inconclusive,
                format!(
                    "never sent faster than its limit in a whole window: at most {} per {:?} against a limit of {} (+{:.0}% tolerance) — raise its share of the mix or the rate to at least {:.1}× the limit",
                    l.max_sent_per_window,
                    spec.per,
                    spec.requests,
                    spec.tolerance * 100.0,
                    spec.drive
                ),
            )
        } else {
            (CheckResult::Pass, String::new())
        };
        checks.push(CheckJudgement { result, reason, counts, upstream, limit: lim });
    }

    // 3. Phases: did each duration-bounded phase send its schedule?
    let phases: Vec<PhaseJudgement> = ev
        .plan
        .phases
        .iter()
        .enumerate()
        .map(|(p, pp)| {
            let c = merged(&cells, dims, |k| usize::from(k.phase) == p).counts;
            let scheduled = pp.scheduled().filter(|_| pp.cut_at_duration());
            let cause = (c.unsent > 0).then(|| {
                let sat = ev.saturation.get(p).copied().unwrap_or_default();
                if sat.capped > 0 { UnsentCause::InFlightCap } else { UnsentCause::GeneratorBehind }
            });
            PhaseJudgement { scheduled, unsent: c.unsent, cause }
        })
        .collect();

    // 4. Thresholds.
    let thresholds: Vec<ThresholdJudgement> = s
        .thresholds
        .iter()
        .map(|t| {
            let c = merged(&cells, dims, |k| {
                t.phase.is_none_or(|p| p == usize::from(k.phase)) && t.check.is_none_or(|x| x == usize::from(k.check))
            });
            let span = t.phase.map_or(ev.run_span, |p| ev.spans.get(p).copied().flatten().unwrap_or_default());
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
            ThresholdJudgement {
                expr: t.expr.clone(),
                ok: t.op.holds(value, t.value),
                value: (value * 1000.0).round() / 1000.0,
            }
        })
        .collect();

    // 5. The run.
    let all = merged(&cells, dims, |_| true).counts;
    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    if ev.interrupted {
        reasons.push("the run was interrupted: results cover only what ran".to_string());
    }
    if let Some((n, missing, incomplete)) = ev.shards {
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(u32::to_string).collect();
            reasons.push(format!(
                "partial result: shard(s) {} of {n} missing — their part of the schedule is not in these counts",
                list.join(", ")
            ));
        }
        reasons.extend(incomplete.iter().map(|why| format!("partial result: {why}")));
    }
    let errors = all.error_total();
    if all.sent > 0 && errors as f64 > all.sent as f64 * s.error_budget {
        let mut all_causes = CheckCauses::default();
        for cs in ev.causes {
            for (a, b) in all_causes.iter_mut().zip(cs.iter()) {
                a.add(b);
            }
        }
        let when = match (all.last_answer_us, all.last_error_us) {
            (NEVER, _) => " — nothing was answered at all".to_string(),
            (a, e) if e != NEVER && e > a => {
                format!(" — the last answer came at {}, errors went on until {}", clock(a), clock(e))
            }
            _ => String::new(),
        };
        reasons.push(format!(
            "{} of {} requests ({}) got no answer, above the {} error budget: {}{when}",
            thousands(errors),
            thousands(all.sent),
            percent(errors, all.sent),
            format_budget(s.error_budget),
            describe_errors(&all, Some(&all_causes))
        ));
    }
    for (pp, pj) in ev.plan.phases.iter().zip(&phases) {
        if let (Some(scheduled), Some(cause)) = (pj.scheduled, pj.cause) {
            reasons.push(format!(
                "phase `{}` did not keep its rate: it sent {} of the {} requests its schedule held ({} unsent) — {}",
                pp.name,
                thousands(scheduled.saturating_sub(pj.unsent)),
                thousands(scheduled),
                thousands(pj.unsent),
                cause.describe(ev.max_in_flight)
            ));
        }
    }
    for r in ev.replays {
        let skipped: u64 = r.unreplayable.iter().map(|(_, n)| n).sum();
        let why = r.unreplayable.iter().map(|(w, n)| format!("{} {w}", thousands(*n))).collect::<Vec<_>>().join("; ");
        if let Some(e) = &r.error {
            reasons.push(format!(
                "replay phase `{}` could not read its capture to the end ({e}): the verdict would cover only part of it",
                r.phase
            ));
        } else if r.replayed == 0 && !ev.interrupted {
            let why = if why.is_empty() { "the capture holds no HTTP request".to_string() } else { why.clone() };
            reasons.push(format!("replay phase `{}` replayed nothing: {why}", r.phase));
        }
        if skipped > 0 && r.replayed > 0 {
            notes.push(format!(
                "replay phase `{}`: {} request(s) replayed, {} not replayable: {why}",
                r.phase,
                thousands(r.replayed),
                thousands(skipped)
            ));
        }
    }
    for (c, j) in s.checks.iter().zip(&checks) {
        match j.result {
            CheckResult::Fail => reasons.push(format!("check {} failed: {}", c.id, j.reason)),
            CheckResult::Inconclusive => reasons.push(format!("check {} is inconclusive: {}", c.id, j.reason)),
            _ => {}
        }
    }
    for t in thresholds.iter().filter(|t| !t.ok) {
        reasons.push(format!("threshold `{}` failed (value {})", t.expr, t.value));
    }
    // Violations by the condition in force at the send: every condition, unimpaired too, as
    // soon as the run had more than one.
    let labelled: Vec<(usize, Counts)> = ev
        .plan
        .conditions
        .iter()
        .enumerate()
        .map(|(ci, _)| (ci, merged(&cells, dims, |k| usize::from(k.condition) == ci).counts))
        .filter(|(_, c)| c.sent > 0)
        .collect();
    if labelled.len() > 1 {
        for (ci, c) in &labelled {
            if c.violation_total() > 0 {
                reasons.push(format!(
                    "{} violation(s) under network condition `{}` ({}), of {} sent under it",
                    thousands(c.violation_total()),
                    ev.plan.conditions[*ci].name,
                    violations_text(c),
                    thousands(c.sent)
                ));
            }
        }
    }
    if all.stale_retries > 0 {
        notes.push(format!(
            "the gateway closed {} kept-alive connection(s) without answering the request sent on them; each request was sent once more on a new connection (idempotent requests only)",
            thousands(all.stale_retries)
        ));
    }
    if let Some(up) = ev.upstream {
        // Requests arrived, answered with success, yet not one tagged arrival: the gateway
        // drops or rewrites the tag, so nothing upstream can be attributed — a deny-class
        // request that got through would be invisible. (Health checks and other callers only
        // add untagged arrivals; they never make the tagged ones vanish.)
        let tagged: u64 = up.cells.iter().map(|(_, c)| c.arrivals).sum();
        let allowed: u64 =
            s.checks.iter().zip(&checks).filter(|(c, _)| c.expect.is_allow()).map(|(_, j)| j.counts.passed).sum();
        if up.untagged > 0 && tagged == 0 && allowed > 0 {
            reasons.push(format!(
                "the oracle saw {} request(s), none with a valid tag, although {} allowed request(s) were answered: the gateway does not forward x-gauntlet-tag, so no leak could be proven absent — forward the header or use the profile's `tag: query`",
                thousands(up.untagged),
                thousands(allowed)
            ));
        } else if up.untagged > 0 {
            notes.push(format!(
                "{} request(s) reached the oracle without a valid tag (the gateway dropped or rewrote x-gauntlet-tag, or something else called the oracle)",
                thousands(up.untagged)
            ));
        }
    }
    let envelope = envelope(ev, &cells);
    let verdict = if reasons.is_empty() { RunVerdict::Pass } else { RunVerdict::Fail };
    Judgement { cells, checks, phases, thresholds, verdict, reasons, notes, envelope }
}

/// How many of a check's `sent` requests may go unanswered before the check is
/// inconclusive: the error budget, plus three standard deviations of binomial noise and one
/// request, so that a check of a few dozen requests is not undecided by a single lost answer
/// (which still counts against the run's own budget).
pub fn check_error_allowance(sent: u64, budget: f64) -> f64 {
    let mean = sent as f64 * budget;
    mean + 3.0 * mean.sqrt() + 1.0
}

/// `1%`, `0.5%`.
pub fn format_budget(b: f64) -> String {
    let p = b * 100.0;
    if (p - p.round()).abs() < 1e-9 { format!("{p:.0}%") } else { format!("{p}%") }
}

/// Phases by achieved rate: violations "start" at a rate only when every slower phase was
/// clean and a faster one was not.
fn envelope(ev: &Evidence<'_>, cells: &[Option<Box<Cell>>]) -> Envelope {
    let mut rows: Vec<(f64, bool, String)> = ev
        .plan
        .phases
        .iter()
        .enumerate()
        .filter_map(|(p, pp)| {
            let c = merged(cells, ev.dims, |k| usize::from(k.phase) == p).counts;
            let span = ev.spans.get(p).copied().flatten()?;
            (c.sent > 0).then(|| (per_sec(c.completed, span), c.violation_total() > 0, pp.name.clone()))
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let clean_prefix = rows.iter().take_while(|r| !r.1).count();
    let max_clean_rps = rows[..clean_prefix].last().map(|r| r.0);
    let first_bad = rows.get(clean_prefix);
    let any_bad = rows.iter().any(|r| r.1);
    let (first_violation_rps, first_violation_phase, load_dependent, note) = match (first_bad, clean_prefix) {
        (None, _) => (None, None, false, "no violations at any rate tested".to_string()),
        (Some(b), 0) => (
            None,
            None,
            false,
            format!(
                "violations at every rate tested, from the slowest phase (`{}`, {:.1}/s): not caused by load",
                b.2, b.0
            ),
        ),
        (Some(b), _) => (
            Some(b.0),
            Some(b.2.clone()),
            true,
            format!(
                "clean up to {:.1}/s; violations from {:.1}/s (phase `{}`)",
                max_clean_rps.unwrap_or_default(),
                b.0,
                b.2
            ),
        ),
    };
    Envelope {
        max_clean_rps: if any_bad { max_clean_rps } else { rows.last().map(|r| r.0) },
        first_violation_rps,
        first_violation_phase,
        load_dependent,
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_and_numbers_read_well() {
        assert_eq!(clock(12_300_000), "00:12.3");
        assert_eq!(clock(75_000_000), "01:15.0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(format_budget(0.01), "1%");
        assert_eq!(format_budget(0.005), "0.5%");
    }

    #[test]
    fn a_check_tolerates_noise_around_the_budget_but_not_a_real_excess() {
        // 1 of 77 lost (1.3 %) is noise; 10 of 77 is not.
        assert!(1.0 <= check_error_allowance(77, 0.01));
        assert!(10.0 > check_error_allowance(77, 0.01));
        // Large checks converge to the budget.
        assert!(check_error_allowance(100_000, 0.01) < 1_100.0);
    }
}
