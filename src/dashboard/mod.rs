//! The live dashboard (ratatui): what a lab watches during a certification run — is the
//! gateway keeping its policy, how fast is it, now and in which phase.
//!
//! Fed only by [`metrics::Snapshot`]s (no second measurement path); never touches the
//! network. The terminal is restored on every exit path: normal end, `q`/Ctrl-C, error
//! (the [`Guard`]) and panic (ratatui's hook). Rendering is a pure function of [`View`], so
//! every panel is tested against a `TestBackend`.

pub mod headless;
mod render;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::Snapshot;

pub use render::draw;

/// What does not change during a run.
#[derive(Debug, Clone, Default)]
pub struct Info {
    /// Scenario name.
    pub scenario: String,
    /// Target URL.
    pub target: String,
    /// Protocol.
    pub protocol: String,
    /// Per check: id, expectation kind, deny-class.
    pub checks: Vec<(String, &'static str, bool)>,
    /// Per check: the statuses that count as an expected denial (deny statuses, 429 for
    /// `limit` checks).
    pub denials: Vec<Vec<u16>>,
    /// Threshold expressions and whether the dashboard can judge them live (run-wide ones).
    pub thresholds: Vec<Threshold>,
    /// Statuses some event declares as outage denials.
    pub outage_statuses: Vec<u16>,
}

/// A threshold the dashboard shows.
#[derive(Debug, Clone)]
pub struct Threshold {
    /// As written.
    pub expr: String,
    /// What it measures; `None` when it is restricted to a phase or check and is judged at
    /// the end only.
    pub metric: Option<crate::scenario::Metric>,
    /// Comparison.
    pub op: crate::scenario::Op,
    /// Bound.
    pub value: f64,
}

impl Threshold {
    /// The dashboard's view of a scenario threshold.
    pub fn from_scenario(t: &crate::scenario::Threshold) -> Self {
        let run_wide = t.phase.is_none() && t.check.is_none();
        Threshold { expr: t.expr.clone(), metric: run_wide.then_some(t.metric), op: t.op, value: t.value }
    }
}

/// A run-wide threshold metric on a snapshot (same units as the report), when it can be
/// judged live.
pub fn live_value(m: crate::scenario::Metric, s: &Snapshot) -> Option<f64> {
    use crate::scenario::{Metric, Stat};
    let lat = |h: &hdrhistogram::Histogram<u64>, st: Stat| {
        if h.is_empty() {
            return 0.0;
        }
        match st.quantile() {
            Some(q) if q >= 1.0 => h.max() as f64 / 1000.0,
            Some(q) => h.value_at_quantile(q) as f64 / 1000.0,
            None => h.mean() / 1000.0,
        }
    };
    let t = &s.totals;
    Some(match m {
        Metric::Violation(v) => t.violation(v) as f64,
        Metric::Violations => t.violation_total() as f64,
        Metric::Errors => t.error_total() as f64,
        Metric::Timeouts => t.error(crate::conformance::ErrorKind::Timeout) as f64,
        Metric::ErrorRate => {
            if t.sent == 0 {
                0.0
            } else {
                t.error_total() as f64 / t.sent as f64
            }
        }
        Metric::Latency(st) => lat(&s.latency_total, st),
        Metric::Requests => t.completed as f64,
        Metric::ServiceTime(_) | Metric::Rps => return None,
    })
}

/// Which panel has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The per-check table.
    Checks,
    /// The charts (arrows change the window).
    Charts,
}

/// Per-check table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Scenario order.
    Scenario,
    /// Most violations first.
    Violations,
    /// Highest p99 first.
    P99,
}

/// Time window of the charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Last 10 s.
    Short,
    /// Last minute.
    Minute,
    /// Whole run.
    Run,
}

impl Window {
    /// Seconds, or `None` for the whole run.
    pub fn secs(self) -> Option<f64> {
        match self {
            Window::Short => Some(10.0),
            Window::Minute => Some(60.0),
            Window::Run => None,
        }
    }
    fn label(self) -> &'static str {
        match self {
            Window::Short => "10 s",
            Window::Minute => "1 min",
            Window::Run => "whole run",
        }
    }
}

/// UI state.
#[derive(Debug, Clone)]
pub struct Ui {
    /// Focused panel.
    pub focus: Focus,
    /// Selected row of the per-check table.
    pub selected: usize,
    /// Table order.
    pub sort: Sort,
    /// Chart window.
    pub window: Window,
    /// Help overlay shown.
    pub help: bool,
    /// Drill-down into the selected check shown.
    pub drill: bool,
    /// One-line notice.
    pub notice: Option<String>,
    /// Sending is paused.
    pub paused: bool,
}

