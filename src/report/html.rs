//! `report.html`: one self-contained page a lab hands on — inline CSS and SVG, no script, no
//! network, prints on A4. Rendered from the results folder's own files (`summary.json`,
//! `series.jsonl`, `latency.hlog`, `conformance.yaml`), so `gauntlet report DIR` gives old
//! runs the same page a new run gets.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::intervals::Point;
use super::svg::{self, Band, Line, Time, esc};
use super::{CheckSummary, Summary};
use crate::scenario::Certification;

/// What the page is drawn from.
#[derive(Debug, Default)]
pub struct Sources<'a> {
    /// `series.jsonl`, read.
    pub series: &'a [Point],
    /// `latency.hlog`'s bytes, when it is there.
    pub hlog: Option<&'a [u8]>,
    /// The `certification:` block of `conformance.yaml`, when there is one.
    pub certification: Option<Certification>,
}

const STYLE: &str = r#"
:root { --pass: #1a7f37; --fail: #cf222e; --warn: #9a6700; --muted: #57606a; }
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 980px; color: #1f2328; line-height: 1.4; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
.verdict { display: inline-block; padding: 4px 14px; border-radius: 6px; color: #fff; font-weight: bold; font-size: 20px; letter-spacing: 1px; }
.pass { background: var(--pass); } .fail { background: var(--fail); }
.r-pass { color: var(--pass); font-weight: 600; } .r-fail { color: var(--fail); font-weight: 600; } .r-inconclusive { color: var(--warn); font-weight: 600; } .r-skipped { color: var(--muted); }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 6px 0; }
th, td { border: 1px solid #d0d7de; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } tr.detail td { border-top: none; padding-left: 18px; } td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.meta td:first-child { width: 190px; color: var(--muted); }
.reasons li { color: var(--fail); } .muted { color: var(--muted); font-size: 12px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
svg { width: 100%; height: auto; margin: 6px 0 14px; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; } tr, svg { break-inside: avoid; } a { color: inherit; text-decoration: none; } }
@page { size: A4; margin: 14mm; }
"#;

/// The page.
pub fn render(s: &Summary, src: &Sources<'_>) -> String {
    let mut o = String::with_capacity(64 << 10);
    let verdict = s.verdict.name();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>gauntlet: {} — {}</title><style>{STYLE}</style></head><body>\n",
        esc(&s.scenario.name),
        verdict.to_uppercase()
    );
    let _ = write!(
        o,
        "<h1>{} <span class=\"verdict {verdict}\">{}</span></h1>\n<p class=\"muted\">gauntlet {} · run <span class=\"mono\">{}</span> · started {} · {:.1} s{}</p>\n",
        esc(&s.scenario.name),
        verdict.to_uppercase(),
        esc(&s.gauntlet_version),
        esc(&s.run_id),
        esc(&s.started_at),
        s.duration_s,
        if s.interrupted { " · <b>interrupted</b>" } else { "" }
    );
    if !s.reasons.is_empty() {
        o.push_str("<h2>Why it failed</h2><ul class=\"reasons\">");
        for r in &s.reasons {
            let _ = write!(o, "<li>{}</li>", esc(r));
        }
        o.push_str("</ul>\n");
    }
    if !s.notes.is_empty() {
        o.push_str("<h2>Notes</h2><ul>");
        for n in &s.notes {
            let _ = write!(o, "<li>{}</li>", esc(n));
        }
        o.push_str("</ul>\n");
    }
    meta(&mut o, s, src.certification.as_ref());
    totals(&mut o, s);
    plots(&mut o, s, src);
    checks(&mut o, &s.checks);
    phases_and_conditions(&mut o, s);
    if !s.thresholds.is_empty() {
        o.push_str("<h2>Thresholds</h2><table><tr><th>threshold</th><th>measured</th><th>held</th></tr>");
        for t in &s.thresholds {
            let _ = write!(
                o,
                "<tr><td class=\"mono\">{}</td><td class=\"n\">{}</td><td class=\"r-{}\">{}</td></tr>",
                esc(&t.expr),
                t.value,
                if t.ok { "pass" } else { "fail" },
                if t.ok { "yes" } else { "no" }
            );
        }
        o.push_str("</table>\n");
    }
    let _ = write!(
        o,
        "<h2>Reproduce</h2><p class=\"mono\">{}</p><p class=\"muted\">scenario sha256 {} · the files of this folder are listed with their sha256 in manifest.json; a signed folder also holds manifest.sig (<code>gauntlet verify DIR --pubkey KEY</code>).</p>\n</body></html>\n",
        esc(&s.reproduce.command),
        esc(&s.reproduce.scenario_sha256)
    );
    o
}

fn meta(o: &mut String, s: &Summary, cert: Option<&Certification>) {
    o.push_str("<h2>Run</h2><table class=\"meta\">");
    let mut row = |k: &str, v: &str| {
        let _ = write!(o, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
    };
    if let Some(c) = cert {
        row("lab", &format!("{} (accreditation {})", c.lab, c.lab_id));
        row("report", &c.report_id);
        row(
            "product",
            &format!("{} {} {} — {}", c.product.vendor, c.product.model, c.product.version, c.product.class),
        );
        row("standard", &format!("{}, {}", c.standard.name, c.standard.edition));
    }
    row("target", &format!("{} ({}, profile {})", s.target.url, s.target.protocol, s.target.profile));
    row("scenario", &format!("{} — sha256 {}", s.scenario.name, s.scenario.sha256));
    if let Some(or) = &s.oracle {
        row(
            "oracle",
            &format!(
                "{} requests received upstream, {} untagged, {} of another run",
                or.received, or.untagged, or.foreign
            ),
        );
    }
    row("load envelope", &s.load_envelope.note);
    o.push_str("</table>\n");
}

fn totals(o: &mut String, s: &Summary) {
    let l = &s.latency_ms;
    let v = s.violations.get("total").copied().unwrap_or(0);
    let _ = write!(
        o,
        "<h2>Totals</h2><table><tr><th>sent</th><th>completed</th><th>errors</th><th>violations</th><th>achieved</th>\
         <th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr><tr><td class=\"n\">{}</td><td class=\"n\">{}</td>\
         <td class=\"n\">{}</td><td class=\"n{}\">{v}</td><td class=\"n\">{} /s</td><td class=\"n\">{} ms</td><td class=\"n\">{} ms</td>\
         <td class=\"n\">{} ms</td><td class=\"n\">{} ms</td><td class=\"n\">{} ms</td></tr></table>",
        s.requests.sent,
        s.requests.completed,
        s.requests.errors,
        if v > 0 { " r-fail" } else { "" },
        s.achieved_rps,
        l.p50,
        l.p90,
        l.p99,
        l.p999,
        l.max
    );
    let kinds: Vec<_> = s.violations.iter().filter(|(k, n)| *k != "total" && **n > 0).collect();
    if !kinds.is_empty() {
        o.push_str("<p>Violations by kind: ");
        let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("<b>{}</b> {n}", esc(k))).collect();
        o.push_str(&parts.join(" · "));
        o.push_str("</p>\n");
    }
}

fn checks(o: &mut String, checks: &[CheckSummary]) {
    o.push_str(
        "<h2>Checks</h2><table><thead><tr><th>check</th><th>expectation</th><th>identity</th><th>sent</th>\
         <th>answers</th><th>violations</th><th>result</th></tr></thead>",
    );
    for c in checks {
        let statuses: Vec<String> = c.statuses.iter().map(|(k, n)| format!("{} ×{n}", esc(k))).collect();
        let violations: Vec<String> = c
            .violations
            .iter()
            .filter(|(k, n)| *k != "total" && **n > 0)
            .map(|(k, n)| format!("<b>{}</b> {n}", esc(k)))
            .collect();
        let r = c.result.name();
        let _ = write!(
            o,
            "<tr><td><b>{}</b> <span class=\"muted\">{}</span><br>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td>\
             <td>{}</td><td>{}</td><td class=\"r-{r}\">{r}",
            esc(&c.id),
            c.severity.name(),
            esc(&c.title),
            esc(&c.expect),
            esc(&c.identity),
            c.sent,
            statuses.join(", "),
            violations.join("<br>"),
        );
        o.push_str("</td></tr>");
        let mut notes = Vec::new();
        if !c.reason.is_empty() && c.result != crate::judge::CheckResult::Pass {
            notes.push(esc(&c.reason));
        }
        if let Some(u) = &c.upstream {
            for h in &u.headers {
                let sample = h.sample.as_deref().map(|v| format!(": <code>{}</code>", esc(v))).unwrap_or_default();
                notes.push(format!("{} — {} ×{}{sample}", esc(&h.header), esc(h.problem.name()), h.count));
            }
        }
        for e in &c.error_causes {
            notes.push(format!("{} ×{}: <code>{}</code>", esc(&e.kind), e.count, esc(&e.message)));
        }
        if !notes.is_empty() {
            let _ =
                write!(o, "<tr class=\"detail\"><td colspan=\"7\" class=\"muted\">{}</td></tr>", notes.join("<br>"));
        }
    }
    o.push_str("</table>\n");
}

/// Condition bands (events that fired) and phase starts for the time charts.
fn time_frame(s: &Summary, span: f64) -> Time {
    let bands = s
        .events
        .iter()
        .filter(|e| e.fired)
        .map(|e| Band { from: e.at_s, to: e.at_s + e.for_s, name: e.name.clone() })
        .collect();
    let mut marks = Vec::new();
    let mut at = 0.0;
    if s.phases.len() > 1 {
        for p in &s.phases {
            marks.push((at, p.name.clone()));
            at += p.duration_s;
        }
    }
    Time { span, bands, marks }
}

fn plots(o: &mut String, s: &Summary, src: &Sources<'_>) {
    o.push_str("<h2>Over time</h2>\n");
    let pts = src.series;
    if pts.is_empty() {
        o.push_str("<p class=\"muted\">No per-second series in this folder (series.jsonl is missing or empty).</p>\n");
    } else {
        let span = pts.last().map_or(1.0, |p| p.t + p.len).max(s.duration_s);
        let t = time_frame(s, span);
        let mid = |p: &Point| p.t + p.len / 2.0;
        let answered: Vec<&Point> = pts.iter().filter(|p| p.completed > 0).collect();
        o.push_str(&svg::lines(
            "Latency over time (from the intended send time)",
            "ms",
            &t,
            &[
                Line {
                    name: "p50".into(),
                    points: answered.iter().map(|p| (mid(p), p.p50_ms)).collect(),
                    dashed: false,
                },
                Line {
                    name: "p99".into(),
                    points: answered.iter().map(|p| (mid(p), p.p99_ms)).collect(),
                    dashed: false,
                },
            ],
        ));
        let per_s = |n: u64, p: &Point| if p.len > 0.0 { n as f64 / p.len } else { 0.0 };
        let mut planned = Vec::new();
        let mut at = 0.0;
        for p in &s.phases {
            planned.push((at, p.offered_rps));
            at += p.duration_s;
            planned.push((at, p.offered_rps));
        }
        o.push_str(&svg::lines(
            "Planned, finished and answered rate",
            "requests/s",
            &t,
            &[
                Line { name: "planned (phase mean)".into(), points: planned, dashed: true },
                Line {
                    name: "finished".into(),
                    points: pts.iter().map(|p| (mid(p), per_s(p.finished, p))).collect(),
                    dashed: false,
                },
                Line {
                    name: "answered".into(),
                    points: pts.iter().map(|p| (mid(p), per_s(p.completed, p))).collect(),
                    dashed: false,
                },
            ],
        ));
        let mut kinds: Vec<String> = Vec::new();
        for p in pts {
            for k in p.violations.keys() {
                if !kinds.contains(k) {
                    kinds.push(k.clone());
                }
            }
        }
        if kinds.is_empty() {
            o.push_str("<p>No client-side violation in any second of the run.</p>\n");
        } else {
            let bars: Vec<(f64, f64, Vec<u64>)> = pts
                .iter()
                .map(|p| (p.t, p.len, kinds.iter().map(|k| p.violations.get(k).copied().unwrap_or(0)).collect()))
                .collect();
            o.push_str(&svg::stacked("Violations over time, by kind (client side)", "violations", &t, &kinds, &bars));
        }
        let upstream: u64 = s.checks.iter().filter_map(|c| c.upstream.as_ref()).map(|u| u.counts.leaks).sum();
        if upstream > 0 {
            let _ = write!(
                o,
                "<p class=\"muted\">The chart shows what the client saw; the oracle proved {upstream} leak(s) upstream (in the totals and the checks).</p>"
            );
        }
    }
    match src.hlog.map(whole_latency) {
        Some(Some(h)) if !h.is_empty() => {
            o.push_str(&svg::log_histogram("Latency histogram (whole run)", &log_buckets(&h)))
        }
        _ => o.push_str("<p class=\"muted\">No latency histogram (latency.hlog is missing or holds no samples).</p>\n"),
    }
    let conds: Vec<_> = s.conditions.iter().filter(|c| c.latency_ms.count > 0).collect();
    if conds.len() > 1 {
        let names: Vec<String> = conds.iter().map(|c| c.name.clone()).collect();
        let values: Vec<Vec<f64>> =
            conds.iter().map(|c| vec![c.latency_ms.p50, c.latency_ms.p90, c.latency_ms.p99]).collect();
        o.push_str(&svg::grouped("Latency per network condition", "ms", &names, &["p50", "p90", "p99"], &values));
    }
}

/// Every `Tag=latency` interval of a latency log added up (`None`: it does not read).
pub fn whole_latency(bytes: &[u8]) -> Option<Histogram<u64>> {
    super::intervals::read_histograms(bytes)?.remove("latency")
}

/// Ten buckets per power of ten over the recorded range (µs values → ms bounds); each
/// recorded value counted once, in the bar its value falls in.
fn log_buckets(h: &Histogram<u64>) -> Vec<(f64, f64, u64)> {
    let (lo, hi) = (h.min().max(1) as f64, h.max().max(1) as f64);
    let first = lo.log10().floor();
    let bars = (((hi.log10() - first) * 10.0).floor() as usize + 1).min(400);
    let bound = |i: usize| 10f64.powf(first + i as f64 / 10.0);
    let mut out: Vec<(f64, f64, u64)> = (0..bars).map(|i| (bound(i) / 1000.0, bound(i + 1) / 1000.0, 0)).collect();
    for v in h.iter_recorded() {
        let x = (v.value_iterated_to().max(1) as f64).log10();
        let i = (((x - first) * 10.0).floor().max(0.0) as usize).min(bars - 1);
        out[i].2 += v.count_at_value();
    }
    out
}

fn phases_and_conditions(o: &mut String, s: &Summary) {
    o.push_str(
        "<h2>Phases</h2><table><tr><th>phase</th><th>load</th><th>length</th><th>planned</th><th>achieved</th>\
         <th>sent</th><th>errors</th><th>violations</th><th>p50</th><th>p99</th><th>generator lag p99</th></tr>",
    );
    for p in &s.phases {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{} s</td><td class=\"n\">{} /s</td><td class=\"n\">{} /s</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{} ms</td><td class=\"n\">{} ms</td><td class=\"n\">{} ms</td></tr>",
            esc(&p.name),
            esc(&p.load),
            p.duration_s,
            p.offered_rps,
            p.achieved_rps,
            p.requests.sent,
            p.requests.errors,
            p.violations.get("total").copied().unwrap_or(0),
            p.latency_ms.p50,
            p.latency_ms.p99,
            p.generator_lag_ms.p99
        );
    }
    o.push_str("</table>\n");
    if s.conditions.len() > 1 || !s.events.is_empty() {
        o.push_str(
            "<h2>Network conditions</h2><table><tr><th>condition</th><th>sent</th><th>errors</th><th>violations</th>\
             <th>outage denials</th><th>p50</th><th>p99</th></tr>",
        );
        for c in &s.conditions {
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{} ms</td><td class=\"n\">{} ms</td></tr>",
                esc(&c.name),
                c.requests.sent,
                c.requests.errors,
                c.violations.get("total").copied().unwrap_or(0),
                c.outage_denials,
                c.latency_ms.p50,
                c.latency_ms.p99
            );
        }
        o.push_str("</table>\n");
        if !s.events.is_empty() {
            o.push_str("<table><tr><th>event</th><th>link</th><th>at</th><th>for</th><th>what</th><th>sent</th><th>violations</th><th>recovery</th></tr>");
            for e in &s.events {
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td class=\"n\">{} s</td><td class=\"n\">{} s</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                    esc(&e.name),
                    esc(&e.link),
                    e.at_s,
                    e.for_s,
                    esc(&e.apply),
                    e.requests.sent,
                    e.violations.get("total").copied().unwrap_or(0),
                    match (e.fired, e.recovery_ms) {
                        (false, _) => "not reached".to_string(),
                        (true, Some(ms)) => format!("{ms} ms"),
                        (true, None) => "none seen".to_string(),
                    }
                );
            }
            o.push_str("</table>\n");
        }
    }
    if !s.replay.is_empty() {
        o.push_str("<h2>Replay</h2><table><tr><th>phase</th><th>compared with the recording</th></tr>");
        for r in &s.replay {
            let parts: Vec<String> = r.compared.iter().map(|(k, n)| format!("{} {n}", esc(k))).collect();
            let _ = write!(o, "<tr><td>{}</td><td>{}</td></tr>", esc(&r.phase), parts.join(" · "));
        }
        o.push_str("</table>\n");
    }
}

