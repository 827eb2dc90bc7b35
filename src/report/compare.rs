//! `gauntlet compare BASELINE CURRENT`: what changed between two runs' results folders, per
//! check and per phase and network condition, judged by rules: new violations (any is a
//! regression), a check that no longer passes, latency percentiles computed from the runs'
//! histograms (`histograms.hlog`, exact to the histogram's precision — never the rounded
//! figures of `summary.json`), error rate and achieved rate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::input::printable;

use super::{HISTOGRAMS, Summary, read_histograms, read_summary, untag};

/// The schema of `gauntlet compare --json`.
pub const COMPARE_SCHEMA: &str = "gauntlet.compare/v1";

/// When a change is a regression (`--rules FILE`, YAML; every field optional).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// Latency percentiles: each one regresses when it grows by more than `pct` percent *and*
    /// by at least `min_ms`. Default: p99, +10 % and at least +1 ms.
    pub latency: Vec<LatencyRule>,
    /// Latency is compared only where both runs have at least this many samples (a p99 of
    /// twenty requests is noise). Default 100.
    pub min_samples: u64,
    /// The share of requests without an answer regresses when it grows by more than this many
    /// percentage points. Default 0.5.
    pub error_rate_pp: f64,
    /// The achieved rate regresses when it drops by more than this many percent (compared only
    /// where both runs planned the same rate). Default 10.
    pub achieved_rate_drop_pct: f64,
    /// A check of the baseline missing from the current run is a regression (a deleted check
    /// hides what it tested). Default true.
    pub missing_check_is_regression: bool,
}

/// One latency rule.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencyRule {
    /// `p50`, `p90`, `p99`, `p99.9` or `max`.
    pub quantile: String,
    /// Growth above which it regresses, percent.
    pub pct: f64,
    /// …and at least this much, ms.
    #[serde(default)]
    pub min_ms: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            latency: vec![LatencyRule { quantile: "p99".into(), pct: 10.0, min_ms: 1.0 }],
            min_samples: 100,
            error_rate_pp: 0.5,
            achieved_rate_drop_pct: 10.0,
            missing_check_is_regression: true,
        }
    }
}

fn quantile(name: &str) -> Option<f64> {
    Some(match name {
        "p50" => 0.5,
        "p90" => 0.9,
        "p99" => 0.99,
        "p99.9" => 0.999,
        "max" => 1.0,
        _ => return None,
    })
}

impl Rules {
    /// Reads a rules file (YAML), checking each quantile name.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text =
            crate::input::read_text(path, crate::input::SCENARIO).map_err(|e| format!("{}: {e}", path.display()))?;
        let r: Rules = serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for l in &r.latency {
            if quantile(&l.quantile).is_none() {
                return Err(format!(
                    "{}: latency quantile `{}`: use p50, p90, p99, p99.9 or max",
                    path.display(),
                    l.quantile
                ));
            }
            if !(l.pct >= 0.0 && l.min_ms >= 0.0) {
                return Err(format!("{}: latency `{}`: pct and min_ms are ≥ 0", path.display(), l.quantile));
            }
        }
        Ok(r)
    }
}

/// One run of the two.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunRef {
    /// Its results folder, as given.
    pub dir: String,
    /// Run id.
    pub run_id: String,
    /// Scenario name.
    pub scenario: String,
    /// Scenario digest.
    pub scenario_sha256: String,
    /// Its verdict.
    pub verdict: String,
}

/// One thing compared.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// What it covers: `run`, `phase NAME`, `condition NAME`, `check ID`.
    pub scope: String,
    /// What: `violations.KIND`, `result`, `latency.p99` (ms), `error_rate` (%), `achieved_rps`.
    pub metric: String,
    /// The baseline's value (absent: not in the baseline).
    pub baseline: Option<f64>,
    /// The current run's.
    pub current: Option<f64>,
    /// The change in words (`+12.5 % (+3.1 ms)`, `pass → fail`).
    pub change: String,
    /// Whether the rules call it a regression.
    pub regression: bool,
}

/// `gauntlet compare --json`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Comparison {
    /// Always `gauntlet.compare/v1`.
    pub schema: String,
    /// The run compared against.
    pub baseline: RunRef,
    /// The run compared.
    pub current: RunRef,
    /// The rules applied.
    pub rules: Rules,
    /// How many findings are regressions.
    pub regressions: u64,
    /// Every metric compared (regressions first).
    pub findings: Vec<Finding>,
    /// What could not be compared, and why.
    pub notes: Vec<String>,
}