impl Default for Ui {
    fn default() -> Self {
        Ui {
            focus: Focus::Checks,
            selected: 0,
            sort: Sort::Violations,
            window: Window::Minute,
            help: false,
            drill: false,
            notice: None,
            paused: false,
        }
    }
}

/// One point of the time series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Seconds since the run started.
    pub t: f64,
    /// Offered rate (0 in closed loop).
    pub offered: f64,
    /// Achieved rate.
    pub achieved: f64,
    /// Window p50 (ms).
    pub p50: f64,
    /// Window p99 (ms).
    pub p99: f64,
    /// Phase index.
    pub phase: usize,
    /// Network condition index.
    pub condition: usize,
}

/// Bounded time series for the charts.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Points, oldest first.
    pub points: VecDeque<Point>,
}

/// At most this many points (an hour at 4 per second); older ones are thinned, not kept.
const MAX_POINTS: usize = 14_400;

impl History {
    /// Appends the snapshot's figures.
    pub fn push(&mut self, s: &Snapshot) {
        let q = |x: f64| {
            if s.window_latency.is_empty() { 0.0 } else { s.window_latency.value_at_quantile(x) as f64 / 1000.0 }
        };
        self.points.push_back(Point {
            t: s.elapsed.as_secs_f64(),
            offered: s.offered_rps.unwrap_or(0.0),
            achieved: s.achieved_rps,
            p50: q(0.5),
            p99: q(0.99),
            phase: s.phase,
            condition: s.condition_index,
        });
        if self.points.len() > MAX_POINTS {
            // Keep memory flat on long runs: drop every other point of the older half.
            let half = self.points.len() / 2;
            let old: Vec<Point> =
                self.points.drain(..half).enumerate().filter(|(i, _)| i % 2 == 0).map(|(_, p)| p).collect();
            for p in old.into_iter().rev() {
                self.points.push_front(p);
            }
        }
    }

    /// Times (s) inside `points` at which the network condition changed.
    pub fn condition_changes(points: &[Point]) -> Vec<f64> {
        points.windows(2).filter(|w| w[0].condition != w[1].condition).map(|w| w[1].t).collect()
    }

    /// Points inside `window`, ending at the newest.
    pub fn window(&self, window: Window) -> Vec<Point> {
        let end = self.points.back().map_or(0.0, |p| p.t);
        self.points.iter().filter(|p| window.secs().is_none_or(|w| p.t >= end - w)).copied().collect()
    }
}

/// Everything one frame shows.
pub struct View<'a> {
    /// Static run facts.
    pub info: &'a Info,
    /// Latest snapshot.
    pub snap: &'a Snapshot,
    /// Time series.
    pub history: &'a History,
    /// UI state.
    pub ui: &'a Ui,
}

/// Runs `restore` when dropped: on a normal end, on an early `?` return with an error, and
/// while unwinding from a panic.
pub struct Guard {
    restore: fn(),
}

impl Guard {
    /// A guard that will call `restore`.
    pub fn new(restore: fn()) -> Self {
        Guard { restore }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        (self.restore)();
    }
}

/// Applies one key; returns `true` when the user asked to quit.
pub fn key(ui: &mut Ui, code: KeyCode, mods: KeyModifiers, checks: usize) -> bool {
    ui.notice = None;
    match code {
        KeyCode::Char('q') | KeyCode::Esc if !ui.help && !ui.drill => return true,
        KeyCode::Char('c') if mods.contains(KeyModifiers::CONTROL) => return true,
        KeyCode::Esc | KeyCode::Char('q') => {
            ui.help = false;
            ui.drill = false;
        }
        KeyCode::Char('?') => ui.help = !ui.help,
        KeyCode::Tab => ui.focus = if ui.focus == Focus::Checks { Focus::Charts } else { Focus::Checks },
        KeyCode::Char('s') => {
            ui.sort = match ui.sort {
                Sort::Scenario => Sort::Violations,
                Sort::Violations => Sort::P99,
                Sort::P99 => Sort::Scenario,
            }
        }
        KeyCode::Char('w') => {
            ui.window = match ui.window {
                Window::Short => Window::Minute,
                Window::Minute => Window::Run,
                Window::Run => Window::Short,
            }
        }
        KeyCode::Up if ui.focus == Focus::Checks => ui.selected = ui.selected.saturating_sub(1),
        KeyCode::Down if ui.focus == Focus::Checks => ui.selected = (ui.selected + 1).min(checks.saturating_sub(1)),
        KeyCode::Left | KeyCode::Right if ui.focus == Focus::Charts => {
            ui.window = match (ui.window, code) {
                (Window::Short, KeyCode::Right) => Window::Minute,
                (Window::Minute, KeyCode::Right) => Window::Run,
                (Window::Run, KeyCode::Left) => Window::Minute,
                (Window::Minute, KeyCode::Left) => Window::Short,
                (w, _) => w,
            }
        }
        KeyCode::Enter if ui.focus == Focus::Checks => ui.drill = !ui.drill,
        _ => {}
    }
    false
}

