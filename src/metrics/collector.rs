//! The collector: merges recorder deltas into run totals, publishes a [`Snapshot`] every
//! tick, and hands one-second interval histograms to an [`IntervalSink`] (the histogram log).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, watch};

use super::{Cell, CheckCauses, Counts, Delta, Dims, Saturation, Windows, histogram};
use crate::conformance::{Expect, UpstreamCounts};
use crate::plan::Plan;

/// Phase timing shared by the engine (writer) and the collector (reader).
#[derive(Debug)]
pub struct Progress {
    /// When the run started.
    pub run_start: Instant,
    phase: AtomicUsize,
    starts: Vec<OnceLock<Instant>>,
    ends: Vec<OnceLock<Instant>>,
}

impl Progress {
    /// Progress for `phases` phases starting at `run_start`.
    pub fn new(phases: usize, run_start: Instant) -> Self {
        Progress {
            run_start,
            phase: AtomicUsize::new(0),
            starts: (0..phases).map(|_| OnceLock::new()).collect(),
            ends: (0..phases).map(|_| OnceLock::new()).collect(),
        }
    }
    /// Marks phase `i` started at `at`; returns the instant actually recorded.
    pub fn start(&self, i: usize, at: Instant) -> Instant {
        let t = *self.starts[i].get_or_init(|| at);
        self.phase.fetch_max(i, Ordering::AcqRel);
        t
    }
    /// Marks phase `i` ended at `at`.
    pub fn end(&self, i: usize, at: Instant) {
        let _ = self.ends[i].set(at);
    }
    /// Start of phase `i`, if it has started.
    pub fn started(&self, i: usize) -> Option<Instant> {
        self.starts.get(i).and_then(|s| s.get().copied())
    }
    /// End of phase `i`, if it has ended.
    pub fn ended(&self, i: usize) -> Option<Instant> {
        self.ends.get(i).and_then(|s| s.get().copied())
    }
    /// The phase most recently started.
    pub fn current(&self) -> usize {
        self.phase.load(Ordering::Acquire)
    }
}

/// Findings made outside the client, per check and so far (the oracle upstream implements
/// it). Joined into snapshots with [`crate::conformance::upstream_found`], as the judge joins
/// them at the end, so live views show upstream-proven violations as they happen.
pub trait Upstream: Send + Sync {
    /// Cumulative counts per check, in check order.
    fn findings(&self) -> Vec<UpstreamCounts>;
    /// What was wrong with the headers that arrived, per check: one line per (header,
    /// problem) with its count (bounded).
    fn header_notes(&self) -> Vec<Vec<(String, u64)>>;
}

/// Receives interval histograms (the histogram log writer implements it).
pub trait IntervalSink: Send {
    /// One interval: start offset from the run start, length, latency, service time, and the
    /// client-side counters of the requests that completed in it.
    fn interval(&mut self, i: &Interval<'_>);
}

/// One interval of the run, as [`IntervalSink`] gets it.
#[derive(Debug)]
pub struct Interval<'a> {
    /// From the run start.
    pub start: Duration,
    /// Its length.
    pub length: Duration,
    /// Latency from the intended send time.
    pub latency: &'a Histogram<u64>,
    /// From the actual send.
    pub service: &'a Histogram<u64>,
    /// Counters of what was recorded in it.
    pub counts: &'a Counts,
}

/// What consumers see, every tick.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Since the run started.
    pub elapsed: Duration,
    /// Current phase index.
    pub phase: usize,
    /// Current phase name.
    pub phase_name: String,
    /// Into the current phase.
    pub phase_elapsed: Duration,
    /// Planned phase length, when known.
    pub phase_length: Option<Duration>,
    /// Network condition in force (phase and event).
    pub condition: String,
    /// Its index in the plan's conditions.
    pub condition_index: usize,
    /// Offered rate now (open loop).
    pub offered_rps: Option<f64>,
    /// The current phase replays a capture (its pace is the recording's, not a rate).
    pub replay: bool,
    /// Completions per second over the window.
    pub achieved_rps: f64,
    /// Latency over the last window (about one second).
    pub window_latency: Histogram<u64>,
    /// Run totals over every key.
    pub totals: Counts,
    /// Run totals per check.
    pub per_check: Vec<Counts>,
    /// Error causes per check (first few distinct messages per kind).
    pub causes: Vec<CheckCauses>,
    /// Header findings per check, from the upstream.
    pub header_notes: Vec<Vec<(String, u64)>>,
    /// Latency over the whole run so far.
    pub latency_total: Histogram<u64>,
    /// p99 latency per check over the run so far (µs; 0 before any sample).
    pub per_check_p99_us: Vec<u64>,
    /// Counters and latency per (phase, network condition) so far, at `phase × conditions +
    /// condition` (`None`: nothing recorded there yet).
    pub per_slot: Vec<Option<Box<Cell>>>,
    /// The run has finished.
    pub done: bool,
}

