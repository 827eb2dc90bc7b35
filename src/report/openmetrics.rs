//! Live metrics in the OpenMetrics text format (what `--metrics-listen` serves at `/metrics`,
//! for Prometheus and so Grafana): counters of requests, answers, errors and violations by
//! kind, and the latency histogram, per (phase, network condition) and per check, plus the
//! state of the run. Rendered from the collector's latest [`Snapshot`]: no extra bookkeeping
//! on the hot path.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::conformance::{ErrorKind, Violation};
use crate::metrics::{Counts, Snapshot};

/// The content type of the page.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency bucket bounds, seconds (the `le` labels).
const BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

/// What the numbers are labelled with.
#[derive(Debug, Clone)]
pub struct Names {
    /// Run id.
    pub run_id: String,
    /// Scenario name.
    pub scenario: String,
    /// Phase names, by index.
    pub phases: Vec<String>,
    /// Network condition names, by index.
    pub conditions: Vec<String>,
    /// Check ids, by index.
    pub checks: Vec<String>,
}

/// A label value, escaped (`\`, `"`, newline).
fn lv(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# TYPE {name} {kind}\n# HELP {name} {help}");
}

/// The page.
pub fn render(s: &Snapshot, n: &Names) -> String {
    let mut o = String::with_capacity(16 << 10);
    family(&mut o, "gauntlet_run", "info", "The run being measured.");
    let _ = writeln!(o, "gauntlet_run_info{{run_id=\"{}\",scenario=\"{}\"}} 1", lv(&n.run_id), lv(&n.scenario));
    family(&mut o, "gauntlet_elapsed_seconds", "gauge", "Time since the run started.");
    let _ = writeln!(o, "gauntlet_elapsed_seconds {}", s.elapsed.as_secs_f64());
    family(&mut o, "gauntlet_phase", "stateset", "The phase running now.");
    for (i, p) in n.phases.iter().enumerate() {
        let _ = writeln!(o, "gauntlet_phase{{gauntlet_phase=\"{}\"}} {}", lv(p), u8::from(i == s.phase && !s.done));
    }
    family(&mut o, "gauntlet_condition", "stateset", "The network condition in force now.");
    for (i, c) in n.conditions.iter().enumerate() {
        let _ = writeln!(
            o,
            "gauntlet_condition{{gauntlet_condition=\"{}\"}} {}",
            lv(c),
            u8::from(i == s.condition_index && !s.done)
        );
    }
    family(&mut o, "gauntlet_offered_rate", "gauge", "Planned arrivals per second now (open loop; 0 otherwise).");
    let _ = writeln!(o, "gauntlet_offered_rate {}", s.offered_rps.unwrap_or(0.0));
    family(&mut o, "gauntlet_achieved_rate", "gauge", "Answers per second over the last second.");
    let _ = writeln!(o, "gauntlet_achieved_rate {}", s.achieved_rps);
    // Counters per (phase, condition) that saw a request, and per check.
    let slots: Vec<(String, &Counts, &Histogram<u64>)> = s
        .per_slot
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let c = c.as_ref()?;
            let nc = n.conditions.len().max(1);
            let (p, k) = (i / nc, i % nc);
            let labels = format!(
                "phase=\"{}\",condition=\"{}\"",
                lv(n.phases.get(p).map_or("?", String::as_str)),
                lv(n.conditions.get(k).map_or("?", String::as_str))
            );
            Some((labels, &c.counts, &c.latency))
        })
        .collect();
    let checks: Vec<(String, &Counts)> = s
        .per_check
        .iter()
        .enumerate()
        .filter(|(_, c)| c.sent > 0)
        .map(|(i, c)| (format!("check=\"{}\"", lv(n.checks.get(i).map_or("?", String::as_str))), c))
        .collect();
    // One set of families per scope, so a sum over a family never counts a request twice.
    let slot_rows: Vec<(String, &Counts)> = slots.iter().map(|(l, c, _)| (l.clone(), *c)).collect();
    for (prefix, scope, rows) in [
        ("gauntlet", "per phase and network condition at the send", &slot_rows),
        ("gauntlet_check", "per check", &checks),
    ] {
        family(&mut o, &format!("{prefix}_requests"), "counter", &format!("Requests sent, {scope}."));
        for (l, c) in rows.iter() {
            let _ = writeln!(o, "{prefix}_requests_total{{{l}}} {}", c.sent);
        }
        family(
            &mut o,
            &format!("{prefix}_answers"),
            "counter",
            &format!("Requests answered (any status) or refused at TLS, {scope}."),
        );
        for (l, c) in rows.iter() {
            let _ = writeln!(o, "{prefix}_answers_total{{{l}}} {}", c.completed);
        }
        family(
            &mut o,
            &format!("{prefix}_errors"),
            "counter",
            &format!("Requests without an answer by kind, {scope}."),
        );
        for (l, c) in rows.iter() {
            for e in ErrorKind::ALL {
                let _ = writeln!(o, "{prefix}_errors_total{{{l},kind=\"{}\"}} {}", e.name(), c.error(e));
            }
        }
        let whose = if prefix == "gauntlet" { "client side" } else { "client side and proven upstream" };
        family(
            &mut o,
            &format!("{prefix}_violations"),
            "counter",
            &format!("Policy violations by kind ({whose}), {scope}."),
        );
        for (l, c) in rows.iter() {
            for v in Violation::ALL {
                let _ = writeln!(o, "{prefix}_violations_total{{{l},kind=\"{}\"}} {}", v.name(), c.violation(v));
            }
        }
    }
    family(&mut o, "gauntlet_latency_seconds", "histogram", "Latency from the intended send time.");
    for (l, _, h) in &slots {
        for b in BUCKETS {
            // Only the histogram's buckets wholly at or under the bound: `le` is inclusive.
            let le_us = (b * 1e6) as u64;
            let n = if h.is_empty() { 0 } else { h.count_between(0, h.lowest_equivalent(le_us + 1).saturating_sub(1)) };
            let _ = writeln!(o, "gauntlet_latency_seconds_bucket{{{l},le=\"{b}\"}} {n}");
        }
        let _ = writeln!(o, "gauntlet_latency_seconds_bucket{{{l},le=\"+Inf\"}} {}", h.len());
        let _ = writeln!(o, "gauntlet_latency_seconds_count{{{l}}} {}", h.len());
        let sum = if h.is_empty() { 0.0 } else { h.mean() * h.len() as f64 / 1e6 };
        let _ = writeln!(o, "gauntlet_latency_seconds_sum{{{l}}} {sum}");
    }
    o.push_str("# EOF\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Cell, histogram};

    #[test]
    fn the_page_is_openmetrics_with_monotonic_buckets() {
        let mut cell = Cell {
            counts: Counts { sent: 10, completed: 9, ..Default::default() },
            latency: histogram(),
            service: histogram(),
        };
        cell.counts.violations[Violation::Leak.index()] = 2;
        for us in [400, 1500, 1500, 30_000, 2_000_000] {
            cell.latency.record(us).unwrap();
        }
        let mut per_check = vec![Counts::default(); 2];
        per_check[1] = cell.counts.clone();
        let s = Snapshot { per_slot: vec![None, Some(Box::new(cell))], per_check, ..Snapshot::empty() };
        let n = Names {
            run_id: "r1".into(),
            scenario: "a \"quoted\" name".into(),
            phases: vec!["warm".into()],
            conditions: vec!["unimpaired".into(), "slow".into()],
            checks: vec!["A".into(), "B".into()],
        };
        let page = render(&s, &n);
        assert!(page.ends_with("# EOF\n"));
        assert!(page.contains(r#"gauntlet_run_info{run_id="r1",scenario="a \"quoted\" name"} 1"#));
        assert!(page.contains(r#"gauntlet_requests_total{phase="warm",condition="slow"} 10"#), "{page}");
        assert!(page.contains(r#"gauntlet_check_requests_total{check="B"} 10"#));
        assert!(!page.contains(r#"gauntlet_requests_total{check="#), "one scope per family");
        assert!(!page.contains(r#"check="A""#), "a check that sent nothing is left out");
        assert!(page.contains(r#"gauntlet_violations_total{phase="warm",condition="slow",kind="leak"} 2"#));
        let buckets: Vec<u64> = page
            .lines()
            .filter(|l| l.starts_with("gauntlet_latency_seconds_bucket{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(buckets.len(), BUCKETS.len() + 1);
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        assert_eq!(buckets[0], 1, "0.5 ms holds the 0.4 ms sample");
        assert_eq!(*buckets.last().unwrap(), 5);
        assert!(page.contains(r#"gauntlet_latency_seconds_count{phase="warm",condition="slow"} 5"#));
        // Every sample line belongs to a family declared before it.
        let mut declared = std::collections::HashSet::new();
        for l in page.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_string());
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                let fam = ["_total", "_bucket", "_count", "_sum", "_info"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name);
                assert!(declared.contains(fam), "{l}");
            }
        }
    }
}
