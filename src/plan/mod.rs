//! Scenario phases → send schedules: when each request is *intended* to leave and which
//! check it carries.
//!
//! Pure: no IO, no clock. A schedule is random-access (`offset(i)`), so any number of
//! workers on any number of threads claim request indices from one atomic counter and
//! agree on every intended send time without talking to each other.

use std::time::Duration;

use crate::scenario::{Load, Phase, Scenario};

/// Every phase of a run, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Phases.
    pub phases: Vec<PhasePlan>,
    /// Network conditions; index 0 is the unimpaired link, then the phases' own conditions,
    /// then one per (phase condition, event) and, for events with an outage, its recovery.
    pub conditions: Vec<Condition>,
    /// Timed events, in start order.
    pub events: Vec<crate::scenario::Event>,
    /// `labels[(pc * events + e) * 2 + recovering]`: the condition index of event `e` in force
    /// (or in its recovery window) on top of phase condition `pc`.
    labels: Vec<usize>,
}

/// One label a request can carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Name (`unimpaired`, a phase's `network.name`, an event's name, `PHASE+EVENT`,
    /// `EVENT:recovery`).
    pub name: String,
    /// Statuses a conforming gateway may refuse with while this condition is in force.
    pub outage: Option<Vec<u16>>,
    /// The event this condition belongs to.
    pub event: Option<usize>,
    /// The window after its event ended (`EVENT:recovery`).
    pub recovery: bool,
}

/// The name of condition 0.
pub use crate::scenario::UNIMPAIRED;

/// How a phase paces its requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Open loop: intended send times come from the arrival process.
    Open(Arrival),
    /// Closed loop: N users, each sends when its previous request completes.
    Closed {
        /// Users.
        users: u32,
    },
    /// A replayed capture: the engine takes each request and its intended offset from the
    /// phase's feed, not from an arrival process.
    Replay,
}

/// An arrival process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrival {
    /// `rate` requests per second.
    Constant {
        /// Requests per second.
        rate: f64,
    },
    /// Linear ramp from `from` to `to` requests per second over `over`.
    Ramp {
        /// Starting rate.
        from: f64,
        /// Final rate.
        to: f64,
        /// Ramp length.
        over: Duration,
    },
}

impl Arrival {
    /// Offset from the phase start at which request `i` (0-based) is intended.
    pub fn offset(&self, i: u64) -> Duration {
        let n = i as f64;
        let secs = match *self {
            Arrival::Constant { rate } => n / rate,
            Arrival::Ramp { from, to, over } => {
                // N(t) = from·t + a·t², a = (to − from) / 2T; solve N(t) = n in a stable form.
                let a = (to - from) / (2.0 * over.as_secs_f64());
                let disc = from * from + 4.0 * a * n;
                if disc < 0.0 { f64::INFINITY } else { 2.0 * n / (from + disc.sqrt()) }
            }
        };
        if secs >= 0.0 { Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX) } else { Duration::MAX }
    }

    /// Instantaneous rate at `t` into the phase.
    pub fn rate_at(&self, t: Duration) -> f64 {
        match *self {
            Arrival::Constant { rate } => rate,
            Arrival::Ramp { from, to, over } => {
                let f = (t.as_secs_f64() / over.as_secs_f64()).clamp(0.0, 1.0);
                from + (to - from) * f
            }
        }
    }

    /// Requests intended within the first `t` of the phase.
    pub fn count_until(&self, t: Duration) -> f64 {
        let s = t.as_secs_f64();
        match *self {
            Arrival::Constant { rate } => rate * s,
            Arrival::Ramp { from, to, over } => from * s + (to - from) * s * s / (2.0 * over.as_secs_f64()),
        }
    }
}

