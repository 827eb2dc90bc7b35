//! Rate-limit windows: does a `limit` check's limiter hold its declared rate?
//!
//! The check is sent faster than its limit (`drive` × the limit); its answers are counted per
//! window of the limit's `per`, from the run start. A limiter may let through what its
//! declared limit allows plus a burst (a token bucket's capacity, one window's worth by
//! default): the judge runs a reference token bucket — refilled at the limit × (1 +
//! tolerance) per window, holding at most the burst (plus one request of slack for where our
//! windows fall against the limiter's) — and counts a `limit_bypass` window whenever more was
//! allowed than the bucket could give. A limiter that never engages at 1.2× its limit is
//! caught once the burst is spent; a correct token bucket never is, also not after an idle
//! spell or an outage refilled it. Every window with sends is judged for a
//! bypass (a window only partly covered can only have allowed less). A window the check was
//! sent throughout (it has sends, so do the windows before and after it, and it does not
//! straddle a phase change), driven to the limit, in which the limiter allowed less than the
//! limit × (1 − tolerance) (one request of window-alignment slack) is a `false_deny` — unless
//! some of its refusals were declared outage denials (a dependency was down, not the limiter).

use serde::Serialize;

use crate::conformance::Limit;
use crate::metrics::{Window, Windows};

/// The judged windows of one `limit` check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct LimitJudgement {
    /// Windows with sends (judged for a bypass).
    pub windows_judged: u64,
    /// Of those, windows sent throughout, within one phase (judged for a false deny too).
    pub windows_whole: u64,
    /// Windows sent faster than the limit allows (where a bypass can show).
    pub windows_driven: u64,
    /// Windows where more was allowed than the limit permits.
    pub bypass_windows: u64,
    /// Windows driven above the limit where the limiter allowed well below it.
    pub false_deny_windows: u64,
    /// The most requests sent in one window.
    pub max_sent_per_window: u64,
    /// The most requests allowed in one window.
    pub max_allowed_per_window: u64,
    /// The median of allowed requests per driven window.
    pub median_allowed_per_window: u64,
    /// The declared limit per window.
    pub limit_per_window: u32,
    /// Which windows were bypasses or false denies: `(phase, condition, bypass?)` each, for
    /// attribution.
    #[serde(skip)]
    pub marks: Vec<(u16, u16, bool)>,
}

