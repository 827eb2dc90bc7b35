//! Drawing: a pure function of [`View`]. Layout adapts from 80×24 (stacked) to wide
//! terminals (two columns).

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Bar, BarChart, BarGroup, Block, Borders, Cell, Chart, Clear, Dataset, GraphType, LineGauge, Paragraph, Row,
    Table, TableState, Wrap,
};

use super::{Focus, History, Sort, View};
use crate::conformance::{ErrorKind, Violation};

/// Log-spaced latency buckets (upper bound in µs, label), fine and coarse.
const FINE_US: [(u64, &str); 12] = [
    (250, ".25"),
    (500, ".5"),
    (1_000, "1ms"),
    (2_500, "2.5"),
    (5_000, "5ms"),
    (10_000, "10"),
    (25_000, "25"),
    (50_000, "50"),
    (100_000, ".1s"),
    (250_000, ".25"),
    (1_000_000, "1s"),
    (u64::MAX, ">1s"),
];
const COARSE_US: [(u64, &str); 6] =
    [(1_000, "1ms"), (5_000, "5ms"), (25_000, "25"), (100_000, ".1s"), (1_000_000, "1s"), (u64::MAX, ">1s")];

/// Draws one frame.
pub fn draw(f: &mut Frame, v: &View) {
    let area = f.area();
    let [header, body, footer] =
        Layout::vertical([Constraint::Length(3), Constraint::Min(0), Constraint::Length(1)]).areas(area);
    draw_header(f, header, v);
    if area.width >= 120 && area.height >= 30 {
        let [left, right] = Layout::horizontal([Constraint::Percentage(38), Constraint::Percentage(62)]).areas(body);
        let [board, statuses] = Layout::vertical([Constraint::Min(8), Constraint::Length(7)]).areas(left);
        draw_board(f, board, v);
        draw_statuses(f, statuses, v);
        let [rate, latency, checks] =
            Layout::vertical([Constraint::Length(10), Constraint::Length(11), Constraint::Min(5)]).areas(right);
        draw_rate(f, rate, v);
        let [hist, pct, over] =
            Layout::horizontal([Constraint::Percentage(45), Constraint::Length(26), Constraint::Min(20)])
                .areas(latency);
        draw_histogram(f, hist, v);
        draw_percentiles(f, pct, v);
        draw_latency_over_time(f, over, v);
        draw_checks(f, checks, v);
    } else {
        let [board, charts, checks] =
            Layout::vertical([Constraint::Length(7), Constraint::Length(8), Constraint::Min(4)]).areas(body);
        let [b, s] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(board);
        draw_board(f, b, v);
        draw_statuses(f, s, v);
        let [rate, hist, pct] =
            Layout::horizontal([Constraint::Percentage(38), Constraint::Min(20), Constraint::Length(24)]).areas(charts);
        draw_rate(f, rate, v);
        draw_histogram(f, hist, v);
        draw_percentiles(f, pct, v);
        draw_checks(f, checks, v);
    }
    draw_footer(f, footer, v);
    if v.ui.drill {
        draw_drill(f, area, v);
    }
    if v.ui.help {
        draw_help(f, area);
    }
}

fn block(title: &str, focused: bool) -> Block<'static> {
    let b = Block::default().borders(Borders::ALL).title(Span::styled(format!(" {title} "), Style::new().bold()));
    if focused { b.border_style(Style::new().fg(Color::Cyan)) } else { b }
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0}ms")
    } else if ms >= 1.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{:.0}µs", ms * 1000.0)
    }
}