/// One phase's schedule.
#[derive(Debug, Clone)]
pub struct PhasePlan {
    /// Name.
    pub name: String,
    /// Pacing.
    pub pace: Pace,
    /// Time bound.
    pub duration: Option<Duration>,
    /// Count bound.
    pub requests: Option<u64>,
    /// Index into `Plan::conditions` in force during the phase.
    pub condition: usize,
    /// What the client link does during the phase (`None`: unimpaired).
    pub network: Option<crate::netem::Impairment>,
    wheel: Vec<u16>,
    /// Per wheel position: how many earlier positions carry the same check.
    rank: Vec<u32>,
    /// Per check index: how many positions of the wheel carry it.
    occurrences: Vec<u32>,
}

impl PhasePlan {
    /// The check carried by request `i`: a smooth weighted round-robin over the mix, so
    /// every window of the phase sees the mix's proportions.
    pub fn check(&self, i: u64) -> usize {
        usize::from(self.wheel[(i % self.wheel.len() as u64) as usize])
    }

    /// Which occurrence of its check request `i` is (0 for the check's first request in the
    /// phase): a per-check sequence, so a check's requests can round-robin over an identity
    /// pool without any shared counter.
    pub fn nth(&self, i: u64) -> u64 {
        let len = self.wheel.len() as u64;
        let pos = (i % len) as usize;
        let occ = self.occurrences.get(usize::from(self.wheel[pos])).copied().unwrap_or(1);
        (i / len) * u64::from(occ) + u64::from(self.rank[pos])
    }

    /// Open loop: the intended offset of request `i`, or `None` once the phase is over.
    /// Closed loop: `None` once the count bound is reached (time bounds are checked live).
    pub fn slot(&self, i: u64) -> Option<Option<Duration>> {
        if self.requests.is_some_and(|n| i >= n) {
            return None;
        }
        match self.pace {
            Pace::Closed { .. } => Some(None),
            // Replayed requests come from the phase's feed.
            Pace::Replay => None,
            Pace::Open(a) => {
                let off = a.offset(i);
                if self.duration.is_some_and(|d| off >= d) || off == Duration::MAX { None } else { Some(Some(off)) }
            }
        }
    }

    /// When an open-loop phase ends, relative to its start (known up front). Closed-loop
    /// phases end at their duration or when their last request completes.
    pub fn nominal_end(&self) -> Option<Duration> {
        match self.pace {
            Pace::Open(a) => {
                let by_count = self.requests.map(|n| a.offset(n.saturating_sub(1)) + Duration::from_micros(1));
                match (self.duration, by_count) {
                    (Some(d), Some(c)) => Some(d.min(c)),
                    (d, c) => d.or(c),
                }
            }
            Pace::Closed { .. } | Pace::Replay => self.duration,
        }
    }

    /// Offered rate at `t` into the phase (open loop only).
    pub fn offered_rate(&self, t: Duration) -> Option<f64> {
        match self.pace {
            Pace::Open(a) => Some(a.rate_at(t)),
            Pace::Closed { .. } | Pace::Replay => None,
        }
    }

    /// Requests the phase intends to send, when that is known up front.
    pub fn planned_requests(&self) -> Option<u64> {
        match self.pace {
            Pace::Open(a) => {
                let by_time = self.duration.map(|d| a.count_until(d).ceil() as u64);
                match (by_time, self.requests) {
                    (Some(t), Some(r)) => Some(t.min(r)),
                    (t, r) => t.or(r),
                }
            }
            Pace::Closed { .. } | Pace::Replay => self.requests,
        }
    }

    /// Whether the phase is open-loop and bounded by its duration (not only by a count): it
    /// stops sending at its duration, and what its schedule held but did not send is
    /// counted `unsent`. A count-bounded phase sends its whole schedule, late if need be.
    pub fn cut_at_duration(&self) -> bool {
        match (self.pace, self.duration) {
            (Pace::Open(a), Some(d)) => self.requests.is_none_or(|n| n == 0 || a.offset(n - 1) >= d),
            _ => false,
        }
    }

