//! `conformance.yaml` and `results.jsonl`: the run as a conformance report, modelled on the
//! Kubernetes Gateway API ConformanceReport (see CHECKS.md §6): implementation under test,
//! profiles with core/extended results, statistics, failed checks, violations by severity, a
//! generated summary line and a `reproduce` block. Holds check ids and counts only — no
//! tokens, keys or header values.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::summary::{CheckSummary, ErrorCause, Summary};
use crate::conformance::{HeaderFinding, Severity, Violation};
use crate::judge::{CheckResult, Envelope};
use crate::scenario::{Implementation, Scenario};

/// Profile, level and feature of a check id (CHECKS.md §3.12); unknown ids are custom core.
fn classify(id: &str) -> (&'static str, &'static str, Option<&'static str>) {
    let n = |p: &str| id.strip_prefix(p).and_then(|r| r.get(..3)).and_then(|d| d.parse::<u32>().ok());
    if id.starts_with("ZT-AUTHN-MTLS-") {
        return match n("ZT-AUTHN-MTLS-") {
            Some(6) => ("ZT-GATEWAY-MTLS", "extended", Some("CertRevocation")),
            Some(8) => ("ZT-GATEWAY-MTLS", "extended", Some("CertBoundTokens")),
            _ => ("ZT-GATEWAY-MTLS", "core", None),
        };
    }
    if id.starts_with("ZT-AUTHN-JWT-") {
        return match n("ZT-AUTHN-JWT-") {
            Some(1) => ("ZT-GATEWAY-HTTP", "core", None),
            _ => ("ZT-GATEWAY-HTTP", "extended", Some("BearerJWT")),
        };
    }
    if id == "ZT-BASE-CTRL-002" {
        return ("ZT-GATEWAY-MTLS", "core", None);
    }
    if id.starts_with("ZT-DOS-RATE-") {
        return ("ZT-GATEWAY-RESILIENCE", "extended", Some("RateLimiting"));
    }
    if id.starts_with("ZT-RES-") || id.starts_with("ZT-DOS-") {
        return ("ZT-GATEWAY-RESILIENCE", "core", None);
    }
    if id.starts_with("ZT-TLS-") {
        return ("ZT-GATEWAY-TLS", "core", None);
    }
    if id.starts_with("ZT-") {
        return ("ZT-GATEWAY-HTTP", "core", None);
    }
    ("CUSTOM", "core", None)
}

/// Per-check status in the report's vocabulary.
fn status(c: &CheckSummary) -> &'static str {
    match c.result {
        CheckResult::Fail => "FAILED",
        CheckResult::Pass => "PASSED",
        CheckResult::Inconclusive => "INCONCLUSIVE",
        CheckResult::Skipped => "SKIPPED",
    }
}