fn draw_header(f: &mut Frame, area: Rect, v: &View) {
    let s = v.snap;
    let b =
        Block::default().borders(Borders::TOP).title(Span::styled(" gauntlet ", Style::new().bold().fg(Color::Cyan)));
    let inner = b.inner(area);
    f.render_widget(b, area);
    let [top, gauge] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(inner);
    let offered = match (s.offered_rps, s.replay) {
        (Some(r), _) => format!("offered {r:.0}/s"),
        (None, true) => "replay at the recorded pace".to_string(),
        (None, false) => "closed loop".to_string(),
    };
    let title = Line::from(vec![
        Span::styled(v.info.scenario.clone(), Style::new().bold()),
        Span::raw(format!(" → {} ({}) · {offered} · achieved {:.0}/s", v.info.target, v.info.protocol, s.achieved_rps)),
    ]);
    f.render_widget(Paragraph::new(title), top);
    let len = s.phase_length.map_or(0.0, |d| d.as_secs_f64());
    let ratio = if len > 0.0 { (s.phase_elapsed.as_secs_f64() / len).clamp(0.0, 1.0) } else { 0.0 };
    let remaining =
        if len > 0.0 { format!("{:.0}s left", (len - s.phase_elapsed.as_secs_f64()).max(0.0)) } else { "open".into() };
    let label = format!(
        "{}phase {} {} {:.0}/{:.0}s · elapsed {:.0}s · {remaining} · network: {}",
        if v.ui.paused { "PAUSED · " } else { "" },
        s.phase + 1,
        s.phase_name,
        s.phase_elapsed.as_secs_f64(),
        len,
        s.elapsed.as_secs_f64(),
        if s.condition.is_empty() { "unimpaired" } else { s.condition.as_str() }
    );
    f.render_widget(LineGauge::default().filled_style(Style::new().fg(Color::Cyan)).ratio(ratio).label(label), gauge);
}

fn critical(kind: Violation) -> bool {
    matches!(kind, Violation::Leak | Violation::TlsAccept | Violation::SpoofedHeader)
}

fn draw_board(f: &mut Frame, area: Rect, v: &View) {
    let s = v.snap;
    let mut lines: Vec<Line> = Vec::new();
    let total = s.totals.violation_total();
    for kind in Violation::ALL {
        let n = s.totals.violation(kind);
        if n == 0 {
            continue;
        }
        let ids: Vec<&str> = v
            .info
            .checks
            .iter()
            .zip(&s.per_check)
            .filter(|(_, c)| c.violation(kind) > 0)
            .map(|((id, _, _), _)| id.as_str())
            .collect();
        let style = if critical(kind) {
            Style::new().fg(Color::White).bg(Color::Red).bold()
        } else {
            Style::new().fg(Color::Yellow).bold()
        };
        lines.push(Line::from(vec![
            Span::styled(format!(" {} {n} ", kind.name().to_uppercase()), style),
            Span::raw(format!(" {}", ids.join(", "))),
        ]));
    }
    if total == 0 {
        lines.push(Line::from(Span::styled("✓ no policy violation", Style::new().fg(Color::Green).bold())));
    }
    let mut groups = Vec::new();
    for kind in ["allow", "deny", "tls_reject", "limit"] {
        let members: Vec<usize> =
            v.info.checks.iter().enumerate().filter(|(_, c)| c.1 == kind).map(|(i, _)| i).collect();
        if members.is_empty() {
            continue;
        }
        let bad = members.iter().any(|&i| s.per_check.get(i).is_some_and(|c| c.violation_total() > 0));
        groups.push(mark(!bad));
        groups.push(Span::raw(format!("{kind}  ")));
    }
    lines.push(Line::from(groups));
    // Thresholds flow on wrapped lines so a small terminal still shows all of them.
    let mut spans = Vec::new();
    for t in &v.info.thresholds {
        match t.metric.and_then(|m| super::live_value(m, s)) {
            Some(value) => spans.push(mark(t.op.holds(value, t.value))),
            None => spans.push(Span::styled("… ", Style::new().dark_gray())),
        }
        spans.push(Span::raw(format!("{}   ", t.expr)));
    }
    lines.push(Line::from(spans));
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), block("verdicts", false).inner(area));
    f.render_widget(block("verdicts", false), area);
}

fn mark(ok: bool) -> Span<'static> {
    if ok {
        Span::styled("✓ ", Style::new().fg(Color::Green).bold())
    } else {
        Span::styled("✗ ", Style::new().fg(Color::Red).bold())
    }
}

