//! The progress line: the non-TTY (or `--headless`) view of a [`Snapshot`], one line per
//! second on a pipe, redrawn in place on a terminal.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::metrics::Snapshot;

/// Prints a line per snapshot (at most one a second unless `tty`) until the run is done.
pub async fn progress_line(mut rx: watch::Receiver<Arc<Snapshot>>, tty: bool, quiet: bool) {
    let mut last = Instant::now() - Duration::from_secs(2);
    // stderr writes never panic: a closed pipe must not stop a run or its results.
    let mut err = std::io::stderr();
    while rx.changed().await.is_ok() {
        let s = rx.borrow_and_update().clone();
        if s.done {
            break;
        }
        if quiet {
            continue;
        }
        if !tty && last.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last = Instant::now();
        let line = line(&s);
        let _ = if tty { write!(err, "\r{line}\x1b[K") } else { writeln!(err, "{line}") };
    }
    if tty && !quiet {
        let _ = writeln!(err);
    }
}

/// One progress line.
pub fn line(s: &Snapshot) -> String {
    let q = |x: f64| s.window_latency.value_at_quantile(x) as f64 / 1000.0;
    let (p50, p99) = if s.window_latency.is_empty() { (0.0, 0.0) } else { (q(0.5), q(0.99)) };
    let phase_len = s.phase_length.map_or_else(|| "?".to_string(), |d| format!("{:.0}s", d.as_secs_f64()));
    let offered = match (s.offered_rps, s.replay) {
        (Some(r), _) => format!("{r:.0}/s"),
        (None, true) => "recorded pace".to_string(),
        (None, false) => "closed".to_string(),
    };
    format!(
        "[{:>6.1}s] {} {:.1}/{} | offered {} achieved {:.0}/s | p50 {:.2}ms p99 {:.2}ms | sent {} err {} | violations {}",
        s.elapsed.as_secs_f64(),
        s.phase_name,
        s.phase_elapsed.as_secs_f64(),
        phase_len,
        offered,
        s.achieved_rps,
        p50,
        p99,
        s.totals.sent,
        s.totals.error_total(),
        s.totals.violation_total()
    )
}
