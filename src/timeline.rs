//! The network timeline of a run: which condition is in force on which link, and when.
//!
//! Conditions come from two places: a phase's `network:` (the client link, for the whole
//! phase) and timed `events:` (any link, from `at` for `for`, counted from the start of the
//! run with paused time left out). The timeline puts each in force on its link's
//! [`Switch`] and keeps one number current — the condition label — that the generator reads
//! (one relaxed atomic load) when it sends a request: every counter and histogram is keyed by
//! the condition in force at the *send*. An event with an `outage` gets a recovery window
//! (`EVENT:recovery`, `grace` long) after it ends, and the timeline measures **recovery
//! time**: from the end of the event to the completion of the first allow-class request
//! sent after it that succeeded.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::metrics::Progress;
use crate::netem::{Impairment, Switch};
use crate::plan::Plan;
use crate::scenario::CLIENT_LINK;

/// How often the timeline looks at the clock and the pause switch between events.
const POLL: Duration = Duration::from_millis(20);

/// Event state: `None`, or `(event, in its recovery window)`.
type EventState = Option<(usize, bool)>;

/// The run's network timeline.
#[derive(Debug)]
pub struct Timeline {
    plan: Arc<Plan>,
    /// Link name → switch (the client link and each dependency link that exists).
    links: Vec<(String, Arc<Switch>)>,
    /// (phase, event state) — changed rarely, under this lock.
    state: Mutex<(usize, EventState)>,
    current: AtomicU16,
    /// Per event: when it ended (ns after `base`), 0 = not yet.
    ended_ns: Vec<AtomicU64>,
    /// Per event: µs from its end to the first allow-class success sent after it; MAX = none.
    recovery_us: Vec<AtomicU64>,
    /// Event index + 1 whose recovery is still to be seen; 0 = none.
    awaiting: AtomicUsize,
    base: Instant,
}

impl Timeline {
    /// A timeline for `plan` driving `links` (name → switch).
    pub fn new(plan: Arc<Plan>, links: Vec<(String, Arc<Switch>)>) -> Self {
        let n = plan.events.len();
        let t = Timeline {
            links,
            state: Mutex::new((0, None)),
            current: AtomicU16::new(0),
            ended_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
            recovery_us: (0..n).map(|_| AtomicU64::new(u64::MAX)).collect(),
            awaiting: AtomicUsize::new(0),
            base: Instant::now(),
            plan,
        };
        t.apply(0, None);
        t
    }

    /// The condition in force now (an index into `Plan::conditions`).
    #[inline]
    pub fn condition(&self) -> u16 {
        self.current.load(Ordering::Relaxed)
    }

    /// Phase `i` starts: its own condition goes in force under any running event.
    pub fn enter_phase(&self, i: usize) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0 = i;
        self.apply(st.0, st.1);
    }

    fn set_event(&self, ev: EventState) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.1 == ev {
            return;
        }
        st.1 = ev;
        self.apply(st.0, ev);
    }

    /// Puts the switches and the label in line with (phase, event).
    fn apply(&self, phase: usize, ev: EventState) {
        let active = ev.and_then(|(e, rec)| (!rec).then(|| &self.plan.events[e]));
        for (name, switch) in &self.links {
            let imp = match active {
                Some(e) if e.link == *name => e.impairment.clone(),
                _ if name == CLIENT_LINK => {
                    self.plan.phases.get(phase).and_then(|p| p.network.clone()).unwrap_or_default()
                }
                _ => Impairment::default(),
            };
            switch.set(imp);
        }
        self.current.store(self.plan.label(phase, ev) as u16, Ordering::Relaxed);
    }

    /// An allow-class request sent at `sent` succeeded at `done`: the first after an event
    /// ended gives that event's recovery time. One relaxed load when nothing is awaited.
    #[inline]
    pub fn allow_succeeded(&self, sent: Instant, done: Instant) {
        let w = self.awaiting.load(Ordering::Relaxed);
        if w == 0 {
            return;
        }
        let e = w - 1;
        let ended = Duration::from_nanos(self.ended_ns[e].load(Ordering::Acquire));
        if ended.is_zero() || sent < self.base + ended {
            return;
        }
        if self.awaiting.compare_exchange(w, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            let us = done.saturating_duration_since(self.base + ended).as_micros();
            self.recovery_us[e].store(u64::try_from(us).unwrap_or(u64::MAX - 1), Ordering::Release);
        }
    }

    /// Whether event `e` started.
    pub fn fired(&self, e: usize) -> bool {
        self.ended_ns[e].load(Ordering::Acquire) != 0 || self.state_event() == Some(e)
    }

    fn state_event(&self) -> Option<usize> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1.map(|(e, _)| e)
    }

    /// Event `e`'s recovery time, once seen.
    pub fn recovery(&self, e: usize) -> Option<Duration> {
        match self.recovery_us[e].load(Ordering::Acquire) {
            u64::MAX => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Drives the events from the start of the first phase until the run ends: each starts
    /// at `at` of run time (paused time left out), lasts `for`, then its recovery window.
    pub async fn run(self: Arc<Self>, progress: Arc<Progress>, pause: Arc<AtomicBool>, stop: CancellationToken) {
        if self.plan.events.is_empty() {
            return;
        }
        let start = loop {
            if let Some(t) = progress.started(0) {
                break t;
            }
            tokio::select! { _ = tokio::time::sleep(POLL) => {}, _ = stop.cancelled() => return }
        };
        let mut paused = Duration::ZERO;
        let mut last = Instant::now();
        loop {
            let now = Instant::now();
            if pause.load(Ordering::Acquire) {
                paused += now.saturating_duration_since(last);
            }
            last = now;
            let t = now.saturating_duration_since(start).saturating_sub(paused);
            let mut ev = None;
            for (i, e) in self.plan.events.iter().enumerate() {
                let end = e.at + e.duration;
                if t >= e.at && t < end {
                    ev = Some((i, false));
                } else if t >= end {
                    if self.ended_ns[i].load(Ordering::Acquire) == 0 && self.state_event() == Some(i) {
                        // Ends now: recovery is measured from here.
                        let ns = u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(1);
                        self.ended_ns[i].store(ns.max(1), Ordering::Release);
                        self.awaiting.store(i + 1, Ordering::Release);
                    }
                    let grace = e.outage.as_ref().map_or(Duration::ZERO, |o| o.grace);
                    if t < end + grace && self.ended_ns[i].load(Ordering::Acquire) != 0 {
                        ev = Some((i, true));
                    }
                }
            }
            self.set_event(ev);
            // Sleep until the next boundary or the next look at the pause switch.
            let next = self
                .plan
                .events
                .iter()
                .flat_map(|e| {
                    let end = e.at + e.duration;
                    [e.at, end, end + e.outage.as_ref().map_or(Duration::ZERO, |o| o.grace)]
                })
                .filter(|b| *b > t)
                .min();
            let wait = next.map_or(POLL, |b| (b - t).min(POLL));
            tokio::select! { _ = tokio::time::sleep(wait) => {}, _ = stop.cancelled() => return }
        }
    }
}
