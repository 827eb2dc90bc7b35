//! Hand-made SVG charts for `report.html`: line charts over run time (with shaded bands for
//! network conditions and marks for phase boundaries), stacked bars over time, bars over a
//! log axis, grouped bars. Plain SVG 1.1 with inline styles: no script, no fonts fetched, it
//! prints as it shows. Hand-made rather than plotters: five chart kinds are a few hundred lines,
//! need no dependency, and come out at 3–7 KiB each (measured: a 30 s run with events, 4 charts, 33 KiB page).

use std::fmt::Write as _;

/// Chart size, in SVG user units (the page scales it to its width).
const W: f64 = 860.0;
const H: f64 = 250.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;

/// Colours, in the order series take them (distinguishable in print and for the colour-blind).
pub(super) const COLOURS: [&str; 8] =
    ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// Escapes text for XML.
pub(super) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// A round upper bound for an axis and its tick step (1, 2 or 5 × a power of ten).
fn nice(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let p = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * p).find(|s| *s >= raw).unwrap_or(10.0 * p);
    ((max / step).ceil() * step, step)
}

/// A number for an axis label.
fn label(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.abs() >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A named series of (x, y) points.
#[derive(Debug, Clone)]
pub(super) struct Line {
    /// Legend text.
    pub name: String,
    /// Points, x ascending.
    pub points: Vec<(f64, f64)>,
    /// Dashed (a plan rather than a measurement).
    pub dashed: bool,
}

/// A shaded span of the x axis (a network condition in force) with its name.
#[derive(Debug, Clone)]
pub(super) struct Band {
    /// From, x units.
    pub from: f64,
    /// To.
    pub to: f64,
    /// What it was.
    pub name: String,
}

/// What a chart over run time carries besides its series.
#[derive(Debug, Clone, Default)]
pub(super) struct Time {
    /// The x extent, seconds.
    pub span: f64,
    /// Shaded condition bands.
    pub bands: Vec<Band>,
    /// Vertical marks (phase starts), with names.
    pub marks: Vec<(f64, String)>,
}

struct Frame {
    out: String,
    x_max: f64,
    y_max: f64,
}

impl Frame {
    fn new(title: &str, x_max: f64, y_max: f64, y_unit: &str, x_unit: &str) -> Self {
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-label="{t}" font-family="sans-serif" font-size="11"><title>{t}</title>"#,
            t = esc(title)
        );
        let _ = write!(out, r#"<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{}</text>"#, esc(title));
        let (y_max, step) = nice(y_max);
        let mut v = 0.0;
        while v <= y_max + step / 2.0 {
            let y = TOP + (H - TOP - BOTTOM) * (1.0 - v / y_max);
            let _ = write!(
                out,
                r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end" fill="#444">{}</text>"##,
                W - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                label(v)
            );
            v += step;
        }
        let mid = TOP + (H - TOP - BOTTOM) / 2.0;
        let _ = write!(
            out,
            r##"<text x="12" y="{mid:.1}" transform="rotate(-90 12 {mid:.1})" text-anchor="middle" fill="#444">{}</text>"##,
            esc(y_unit)
        );
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#444">{}</text>"##,
            LEFT + (W - LEFT - RIGHT) / 2.0,
            H - 4.0,
            esc(x_unit)
        );
        Frame { out, x_max: if x_max > 0.0 { x_max } else { 1.0 }, y_max }
    }

    fn x(&self, v: f64) -> f64 {
        LEFT + (W - LEFT - RIGHT) * (v / self.x_max).clamp(0.0, 1.0)
    }

    fn y(&self, v: f64) -> f64 {
        TOP + (H - TOP - BOTTOM) * (1.0 - (v / self.y_max).clamp(0.0, 1.0))
    }

    fn x_ticks(&mut self) {
        let (max, step) = nice(self.x_max);
        let mut v = 0.0;
        while v <= max.min(self.x_max) + step / 100.0 {
            let x = self.x(v);
            let _ = write!(
                self.out,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" stroke="#888"/><text x="{x:.1}" y="{}" text-anchor="middle" fill="#444">{}</text>"##,
                H - BOTTOM,
                H - BOTTOM + 4.0,
                H - BOTTOM + 16.0,
                label(v)
            );
            v += step;
        }
    }

    fn time(&mut self, t: &Time) {
        for b in &t.bands {
            let (x0, x1) = (self.x(b.from), self.x(b.to));
            let _ = write!(
                self.out,
                r##"<rect x="{x0:.1}" y="{TOP}" width="{:.1}" height="{}" fill="#f5c542" fill-opacity="0.22"><title>{}</title></rect><text x="{:.1}" y="{}" fill="#8a6d00" font-size="10">{}</text>"##,
                (x1 - x0).max(1.0),
                H - TOP - BOTTOM,
                esc(&b.name),
                x0 + 3.0,
                TOP + 11.0,
                esc(&b.name)
            );
        }
        for (at, name) in &t.marks {
            let x = self.x(*at);
            let _ = write!(
                self.out,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#999" stroke-dasharray="3 3"/><text x="{:.1}" y="{}" fill="#666" font-size="10">{}</text>"##,
                H - BOTTOM,
                x + 3.0,
                H - BOTTOM - 4.0,
                esc(name)
            );
        }
    }

    fn legend(&mut self, names: &[(String, &str, bool)]) {
        let mut x = W - RIGHT;
        for (name, colour, dashed) in names.iter().rev() {
            let w = 26.0 + 6.5 * name.chars().count() as f64;
            x -= w;
            let dash = if *dashed { r#" stroke-dasharray="5 3""# } else { "" };
            let _ = write!(
                self.out,
                r#"<line x1="{x:.1}" x2="{:.1}" y1="12" y2="12" stroke="{colour}" stroke-width="2.5"{dash}/><text x="{:.1}" y="16">{}</text>"#,
                x + 16.0,
                x + 20.0,
                esc(name)
            );
        }
    }

    fn axes(&mut self) {
        let _ = write!(
            self.out,
            r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{b}" stroke="#888"/><line x1="{LEFT}" x2="{}" y1="{b}" y2="{b}" stroke="#888"/>"##,
            W - RIGHT,
            b = H - BOTTOM
        );
    }

    fn end(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

/// Lines over run time.
pub(super) fn lines(title: &str, y_unit: &str, t: &Time, series: &[Line]) -> String {
    let y_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    let mut f = Frame::new(title, t.span, y_max * 1.05, y_unit, "seconds into the run");
    f.time(t);
    f.x_ticks();
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let pts: Vec<String> = s.points.iter().map(|(x, y)| format!("{:.1},{:.1}", f.x(*x), f.y(*y))).collect();
        let dash = if s.dashed { r#" stroke-dasharray="5 3""# } else { "" };
        if pts.len() == 1 {
            let (x, y) = s.points[0];
            let _ = write!(f.out, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#, f.x(x), f.y(y));
        } else if !pts.is_empty() {
            let _ = write!(
                f.out,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.6"{dash} points="{}"><title>{}</title></polyline>"#,
                pts.join(" "),
                esc(&s.name)
            );
        }
    }
    f.axes();
    let names: Vec<(String, &str, bool)> =
        series.iter().enumerate().map(|(i, s)| (s.name.clone(), COLOURS[i % COLOURS.len()], s.dashed)).collect();
    f.legend(&names);
    f.end()
}

/// Stacked bars over run time: `bars[i] = (start, length, [(kind, n)])`, one colour per kind
/// (in the order of `kinds`).
pub(super) fn stacked(title: &str, y_unit: &str, t: &Time, kinds: &[String], bars: &[(f64, f64, Vec<u64>)]) -> String {
    let y_max = bars.iter().map(|b| b.2.iter().sum::<u64>() as f64).fold(0.0, f64::max);
    // Counts: whole-number ticks.
    let mut f = Frame::new(title, t.span, y_max.max(5.0), y_unit, "seconds into the run");
    f.time(t);
    f.x_ticks();
    for (start, len, counts) in bars {
        let (x0, x1) = (f.x(*start), f.x(start + len));
        let mut base = 0.0;
        for (k, n) in counts.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            let top = base + *n as f64;
            let (y0, y1) = (f.y(base), f.y(top));
            let _ = write!(
                f.out,
                r#"<rect x="{x0:.1}" y="{y1:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} at {start:.0}s: {n}</title></rect>"#,
                (x1 - x0 - 0.5).max(0.8),
                (y0 - y1).max(0.5),
                COLOURS[k % COLOURS.len()],
                esc(&kinds[k])
            );
            base = top;
        }
    }
    f.axes();
    let names: Vec<(String, &str, bool)> =
        kinds.iter().enumerate().map(|(i, k)| (k.clone(), COLOURS[i % COLOURS.len()], false)).collect();
    f.legend(&names);
    f.end()
}

/// Bars over a logarithmic x axis: `(low, high, count)` buckets, x in ms.
pub(super) fn log_histogram(title: &str, buckets: &[(f64, f64, u64)]) -> String {
    let (lo, hi) = match (buckets.first(), buckets.last()) {
        (Some(a), Some(b)) => (a.0.max(0.001), b.1.max(a.0 * 10.0)),
        _ => (0.1, 10.0),
    };
    let (l0, l1) = (lo.log10().floor(), hi.log10().ceil());
    let span = (l1 - l0).max(1.0);
    let y_max = buckets.iter().map(|b| b.2 as f64).fold(0.0, f64::max);
    let mut f = Frame::new(title, span, y_max.max(1.0), "requests", "latency, ms (log scale)");
    for d in 0..=(span as i64) {
        let v = 10f64.powf(l0 + d as f64);
        let x = f.x(d as f64);
        let _ = write!(
            f.out,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" stroke="#888"/><text x="{x:.1}" y="{}" text-anchor="middle" fill="#444">{}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 4.0,
            H - BOTTOM + 16.0,
            if v < 1.0 { format!("{v}") } else { label(v) }
        );
    }
    for (a, b, n) in buckets {
        let (x0, x1) = (f.x(a.max(lo).log10() - l0), f.x(b.log10() - l0));
        let y = f.y(*n as f64);
        let _ = write!(
            f.out,
            r#"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{a:.3}–{b:.3} ms: {n}</title></rect>"#,
            (x1 - x0 - 0.5).max(0.8),
            (H - BOTTOM - y).max(0.0),
            COLOURS[0]
        );
    }
    f.axes();
    f.end()
}

/// Grouped bars: one group per name, one bar per series (`values[group][series]`).
pub(super) fn grouped(title: &str, y_unit: &str, groups: &[String], series: &[&str], values: &[Vec<f64>]) -> String {
    let y_max = values.iter().flatten().copied().fold(0.0, f64::max);
    let n = groups.len().max(1) as f64;
    let mut f = Frame::new(title, n, y_max * 1.05, y_unit, "");
    let group_w = (W - LEFT - RIGHT) / n;
    let bar_w = (group_w * 0.8 / series.len().max(1) as f64).min(40.0);
    for (g, name) in groups.iter().enumerate() {
        let x_mid = LEFT + group_w * (g as f64 + 0.5);
        let x_start = x_mid - bar_w * series.len() as f64 / 2.0;
        for (i, v) in values[g].iter().enumerate() {
            let y = f.y(*v);
            let _ = write!(
                f.out,
                r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {v} {}</title></rect>"#,
                x_start + bar_w * i as f64,
                bar_w - 1.0,
                (H - BOTTOM - y).max(0.0),
                COLOURS[i % COLOURS.len()],
                esc(name),
                esc(series[i]),
                esc(y_unit)
            );
        }
        let _ = write!(
            f.out,
            r##"<text x="{x_mid:.1}" y="{}" text-anchor="middle" fill="#222">{}</text>"##,
            H - BOTTOM + 16.0,
            esc(name)
        );
    }
    f.axes();
    let names: Vec<(String, &str, bool)> =
        series.iter().enumerate().map(|(i, s)| (s.to_string(), COLOURS[i % COLOURS.len()], false)).collect();
    f.legend(&names);
    f.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice(0.0), (1.0, 0.2));
        assert_eq!(nice(7.3), (8.0, 2.0));
        assert_eq!(nice(930.0), (1000.0, 200.0));
        assert_eq!(nice(f64::NAN), (1.0, 0.2));
    }

    #[test]
    fn text_from_a_run_cannot_break_out_of_the_svg() {
        let t = Time {
            span: 10.0,
            bands: vec![Band { from: 1.0, to: 2.0, name: "</svg><script>x</script>".into() }],
            marks: vec![],
        };
        let svg = lines(
            "a & b",
            "ms",
            &t,
            &[Line { name: "p99\"".into(), points: vec![(0.0, 1.0), (1.0, 2.0)], dashed: false }],
        );
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;") && svg.contains("a &amp; b"));
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<svg").count(), 1);
    }
}
