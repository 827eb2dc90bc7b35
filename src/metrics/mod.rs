//! Measurements: per-thread recorders on the hot path, one collector that merges them, and
//! the snapshots every consumer (progress line, dashboard, report) reads.
//!
//! No per-request records: HdrHistograms (µs, 3 significant digits) and counters keyed by
//! (phase, network condition, check). Memory is flat in run length (the only series that
//! grows with it is one small counter triple per `limit` check and rate-limit window). The
//! hot path takes no lock: each generator thread owns its [`Recorder`] and ships a [`Delta`]
//! every tick.

mod collector;

use std::collections::BTreeMap;
use std::sync::Arc;

use hdrhistogram::Histogram;

pub use collector::{Collector, Interval, IntervalSink, Progress, Snapshot, TICK, Upstream};

use crate::conformance::{ErrorKind, ReplayClass, Verdict, Violation};

/// Largest latency recorded (values above are clamped): one hour in µs.
pub const MAX_US: u64 = 3_600_000_000;

/// Distinct error messages kept per (check, error kind); further ones are only counted.
pub const CAUSES_KEPT: usize = 4;

/// Number of violation kinds.
pub const VIOLATIONS: usize = Violation::ALL.len();
/// Number of error kinds.
pub const ERRORS: usize = ErrorKind::ALL.len();

/// A new auto-resizing histogram (µs, 3 significant digits).
#[allow(clippy::expect_used)] // infallible: 3 significant digits is within 0..=5
pub fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits is a valid precision")
}

/// Counter dimensions: which cell a request is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// Phase index.
    pub phase: u16,
    /// Network condition index (0 = unimpaired).
    pub condition: u16,
    /// Check index.
    pub check: u16,
}

/// Sizes of the key space.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    /// Phases.
    pub phases: usize,
    /// Conditions.
    pub conditions: usize,
    /// Checks.
    pub checks: usize,
}

impl Dims {
    /// Number of cells.
    pub fn len(&self) -> usize {
        self.phases * self.conditions * self.checks
    }
    /// Whether there are no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The flat index of a key.
    pub fn index(&self, k: Key) -> usize {
        (usize::from(k.phase) * self.conditions + usize::from(k.condition)) * self.checks + usize::from(k.check)
    }
    /// The key at a flat index.
    pub fn key(&self, i: usize) -> Key {
        let check = i % self.checks;
        let rest = i / self.checks;
        Key { phase: (rest / self.conditions) as u16, condition: (rest % self.conditions) as u16, check: check as u16 }
    }
}

/// "Never" for the time markers of [`Counts`].
pub const NEVER: u64 = u64::MAX;

/// Counters of one cell.
///
/// Every request sent lands in exactly one client-side bucket:
/// `passed + denied + limited + outage_denied + unexpected + Σ violations + Σ errors +
/// cancelled == sent` ([`Counts::bucket_total`]). `found` holds what was proven beyond the
/// client's view (by the upstream oracle, or per rate-limit window) and is added by the
/// judge; [`Counts::violation`] is the sum of both.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Requests attempted.
    pub sent: u64,
    /// Requests with an answer (any status) or a TLS refusal.
    pub completed: u64,
    /// Allowed and answered with a success status.
    pub passed: u64,
    /// Denied as expected.
    pub denied: u64,
    /// 429 on `limit` checks.
    pub limited: u64,
    /// Refused with a declared outage status while a dependency was down (not violations).
    pub outage_denied: u64,
    /// Answered with a status the expectation names neither as success nor as refusal.
    pub unexpected: u64,
    /// Stopped by Ctrl-C before an answer.
    pub cancelled: u64,
    /// Client-side violations, by [`Violation::index`].
    pub violations: [u64; VIOLATIONS],
    /// Violations found beyond the client's view (upstream, rate-limit windows).
    pub found: [u64; VIOLATIONS],
    /// No answer, by [`ErrorKind::index`].
    pub errors: [u64; ERRORS],
    /// HTTP status → count.
    pub statuses: Vec<(u16, u64)>,
    /// Requests refused at the TLS layer (an alert, or a close during the handshake).
    pub tls_rejected: u64,
    /// `tls_reject` requests whose new connection was closed before the first answer.
    pub tls_closed: u64,
    /// Scheduled requests never sent (the phase ended first), not part of `sent`.
    pub unsent: u64,
    /// Requests retried once on a fresh connection because the kept-alive one was closed by
    /// the peer before any response byte (each is still one request in `sent`).
    pub stale_retries: u64,
    /// Earliest error by kind, µs since the run start ([`NEVER`]: none).
    pub first_error_us: [u64; ERRORS],
    /// Latest error of any kind, µs since the run start ([`NEVER`]: none).
    pub last_error_us: u64,
    /// Latest answer (or TLS refusal), µs since the run start ([`NEVER`]: none).
    pub last_answer_us: u64,
    /// Replayed requests with a recorded answer, by [`ReplayClass::index`]: the same status,
    /// a different one of the same class, or a verdict flipped (2xx/3xx ⇄ 401/403).
    pub replay: [u64; 3],
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            sent: 0,
            completed: 0,
            passed: 0,
            denied: 0,
            limited: 0,
            outage_denied: 0,
            unexpected: 0,
            cancelled: 0,
            violations: [0; VIOLATIONS],
            found: [0; VIOLATIONS],
            errors: [0; ERRORS],
            statuses: Vec::new(),
            tls_rejected: 0,
            tls_closed: 0,
            unsent: 0,
            stale_retries: 0,
            replay: [0; 3],
            first_error_us: [NEVER; ERRORS],
            last_error_us: NEVER,
            last_answer_us: NEVER,
        }
    }
}