fn draw_statuses(f: &mut Frame, area: Rect, v: &View) {
    let s = v.snap;
    let mut expected: Vec<(u16, u64)> = Vec::new();
    let mut unexpected: Vec<(u16, u64)> = Vec::new();
    let add = |list: &mut Vec<(u16, u64)>, st: u16, n: u64| match list.iter_mut().find(|(x, _)| *x == st) {
        Some(e) => e.1 += n,
        None => list.push((st, n)),
    };
    // Refusals excused by a declared outage, up to the count the verdicts gave them.
    let mut outage: Vec<(u16, u64)> = Vec::new();
    let mut excused = s.totals.outage_denied;
    for (i, ((_, _, deny), c)) in v.info.checks.iter().zip(&s.per_check).enumerate() {
        let accepted = v.info.denials.get(i).map(Vec::as_slice).unwrap_or(&[]);
        for &(st, n) in &c.statuses {
            let ok_deny = accepted.contains(&st);
            if ok_deny {
                add(&mut expected, st, n);
            } else if !(200..300).contains(&st) || *deny {
                let o = if v.info.outage_statuses.contains(&st) { n.min(excused) } else { 0 };
                excused -= o;
                if o > 0 {
                    add(&mut outage, st, o);
                }
                if n > o {
                    add(&mut unexpected, st, n - o);
                }
            }
        }
    }
    outage.sort_unstable();
    expected.sort_unstable();
    unexpected.sort_unstable();
    let list = |l: &[(u16, u64)]| {
        if l.is_empty() {
            "—".to_string()
        } else {
            l.iter().map(|(s, n)| format!("{s}×{n}")).collect::<Vec<_>>().join(" ")
        }
    };
    let errors: Vec<String> = ErrorKind::ALL
        .iter()
        .filter(|e| s.totals.error(**e) > 0)
        .map(|e| format!("{} {}", e.name(), s.totals.error(*e)))
        .collect();
    let lines = vec![
        Line::from({
            let mut l =
                vec![Span::styled("expected denials ", Style::new().fg(Color::Green)), Span::raw(list(&expected))];
            if !outage.is_empty() {
                l.push(Span::styled(" · outage ", Style::new().fg(Color::Cyan)));
                l.push(Span::raw(list(&outage)));
            }
            l
        }),
        Line::from(vec![
            Span::styled("tls refusals     ", Style::new().fg(Color::Green)),
            Span::raw(s.totals.tls_rejected.to_string()),
        ]),
        Line::from(vec![
            Span::styled("unexpected       ", Style::new().fg(Color::Yellow)),
            Span::raw(list(&unexpected)),
        ]),
        Line::from(vec![
            Span::styled("errors           ", Style::new().fg(Color::Red)),
            Span::raw(if errors.is_empty() { "none".to_string() } else { errors.join(", ") }),
        ]),
        Line::from(format!("sent {}  completed {}", s.totals.sent, s.totals.completed)),
    ];
    let b = block("statuses & errors", false);
    f.render_widget(Paragraph::new(lines), b.inner(area));
    f.render_widget(b, area);
}

fn bounds(points: &[(f64, f64)]) -> ([f64; 2], f64) {
    let t0 = points.first().map_or(0.0, |p| p.0);
    let t1 = points.last().map_or(1.0, |p| p.0).max(t0 + 1.0);
    let ymax = points.iter().map(|p| p.1).fold(1.0, f64::max);
    ([t0, t1], ymax * 1.1)
}

fn series<'a>((name, color, data): (&str, Color, &'a [(f64, f64)])) -> Dataset<'a> {
    Dataset::default()
        .name(name.to_string())
        .marker(symbols::Marker::Braille)
        .graph_type(GraphType::Line)
        .style(Style::new().fg(color))
        .data(data)
}

/// Two series over time, sharing axes; the y axis starts at 0. Each time in `marks` (a
/// network condition change) is drawn as a vertical yellow line.
fn two_lines(
    f: &mut Frame,
    area: Rect,
    title: &str,
    focused: bool,
    a: (&str, Color, &[(f64, f64)]),
    b: (&str, Color, &[(f64, f64)]),
    marks: &[f64],
) {
    let (x, ya) = bounds(a.2);
    let (_, yb) = bounds(b.2);
    let y = ya.max(yb);
    let lines: Vec<[(f64, f64); 2]> = marks.iter().map(|&t| [(t, 0.0), (t, y)]).collect();
    let mut sets = vec![series(a), series(b)];
    sets.extend(lines.iter().map(|l| {
        Dataset::default()
            .marker(symbols::Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Yellow))
            .data(l)
    }));
    let legend = " · ┆ condition change";
    let fits = usize::from(area.width) >= title.chars().count() + legend.chars().count() + 4;
    let title = if marks.is_empty() || !fits { title.to_string() } else { format!("{title}{legend}") };
    let chart = Chart::new(sets)
        .block(block(&title, focused))
        .x_axis(Axis::default().bounds(x))
        .y_axis(Axis::default().bounds([0.0, y]).labels(vec![Span::raw("0"), Span::raw(format!("{y:.0}"))]));
    f.render_widget(chart, area);
}

