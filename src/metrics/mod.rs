//! Measurements: per-thread recorders on the hot path, one collector that merges them, and
//! the snapshots every consumer (progress line, dashboard, report) reads.
//!
//! No per-request records: HdrHistograms (µs, 3 significant digits) and counters keyed by
//! (phase, network condition, check). Memory is flat in run length. The hot path takes no
//! lock: each generator thread owns its [`Recorder`] and ships a [`Delta`] every tick.

mod collector;

use hdrhistogram::Histogram;

pub use collector::{Collector, IntervalSink, Progress, Snapshot, TICK, Upstream};

use crate::conformance::{ErrorKind, Verdict, Violation};

/// Largest latency recorded (values above are clamped): one hour in µs.
pub const MAX_US: u64 = 3_600_000_000;

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
    fn len(&self) -> usize {
        self.phases * self.conditions * self.checks
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

/// Counters of one cell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Requests attempted.
    pub sent: u64,
    /// Requests with a verdict (answered or refused at TLS).
    pub completed: u64,
    /// Allowed and answered as expected.
    pub passed: u64,
    /// Denied as expected.
    pub denied: u64,
    /// 429 on `limit` checks.
    pub limited: u64,
    /// Stopped by Ctrl-C before an answer.
    pub cancelled: u64,
    /// By [`Violation::index`].
    pub violations: [u64; 7],
    /// By [`ErrorKind::index`].
    pub errors: [u64; 6],
    /// HTTP status → count.
    pub statuses: Vec<(u16, u64)>,
    /// Requests refused at the TLS layer.
    pub tls_rejected: u64,
    /// Refused with a declared outage status while a dependency was down (not violations).
    pub outage_denied: u64,
}

impl Counts {
    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.completed += o.completed;
        self.passed += o.passed;
        self.denied += o.denied;
        self.limited += o.limited;
        self.cancelled += o.cancelled;
        self.tls_rejected += o.tls_rejected;
        self.outage_denied += o.outage_denied;
        for (a, b) in self.violations.iter_mut().zip(o.violations) {
            *a += b;
        }
        for (a, b) in self.errors.iter_mut().zip(o.errors) {
            *a += b;
        }
        for &(s, n) in &o.statuses {
            self.status(s, n);
        }
    }

    fn status(&mut self, s: u16, n: u64) {
        match self.statuses.iter_mut().find(|(x, _)| *x == s) {
            Some(e) => e.1 += n,
            None => {
                self.statuses.push((s, n));
                self.statuses.sort_unstable();
            }
        }
    }

    /// All violations.
    pub fn violation_total(&self) -> u64 {
        self.violations.iter().sum()
    }

    /// All transport errors and timeouts.
    pub fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Count of one violation kind.
    pub fn violation(&self, v: Violation) -> u64 {
        self.violations[v.index()]
    }

    /// Count of one error kind.
    pub fn error(&self, e: ErrorKind) -> u64 {
        self.errors[e.index()]
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

/// What one request produced, ready to count.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Where it is counted.
    pub key: Key,
    /// The verdict.
    pub verdict: Verdict,
    /// HTTP status, when answered.
    pub status: Option<u16>,
    /// TLS refusal.
    pub tls_rejected: bool,
    /// done − intended, µs.
    pub latency_us: u64,
    /// done − sent, µs.
    pub service_us: u64,
    /// sent − intended, µs.
    pub lag_us: u64,
}

/// What a recorder ships each tick: the cells it touched, moved out.
#[derive(Debug, Default)]
pub struct Delta {
    /// (flat key index, cell).
    pub cells: Vec<(usize, Cell)>,
    /// Generator lag (sent − intended), by phase.
    pub lag: Vec<(usize, Histogram<u64>)>,
}

/// A generator thread's recorder. Single-threaded; never shared.
#[derive(Debug)]
pub struct Recorder {
    dims: Dims,
    cells: Vec<Option<Box<Cell>>>,
    lag: Vec<Option<Histogram<u64>>>,
    touched: Vec<usize>,
}

impl Recorder {
    /// A recorder for `dims`.
    pub fn new(dims: Dims) -> Self {
        Recorder {
            dims,
            cells: (0..dims.len()).map(|_| None).collect(),
            lag: (0..dims.phases).map(|_| None).collect(),
            touched: Vec::new(),
        }
    }

    /// Counts one request.
    pub fn record(&mut self, s: &Sample) {
        let i = self.dims.index(s.key);
        let cell = match &mut self.cells[i] {
            Some(c) => c,
            slot => {
                self.touched.push(i);
                slot.insert(Box::default())
            }
        };
        let c = &mut cell.counts;
        c.sent += 1;
        if let Some(st) = s.status {
            c.status(st, 1);
        }
        if s.tls_rejected {
            c.tls_rejected += 1;
        }
        let completed = match s.verdict {
            Verdict::Pass => {
                c.passed += 1;
                true
            }
            Verdict::Denied => {
                c.denied += 1;
                true
            }
            Verdict::OutageDenied => {
                c.outage_denied += 1;
                true
            }
            Verdict::Limited => {
                c.limited += 1;
                true
            }
            Verdict::Violation(v) => {
                c.violations[v.index()] += 1;
                true
            }
            Verdict::Error(e) => {
                c.errors[e.index()] += 1;
                // An unexpected status is still an answer with a latency.
                e == ErrorKind::Status
            }
        };
        if completed {
            c.completed += 1;
            let _ = cell.latency.record(s.latency_us.clamp(1, MAX_US));
            let _ = cell.service.record(s.service_us.clamp(1, MAX_US));
        }
        let phase = usize::from(s.key.phase);
        let _ = self.lag[phase].get_or_insert_with(histogram).record(s.lag_us.clamp(1, MAX_US));
    }

    /// Counts a request abandoned at shutdown.
    pub fn cancelled(&mut self, key: Key) {
        let i = self.dims.index(key);
        if self.cells[i].is_none() {
            self.touched.push(i);
        }
        let cell = self.cells[i].get_or_insert_with(Box::default);
        cell.counts.sent += 1;
        cell.counts.cancelled += 1;
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
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(check: u16, verdict: Verdict, lat: u64) -> Sample {
        Sample {
            key: Key { phase: 1, condition: 0, check },
            verdict,
            status: Some(200),
            tls_rejected: false,
            latency_us: lat,
            service_us: lat / 2,
            lag_us: 3,
        }
    }

    #[test]
    fn recorder_counts_by_key_and_ships_deltas() {
        let dims = Dims { phases: 2, conditions: 1, checks: 3 };
        let mut r = Recorder::new(dims);
        r.record(&sample(2, Verdict::Pass, 1000));
        r.record(&sample(2, Verdict::Violation(Violation::Leak), 2000));
        r.record(&sample(0, Verdict::Error(ErrorKind::Timeout), 9));
        let d = r.take();
        assert_eq!(d.cells.len(), 2);
        let (i, c) = d.cells.iter().find(|(i, _)| dims.key(*i).check == 2).expect("cell");
        assert_eq!(dims.key(*i), Key { phase: 1, condition: 0, check: 2 });
        assert_eq!((c.counts.sent, c.counts.completed, c.counts.violation(Violation::Leak)), (2, 2, 1));
        assert_eq!(c.latency.len(), 2);
        let (_, t) = d.cells.iter().find(|(i, _)| dims.key(*i).check == 0).expect("cell");
        assert_eq!((t.counts.completed, t.counts.error(ErrorKind::Timeout), t.latency.len()), (0, 1, 0));
        // A second take starts empty.
        assert!(r.take().cells.is_empty());
    }
}