fn max_time(a: u64, b: u64) -> u64 {
    match (a, b) {
        (NEVER, x) | (x, NEVER) => x,
        (a, b) => a.max(b),
    }
}

impl Counts {
    /// Adds `o` into `self`, saturating: a count from a hostile shard file must not wrap
    /// its leaks to zero.
    pub fn add(&mut self, o: &Counts) {
        self.sent = self.sent.saturating_add(o.sent);
        self.completed = self.completed.saturating_add(o.completed);
        self.passed = self.passed.saturating_add(o.passed);
        self.denied = self.denied.saturating_add(o.denied);
        self.limited = self.limited.saturating_add(o.limited);
        self.outage_denied = self.outage_denied.saturating_add(o.outage_denied);
        self.unexpected = self.unexpected.saturating_add(o.unexpected);
        self.cancelled = self.cancelled.saturating_add(o.cancelled);
        self.tls_rejected = self.tls_rejected.saturating_add(o.tls_rejected);
        self.tls_closed = self.tls_closed.saturating_add(o.tls_closed);
        self.unsent = self.unsent.saturating_add(o.unsent);
        self.stale_retries = self.stale_retries.saturating_add(o.stale_retries);
        for (a, b) in self.violations.iter_mut().zip(o.violations) {
            *a = a.saturating_add(b);
        }
        for (a, b) in self.found.iter_mut().zip(o.found) {
            *a = a.saturating_add(b);
        }
        for (a, b) in self.replay.iter_mut().zip(o.replay) {
            *a = a.saturating_add(b);
        }
        for (a, b) in self.errors.iter_mut().zip(o.errors) {
            *a = a.saturating_add(b);
        }
        for (a, b) in self.first_error_us.iter_mut().zip(o.first_error_us) {
            *a = (*a).min(b);
        }
        self.last_error_us = max_time(self.last_error_us, o.last_error_us);
        self.last_answer_us = max_time(self.last_answer_us, o.last_answer_us);
        for &(s, n) in &o.statuses {
            self.status(s, n);
        }
    }

    fn status(&mut self, s: u16, n: u64) {
        match self.statuses.iter_mut().find(|(x, _)| *x == s) {
            Some(e) => e.1 = e.1.saturating_add(n),
            None => {
                self.statuses.push((s, n));
                self.statuses.sort_unstable();
            }
        }
    }

    /// All violations (client-side and found).
    pub fn violation_total(&self) -> u64 {
        self.violations.iter().sum::<u64>() + self.found.iter().sum::<u64>()
    }

    /// Requests without an answer (transport errors and timeouts).
    pub fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Count of one violation kind (client-side and found).
    pub fn violation(&self, v: Violation) -> u64 {
        self.violations[v.index()] + self.found[v.index()]
    }

    /// Count of one error kind.
    pub fn error(&self, e: ErrorKind) -> u64 {
        self.errors[e.index()]
    }