fn draw_rate(f: &mut Frame, area: Rect, v: &View) {
    let pts = v.history.window(v.ui.window);
    let offered: Vec<(f64, f64)> = pts.iter().map(|p| (p.t, p.offered)).collect();
    let achieved: Vec<(f64, f64)> = pts.iter().map(|p| (p.t, p.achieved)).collect();
    let title = format!("rate/s, {}", v.ui.window.label());
    two_lines(
        f,
        area,
        &title,
        v.ui.focus == Focus::Charts,
        ("offered", Color::Cyan, &offered),
        ("achieved", Color::Green, &achieved),
        &History::condition_changes(&pts),
    );
}

fn draw_histogram(f: &mut Frame, area: Rect, v: &View) {
    let h = &v.snap.window_latency;
    let inner_width = area.width.saturating_sub(2);
    // Fine buckets when each bar can be 3 columns wide, else coarse ones: labels stay whole.
    let buckets: &[(u64, &str)] = if inner_width >= 36 { &FINE_US } else { &COARSE_US };
    let mut counts = vec![0u64; buckets.len()];
    for v in h.iter_recorded() {
        let value = h.highest_equivalent(v.value_iterated_to());
        let i = buckets.iter().position(|(hi, _)| value < *hi).unwrap_or(buckets.len() - 1);
        counts[i] += v.count_at_value();
    }
    let bars: Vec<Bar> = buckets
        .iter()
        .zip(&counts)
        .map(|(&(_, label), &n)| Bar::default().value(n).label(Line::from(label)).text_value(String::new()))
        .collect();
    let bar_width = (inner_width / buckets.len() as u16).saturating_sub(1).clamp(1, 6);
    let chart = BarChart::default()
        .block(block("latency now", false))
        .data(BarGroup::default().bars(&bars))
        .bar_width(bar_width)
        .bar_gap(1)
        .bar_style(Style::new().fg(Color::Magenta));
    f.render_widget(chart, area);
}

fn draw_percentiles(f: &mut Frame, area: Rect, v: &View) {
    let q = |h: &hdrhistogram::Histogram<u64>, x: f64| {
        if h.is_empty() { "—".to_string() } else { fmt_ms(h.value_at_quantile(x) as f64 / 1000.0) }
    };
    let (w, r) = (&v.snap.window_latency, &v.snap.latency_total);
    let rows = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0)]
        .into_iter()
        .map(|(name, x)| Row::new(vec![Cell::from(name), Cell::from(q(w, x)), Cell::from(q(r, x))]));
    let t = Table::new(rows, [Constraint::Length(5), Constraint::Length(7), Constraint::Length(7)])
        .header(Row::new(vec!["", "now", "run"]).style(Style::new().bold()))
        .block(block("latency", false));
    f.render_widget(t, area);
}

fn draw_latency_over_time(f: &mut Frame, area: Rect, v: &View) {
    let pts = v.history.window(v.ui.window);
    let p50: Vec<(f64, f64)> = pts.iter().map(|p| (p.t, p.p50)).collect();
    let p99: Vec<(f64, f64)> = pts.iter().map(|p| (p.t, p.p99)).collect();
    let marks = History::condition_changes(&pts);
    two_lines(f, area, "p50 / p99 ms", false, ("p50", Color::Green, &p50), ("p99", Color::Red, &p99), &marks);
}

/// Row order of the per-check table.
pub(super) fn order(v: &View) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.info.checks.len()).collect();
    match v.ui.sort {
        Sort::Scenario => {}
        Sort::Violations => {
            idx.sort_by_key(|&i| std::cmp::Reverse(v.snap.per_check.get(i).map_or(0, |c| c.violation_total())))
        }
        Sort::P99 => idx.sort_by_key(|&i| std::cmp::Reverse(v.snap.per_check_p99_us.get(i).copied().unwrap_or(0))),
    }
    idx
}