impl Snapshot {
    /// A snapshot of nothing (before any request), to build others from.
    pub fn empty() -> Self {
        Snapshot {
            elapsed: Duration::ZERO,
            phase: 0,
            phase_name: String::new(),
            phase_elapsed: Duration::ZERO,
            phase_length: None,
            condition: String::new(),
            condition_index: 0,
            offered_rps: None,
            replay: false,
            achieved_rps: 0.0,
            window_latency: histogram(),
            totals: Counts::default(),
            per_check: Vec::new(),
            causes: Vec::new(),
            header_notes: Vec::new(),
            latency_total: histogram(),
            per_check_p99_us: Vec::new(),
            per_slot: Vec::new(),
            done: false,
        }
    }
}

struct Tick {
    at: Instant,
    sent: u64,
    latency: Histogram<u64>,
}

/// The upstream whose findings snapshots join, with one expectation per check.
type UpstreamJoin = (Arc<dyn Upstream>, Arc<Vec<Expect>>);

/// Merges deltas into totals.
pub struct Collector {
    dims: Dims,
    plan: Arc<Plan>,
    progress: Arc<Progress>,
    /// Cumulative cells by flat key.
    pub cells: Vec<Option<Box<Cell>>>,
    /// Cumulative generator lag by phase.
    pub lag: Vec<Histogram<u64>>,
    window: VecDeque<Tick>,
    tick_latency: Histogram<u64>,
    tick_sent: u64,
    interval_latency: Histogram<u64>,
    interval_service: Histogram<u64>,
    interval_counts: Counts,
    interval_start: Duration,
    /// Where the current log interval ends, from the run start.
    interval_end: Duration,
    /// Intervals end on whole seconds of the wall clock (sharded runs).
    aligned: bool,
    /// Error causes per check.
    pub causes: Vec<CheckCauses>,
    /// Rate-limit windows of `limit` checks.
    pub windows: Windows,
    /// Saturation by phase (summed over generator threads).
    pub saturation: Vec<Saturation>,
    upstream: Option<UpstreamJoin>,
    timeline: Option<Arc<crate::timeline::Timeline>>,
}

/// Snapshot period.
pub const TICK: Duration = Duration::from_millis(250);
const WINDOW_TICKS: usize = 4;
const LOG_INTERVAL: Duration = Duration::from_secs(1);

impl Collector {
    /// A collector for a plan.
    pub fn new(dims: Dims, plan: Arc<Plan>, progress: Arc<Progress>) -> Self {
        Collector {
            dims,
            plan,
            progress,
            cells: (0..dims.phases * dims.conditions * dims.checks).map(|_| None).collect(),
            lag: (0..dims.phases).map(|_| histogram()).collect(),
            window: VecDeque::new(),
            tick_latency: histogram(),
            tick_sent: 0,
            interval_latency: histogram(),
            interval_service: histogram(),
            interval_counts: Counts::default(),
            interval_start: Duration::ZERO,
            interval_end: LOG_INTERVAL,
            aligned: false,
            causes: (0..dims.checks).map(|_| CheckCauses::default()).collect(),
            windows: Windows::new(),
            saturation: vec![Saturation::default(); dims.phases],
            upstream: None,
            timeline: None,
        }
    }

    /// Joins `u`'s findings into every snapshot (`expects`: one per check).
    pub fn with_upstream(mut self, u: Arc<dyn Upstream>, expects: Arc<Vec<Expect>>) -> Self {
        self.upstream = Some((u, expects));
        self
    }

    /// Ends log intervals on whole seconds of the wall clock: the first at `first` after the
    /// run start, then every [`LOG_INTERVAL`] — so the intervals of shards that started at
    /// different instants line up, and `gauntlet merge` adds them second by second.
    pub fn with_aligned_intervals(mut self, first: Duration) -> Self {
        self.interval_end = if first.is_zero() { LOG_INTERVAL } else { first.min(LOG_INTERVAL) };
        self.aligned = true;
        self
    }