    /// The sum of every client-side bucket; equals `sent` for any cell or sum of cells.
    pub fn bucket_total(&self) -> u64 {
        self.passed
            + self.denied
            + self.limited
            + self.outage_denied
            + self.unexpected
            + self.violations.iter().sum::<u64>()
            + self.error_total()
            + self.cancelled
    }
}

/// Histograms and counters of one key.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Counters.
    pub counts: Counts,
    /// Latency from the intended send time (µs).
    pub latency: Histogram<u64>,
    /// Service time from the actual send (µs).
    pub service: Histogram<u64>,
}

impl Default for Cell {
    fn default() -> Self {
        Cell { counts: Counts::default(), latency: histogram(), service: histogram() }
    }
}

impl Cell {
    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &Cell) {
        self.counts.add(&o.counts);
        let _ = self.latency.add(&o.latency);
        let _ = self.service.add(&o.service);
    }
}

/// The first few distinct messages of one (check, error kind), with counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Causes {
    /// Message → how many errors carried it (at most [`CAUSES_KEPT`] entries).
    pub kept: Vec<(Arc<str>, u64)>,
    /// Errors whose message was not kept (another message, or none given).
    pub other: u64,
}

impl Causes {
    /// Counts one error with `msg`.
    pub fn note(&mut self, msg: Option<&str>, n: u64) {
        let Some(msg) = msg else {
            self.other += n;
            return;
        };
        if let Some(e) = self.kept.iter_mut().find(|(m, _)| &**m == msg) {
            e.1 += n;
        } else if self.kept.len() < CAUSES_KEPT {
            self.kept.push((Arc::from(msg), n));
        } else {
            self.other += n;
        }
    }

    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &Causes) {
        for (m, n) in &o.kept {
            self.note(Some(m), *n);
        }
        self.other += o.other;
    }
}

/// Error causes of one check, by [`ErrorKind::index`].
pub type CheckCauses = [Causes; ERRORS];

/// One rate-limit window of one `limit` check (windows count from the run start, in units
/// of the check's `per`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// Requests sent in the window.
    pub sent: u64,
    /// Answered with a success status.
    pub allowed: u64,
    /// Answered 429.
    pub limited: u64,
    /// Refused with a declared outage status (a dependency was down): not the limiter.
    pub excused: u64,
    /// Phase of the first request in the window.
    pub phase: u16,
    /// Network condition of the first request in the window.
    pub condition: u16,
    /// Requests of more than one phase fell in it (it straddles a phase change).
    pub mixed: bool,
}

impl Window {
    /// Adds `o` (a later part of the same window) into `self`.
    pub fn add(&mut self, o: &Window) {
        if self.sent == 0 {
            *self = *o;
            return;
        }
        self.mixed |= o.mixed || (o.sent > 0 && o.phase != self.phase);
        self.sent += o.sent;
        self.allowed += o.allowed;
        self.limited += o.limited;
        self.excused += o.excused;
    }
}

/// Windows of every `limit` check: (check, window index) → counts.
pub type Windows = BTreeMap<(u16, u32), Window>;

/// What one request produced, ready to count.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Where it is counted.
    pub key: Key,
    /// The verdict.
    pub verdict: Verdict,
    /// HTTP status, when answered.
    pub status: Option<u16>,
    /// TLS refusal.
    pub tls_rejected: bool,
    /// A `tls_reject` request whose fresh connection closed before answering (a refusal).
    pub tls_closed: bool,
    /// done − intended, µs.
    pub latency_us: u64,
    /// done − sent, µs.
    pub service_us: u64,
    /// sent − intended, µs.
    pub lag_us: u64,
    /// done − run start, µs.
    pub at_us: u64,
    /// The rate-limit window, for `limit` checks.
    pub window: Option<u32>,
    /// What went wrong, when the request got no answer.
    pub cause: Option<&'a str>,
    /// Sent a second time on a fresh connection after a stale kept-alive one.
    pub stale_retry: bool,
    /// How a replayed request's answer compares with the recorded one.
    pub replay: Option<ReplayClass>,
}

/// Saturation of one phase as seen by one generator thread: ticks observed, and ticks at
/// which every one of its workers had a request in flight (the in-flight cap was reached).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Saturation {
    /// Ticks observed during the phase.
    pub ticks: u64,
    /// Of those, ticks with every worker busy.
    pub capped: u64,
}