    /// Open loop: how many requests the schedule holds (the indices `slot` accepts).
    pub fn scheduled(&self) -> Option<u64> {
        let Pace::Open(a) = self.pace else { return None };
        let by_time = self.duration.map(|d| {
            // The first index due at or after `d`, from the closed form, corrected for rounding.
            let mut n = a.count_until(d).ceil().clamp(0.0, (u64::MAX / 4) as f64) as u64;
            while n > 0 && a.offset(n - 1) >= d {
                n -= 1;
            }
            while a.offset(n) < d {
                n += 1;
            }
            n
        });
        match (by_time, self.requests) {
            (Some(t), Some(r)) => Some(t.min(r)),
            (t, r) => t.or(r),
        }
    }

    /// How many of the request indices `from..to` carry each check: `(check, count)` for every
    /// check with a non-zero count.
    pub fn checks_in(&self, from: u64, to: u64) -> Vec<(usize, u64)> {
        let len = self.wheel.len() as u64;
        if to <= from || len == 0 {
            return Vec::new();
        }
        let mut counts = std::collections::BTreeMap::<usize, u64>::new();
        let (full, rest_from) = ((to - from) / len, from + (to - from) / len * len);
        for (pos, c) in self.wheel.iter().enumerate() {
            let pos = pos as u64;
            // Indices ≡ pos (mod len) in rest_from..to.
            let first = rest_from + (pos + len - rest_from % len) % len;
            let extra = u64::from(first < to);
            *counts.entry(usize::from(*c)).or_default() += full + extra;
        }
        counts.into_iter().filter(|(_, n)| *n > 0).collect()
    }

    /// Workers a closed-loop phase needs.
    pub fn users(&self) -> Option<u32> {
        match self.pace {
            Pace::Closed { users } => Some(users),
            Pace::Open(_) | Pace::Replay => None,
        }
    }
}

/// One generator's part of a sharded run: shard `index` of `count` sends the requests
/// `k ≡ index (mod count)` of every phase's global schedule (and runs the closed-loop users
/// `u ≡ index (mod count)`), so the union of all shards is the one-machine schedule — same
/// rate, same intended times, same checks, same pool members. `Shard::WHOLE` is a run on
/// one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u32,
    /// Shards in the run (≥ 1).
    pub count: u32,
}

impl Shard {
    /// The whole schedule.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// The global request index of this shard's `j`-th claim.
    pub fn global(self, j: u64) -> u64 {
        j.saturating_mul(u64::from(self.count)).saturating_add(u64::from(self.index))
    }

    /// How many of the global indices `0..n` are this shard's.
    pub fn share(self, n: u64) -> u64 {
        let (i, c) = (u64::from(self.index), u64::from(self.count));
        if n > i { (n - i - 1) / c + 1 } else { 0 }
    }

    /// How many of the global indices `from..to` are this shard's.
    pub fn share_in(self, from: u64, to: u64) -> u64 {
        self.share(to).saturating_sub(self.share(from))
    }
}