fn run_ref(dir: &Path, s: &Summary) -> RunRef {
    RunRef {
        dir: dir.display().to_string(),
        run_id: s.run_id.clone(),
        scenario: s.scenario.name.clone(),
        scenario_sha256: s.scenario.sha256.clone(),
        verdict: s.verdict.name().into(),
    }
}

/// A run's histograms by scope; a folder from before `histograms.hlog` existed has the whole
/// run's in `latency.hlog` (its `latency` intervals added up: exact too).
fn histograms(dir: &Path, notes: &mut Vec<String>) -> BTreeMap<String, Histogram<u64>> {
    let read = |name: &str| crate::input::read(&dir.join(name), super::DATA_MAX).ok().and_then(|b| read_histograms(&b));
    if let Some(h) = read(HISTOGRAMS) {
        return h;
    }
    match read(super::HLOG).and_then(|mut h| h.remove("latency")) {
        Some(run) => {
            notes.push(format!(
                "{}: no {HISTOGRAMS} (an older run): latency compared for the whole run only, from {}",
                dir.display(),
                super::HLOG
            ));
            [("run".to_string(), run)].into()
        }
        None => {
            notes.push(format!("{}: no readable {HISTOGRAMS} or {}: latency not compared", dir.display(), super::HLOG));
            BTreeMap::new()
        }
    }
}

