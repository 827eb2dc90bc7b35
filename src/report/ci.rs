//! Reports for CI: `junit.xml` (one testcase per check: failures with their reason, skipped
//! for checks not sent or outside the profile's scope, inconclusive as errors — a CI gate
//! must not read "could not decide" as green) and `summary.md` (GitHub-flavoured Markdown
//! for a job summary: verdict, reasons, thresholds, failing checks, percentiles). Both are
//! rendered from the [`Summary`] alone, so they say nothing the summary does not.

use std::fmt::Write as _;

use super::summary::{CheckSummary, Summary};
use crate::judge::{CheckResult, RunVerdict};

/// `s` escaped for XML text and attribute values; characters XML 1.0 cannot carry at all
/// (most C0 controls) are dropped.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// `s` safe inside one Markdown table cell (pipes and line breaks escaped, controls dropped).
fn cell(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect::<String>()
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', "<br>")
}

fn violations(c: &CheckSummary) -> String {
    // `total` is the sum of the kinds, not a kind.
    let v: Vec<String> =
        c.violations.iter().filter(|(k, n)| **n > 0 && **k != "total").map(|(k, n)| format!("{k} {n}")).collect();
    if v.is_empty() { "—".into() } else { v.join(", ") }
}

/// One `<testsuite>` named after the scenario, one `<testcase>` per check (classname: the
/// check's expectation), `time` the run's length on the suite.
pub fn junit(s: &Summary) -> String {
    let count = |r: CheckResult| s.checks.iter().filter(|c| c.result == r).count();
    let (fail, errs, skip) = (count(CheckResult::Fail), count(CheckResult::Inconclusive), count(CheckResult::Skipped));
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"gauntlet\" tests=\"{}\" failures=\"{fail}\" errors=\"{errs}\" skipped=\"{skip}\" time=\"{:.3}\">",
        s.checks.len(),
        s.duration_s
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fail}\" errors=\"{errs}\" skipped=\"{skip}\" time=\"{:.3}\" timestamp=\"{}\">",
        xml(&s.scenario.name),
        s.checks.len(),
        s.duration_s,
        xml(&s.started_at)
    );
    let _ = writeln!(x, "    <properties>");
    for (k, v) in [
        ("run_id", s.run_id.as_str()),
        ("verdict", s.verdict.name()),
        ("target", s.target.url.as_str()),
        ("profile", s.target.profile.as_str()),
        ("scenario_sha256", s.scenario.sha256.as_str()),
        ("gauntlet_version", s.gauntlet_version.as_str()),
    ] {
        let _ = writeln!(x, "      <property name=\"{k}\" value=\"{}\"/>", xml(v));
    }
    let _ = writeln!(x, "    </properties>");
    for c in &s.checks {
        let detail = format!(
            "expect {} as {}: sent {}, completed {}, errors {}; violations: {}; statuses: {}",
            c.expect,
            c.identity,
            c.sent,
            c.completed,
            c.errors,
            violations(c),
            c.statuses.iter().map(|(k, n)| format!("{k} ×{n}")).collect::<Vec<_>>().join(", ")
        );
        let _ = write!(x, "    <testcase name=\"{}\" classname=\"{}\"", xml(&c.id), xml(&c.expect));
        match c.result {
            CheckResult::Pass => {
                let _ = writeln!(x, ">\n      <system-out>{}</system-out>\n    </testcase>", xml(&detail));
            }
            CheckResult::Fail => {
                let _ = writeln!(
                    x,
                    ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                    xml(&c.reason),
                    xml(c.result.name()),
                    xml(&detail)
                );
            }
            CheckResult::Inconclusive => {
                let _ = writeln!(
                    x,
                    ">\n      <error message=\"{}\" type=\"inconclusive\">{}</error>\n    </testcase>",
                    xml(&c.reason),
                    xml(&detail)
                );
            }
            CheckResult::Skipped => {
                let _ = writeln!(x, ">\n      <skipped message=\"{}\"/>\n    </testcase>", xml(&c.reason));
            }
        }
    }
    if s.verdict == RunVerdict::Fail {
        // Reasons beyond the checks (thresholds, error budget, an interrupted run) fail the
        // suite too: a run can fail with every check passed.
        let _ = writeln!(x, "    <system-err>{}</system-err>", xml(&s.reasons.join("\n")));
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// GitHub-flavoured Markdown for a CI job summary.
pub fn markdown(s: &Summary) -> String {
    let mut m = String::new();
    let verdict = match s.verdict {
        RunVerdict::Pass => "✅ PASS",
        RunVerdict::Fail => "❌ FAIL",
    };
    let _ = writeln!(m, "## gauntlet: {} — {verdict}\n", cell(&s.scenario.name));
    let _ = writeln!(
        m,
        "Target `{}` ({}, profile `{}`), {:.1} s, run `{}`{}.\n",
        cell(&s.target.url),
        cell(&s.target.protocol),
        cell(&s.target.profile),
        s.duration_s,
        cell(&s.run_id),
        if s.interrupted { ", **interrupted**" } else { "" }
    );
    if !s.reasons.is_empty() {
        let _ = writeln!(m, "**Why it failed**\n");
        for r in &s.reasons {
            let _ = writeln!(m, "- {}", cell(r));
        }
        m.push('\n');
    }
    let r = &s.requests;
    let _ = writeln!(m, "| sent | completed | errors | timeouts | achieved rate | violations |");
    let _ = writeln!(m, "|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        m,
        "| {} | {} | {} | {} | {:.1}/s | {} |\n",
        r.sent,
        r.completed,
        r.errors,
        r.timeouts,
        s.achieved_rps,
        s.violations.iter().filter(|(k, _)| **k != "total").map(|(_, n)| n).sum::<u64>()
    );
    let l = &s.latency_ms;
    let _ = writeln!(m, "**Latency** (ms, from the intended send time)\n");
    let _ = writeln!(m, "| | p50 | p90 | p99 | p99.9 | max |");
    let _ = writeln!(m, "|---|---:|---:|---:|---:|---:|");
    let _ = writeln!(m, "| all | {} | {} | {} | {} | {} |", l.p50, l.p90, l.p99, l.p999, l.max);
    for p in &s.phases {
        let l = &p.latency_ms;
        let _ = writeln!(m, "| {} | {} | {} | {} | {} | {} |", cell(&p.name), l.p50, l.p90, l.p99, l.p999, l.max);
    }
    m.push('\n');
    if !s.thresholds.is_empty() {
        let _ = writeln!(m, "**Thresholds**\n\n| | threshold | value |\n|---|---|---:|");
        for t in &s.thresholds {
            let _ = writeln!(m, "| {} | `{}` | {} |", if t.ok { "✅" } else { "❌" }, cell(&t.expr), t.value);
        }
        m.push('\n');
    }
    let count = |r: CheckResult| s.checks.iter().filter(|c| c.result == r).count();
    let _ = writeln!(
        m,
        "**Checks**: {} passed, {} failed, {} inconclusive, {} skipped\n",
        count(CheckResult::Pass),
        count(CheckResult::Fail),
        count(CheckResult::Inconclusive),
        count(CheckResult::Skipped)
    );
    let bad: Vec<&CheckSummary> =
        s.checks.iter().filter(|c| matches!(c.result, CheckResult::Fail | CheckResult::Inconclusive)).collect();
    if !bad.is_empty() {
        let _ = writeln!(m, "| check | result | expect | sent | violations | why |\n|---|---|---|---:|---|---|");
        for c in bad {
            let _ = writeln!(
                m,
                "| `{}` | {} | {} | {} | {} | {} |",
                cell(&c.id),
                c.result.name(),
                c.expect,
                c.sent,
                cell(&violations(c)),
                cell(&c.reason)
            );
        }
        m.push('\n');
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_and_markdown_escape_what_would_break_them() {
        assert_eq!(xml("a<b & \"c\" 'd'>\u{1b}[2J\u{0}"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;[2J");
        assert_eq!(cell("a|b\nc\u{1b}"), "a\\|b<br>c");
    }
}