    /// Reads the condition in force from `t` (phases and events) for every snapshot.
    pub fn with_timeline(mut self, t: Arc<crate::timeline::Timeline>) -> Self {
        self.timeline = Some(t);
        self
    }

    /// Key dimensions.
    pub fn dims(&self) -> Dims {
        self.dims
    }

    fn merge(&mut self, d: Delta) {
        for (i, cell) in d.cells {
            self.tick_sent += cell.counts.sent;
            let _ = self.tick_latency.add(&cell.latency);
            let _ = self.interval_latency.add(&cell.latency);
            let _ = self.interval_service.add(&cell.service);
            self.interval_counts.add(&cell.counts);
            match &mut self.cells[i] {
                Some(c) => c.add(&cell),
                slot => *slot = Some(Box::new(cell)),
            }
        }
        for (p, h) in d.lag {
            let _ = self.lag[p].add(&h);
        }
        for (check, kind, c) in d.causes {
            if let Some(slot) = self.causes.get_mut(check).and_then(|k| k.get_mut(kind)) {
                slot.add(&c);
            }
        }
        for (k, w) in d.windows {
            self.windows.entry(k).or_default().add(&w);
        }
        for (p, s) in d.saturation {
            if let Some(t) = self.saturation.get_mut(p) {
                t.ticks += s.ticks;
                t.capped += s.capped;
            }
        }
    }