fn draw_checks(f: &mut Frame, area: Rect, v: &View) {
    let rows = order(v).into_iter().map(|i| {
        let (id, kind, _) = &v.info.checks[i];
        let c = v.snap.per_check.get(i).cloned().unwrap_or_default();
        let p99 = v.snap.per_check_p99_us.get(i).copied().unwrap_or(0) as f64 / 1000.0;
        let bad = c.violation_total() > 0;
        let style = if bad { Style::new().fg(Color::Red).bold() } else { Style::new() };
        Row::new(vec![
            Cell::from(if bad {
                "✗"
            } else if c.sent == 0 {
                "·"
            } else {
                "✓"
            }),
            Cell::from(id.clone()),
            Cell::from(*kind),
            Cell::from(c.sent.to_string()),
            Cell::from(c.violation_total().to_string()),
            Cell::from(if c.completed == 0 { "—".to_string() } else { fmt_ms(p99) }),
        ])
        .style(style)
    });
    let sort = match v.ui.sort {
        Sort::Scenario => "scenario order",
        Sort::Violations => "by violations",
        Sort::P99 => "by p99",
    };
    let t = Table::new(
        rows,
        [
            Constraint::Length(1),
            Constraint::Min(14),
            Constraint::Length(10),
            Constraint::Length(8),
            Constraint::Length(6),
            Constraint::Length(8),
        ],
    )
    .header(Row::new(vec!["", "check", "expect", "sent", "viol", "p99"]).style(Style::new().bold()))
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .block(block(&format!("checks ({sort})"), v.ui.focus == Focus::Checks));
    let mut state = TableState::default().with_selected(Some(v.ui.selected.min(v.info.checks.len().saturating_sub(1))));
    f.render_stateful_widget(t, area, &mut state);
}

fn draw_footer(f: &mut Frame, area: Rect, v: &View) {
    let text = match &v.ui.notice {
        Some(n) => Line::from(Span::styled(n.clone(), Style::new().fg(Color::Yellow).bold())),
        None => Line::from("q quit · p pause · tab focus · ↑↓ select · enter details · s sort · w window · ? help"),
    };
    f.render_widget(Paragraph::new(text).alignment(Alignment::Left), area);
}

fn popup(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

fn draw_help(f: &mut Frame, area: Rect) {
    let r = popup(area, 54, 13);
    let lines = vec![
        Line::from("q / Ctrl-C  stop the run (results are still written)"),
        Line::from("tab         switch focus: checks ↔ charts"),
        Line::from("↑ ↓         select a check (checks focused)"),
        Line::from("enter       details of the selected check"),
        Line::from("← →         chart window (charts focused)"),
        Line::from("s           sort checks: violations, p99, scenario"),
        Line::from("w           window: 10 s, 1 min, whole run"),
        Line::from("p           pause / resume sending"),
        Line::from("?           this help (esc closes)"),
    ];
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(lines).block(block("keys", true)), r);
}

