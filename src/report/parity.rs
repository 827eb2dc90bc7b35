//! Protocol parity: the same checks over several protocols, compared. A check whose verdict
//! differs between protocols is a `protocol_mismatch` — critical when one protocol leaks,
//! accepts a handshake it must refuse, or loses or forges the identity the others keep.

use std::collections::BTreeMap;

use serde::Serialize;

use super::summary::{Latency, Requests, ScenarioInfo, Summary};
use crate::conformance::Severity;
use crate::judge::{CheckResult, RunVerdict};

/// One protocol's run.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ProtocolRun {
    /// `h1`, `h2`, `h3`, `auto`.
    pub protocol: String,
    /// Its results folder, relative to the parity folder.
    pub results: String,
    /// Counters.
    pub requests: Requests,
    /// Verdicts per second.
    pub achieved_rps: f64,
    /// From the intended send time.
    pub latency_ms: Latency,
    /// By kind.
    pub violations: BTreeMap<String, u64>,
    /// That run's own verdict.
    pub verdict: RunVerdict,
}

/// One check across protocols.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct CheckParity {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Protocol → verdict (`pass`, `fail: leak`, `inconclusive`, …).
    pub verdicts: BTreeMap<String, String>,
    /// The verdicts differ.
    pub mismatch: bool,
    /// Severity of the mismatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// `summary.json` of a parity run.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ParitySummary {
    /// Always `gauntlet.parity/v1`.
    pub schema: String,
    /// Scenario identity.
    pub scenario: ScenarioInfo,
    /// Per protocol.
    pub protocols: Vec<ProtocolRun>,
    /// Per check.
    pub checks: Vec<CheckParity>,
    /// All protocols' violations summed, plus `protocol_mismatch`.
    pub violations: BTreeMap<String, u64>,
    /// `pass` or `fail`.
    pub verdict: RunVerdict,
    /// Why it failed.
    pub reasons: Vec<String>,
}

/// The schema a parity run's top `summary.json` follows (its `schema` field).
pub const PARITY_SCHEMA: &str = "gauntlet.parity/v1";

/// Kinds that make a mismatch critical when one protocol has them and another does not.
const CRITICAL: [&str; 4] = ["leak", "tls_accept", "spoofed_header", "missing_identity"];

fn verdict_of(c: &super::CheckSummary) -> String {
    let kinds: Vec<&str> =
        c.violations.iter().filter(|(k, n)| *k != "total" && **n > 0).map(|(k, _)| k.as_str()).collect();
    let r = c.result.name();
    if kinds.is_empty() { r.to_string() } else { format!("{r}: {}", kinds.join("+")) }
}

impl ParitySummary {
    /// Compares the runs (protocol name, its folder, its summary), in order.
    pub fn new(runs: &[(String, String, Summary)]) -> Self {
        let first = &runs[0].2;
        let protocols = runs
            .iter()
            .map(|(p, dir, s)| ProtocolRun {
                protocol: p.clone(),
                results: dir.clone(),
                requests: s.requests.clone(),
                achieved_rps: s.achieved_rps,
                latency_ms: s.latency_ms.clone(),
                violations: s.violations.clone(),
                verdict: s.verdict,
            })
            .collect::<Vec<_>>();
        let mut checks = Vec::new();
        for (i, c) in first.checks.iter().enumerate() {
            let verdicts: BTreeMap<String, String> =
                runs.iter().filter_map(|(p, _, s)| s.checks.get(i).map(|x| (p.clone(), verdict_of(x)))).collect();
            // Only runs that reached a verdict are compared.
            let decided: Vec<&String> = runs
                .iter()
                .filter(|(_, _, s)| {
                    s.checks.get(i).is_some_and(|x| matches!(x.result, CheckResult::Pass | CheckResult::Fail))
                })
                .filter_map(|(p, _, _)| verdicts.get(p))
                .collect();
            let mismatch = decided.windows(2).any(|w| w[0] != w[1]);
            let severity = mismatch.then(|| {
                let has = |v: &str, k: &str| v.contains(k);
                let critical =
                    CRITICAL.iter().any(|k| decided.iter().any(|v| has(v, k)) && decided.iter().any(|v| !has(v, k)));
                if critical { Severity::Critical } else { Severity::High }
            });
            checks.push(CheckParity { id: c.id.clone(), title: c.title.clone(), verdicts, mismatch, severity });
        }
        let mut violations: BTreeMap<String, u64> = BTreeMap::new();
        for (_, _, s) in runs {
            for (k, n) in &s.violations {
                *violations.entry(k.clone()).or_default() += n;
            }
        }
        let mismatches = checks.iter().filter(|c| c.mismatch).count() as u64;
        violations.insert("protocol_mismatch".into(), mismatches);
        *violations.entry("total".into()).or_default() += mismatches;
        let mut reasons = Vec::new();
        for c in checks.iter().filter(|c| c.mismatch) {
            let v: Vec<String> = c.verdicts.iter().map(|(p, v)| format!("{p} {v}")).collect();
            reasons.push(format!(
                "protocol_mismatch ({}) on {}: {}",
                c.severity.map_or("high", |s| if s == Severity::Critical { "critical" } else { "high" }),
                c.id,
                v.join(", ")
            ));
        }
        for p in protocols.iter().filter(|p| p.verdict != RunVerdict::Pass) {
            reasons.push(format!("the {} run failed (see {}/summary.json)", p.protocol, p.results));
        }
        ParitySummary {
            schema: PARITY_SCHEMA.into(),
            scenario: first.scenario.clone(),
            protocols,
            checks,
            violations,
            verdict: if reasons.is_empty() { RunVerdict::Pass } else { RunVerdict::Fail },
            reasons,
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The human summary.
    pub fn text(&self) -> String {
        let mut o = format!("parity — scenario `{}` over {}\n", self.scenario.name, {
            self.protocols.iter().map(|p| p.protocol.as_str()).collect::<Vec<_>>().join(", ")
        });
        for p in &self.protocols {
            o.push_str(&format!(
                "  {:<4} {:>7} requests {:>8.1}/s  p50 {:>7.2}ms  p99 {:>7.2}ms  violations {:>4}  {}\n",
                p.protocol,
                p.requests.completed,
                p.achieved_rps,
                p.latency_ms.p50,
                p.latency_ms.p99,
                p.violations.get("total").copied().unwrap_or(0),
                p.verdict.name().to_uppercase()
            ));
        }
        let n = self.checks.iter().filter(|c| c.mismatch).count();
        o.push_str(&format!("  checks {} compared, {n} protocol mismatch(es)\n", self.checks.len()));
        o.push_str(&format!("verdict: {}\n", self.verdict.name().to_uppercase()));
        for r in &self.reasons {
            o.push_str(&format!("  - {r}\n"));
        }
        o
    }
}