/// Judges the windows of check `check` against `limit`.
pub fn judge(check: u16, limit: &Limit, windows: &Windows) -> LimitJudgement {
    let mine: Vec<(u32, &Window)> =
        windows.range((check, 0)..=(check, u32::MAX)).map(|((_, w), win)| (*w, win)).collect();
    let allowance = f64::from(limit.requests) * (1.0 + limit.tolerance);
    let floor = f64::from(limit.requests) * (1.0 - limit.tolerance) - 1.0;
    // One request of slack for where our windows fall against the limiter's.
    let capacity = f64::from(limit.burst) + 1.0;
    let mut credit = capacity;
    let mut out = LimitJudgement { limit_per_window: limit.requests, ..Default::default() };
    let mut allowed_driven = Vec::new();
    for (i, (w, win)) in mine.iter().enumerate() {
        if win.sent == 0 {
            continue;
        }
        let whole = i > 0 && i + 1 < mine.len() && mine[i - 1].0 + 1 == *w && mine[i + 1].0 == *w + 1 && !win.mixed;
        out.windows_judged += 1;
        out.windows_whole += u64::from(whole);
        out.max_sent_per_window = out.max_sent_per_window.max(win.sent);
        out.max_allowed_per_window = out.max_allowed_per_window.max(win.allowed);
        let allowed = win.allowed as f64;
        let excess = allowed - allowance;
        if win.sent as f64 > allowance {
            out.windows_driven += 1;
            allowed_driven.push(win.allowed);
            if excess > credit {
                out.bypass_windows += 1;
                out.marks.push((win.phase, win.condition, true));
            }
        }
        // The reference bucket: what went unused refills it, what went over drains it.
        credit = (credit - excess).clamp(0.0, capacity);
        if whole && win.excused == 0 && win.sent >= u64::from(limit.requests) && allowed < floor {
            out.false_deny_windows += 1;
            out.marks.push((win.phase, win.condition, false));
        }
    }
    allowed_driven.sort_unstable();
    out.median_allowed_per_window = allowed_driven.get(allowed_driven.len() / 2).copied().unwrap_or(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{REFUSALS, Statuses};
    use std::time::Duration;

    fn limit(requests: u32) -> Limit {
        Limit {
            requests,
            per: Duration::from_secs(1),
            tolerance: 0.1,
            burst: requests,
            drive: 1.2,
            success: Statuses::success(),
            refusals: REFUSALS.to_vec(),
        }
    }

    /// `n` windows of `sent` each, `allowed(w)` allowed in window `w`.
    fn series(n: u32, sent: u64, allowed: impl Fn(u32) -> u64) -> Windows {
        (0..n)
            .map(|w| {
                let a = allowed(w).min(sent);
                ((0u16, w), Window { sent, allowed: a, limited: sent - a, ..Default::default() })
            })
            .collect()
    }

    /// A token bucket of capacity `burst` refilled at `rate`/s, sent at `sent`/s evenly.
    fn bucket(n: u32, sent: u64, rate: f64, burst: f64) -> Windows {
        let mut tokens = burst;
        let mut out = Windows::new();
        for w in 0..n {
            let mut allowed = 0;
            for _ in 0..sent {
                tokens = (tokens + rate / sent as f64).min(burst);
                if tokens >= 1.0 {
                    tokens -= 1.0;
                    allowed += 1;
                }
            }
            out.insert((0, w), Window { sent, allowed, limited: sent - allowed, ..Default::default() });
        }
        out
    }

    #[test]
    fn a_limiter_that_never_engages_at_1_2x_is_caught() {
        for requests in [5u32, 50] {
            let sent = u64::from(requests) * 6 / 5; // 1.2×
            let j = judge(0, &limit(requests), &series(30, sent, |_| sent));
            assert!(j.bypass_windows > 0, "{requests}/s: {j:?}");
            assert_eq!(j.false_deny_windows, 0);
        }
    }

    #[test]
    fn a_correct_token_bucket_is_never_a_bypass() {
        for (requests, sent) in [(5u32, 6u64), (5, 9), (50, 60), (50, 200)] {
            let j = judge(0, &limit(requests), &bucket(60, sent, f64::from(requests), f64::from(requests)));
            assert_eq!((j.bypass_windows, j.false_deny_windows), (0, 0), "{requests} at {sent}: {j:?}");
            assert!(j.windows_driven > 50);
        }
        // A bigger declared burst is credited too.
        let mut l = limit(50);
        l.burst = 200;
        let j = judge(0, &l, &bucket(60, 60, 50.0, 200.0));
        assert_eq!(j.bypass_windows, 0, "{j:?}");
    }

    #[test]
    fn a_bucket_refilled_by_an_outage_or_a_pause_is_no_bypass() {
        // A burst, then the limit with one request of window alignment either way (6, 4, 6,
        // …: the overs drain the reference bucket, the unders refill it), then 5 windows
        // refused by an outage (excused) that refill the limiter, then its burst again: a
        // token bucket doing its job, not a bypass.
        let win = |sent, allowed, excused| Window { sent, allowed, excused, ..Default::default() };
        let mut w = Windows::new();
        for i in 0..25u32 {
            let x = match i {
                0 | 15 => win(12, 10, 0),
                1..=9 => win(6, if i % 2 == 1 { 6 } else { 4 }, 0),
                10..=14 => win(6, 0, 6),
                _ => win(6, 5, 0),
            };
            w.insert((0, i), x);
        }
        let j = judge(0, &limit(5), &w);
        assert_eq!((j.bypass_windows, j.false_deny_windows), (0, 0), "{j:?}");
    }

    #[test]
    fn a_limiter_refusing_nearly_everything_is_a_false_deny() {
        let j = judge(0, &limit(5), &series(20, 9, |w| u64::from(w % 5 == 0)));
        assert!(j.false_deny_windows >= 15, "{j:?}");
        assert_eq!(j.bypass_windows, 0);
    }

    #[test]
    fn edges_gaps_and_phase_changes_are_not_judged_for_false_denies() {
        let mut w = series(10, 12, |_| 1);
        w.remove(&(0, 5));
        w.get_mut(&(0, 2)).unwrap().mixed = true;
        let j = judge(0, &limit(10), &w);
        // 0 and 9 are edges, 4 and 6 border the gap, 5 is gone, 2 straddles phases.
        assert_eq!((j.windows_judged, j.windows_whole, j.false_deny_windows), (9, 4, 4), "{j:?}");
        // Another check's windows are not mixed in.
        assert_eq!(judge(1, &limit(10), &w).windows_judged, 0);
    }

    #[test]
    fn a_short_burst_in_one_window_is_judged_for_a_bypass() {
        let burst = |allowed| {
            Windows::from([((0u16, 3u32), Window { sent: 40, allowed, limited: 40 - allowed, ..Default::default() })])
        };
        assert_eq!(judge(0, &limit(5), &burst(40)).bypass_windows, 1);
        // A token bucket: its burst and one window's refill.
        assert_eq!(judge(0, &limit(5), &burst(10)).bypass_windows, 0);
    }

    #[test]
    fn underdriven_windows_cannot_show_a_bypass() {
        let j = judge(0, &limit(10), &series(20, 10, |_| 10));
        assert_eq!((j.windows_driven, j.bypass_windows, j.false_deny_windows), (0, 0, 0));
        assert_eq!((j.windows_judged, j.windows_whole), (20, 18));
    }
}