#[derive(Debug, Serialize, Default, Clone)]
struct Statistics {
    passed: u64,
    warned: u64,
    failed: u64,
    skipped: u64,
    inconclusive: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Level {
    result: &'static str,
    statistics: Statistics,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failed_checks: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped_checks: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    supported_features: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ProfileReport {
    name: String,
    summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    core: Option<Level>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extended: Option<Level>,
    violations: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Environment {
    protocols: Vec<String>,
    load_envelope: Envelope,
}

#[derive(Debug, Serialize)]
struct Catalog {
    name: &'static str,
    version: &'static str,
    channel: &'static str,
    digest: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Reproduce {
    command: String,
    scenario_sha256: String,
    seed: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    api_version: &'static str,
    kind: &'static str,
    date: String,
    gauntlet_version: String,
    catalog: Catalog,
    implementation: Implementation,
    #[serde(skip_serializing_if = "Option::is_none")]
    certification: Option<crate::scenario::Certification>,
    mode: &'static str,
    oracle: &'static str,
    environment: Environment,
    profiles: Vec<ProfileReport>,
    fail_open_routes: Vec<String>,
    results: &'static str,
    results_digest: String,
    reproduce: Reproduce,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckLine<'a> {
    id: &'a str,
    profile: &'static str,
    level: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    feature: Option<&'static str>,
    status: &'static str,
    severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_mode: Option<&'static str>,
    oracle: &'static str,
    sent: u64,
    violations: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_violation_phase: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    headers: &'a [HeaderFinding],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    error_causes: &'a [ErrorCause],
    anchors: Vec<&'a str>,
}

/// Removes credentials from a command line (`scheme://user:pass@host`).
fn redact(cmd: &str) -> String {
    cmd.split(' ').map(crate::conformance::redact_userinfo).collect::<Vec<_>>().join(" ")
}

/// A check with its level, status and feature.
type Placed<'a> = (&'a CheckSummary, &'static str, &'static str, Option<&'static str>);

/// Renders `(conformance.yaml, results.jsonl)`.
pub fn render(s: &Scenario, sum: &Summary) -> (String, String) {
    let oracle = sum.oracle.is_some();
    let oracle_name = if oracle { "upstream-canary" } else { "client-only" };
    let mut lines = String::new();
    let mut by_profile: BTreeMap<&'static str, Vec<Placed<'_>>> = BTreeMap::new();
    for (c, chk) in sum.checks.iter().zip(&s.checks) {
        let (profile, level, feature) = classify(&c.id);
        let st = status(c);
        let total = c.violations.get("total").copied().unwrap_or(0);
        let mode =
            Violation::ALL.iter().find(|v| c.violations.get(v.name()).copied().unwrap_or(0) > 0).map(|v| match v {
                Violation::Leak => "deny-class-reached-upstream-or-2xx",
                Violation::TlsAccept => "handshake-accepted",
                Violation::SpoofedHeader => "attacker-identity-at-upstream",
                Violation::FalseDeny => "allow-class-refused",
                Violation::WrongStatus => "wrong-deny-status",
                Violation::MissingIdentity => "identity-not-propagated",
                Violation::LimitBypass => "limit-not-enforced",
            });
        // The run's first phase with violations (per-check phase detail is in summary.json).
        let first = (total > 0)
            .then(|| sum.phases.iter().find(|p| p.violations.get("total").copied().unwrap_or(0) > 0))
            .flatten()
            .map(|p| p.name.as_str());
        let line = CheckLine {
            id: &c.id,
            profile,
            level,
            feature,
            status: st,
            severity: c.severity,
            failure_mode: mode,
            oracle: oracle_name,
            sent: c.sent,
            violations: total,
            first_violation_phase: first,
            reason: &c.reason,
            headers: c.upstream.as_ref().map_or(&[][..], |u| &u.headers),
            error_causes: &c.error_causes,
            anchors: chk.reference.split(';').map(str::trim).filter(|x| !x.is_empty()).collect(),
        };
        lines.push_str(&serde_json::to_string(&line).unwrap_or_default());
        lines.push('\n');
        by_profile.entry(profile).or_default().push((c, level, st, feature));
    }
    let profiles = by_profile
        .into_iter()
        .map(|(name, items)| {
            let mut sev: BTreeMap<&'static str, u64> = [("critical", 0), ("high", 0), ("medium", 0), ("low", 0)].into();
            for (c, ..) in &items {
                for v in Violation::ALL {
                    let n = c.violations.get(v.name()).copied().unwrap_or(0);
                    let key = match v.severity().min(c.severity) {
                        Severity::Critical => "critical",
                        Severity::High => "high",
                        Severity::Medium => "medium",
                        Severity::Low => "low",
                    };
                    *sev.entry(key).or_default() += n;
                }
            }
            let level = |want: &str| -> Option<Level> {
                let xs: Vec<_> = items.iter().filter(|(_, l, ..)| *l == want).collect();
                if xs.is_empty() {
                    return None;
                }
                let mut st = Statistics::default();
                let (mut failed, mut skipped, mut features) = (Vec::new(), Vec::new(), Vec::new());
                let mut control_failed = false;
                for (c, _, s, f) in &xs {
                    match *s {
                        "PASSED" => st.passed += 1,
                        "FAILED" => {
                            st.failed += 1;
                            failed.push(c.id.clone());
                            control_failed |= c.id.starts_with("ZT-BASE-CTRL-");
                        }
                        "INCONCLUSIVE" => {
                            st.inconclusive += 1;
                            skipped.push(c.id.clone());
                        }
                        _ => {
                            st.skipped += 1;
                            skipped.push(c.id.clone());
                        }
                    }
                    if let Some(f) = f {
                        if !features.contains(&f.to_string()) {
                            features.push(f.to_string());
                        }
                    }
                }
                let result = if st.failed > 0 || control_failed {
                    "failure"
                } else if st.skipped > 0 || st.inconclusive > 0 {
                    "partial"
                } else {
                    "success"
                };
                Some(Level {
                    result,
                    statistics: st,
                    failed_checks: failed,
                    skipped_checks: skipped,
                    supported_features: features,
                })
            };
            let core = level("core");
            let extended = level("extended");
            let plural = |n: u64, word: &str| format!("{n} check {word}{}", if n == 1 { "" } else { "s" });
            let phrase = |l: &Level, what: &str| match l.result {
                "success" => format!("{what} checks succeeded."),
                "partial" => format!(
                    "{what} checks partially succeeded with {}.",
                    plural(l.statistics.skipped + l.statistics.inconclusive, "skip")
                ),
                _ => format!("{what} checks failed with {}.", plural(l.statistics.failed, "failure")),
            };
            let mut summary = match &core {
                Some(c) => phrase(c, "Core"),
                None => "No core checks of this profile were in the pack.".to_string(),
            };
            if let Some(e) = &extended {
                summary.push(' ');
                summary.push_str(&phrase(e, "Extended"));
            }
            ProfileReport { name: name.to_string(), summary, core, extended, violations: sev }
        })
        .collect();
    let digest = |b: &[u8]| format!("sha256:{}", crate::scenario::hex(&Sha256::digest(b)));
    let report = Report {
        api_version: "gauntlet.dev/v1alpha1",
        kind: "ConformanceReport",
        date: sum.started_at.clone(),
        gauntlet_version: format!("v{}", sum.gauntlet_version),
        catalog: Catalog {
            name: "zt-catalog",
            version: "v0.1",
            channel: "draft",
            digest: format!("sha256:{}", s.sha256),
        },
        implementation: s.profile.implementation.clone(),
        certification: s.certification.clone(),
        mode: "api-strict",
        oracle: oracle_name,
        environment: Environment {
            protocols: vec![sum.target.protocol.clone()],
            load_envelope: sum.load_envelope.clone(),
        },
        profiles,
        fail_open_routes: Vec::new(),
        results: "results.jsonl",
        results_digest: digest(lines.as_bytes()),
        reproduce: Reproduce {
            command: redact(&sum.reproduce.command),
            scenario_sha256: s.sha256.clone(),
            seed: s.seed,
        },
    };
    let yaml = serde_yaml::to_string(&report).unwrap_or_default();
    (format!("# gauntlet conformance report — publish unmodified; per-check detail in results.jsonl\n{yaml}"), lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_ids_map_to_profiles_and_levels() {
        assert_eq!(classify("ZT-AUTHN-JWT-001"), ("ZT-GATEWAY-HTTP", "core", None));
        assert_eq!(classify("ZT-AUTHN-JWT-006"), ("ZT-GATEWAY-HTTP", "extended", Some("BearerJWT")));
        assert_eq!(classify("ZT-AUTHN-MTLS-003"), ("ZT-GATEWAY-MTLS", "core", None));
        assert_eq!(classify("ZT-AUTHN-MTLS-008"), ("ZT-GATEWAY-MTLS", "extended", Some("CertBoundTokens")));
        assert_eq!(classify("ZT-DOS-RATE-001"), ("ZT-GATEWAY-RESILIENCE", "extended", Some("RateLimiting")));
        assert_eq!(classify("MY-CHECK"), ("CUSTOM", "core", None));
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact("gauntlet run x --target-url https://u:p@gw:443/"),
            "gauntlet run x --target-url https://REDACTED@gw:443/"
        );
    }
}