/// Compares two results folders.
pub fn compare(baseline: &Path, current: &Path, rules: &Rules) -> Result<Comparison, super::RerenderError> {
    let (b, c) = (read_summary(baseline)?, read_summary(current)?);
    let mut notes = Vec::new();
    if b.scenario.sha256 != c.scenario.sha256 {
        notes.push(format!(
            "the runs come from different scenario files ({} vs {}): only what both have is compared",
            short(&b.scenario.sha256),
            short(&c.scenario.sha256)
        ));
    }
    if b.target.url != c.target.url || b.target.protocol != c.target.protocol {
        notes.push(format!(
            "different targets: {} ({}) vs {} ({})",
            b.target.url, b.target.protocol, c.target.url, c.target.protocol
        ));
    }
    let (hb, hc) = (histograms(baseline, &mut notes), histograms(current, &mut notes));
    let mut f = Vec::new();
    // The run as a whole: its verdict, every threshold, a stop, a new reason.
    let (bv, cv) = (b.verdict.name(), c.verdict.name());
    if bv != cv || cv != "pass" {
        f.push(Finding {
            scope: "run".into(),
            metric: "verdict".into(),
            baseline: None,
            current: None,
            change: format!("{bv} → {cv}"),
            // A failing run is never "no regression", even against a failing baseline: what
            // fails it is listed below, and a new reason is a regression of its own.
            regression: bv == "pass" && cv != "pass",
        });
    }
    if c.interrupted && !b.interrupted {
        f.push(Finding {
            scope: "run".into(),
            metric: "interrupted".into(),
            baseline: None,
            current: None,
            change: "ran to the end → interrupted".into(),
            regression: true,
        });
    }
    for r in c.reasons.iter().filter(|r| !b.reasons.contains(r)) {
        f.push(Finding {
            scope: "run".into(),
            metric: "reason".into(),
            baseline: None,
            current: None,
            change: format!("new: {r}"),
            regression: true,
        });
    }
    for ct in &c.thresholds {
        let bt = b.thresholds.iter().find(|t| t.expr == ct.expr);
        let was_ok = bt.map(|t| t.ok);
        if was_ok != Some(ct.ok) {
            f.push(Finding {
                scope: format!("threshold {}", ct.expr),
                metric: "held".into(),
                baseline: bt.map(|t| t.value),
                current: Some(ct.value),
                change: match (was_ok, ct.ok) {
                    (None, true) => "new, held".into(),
                    (None, false) => "new, failed".into(),
                    (Some(_), true) => "failed → held".into(),
                    (Some(_), false) => "held → failed".into(),
                },
                regression: !ct.ok,
            });
        }
    }
    for bt in b.thresholds.iter().filter(|bt| !c.thresholds.iter().any(|t| t.expr == bt.expr)) {
        f.push(Finding {
            scope: format!("threshold {}", bt.expr),
            metric: "held".into(),
            baseline: Some(bt.value),
            current: None,
            change: "→ not in this run".into(),
            regression: rules.missing_check_is_regression,
        });
    }
    // Violations and results per check.
    for cc in &c.checks {
        let scope = format!("check {}", cc.id);
        match b.checks.iter().find(|x| x.id == cc.id) {
            Some(bc) => {
                violations(&mut f, &scope, &bc.violations, &cc.violations);
                let (br, cr) = (bc.result.name(), cc.result.name());
                if br != cr {
                    // A check no longer sent tests nothing: like a missing one.
                    let regression = br == "pass" && (cr != "skipped" || rules.missing_check_is_regression);
                    f.push(Finding {
                        scope: scope.clone(),
                        metric: "result".into(),
                        baseline: None,
                        current: None,
                        change: format!("{br} → {cr}"),
                        regression,
                    });
                }
                rate(&mut f, &scope, rules, (bc.errors, bc.sent), (cc.errors, cc.sent));
            }
            None => {
                let v = cc.violations.get("total").copied().unwrap_or(0);
                let r = cc.result.name();
                f.push(Finding {
                    scope: scope.clone(),
                    metric: "result".into(),
                    baseline: None,
                    current: Some(v as f64),
                    change: format!("new check: {r} ({v} violations)"),
                    regression: v > 0 || (r != "pass" && r != "skipped"),
                });
            }
        }
    }
    for bc in b.checks.iter().filter(|bc| !c.checks.iter().any(|x| x.id == bc.id)) {
        f.push(Finding {
            scope: format!("check {}", bc.id),
            metric: "result".into(),
            baseline: None,
            current: None,
            change: format!("{} → not in this run", bc.result.name()),
            regression: rules.missing_check_is_regression,
        });
    }
    // Per phase: violations, error rate, achieved rate.
    for cp in &c.phases {
        let scope = format!("phase {}", cp.name);
        let Some(bp) = b.phases.iter().find(|x| x.name == cp.name) else {
            notes.push(format!("phase `{}` is not in the baseline", cp.name));
            continue;
        };
        violations(&mut f, &scope, &bp.violations, &cp.violations);
        rate(&mut f, &scope, rules, (bp.requests.errors, bp.requests.sent), (cp.requests.errors, cp.requests.sent));
        if (bp.offered_rps - cp.offered_rps).abs() <= 0.01 * bp.offered_rps.max(1.0) && bp.achieved_rps > 0.0 {
            let drop = (bp.achieved_rps - cp.achieved_rps) / bp.achieved_rps * 100.0;
            f.push(Finding {
                scope: scope.clone(),
                metric: "achieved_rps".into(),
                baseline: Some(bp.achieved_rps),
                current: Some(cp.achieved_rps),
                change: format!("{:+.1} %", -drop),
                regression: drop > rules.achieved_rate_drop_pct,
            });
        } else if (bp.offered_rps - cp.offered_rps).abs() > 0.01 * bp.offered_rps.max(1.0) {
            notes.push(format!(
                "phase `{}` planned {} /s in the baseline and {} /s now: achieved rates not compared",
                cp.name, bp.offered_rps, cp.offered_rps
            ));
        }
    }
    for cc in &c.conditions {
        if let Some(bc) = b.conditions.iter().find(|x| x.name == cc.name) {
            let scope = format!("condition {}", cc.name);
            violations(&mut f, &scope, &bc.violations, &cc.violations);
            rate(&mut f, &scope, rules, (bc.requests.errors, bc.requests.sent), (cc.requests.errors, cc.requests.sent));
        }
    }
    // Latency from the histograms, every scope both runs have.
    for tag in hb.keys().filter(|t| !hc.contains_key(*t)) {
        if !hc.is_empty() {
            notes.push(format!("latency of `{}` is in the baseline only: not compared", untag(tag)));
        }
    }
    for (tag, h) in &hc {
        let Some(bh) = hb.get(tag) else { continue };
        let scope = match tag.split_once('=') {
            Some((kind, name)) => format!("{kind} {}", untag(name)),
            None => tag.clone(),
        };
        if bh.len() < rules.min_samples || h.len() < rules.min_samples {
            if tag == "run" || tag.starts_with("phase=") {
                notes.push(format!(
                    "{scope}: latency not compared ({} and {} samples, fewer than {})",
                    bh.len(),
                    h.len(),
                    rules.min_samples
                ));
            }
            continue;
        }
        for l in &rules.latency {
            let q = quantile(&l.quantile).unwrap_or(0.99);
            let at = |h: &Histogram<u64>| (if q >= 1.0 { h.max() } else { h.value_at_quantile(q) }) as f64 / 1000.0;
            let (x, y) = (at(bh), at(h));
            let pct = if x > 0.0 {
                (y - x) / x * 100.0
            } else if y > x {
                f64::INFINITY
            } else {
                0.0
            };
            f.push(Finding {
                scope: scope.clone(),
                metric: format!("latency.{}", l.quantile),
                baseline: Some(x),
                current: Some(y),
                change: format!("{pct:+.1} % ({:+.3} ms)", y - x),
                regression: pct > l.pct && y - x >= l.min_ms,
            });
        }
    }
    f.sort_by_key(|x| !x.regression);
    Ok(Comparison {
        schema: COMPARE_SCHEMA.into(),
        baseline: run_ref(baseline, &b),
        current: run_ref(current, &c),
        rules: rules.clone(),
        regressions: f.iter().filter(|x| x.regression).count() as u64,
        findings: f,
        notes,
    })
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// New violations by kind: any more than the baseline had is a regression.
fn violations(f: &mut Vec<Finding>, scope: &str, b: &BTreeMap<String, u64>, c: &BTreeMap<String, u64>) {
    for (k, n) in c.iter().filter(|(k, _)| *k != "total") {
        let was = b.get(k).copied().unwrap_or(0);
        if *n != was {
            f.push(Finding {
                scope: scope.into(),
                metric: format!("violations.{k}"),
                baseline: Some(was as f64),
                current: Some(*n as f64),
                change: format!("{:+}", *n as i64 - was as i64),
                regression: *n > was,
            });
        }
    }
}

/// The error rate (requests without an answer, percent of sent).
fn rate(f: &mut Vec<Finding>, scope: &str, rules: &Rules, (be, bs): (u64, u64), (ce, cs): (u64, u64)) {
    if bs == 0 || cs == 0 {
        return;
    }
    let (x, y) = (be as f64 / bs as f64 * 100.0, ce as f64 / cs as f64 * 100.0);
    if (y - x).abs() < 1e-9 {
        return;
    }
    f.push(Finding {
        scope: scope.into(),
        metric: "error_rate".into(),
        baseline: Some(x),
        current: Some(y),
        change: format!("{:+.2} pp", y - x),
        regression: y - x > rules.error_rate_pp,
    });
}

impl Comparison {
    /// For `--json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// For a terminal.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "compare: {} (run {}, {}) → {} (run {}, {})",
            printable(&self.baseline.dir),
            printable(&self.baseline.run_id),
            self.baseline.verdict,
            printable(&self.current.dir),
            printable(&self.current.run_id),
            self.current.verdict
        );
        for n in &self.notes {
            let _ = writeln!(o, "  note: {}", printable(n));
        }
        for x in &self.findings {
            let values = match (x.baseline, x.current) {
                (None, None) => String::new(),
                (b, c) => format!("{} → {}  ", value(b), value(c)),
            };
            let _ = writeln!(
                o,
                "  {} {:<28} {:<26} {values}{}",
                if x.regression { "REGRESSION" } else { "          " },
                printable(&x.scope),
                printable(&x.metric),
                printable(&x.change)
            );
        }
        let _ = writeln!(
            o,
            "{}: {} regression(s) in {} comparisons",
            if self.regressions > 0 { "FAIL" } else { "ok" },
            self.regressions,
            self.findings.len()
        );
        o
    }

    /// GitHub-flavoured Markdown, for a job summary.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "## gauntlet compare — {}\n\nBaseline run `{}` ({}) → current run `{}` ({}): **{} regression(s)** in {} comparisons.\n",
            if self.regressions > 0 { "❌ regressions" } else { "✅ no regression" },
            md(&self.baseline.run_id),
            self.baseline.verdict,
            md(&self.current.run_id),
            self.current.verdict,
            self.regressions,
            self.findings.len()
        );
        if !self.findings.is_empty() {
            o.push_str("| | scope | metric | baseline | current | change |\n|---|---|---|---|---|---|\n");
            for x in &self.findings {
                let _ = writeln!(
                    o,
                    "| {} | {} | `{}` | {} | {} | {} |",
                    if x.regression { "❌" } else { "" },
                    md(&x.scope),
                    md(&x.metric),
                    value(x.baseline),
                    value(x.current),
                    md(&x.change)
                );
            }
        }
        for n in &self.notes {
            let _ = writeln!(o, "\n> {}", md(n));
        }
        o
    }
}

fn value(v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Some(x) => format!("{x:.3}"),
    }
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}