/// What a recorder ships each tick: the cells it touched, moved out.
#[derive(Debug, Default)]
pub struct Delta {
    /// (flat key index, cell).
    pub cells: Vec<(usize, Cell)>,
    /// Generator lag (sent − intended), by phase.
    pub lag: Vec<(usize, Histogram<u64>)>,
    /// New error causes: (check, kind index, causes).
    pub causes: Vec<(usize, usize, Causes)>,
    /// Rate-limit windows touched.
    pub windows: Vec<((u16, u32), Window)>,
    /// Saturation by phase.
    pub saturation: Vec<(usize, Saturation)>,
}

/// A generator thread's recorder. Single-threaded; never shared.
#[derive(Debug)]
pub struct Recorder {
    dims: Dims,
    cells: Vec<Option<Box<Cell>>>,
    lag: Vec<Option<Histogram<u64>>>,
    touched: Vec<usize>,
    causes: BTreeMap<(usize, usize), Causes>,
    windows: BTreeMap<(u16, u32), Window>,
    saturation: BTreeMap<usize, Saturation>,
}

impl Recorder {
    /// A recorder for `dims`.
    pub fn new(dims: Dims) -> Self {
        Recorder {
            dims,
            cells: (0..dims.len()).map(|_| None).collect(),
            lag: (0..dims.phases).map(|_| None).collect(),
            touched: Vec::new(),
            causes: BTreeMap::new(),
            windows: BTreeMap::new(),
            saturation: BTreeMap::new(),
        }
    }

    fn cell(&mut self, key: Key) -> &mut Cell {
        let i = self.dims.index(key);
        match &mut self.cells[i] {
            Some(c) => c,
            slot => {
                self.touched.push(i);
                slot.insert(Box::default())
            }
        }
    }

    /// Counts one request.
    pub fn record(&mut self, s: &Sample<'_>) {
        let cell = self.cell(s.key);
        let c = &mut cell.counts;
        c.sent += 1;
        if let Some(st) = s.status {
            c.status(st, 1);
            if let Some(class) = s.replay {
                c.replay[class.index()] += 1;
            }
        }
        c.tls_rejected += u64::from(s.tls_rejected);
        c.tls_closed += u64::from(s.tls_closed);
        c.stale_retries += u64::from(s.stale_retry);
        let mut error = None;
        match s.verdict {
            Verdict::Pass => c.passed += 1,
            Verdict::Denied => c.denied += 1,
            Verdict::OutageDenied => c.outage_denied += 1,
            Verdict::Limited => c.limited += 1,
            Verdict::Unexpected => c.unexpected += 1,
            Verdict::Violation(v) => c.violations[v.index()] += 1,
            Verdict::Error(e) => {
                c.errors[e.index()] += 1;
                error = Some(e);
            }
        }
        match error {
            None => {
                c.completed += 1;
                c.last_answer_us = max_time(c.last_answer_us, s.at_us);
                let _ = cell.latency.record(s.latency_us.clamp(1, MAX_US));
                let _ = cell.service.record(s.service_us.clamp(1, MAX_US));
            }
            Some(e) => {
                let first = &mut c.first_error_us[e.index()];
                *first = (*first).min(s.at_us);
                c.last_error_us = max_time(c.last_error_us, s.at_us);
                self.causes.entry((usize::from(s.key.check), e.index())).or_default().note(s.cause, 1);
            }
        }
        if let Some(w) = s.window {
            let allowed = u64::from(s.verdict == Verdict::Pass);
            let limited = u64::from(s.verdict == Verdict::Limited);
            let excused = u64::from(s.verdict == Verdict::OutageDenied);
            let (phase, condition) = (s.key.phase, s.key.condition);
            let part = Window { sent: 1, allowed, limited, excused, phase, condition, mixed: false };
            self.windows.entry((s.key.check, w)).or_default().add(&part);
        }
        let phase = usize::from(s.key.phase);
        let _ = self.lag[phase].get_or_insert_with(histogram).record(s.lag_us.clamp(1, MAX_US));
    }

    /// Counts a request abandoned at shutdown.
    pub fn cancelled(&mut self, key: Key) {
        let c = &mut self.cell(key).counts;
        c.sent += 1;
        c.cancelled += 1;
    }