impl PhasePlan {
    /// Like [`PhasePlan::checks_in`], over the global indices `from..to` that are `shard`'s.
    pub fn checks_in_shard(&self, from: u64, to: u64, shard: Shard) -> Vec<(usize, u64)> {
        if shard.count <= 1 {
            return self.checks_in(from, to);
        }
        let (len, n) = (self.wheel.len() as u64, u64::from(shard.count));
        if to <= from || len == 0 {
            return Vec::new();
        }
        // Indices k with k ≡ pos (mod len) and k ≡ index (mod n) recur every lcm(len, n); the
        // first one of each wheel position is found within n / gcd steps of len.
        let lcm = len / gcd(len, n) * n;
        let mut counts = std::collections::BTreeMap::<usize, u64>::new();
        for (pos, c) in self.wheel.iter().enumerate() {
            let pos = pos as u64;
            let mut k = from + (pos + len - from % len) % len;
            let mut found = None;
            for _ in 0..n / gcd(len, n) {
                if k >= to {
                    break;
                }
                if k % n == u64::from(shard.index) {
                    found = Some(k);
                    break;
                }
                k += len;
            }
            if let Some(first) = found {
                *counts.entry(usize::from(*c)).or_default() += (to - 1 - first) / lcm + 1;
            }
        }
        counts.into_iter().filter(|(_, n)| *n > 0).collect()
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

/// Builds the plan for a validated scenario.
pub fn build(s: &Scenario) -> Plan {
    let plain = |name: &str| Condition { name: name.to_string(), outage: None, event: None, recovery: false };
    let mut conditions = vec![plain(UNIMPAIRED)];
    let phases = s
        .phases
        .iter()
        .map(|p| {
            let mut pp = phase(p);
            if let Some(n) = &p.network {
                pp.condition = match conditions.iter().position(|c| c.name == n.name) {
                    Some(i) => i,
                    None => {
                        conditions.push(plain(&n.name));
                        conditions.len() - 1
                    }
                };
                pp.network = Some(n.impairment.clone());
            }
            pp
        })
        .collect();
    let phase_conditions = conditions.len();
    let mut labels = Vec::with_capacity(phase_conditions * s.events.len() * 2);
    for pc in 0..phase_conditions {
        for (ei, e) in s.events.iter().enumerate() {
            let prefix = if pc == 0 { String::new() } else { format!("{}+", conditions[pc].name) };
            let outage = e.outage.as_ref().map(|o| o.statuses.clone());
            labels.push(conditions.len());
            conditions.push(Condition {
                name: format!("{prefix}{}", e.name),
                outage: outage.clone(),
                event: Some(ei),
                recovery: false,
            });
            labels.push(conditions.len());
            conditions.push(Condition {
                name: format!("{prefix}{}:recovery", e.name),
                outage,
                event: Some(ei),
                recovery: true,
            });
        }
    }
    Plan { phases, conditions, events: s.events.clone(), labels }
}

impl Default for Plan {
    /// No phases, no events: only the unimpaired condition.
    fn default() -> Self {
        Plan {
            phases: Vec::new(),
            conditions: vec![Condition { name: UNIMPAIRED.into(), outage: None, event: None, recovery: false }],
            events: Vec::new(),
            labels: Vec::new(),
        }
    }
}

impl Plan {
    /// Whether the client link is ever impaired (by a phase or an event).
    pub fn impaired(&self) -> bool {
        self.phases.iter().any(|p| p.network.is_some())
            || self.events.iter().any(|e| e.link == crate::scenario::CLIENT_LINK)
    }

    /// The condition in force: phase `phase`'s own, with event `event` (and whether it is
    /// in its recovery window) on top.
    pub fn label(&self, phase: usize, event: Option<(usize, bool)>) -> usize {
        let pc = self.phases.get(phase).map_or(0, |p| p.condition);
        match event {
            None => pc,
            Some((e, recovering)) => {
                let i = (pc * self.events.len() + e) * 2 + usize::from(recovering);
                self.labels.get(i).copied().unwrap_or(pc)
            }
        }
    }

    /// The outage statuses accepted under condition `c`.
    pub fn outage(&self, c: usize) -> Option<&[u16]> {
        self.conditions.get(c).and_then(|x| x.outage.as_deref())
    }
}

fn phase(p: &Phase) -> PhasePlan {
    let pace = match p.load {
        Load::Constant(rate) => Pace::Open(Arrival::Constant { rate }),
        Load::Ramp { from, to } => {
            Pace::Open(Arrival::Ramp { from, to, over: p.duration.unwrap_or(Duration::from_secs(1)) })
        }
        Load::Closed { users } => Pace::Closed { users },
        Load::Replay => Pace::Replay,
    };
    PhasePlan {
        name: p.name.clone(),
        pace,
        duration: p.duration,
        requests: p.requests,
        condition: 0,
        network: None,
        ..with_wheel(wheel(&p.mix))
    }
}

/// A phase shell around `wheel`, with the per-check ranks `nth` needs.
fn with_wheel(wheel: Vec<u16>) -> PhasePlan {
    let checks = wheel.iter().map(|c| usize::from(*c) + 1).max().unwrap_or(1);
    let mut occurrences = vec![0u32; checks];
    let rank = wheel
        .iter()
        .map(|c| {
            let o = &mut occurrences[usize::from(*c)];
            *o += 1;
            *o - 1
        })
        .collect();
    PhasePlan {
        name: String::new(),
        pace: Pace::Closed { users: 1 },
        duration: None,
        requests: None,
        condition: 0,
        network: None,
        wheel,
        rank,
        occurrences,
    }
}

/// Integer weights summing to about `RESOLUTION`, interleaved by smooth weighted round-robin.
fn wheel(mix: &[(usize, f64)]) -> Vec<u16> {
    const RESOLUTION: f64 = 10_000.0;
    let total: f64 = mix.iter().map(|(_, w)| w).sum();
    if mix.is_empty() || total <= 0.0 {
        return vec![0];
    }
    let weights: Vec<(u16, i64)> =
        mix.iter().map(|&(c, w)| (c as u16, ((w / total) * RESOLUTION).round().max(1.0) as i64)).collect();
    let sum: i64 = weights.iter().map(|(_, w)| w).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(sum as usize);
    for _ in 0..sum {
        let mut best = 0;
        for (j, (_, w)) in weights.iter().enumerate() {
            current[j] += w;
            if current[j] > current[best] {
                best = j;
            }
        }
        current[best] -= sum;
        out.push(weights[best].0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(a: Arrival, d: Option<u64>, n: Option<u64>) -> PhasePlan {
        PhasePlan {
            name: "p".into(),
            pace: Pace::Open(a),
            duration: d.map(Duration::from_secs),
            requests: n,
            condition: 0,
            network: None,
            ..with_wheel(vec![0])
        }
    }

    #[test]
    fn constant_rate_spaces_requests_evenly() {
        let a = Arrival::Constant { rate: 100.0 };
        assert_eq!(a.offset(0), Duration::ZERO);
        assert_eq!(a.offset(50), Duration::from_millis(500));
        let p = open(a, Some(2), None);
        assert_eq!(p.planned_requests(), Some(200));
        assert!(p.slot(199).is_some());
        assert!(p.slot(200).is_none());
    }

    #[test]
    fn an_offset_past_any_clock_is_the_end_of_time_not_a_panic() {
        // A claim past the close, mapped to a shard's global index, at a slow rate.
        let a = Arrival::Constant { rate: 0.5 };
        assert_eq!(a.offset(u64::MAX), Duration::MAX);
        assert!(open(a, None, None).slot(u64::MAX).is_none());
    }

    #[test]
    fn ramp_offsets_match_the_integrated_rate() {
        let a = Arrival::Ramp { from: 100.0, to: 300.0, over: Duration::from_secs(10) };
        // Over 10 s the ramp sends (100 + 300) / 2 * 10 = 2000 requests.
        assert!((a.count_until(Duration::from_secs(10)) - 2000.0).abs() < 1e-9);
        let t = a.offset(2000).as_secs_f64();
        assert!((t - 10.0).abs() < 1e-6, "{t}");
        // Inverse holds everywhere.
        for i in [1u64, 10, 500, 1999] {
            let back = a.count_until(a.offset(i));
            assert!((back - i as f64).abs() < 1e-6);
        }
        // A ramp down also inverts.
        let d = Arrival::Ramp { from: 300.0, to: 100.0, over: Duration::from_secs(10) };
        assert!((d.count_until(d.offset(1500)) - 1500.0).abs() < 1e-6);
    }

    #[test]
    fn duration_bounded_phases_know_their_schedule_and_are_cut() {
        let p = open(Arrival::Constant { rate: 100.0 }, Some(2), None);
        assert_eq!(p.scheduled(), Some(200));
        assert!(p.cut_at_duration());
        // Huge rates are counted, not iterated (offsets round to whole nanoseconds).
        let huge = open(Arrival::Constant { rate: 1e12 }, Some(1), None);
        let n = huge.scheduled().unwrap();
        assert!(n.abs_diff(1_000_000_000_000) < 1_000_000, "{n}");
        assert!(huge.slot(n - 1).is_some() && huge.slot(n).is_none());
        let ramp = open(Arrival::Ramp { from: 100.0, to: 300.0, over: Duration::from_secs(10) }, Some(10), None);
        assert_eq!(ramp.scheduled(), Some(2000));
        // A count that ends first: the schedule, not the clock, ends it.
        let counted = open(Arrival::Constant { rate: 10.0 }, Some(60), Some(5));
        assert!(!counted.cut_at_duration());
        assert_eq!(counted.scheduled(), Some(5));
    }

    #[test]
    fn checks_in_a_range_follow_the_wheel() {
        let p = with_wheel(wheel(&[(0, 3.0), (1, 1.0)]));
        let brute = |a: u64, b: u64| {
            let mut m = std::collections::BTreeMap::new();
            for i in a..b {
                *m.entry(p.check(i)).or_insert(0u64) += 1;
            }
            m.into_iter().collect::<Vec<_>>()
        };
        for (a, b) in [(0, 0), (0, 1), (3, 17), (5, 5000), (1, 4)] {
            assert_eq!(p.checks_in(a, b), brute(a, b), "{a}..{b}");
        }
        let big = p.checks_in(0, 4_000_000_000_000);
        assert_eq!(big, vec![(0, 3_000_000_000_000), (1, 1_000_000_000_000)]);
    }

    #[test]
    fn count_bound_ends_an_open_phase_early() {
        let p = open(Arrival::Constant { rate: 10.0 }, Some(60), Some(5));
        assert_eq!(p.planned_requests(), Some(5));
        assert!(p.slot(5).is_none());
        assert!(p.nominal_end().expect("end") < Duration::from_secs(1));
    }

    #[test]
    fn nth_counts_each_checks_own_requests() {
        let p = with_wheel(wheel(&[(0, 3.0), (1, 1.0), (2, 2.0)]));
        let mut seen = std::collections::BTreeMap::<usize, u64>::new();
        for i in 0..50_000u64 {
            let c = p.check(i);
            let next = seen.entry(c).or_insert(0);
            assert_eq!(p.nth(i), *next, "request {i} (check {c})");
            *next += 1;
        }
    }

    #[test]
    fn wheel_follows_weights_and_interleaves() {
        let w = wheel(&[(0, 95.0), (1, 5.0)]);
        let ones = w.iter().filter(|&&c| c == 1).count();
        assert_eq!(ones, 500);
        // No long run without the rare check: it is spread out, not bunched at the end.
        let first = w.iter().position(|&c| c == 1).expect("present");
        assert!(first < 40, "{first}");
    }
    #[test]
    fn shards_split_the_global_schedule_exactly() {
        for count in 1..6u32 {
            let mut total = 0;
            for index in 0..count {
                let sh = Shard { index, count };
                total += sh.share(17);
                assert_eq!(sh.share(17), (0..17).filter(|k| k % u64::from(count) == u64::from(index)).count() as u64);
                assert_eq!(
                    sh.share_in(5, 12),
                    (5..12).filter(|k| k % u64::from(count) == u64::from(index)).count() as u64
                );
                assert_eq!(sh.global(3) % u64::from(count), u64::from(index));
            }
            assert_eq!(total, 17);
        }
    }

    #[test]
    fn a_shards_unsent_checks_follow_the_wheel_at_its_indices() {
        let p = with_wheel(vec![0, 1, 0, 2, 0, 1]);
        for count in [1u32, 2, 3, 4, 7] {
            for index in 0..count {
                let sh = Shard { index, count };
                for (from, to) in [(0, 0), (0, 1), (3, 40), (11, 97), (5, 6)] {
                    let mut want = std::collections::BTreeMap::<usize, u64>::new();
                    for k in (from..to).filter(|k| k % u64::from(count) == u64::from(index)) {
                        *want.entry(p.check(k)).or_default() += 1;
                    }
                    let want: Vec<(usize, u64)> = want.into_iter().collect();
                    assert_eq!(p.checks_in_shard(from, to, sh), want, "shard {index}/{count} {from}..{to}");
                }
            }
        }
    }
}
