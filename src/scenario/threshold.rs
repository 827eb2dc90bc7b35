//! Threshold expressions: `leak == 0`, `p99 < 250ms during stress`, `error_rate < 1%`,
//! `false_deny == 0 for ZT-BASE-CTRL-001`.
//!
//! Grammar: `METRIC OP VALUE [during PHASE] [for CHECK]`. Parsing resolves phase and check
//! names; evaluation lives in `report`, which has the numbers.

use crate::conformance::Violation;
use crate::scenario::units;

/// A latency statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// Median.
    P50,
    /// 90th percentile.
    P90,
    /// 99th percentile.
    P99,
    /// 99.9th percentile.
    P999,
    /// Maximum.
    Max,
    /// Mean.
    Mean,
}

impl Stat {
    /// Quantile in [0, 1] (max = 1).
    pub fn quantile(self) -> Option<f64> {
        match self {
            Stat::P50 => Some(0.5),
            Stat::P90 => Some(0.9),
            Stat::P99 => Some(0.99),
            Stat::P999 => Some(0.999),
            Stat::Max => Some(1.0),
            Stat::Mean => None,
        }
    }
}

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Count of one violation kind.
    Violation(Violation),
    /// All violations.
    Violations,
    /// Transport errors and timeouts.
    Errors,
    /// Timeouts alone.
    Timeouts,
    /// Errors / sent, a fraction.
    ErrorRate,
    /// Latency from the intended send time, in ms.
    Latency(Stat),
    /// Service time (from the actual send), in ms.
    ServiceTime(Stat),
    /// Achieved completions per second.
    Rps,
    /// Completed requests.
    Requests,
}

/// Comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    /// Applies the comparison.
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Eq => (left - right).abs() < 1e-9,
            Op::Ne => (left - right).abs() >= 1e-9,
            Op::Gt => left > right,
            Op::Ge => left >= right,
        }
    }
}

/// A parsed threshold.
#[derive(Debug, Clone)]
pub struct Threshold {
    /// The expression as written.
    pub expr: String,
    /// What is measured.
    pub metric: Metric,
    /// How it is compared.
    pub op: Op,
    /// The bound, in the metric's unit (ms for times, a fraction for rates).
    pub value: f64,
    /// Restrict to one phase.
    pub phase: Option<usize>,
    /// Restrict to one check.
    pub check: Option<usize>,
}

const METRICS: &[&str] = &[
    "leak",
    "tls_accept",
    "spoofed_header",
    "false_deny",
    "wrong_status",
    "missing_identity",
    "limit_bypass",
    "violations",
    "errors",
    "timeouts",
    "error_rate",
    "p50",
    "p90",
    "p99",
    "p999",
    "max",
    "mean",
    "service_p50",
    "service_p90",
    "service_p99",
    "service_p999",
    "service_max",
    "rps",
    "requests",
];

fn stat(s: &str) -> Option<Stat> {
    Some(match s {
        "p50" => Stat::P50,
        "p90" => Stat::P90,
        "p99" => Stat::P99,
        "p999" => Stat::P999,
        "max" => Stat::Max,
        "mean" => Stat::Mean,
        _ => return None,
    })
}

/// Parses one expression; `phases` and `checks` are the names it may refer to.
pub(crate) fn parse(expr: &str, phases: &[&str], checks: &[&str]) -> Result<Threshold, String> {
    let words: Vec<&str> = expr.split_whitespace().collect();
    let usage = "write `METRIC OP VALUE [during PHASE] [for CHECK]`, e.g. `p99 < 250ms during stress`";
    if words.len() < 3 {
        return Err(format!("`{expr}` is incomplete: {usage}"));
    }
    let m = words[0];
    let metric = if let Some(v) = Violation::parse(m) {
        Metric::Violation(v)
    } else if let Some(s) = stat(m) {
        Metric::Latency(s)
    } else if let Some(s) = m.strip_prefix("service_").and_then(stat) {
        Metric::ServiceTime(s)
    } else {
        match m {
            "violations" => Metric::Violations,
            "errors" => Metric::Errors,
            "timeouts" => Metric::Timeouts,
            "error_rate" => Metric::ErrorRate,
            "rps" => Metric::Rps,
            "requests" => Metric::Requests,
            _ => {
                let hint = units::suggest(m, METRICS.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(format!("unknown metric `{m}`{hint}; known: {}", METRICS.join(", ")));
            }
        }
    };
    let op = match words[1] {
        "<" => Op::Lt,
        "<=" => Op::Le,
        "==" | "=" => Op::Eq,
        "!=" => Op::Ne,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        o => return Err(format!("unknown operator `{o}` in `{expr}`: use one of < <= == != > >=")),
    };
    let raw = words[2];
    let value = match metric {
        Metric::Latency(_) | Metric::ServiceTime(_) => {
            units::duration(raw).map_err(|e| format!("{m} needs a time: {e}"))?.as_secs_f64() * 1000.0
        }
        Metric::ErrorRate => {
            let f = match units::percent(raw) {
                Some(f) => f,
                None => raw.parse::<f64>().map_err(|_| format!("`{raw}` is not a rate: write e.g. `1%` or `0.01`"))?,
            };
            if !(0.0..=1.0).contains(&f) {
                return Err(format!("`{raw}`: an error rate is a share of the requests, from 0% to 100% (0 to 1)"));
            }
            f
        }
        _ => raw.parse::<f64>().map_err(|_| format!("`{raw}` is not a number"))?,
    };
    let mut th = Threshold { expr: expr.to_string(), metric, op, value, phase: None, check: None };
    let mut rest = &words[3..];
    while let [kw, name, tail @ ..] = rest {
        let (list, slot, what) = match *kw {
            "during" => (phases, &mut th.phase, "phase"),
            "for" => (checks, &mut th.check, "check"),
            other => return Err(format!("unexpected `{other}` in `{expr}`: {usage}")),
        };
        let idx = list.iter().position(|n| n == name).ok_or_else(|| {
            let hint = units::suggest(name, list.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            format!("no {what} named `{name}`{hint}")
        })?;
        *slot = Some(idx);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(format!("trailing `{}` in `{expr}`: {usage}", rest.join(" ")));
    }
    Ok(th)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let t = parse("p99 < 250ms during stress", &["base", "stress"], &[]).expect("parse");
        assert_eq!((t.metric, t.op, t.value, t.phase), (Metric::Latency(Stat::P99), Op::Lt, 250.0, Some(1)));
        let t = parse("error_rate < 1%", &[], &[]).expect("parse");
        assert!((t.value - 0.01).abs() < 1e-12);
        let t = parse("leak == 0 for A", &[], &["A"]).expect("parse");
        assert_eq!((t.metric, t.check), (Metric::Violation(Violation::Leak), Some(0)));
    }

    #[test]
    fn explains_mistakes() {
        assert!(parse("laek == 0", &[], &[]).unwrap_err().contains("did you mean `leak`"));
        assert!(parse("p99 < 250", &[], &[]).unwrap_err().contains("no unit"));
        assert!(parse("p99 < 1s during strss", &["stress"], &[]).unwrap_err().contains("did you mean `stress`"));
        assert!(parse("p99 ~ 1s", &[], &[]).unwrap_err().contains("operator"));
    }
}