    /// Counts `n` scheduled requests that were never sent.
    pub fn unsent(&mut self, key: Key, n: u64) {
        if n > 0 {
            self.cell(key).counts.unsent += n;
        }
    }

    /// Notes one tick of `phase`: whether every worker of this thread was busy.
    pub fn tick(&mut self, phase: usize, capped: bool) {
        let s = self.saturation.entry(phase).or_default();
        s.ticks += 1;
        s.capped += u64::from(capped);
    }

    /// Moves everything recorded since the last call out.
    pub fn take(&mut self) -> Delta {
        let mut d = Delta::default();
        for i in self.touched.drain(..) {
            if let Some(c) = self.cells[i].take() {
                d.cells.push((i, *c));
            }
        }
        for (p, h) in self.lag.iter_mut().enumerate() {
            if let Some(h) = h.take() {
                d.lag.push((p, h));
            }
        }
        d.causes = std::mem::take(&mut self.causes).into_iter().map(|((c, k), v)| (c, k, v)).collect();
        d.windows = std::mem::take(&mut self.windows).into_iter().collect();
        d.saturation = std::mem::take(&mut self.saturation).into_iter().collect();
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(check: u16, verdict: Verdict, lat: u64) -> Sample<'static> {
        Sample {
            key: Key { phase: 1, condition: 0, check },
            verdict,
            status: Some(200),
            tls_rejected: false,
            tls_closed: false,
            latency_us: lat,
            service_us: lat / 2,
            lag_us: 3,
            at_us: lat,
            window: None,
            cause: None,
            stale_retry: false,
            replay: None,
        }
    }

    #[test]
    fn recorder_counts_by_key_and_ships_deltas() {
        let dims = Dims { phases: 2, conditions: 1, checks: 3 };
        let mut r = Recorder::new(dims);
        r.record(&sample(2, Verdict::Pass, 1000));
        r.record(&sample(2, Verdict::Violation(Violation::Leak), 2000));
        let mut t = sample(0, Verdict::Error(ErrorKind::Timeout), 9);
        t.cause = Some("no answer in 5s");
        r.record(&t);
        let d = r.take();
        assert_eq!(d.cells.len(), 2);
        let (i, c) = d.cells.iter().find(|(i, _)| dims.key(*i).check == 2).expect("cell");
        assert_eq!(dims.key(*i), Key { phase: 1, condition: 0, check: 2 });
        assert_eq!((c.counts.sent, c.counts.completed, c.counts.violation(Violation::Leak)), (2, 2, 1));
        assert_eq!(c.latency.len(), 2);
        assert_eq!(c.counts.last_answer_us, 2000);
        let (_, t) = d.cells.iter().find(|(i, _)| dims.key(*i).check == 0).expect("cell");
        assert_eq!((t.counts.completed, t.counts.error(ErrorKind::Timeout), t.latency.len()), (0, 1, 0));
        assert_eq!(t.counts.first_error_us[ErrorKind::Timeout.index()], 9);
        assert_eq!(t.counts.bucket_total(), t.counts.sent);
        assert_eq!(d.causes.len(), 1);
        assert_eq!(d.causes[0].2.kept[0].0.as_ref(), "no answer in 5s");
        // A second take starts empty.
        let again = r.take();
        assert!(again.cells.is_empty() && again.causes.is_empty());
    }

    #[test]
    fn causes_keep_the_first_few_distinct_messages() {
        let mut c = Causes::default();
        for i in 0..10 {
            c.note(Some(&format!("m{}", i % 6)), 1);
        }
        c.note(None, 2);
        assert_eq!(c.kept.len(), CAUSES_KEPT);
        assert_eq!(c.kept[0], (Arc::from("m0"), 2));
        assert_eq!(c.kept.iter().map(|(_, n)| n).sum::<u64>() + c.other, 12);
    }

    #[test]
    fn windows_note_a_phase_change() {
        let mut w = Window { sent: 2, allowed: 2, phase: 0, ..Default::default() };
        w.add(&Window { sent: 1, limited: 1, phase: 1, ..Default::default() });
        assert_eq!((w.sent, w.allowed, w.limited, w.mixed), (3, 2, 1, true));
    }
}