fn draw_drill(f: &mut Frame, area: Rect, v: &View) {
    let ord = order(v);
    let Some(&i) = ord.get(v.ui.selected.min(ord.len().saturating_sub(1))) else { return };
    let (id, kind, _) = &v.info.checks[i];
    let c = v.snap.per_check.get(i).cloned().unwrap_or_default();
    let mut lines = vec![
        Line::from(format!("expect {kind} · sent {} · completed {}", c.sent, c.completed)),
        Line::from(format!(
            "statuses {}",
            c.statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect::<Vec<_>>().join(" ")
        )),
        Line::from(format!("tls refusals {} · errors {}", c.tls_rejected, c.error_total())),
    ];
    for kind in Violation::ALL {
        if c.violation(kind) > 0 {
            lines.push(Line::from(Span::styled(
                format!("{} {}", kind.name(), c.violation(kind)),
                Style::new().fg(Color::Red).bold(),
            )));
        }
    }
    // Which header was wrong, and how (from the oracle).
    for (note, n) in v.snap.header_notes.get(i).into_iter().flatten() {
        lines.push(Line::from(Span::styled(format!("  {note} ×{n}"), Style::new().fg(Color::Red))));
    }
    // Why requests got no answer: the first distinct messages per kind.
    if let Some(causes) = v.snap.causes.get(i) {
        for (k, cs) in ErrorKind::ALL.iter().zip(causes.iter()) {
            for (m, n) in &cs.kept {
                lines.push(Line::from(Span::styled(format!("{} ×{n}: {m}", k.name()), Style::new().fg(Color::Yellow))));
            }
        }
    }
    let height = (lines.len() as u16 + 2).clamp(9, 20);
    let r = popup(area, 90, height);
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(lines).block(block(id, true)), r);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::dashboard::{History, Info, Ui};
    use crate::metrics::{Counts, Snapshot, histogram};

    fn snapshot() -> Snapshot {
        let mut h = histogram();
        h.record_n(700, 90).expect("record");
        h.record_n(120_000, 10).expect("record");
        let mut leaky = Counts { sent: 10, completed: 10, statuses: vec![(200, 10)], ..Default::default() };
        leaky.violations[Violation::Leak.index()] = 10;
        // 90 denied as expected, 6 refused with 503 during a declared outage, 2 outside it.
        let ok = Counts {
            sent: 98,
            completed: 98,
            statuses: vec![(403, 90), (503, 8)],
            outage_denied: 6,
            ..Default::default()
        };
        let mut totals = leaky.clone();
        totals.add(&ok);
        Snapshot {
            causes: vec![Default::default(); 2],
            header_notes: vec![Vec::new(); 2],
            elapsed: Duration::from_secs(5),
            phase: 0,
            phase_name: "base".into(),
            phase_elapsed: Duration::from_secs(5),
            phase_length: Some(Duration::from_secs(10)),
            condition: "wan-40ms".into(),
            condition_index: 1,
            offered_rps: Some(100.0),
            replay: false,
            achieved_rps: 99.0,
            window_latency: h.clone(),
            totals,
            per_check: vec![leaky, ok],
            latency_total: h,
            per_check_p99_us: vec![120_000, 700],
            ..Snapshot::empty()
        }
    }

    /// Renders one panel function alone into `w`×`h` and returns the text.
    fn panel(w: u16, h: u16, f: fn(&mut Frame, Rect, &View)) -> String {
        let info = Info {
            scenario: "s".into(),
            target: "https://gw".into(),
            protocol: "h2".into(),
            checks: vec![("LEAKY".into(), "deny", true), ("DENY".into(), "deny", true)],
            denials: vec![vec![403], vec![403]],
            thresholds: vec![],
            outage_statuses: vec![503],
        };
        let snap = snapshot();
        let mut history = History::default();
        history.push(&snap);
        let ui = Ui::default();
        let view = View { info: &info, snap: &snap, history: &history, ui: &ui };
        let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
        term.draw(|fr| f(fr, fr.area(), &view)).expect("draw");
        let buf = term.backend().buffer().clone();
        (0..h).map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>()).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn each_panel_renders_its_own_facts() {
        assert!(panel(60, 3, draw_header).contains("phase 1 base 5/10s"));
        let board = panel(50, 6, draw_board);
        assert!(board.contains("LEAK 10") && board.contains("LEAKY") && board.contains("✗ deny"), "{board}");
        let st = panel(60, 7, draw_statuses);
        assert!(st.contains("expected denials 403×90 · outage 503×6"), "{st}");
        assert!(st.contains("unexpected       200×10 503×2"), "{st}");
        let pct = panel(26, 8, draw_percentiles);
        assert!(pct.contains("p50") && pct.contains("700µs") && pct.contains("120ms"), "{pct}");
        let hist = panel(52, 8, draw_histogram);
        assert!(hist.contains("1ms") && hist.contains(".25"), "{hist}");
        let checks = panel(60, 5, draw_checks);
        let (leaky, deny) = (checks.find("LEAKY").expect("row"), checks.find("DENY").expect("row"));
        assert!(leaky < deny, "sorted by violations: {checks}");
        assert!(panel(60, 8, draw_rate).contains("rate/s"));
        assert!(panel(40, 8, draw_latency_over_time).contains("p50 / p99"));
    }
}