    /// Runs until every sender is dropped, publishing snapshots and log intervals.
    pub async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Delta>,
        out: watch::Sender<Arc<Snapshot>>,
        sink: &mut dyn IntervalSink,
    ) -> Self {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                d = rx.recv() => match d {
                    Some(d) => self.merge(d),
                    None => break,
                },
                _ = tick.tick() => {
                    self.roll(sink, false);
                    let _ = out.send(Arc::new(self.snapshot(false)));
                }
            }
        }
        self.roll(sink, true);
        let _ = out.send(Arc::new(self.snapshot(true)));
        self
    }

    fn roll(&mut self, sink: &mut dyn IntervalSink, last: bool) {
        let now = Instant::now();
        let lat = std::mem::replace(&mut self.tick_latency, histogram());
        self.window.push_back(Tick { at: now, sent: std::mem::take(&mut self.tick_sent), latency: lat });
        while self.window.len() > WINDOW_TICKS {
            self.window.pop_front();
        }
        let since = now.saturating_duration_since(self.progress.run_start);
        if since >= self.interval_end || last {
            // An aligned interval ends on its boundary (what the generators reported up to
            // this tick is in it); the last one ends with the run.
            let end = if self.aligned && !last { self.interval_end } else { since };
            let len = end.saturating_sub(self.interval_start);
            if !self.interval_latency.is_empty() || self.interval_counts.sent > 0 || !last {
                sink.interval(&Interval {
                    start: self.interval_start,
                    length: len,
                    latency: &self.interval_latency,
                    service: &self.interval_service,
                    counts: &self.interval_counts,
                });
            }
            self.interval_latency.reset();
            self.interval_service.reset();
            self.interval_counts = Counts::default();
            self.interval_start = end;
            self.interval_end = if self.aligned {
                let mut next = self.interval_end;
                while next <= since {
                    next += LOG_INTERVAL;
                }
                next
            } else {
                since + LOG_INTERVAL
            };
        }
    }

    /// A snapshot of the totals now.
    pub fn snapshot(&self, done: bool) -> Snapshot {
        let now = Instant::now();
        let phase = self.progress.current().min(self.plan.phases.len().saturating_sub(1));
        let pstart = self.progress.started(phase).unwrap_or(self.progress.run_start);
        let phase_elapsed = now.saturating_duration_since(pstart);
        let pp = self.plan.phases.get(phase);
        let condition = match &self.timeline {
            Some(t) => usize::from(t.condition()),
            None => pp.map_or(0, |p| p.condition),
        };
        let mut window_latency = histogram();
        let mut sent = 0;
        for t in &self.window {
            let _ = window_latency.add(&t.latency);
            sent += t.sent;
        }
        let span = match (self.window.front(), self.window.back()) {
            (Some(a), Some(b)) if self.window.len() > 1 => b.at.duration_since(a.at) + TICK,
            _ => TICK,
        };
        let mut totals = Counts::default();
        let mut per_check = vec![Counts::default(); self.dims.checks];
        let mut latency_total = histogram();
        let mut check_latency: Vec<Histogram<u64>> = (0..self.dims.checks).map(|_| histogram()).collect();
        let mut per_slot: Vec<Option<Box<Cell>>> = (0..self.dims.phases * self.dims.conditions).map(|_| None).collect();
        for (i, c) in self.cells.iter().enumerate() {
            if let Some(c) = c {
                let key = self.dims.key(i);
                let k = key.check as usize;
                totals.add(&c.counts);
                per_check[k].add(&c.counts);
                let _ = latency_total.add(&c.latency);
                let _ = check_latency[k].add(&c.latency);
                let slot = usize::from(key.phase) * self.dims.conditions + usize::from(key.condition);
                match &mut per_slot[slot] {
                    Some(s) => s.add(c),
                    s => *s = Some(c.clone()),
                }
            }
        }
        let mut header_notes = Vec::new();
        if let Some((u, expects)) = &self.upstream {
            for ((c, up), e) in per_check.iter_mut().zip(u.findings()).zip(expects.iter()) {
                let found = crate::conformance::upstream_found(&c.violations, e, &up, c.sent);
                for (f, n) in c.found.iter_mut().zip(found) {
                    *f += n;
                }
            }
            totals.found = [0; super::VIOLATIONS];
            for c in &per_check {
                for (t, n) in totals.found.iter_mut().zip(c.found) {
                    *t += n;
                }
            }
            header_notes = u.header_notes();
        }
        let per_check_p99_us =
            check_latency.iter().map(|h| if h.is_empty() { 0 } else { h.value_at_quantile(0.99) }).collect();
        Snapshot {
            elapsed: now.saturating_duration_since(self.progress.run_start),
            phase,
            phase_name: pp.map(|p| p.name.clone()).unwrap_or_default(),
            phase_elapsed,
            phase_length: pp.and_then(|p| p.nominal_end()),
            condition: self.plan.conditions.get(condition).map(|c| c.name.clone()).unwrap_or_default(),
            condition_index: condition,
            offered_rps: if done { None } else { pp.and_then(|p| p.offered_rate(phase_elapsed)) },
            replay: pp.is_some_and(|p| p.pace == crate::plan::Pace::Replay),
            achieved_rps: sent as f64 / span.as_secs_f64(),
            window_latency,
            totals,
            per_check,
            causes: self.causes.clone(),
            header_notes,
            latency_total,
            per_check_p99_us,
            per_slot,
            done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::Violation;

    struct Fake;
    impl Upstream for Fake {
        fn findings(&self) -> Vec<UpstreamCounts> {
            vec![
                UpstreamCounts { arrivals: 3, leaks: 3, spoofed: 0, missing: 0 },
                UpstreamCounts { arrivals: 9, leaks: 0, spoofed: 5, missing: 1 },
            ]
        }
        fn header_notes(&self) -> Vec<Vec<(String, u64)>> {
            vec![vec![], vec![("x-forwarded-user: forged value arrived".into(), 5)]]
        }
    }

    #[test]
    fn snapshots_join_upstream_findings_live() {
        let dims = Dims { phases: 1, conditions: 1, checks: 2 };
        let progress = Arc::new(Progress::new(1, Instant::now()));
        let expects = Arc::new(vec![Expect::Deny { statuses: vec![403] }, Expect::allow()]);
        let mut c = Collector::new(dims, Arc::new(Plan::default()), progress).with_upstream(Arc::new(Fake), expects);
        // The client saw 2 leaks on check 0; the oracle saw 3 arrivals: counted once, as 3.
        let mut cell = Cell::default();
        cell.counts.sent = 4;
        cell.counts.violations[Violation::Leak.index()] = 2;
        c.merge(Delta { cells: vec![(0, cell)], ..Default::default() });
        let s = c.snapshot(false);
        assert_eq!(s.per_check[0].violation(Violation::Leak), 3);
        assert_eq!(s.per_check[1].violation(Violation::SpoofedHeader), 5);
        assert_eq!(s.per_check[1].violation(Violation::MissingIdentity), 1);
        assert_eq!(s.totals.violation_total(), 9);
        assert_eq!(s.header_notes[1][0].1, 5);
    }
}