/// The page on top of a parity run: the verdict, each protocol's run (with the path of its own
/// report: the page links to nothing), and every check's verdict on each protocol, mismatches
/// first.
pub fn parity(p: &super::parity::ParitySummary) -> String {
    let mut o = String::with_capacity(16 << 10);
    let verdict = p.verdict.name();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>gauntlet parity: {} — {}</title><style>{STYLE}</style></head><body>\n<h1>{} <span class=\"verdict {verdict}\">{}</span></h1>\n\
         <p class=\"muted\">protocol parity · scenario sha256 {}</p>\n",
        esc(&p.scenario.name),
        verdict.to_uppercase(),
        esc(&p.scenario.name),
        verdict.to_uppercase(),
        esc(&p.scenario.sha256)
    );
    if !p.reasons.is_empty() {
        o.push_str("<h2>Why it failed</h2><ul class=\"reasons\">");
        for r in &p.reasons {
            let _ = write!(o, "<li>{}</li>", esc(r));
        }
        o.push_str("</ul>\n");
    }
    o.push_str(
        "<h2>Protocols</h2><table><tr><th>protocol</th><th>verdict</th><th>sent</th><th>errors</th><th>violations</th>\
         <th>achieved</th><th>p50</th><th>p99</th><th>its report</th></tr>",
    );
    for r in &p.protocols {
        let v = r.verdict.name();
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"r-{v}\">{v}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{} /s</td><td class=\"n\">{} ms</td><td class=\"n\">{} ms</td><td class=\"mono\">{}/report.html</td></tr>",
            esc(&r.protocol),
            r.requests.sent,
            r.requests.errors,
            r.violations.get("total").copied().unwrap_or(0),
            r.achieved_rps,
            r.latency_ms.p50,
            r.latency_ms.p99,
            esc(&r.results)
        );
    }
    o.push_str("</table>\n<h2>Checks on each protocol</h2><table><tr><th>check</th>");
    let protocols: Vec<&str> = p.protocols.iter().map(|r| r.protocol.as_str()).collect();
    for pr in &protocols {
        let _ = write!(o, "<th>{}</th>", esc(pr));
    }
    o.push_str("<th>parity</th></tr>");
    let mut checks: Vec<_> = p.checks.iter().collect();
    checks.sort_by_key(|c| !c.mismatch);
    for c in checks {
        let _ = write!(o, "<tr><td><b>{}</b><br>{}</td>", esc(&c.id), esc(&c.title));
        for pr in &protocols {
            let v = c.verdicts.get(*pr).map_or("—", String::as_str);
            let class = v.split(':').next().unwrap_or("");
            let _ = write!(o, "<td class=\"r-{}\">{}</td>", esc(class), esc(v));
        }
        let _ = write!(
            o,
            "<td class=\"{}\">{}</td></tr>",
            if c.mismatch { "r-fail" } else { "r-pass" },
            match (c.mismatch, c.severity) {
                (true, Some(s)) => format!("mismatch ({})", s.name()),
                (true, None) => "mismatch".into(),
                (false, _) => "same".into(),
            }
        );
    }
    o.push_str("</table>\n</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sample_lands_in_one_histogram_bar() {
        let mut h = crate::metrics::histogram();
        // 3162 µs sits on a bar bound where hdr buckets are 2 µs wide: counted once.
        h.record_n(3162, 1000).unwrap();
        h.record_n(150, 7).unwrap();
        h.record(45_000_000).unwrap();
        let bars = log_buckets(&h);
        assert_eq!(bars.iter().map(|b| b.2).sum::<u64>(), h.len());
        let at = |ms: f64| bars.iter().find(|b| b.0 <= ms && ms < b.1).map(|b| b.2);
        assert_eq!(at(0.15), Some(7));
        assert_eq!(at(45_000.0), Some(1));
    }
}