/// Runs the dashboard on this (blocking) thread until the run ends and, unless `no_wait`, a
/// key is pressed. `q` or Ctrl-C cancels `stop`: the run ends and its results are written.
pub fn run(
    mut rx: watch::Receiver<Arc<Snapshot>>,
    info: Info,
    stop: CancellationToken,
    pause: Arc<AtomicBool>,
    no_wait: bool,
) -> std::io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let _guard = Guard::new(ratatui::restore);
    let mut ui = Ui::default();
    let mut history = History::default();
    let mut snap = rx.borrow_and_update().clone();
    let mut finished = false;
    let mut dirty = true;
    loop {
        if rx.has_changed().unwrap_or(false) {
            snap = rx.borrow_and_update().clone();
            history.push(&snap);
            dirty = true;
        }
        if snap.done && !finished {
            finished = true;
            if no_wait {
                return Ok(());
            }
            ui.notice = Some("run finished — press any key to leave and print the summary".into());
        }
        // Redraw when there is something new: a snapshot (4 a second) or a key.
        if dirty {
            terminal.draw(|f| draw(f, &View { info: &info, snap: &snap, history: &history, ui: &ui }))?;
            dirty = false;
        }
        if event::poll(Duration::from_millis(100))? {
            dirty = true;
            if let Event::Key(k) = event::read()? {
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                if finished {
                    return Ok(());
                }
                if k.code == KeyCode::Char('p') && !ui.help {
                    let now_paused = !pause.fetch_xor(true, Ordering::AcqRel);
                    ui.paused = now_paused;
                    ui.notice = Some(if now_paused {
                        "PAUSED: nothing is sent and the phase clock stands still — p resumes".into()
                    } else {
                        "resumed".into()
                    });
                    continue;
                }
                if key(&mut ui, k.code, k.modifiers, info.checks.len()) {
                    stop.cancel();
                    ui.notice = Some("stopping: in-flight requests get 2 s, then results are written".into());
                }
            }
        }
        if rx.has_changed().is_err() && !finished {
            // The run is over and the collector is gone: show the last state.
            snap = Arc::new(Snapshot { done: true, ..(*snap).clone() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cycle_sort_window_focus_and_quit() {
        let mut ui = Ui::default();
        assert!(!key(&mut ui, KeyCode::Char('s'), KeyModifiers::NONE, 3));
        assert_eq!(ui.sort, Sort::P99);
        key(&mut ui, KeyCode::Char('w'), KeyModifiers::NONE, 3);
        assert_eq!(ui.window, Window::Run);
        key(&mut ui, KeyCode::Down, KeyModifiers::NONE, 3);
        key(&mut ui, KeyCode::Down, KeyModifiers::NONE, 3);
        key(&mut ui, KeyCode::Down, KeyModifiers::NONE, 3);
        assert_eq!(ui.selected, 2);
        key(&mut ui, KeyCode::Tab, KeyModifiers::NONE, 3);
        assert_eq!(ui.focus, Focus::Charts);
        key(&mut ui, KeyCode::Left, KeyModifiers::NONE, 3);
        assert_eq!(ui.window, Window::Minute);
        key(&mut ui, KeyCode::Char('?'), KeyModifiers::NONE, 3);
        assert!(ui.help);
        assert!(!key(&mut ui, KeyCode::Char('q'), KeyModifiers::NONE, 3), "q first closes the overlay");
        assert!(key(&mut ui, KeyCode::Char('q'), KeyModifiers::NONE, 3));
        assert!(key(&mut ui, KeyCode::Char('c'), KeyModifiers::CONTROL, 3));
    }
}
