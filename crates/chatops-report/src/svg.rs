//! The chart kinds, drawn as SVG markup by hand: a line chart over time, grouped horizontal
//! bars and 100 % stacked bars. No chart library: the same markup is inlined in the HTML page
//! and rasterised by `resvg` for the PNG, so both show the same picture.
//!
//! Every chart scales with its `viewBox` (width 420 units, chosen so that 12-unit text is still
//! about 10 px on a 375 px phone) and carries presentation attributes rather than CSS classes
//! for anything it needs to look right, because the PNG has no stylesheet. Each mark that
//! shows a value has a `<title>` (the browser's native tooltip, and what screen readers read)
//! and a `data-tip` attribute that the page's small script shows as a tooltip on hover or tap.
//!
//! Layout arithmetic (scales, nice ticks, label widths) lives here; figures do not: callers
//! pass values and the text to show for them.

use std::fmt::Write as _;

use crate::fmt::{esc, tick, truncate};

/// Width of every chart's coordinate system.
pub const WIDTH: f64 = 420.0;
/// Font stack of the charts. The PNG embeds DejaVu Sans, so the first name always resolves there.
pub const FONT: &str = "DejaVu Sans, Verdana, Arial, sans-serif";

const TEXT: &str = "#1f2933";
const MUTED: &str = "#52606d";
const GRID: &str = "#d9e2ec";
/// Above this many points per series, a line is reduced to each pixel column's extremes: the
/// drawn shape is the same and the page stays small for long soak tests.
const MAX_LINE_POINTS: usize = 1200;
/// Above this many hover columns, only every n-th interval gets one (the line still has all).
const MAX_HOVER_COLUMNS: usize = 400;
/// Points are marked with dots up to this many per series.
const MAX_DOTS: usize = 60;

/// A drawn chart: its inner markup and the size of its coordinate system.
#[derive(Debug, Clone)]
pub struct Chart {
    pub id: String,
    /// What the chart shows, for `aria-label` and the PNG panel title.
    pub title: String,
    pub width: f64,
    pub height: f64,
    body: String,
}

impl Chart {
    /// The chart as a standalone responsive `<svg>` for the HTML page.
    pub fn to_html(&self) -> String {
        format!(
            "<svg class=\"chart\" id=\"{id}\" viewBox=\"0 0 {w} {h}\" preserveAspectRatio=\"xMidYMid meet\" \
             role=\"img\" aria-label=\"{t}\" font-family=\"{FONT}\" xmlns=\"http://www.w3.org/2000/svg\">{b}</svg>",
            id = esc(&self.id),
            w = self.width,
            h = self.height,
            t = esc(&self.title),
            b = self.body
        )
    }

    /// The chart nested in a larger SVG at (`x`, `y`), fitted into `w` × `h`.
    pub fn to_nested(&self, x: f64, y: f64, w: f64, h: f64) -> String {
        format!(
            "<svg x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {vw} {vh}\" \
             preserveAspectRatio=\"xMidYMin meet\">{b}</svg>",
            vw = self.width,
            vh = self.height,
            b = self.body
        )
    }
}

/// One line of a line chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub dashed: bool,
    /// (x, y) in data units, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart over time, with hover columns that show every series' value at that time.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub id: String,
    pub title: String,
    /// Unit of the y axis, written after the top tick (`ms`, `/s`).
    pub y_unit: String,
    /// Caption of the x axis.
    pub x_label: String,
    pub series: Vec<Series>,
    /// Hover text per x, in x order.
    pub tips: Vec<(f64, String)>,
    /// Vertical dashed lines with a short label (phase starts).
    pub markers: Vec<(f64, String)>,
}

/// A bar of a horizontal bar chart.
#[derive(Debug, Clone)]
pub struct Bar {
    pub name: String,
    pub color: &'static str,
    pub value: f64,
    /// The value as shown at the end of the bar.
    pub text: String,
    pub tip: String,
}

/// A labelled group of bars (one bar per series).
#[derive(Debug, Clone)]
pub struct BarGroup {
    pub label: String,
    pub bars: Vec<Bar>,
}

/// A slice of a stacked bar.
#[derive(Debug, Clone)]
pub struct Segment {
    pub color: &'static str,
    /// Share of the row, in percent. Negative shares are left out of the bar (they are shown
    /// in the legend, with their sign).
    pub share_pct: f64,
    pub tip: String,
}

/// One stacked bar with the label written above it.
#[derive(Debug, Clone)]
pub struct StackRow {
    pub label: String,
    pub segments: Vec<Segment>,
}

/// A legend entry.
#[derive(Debug, Clone)]
pub struct LegendItem {
    pub color: &'static str,
    pub text: String,
}

/// Step of 1, 2 or 5 × 10^k giving about `n` intervals up to `max`.
pub fn nice_step(max: f64, n: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let raw = max / n;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let f = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    f * mag
}

/// Approximate width of `s` in units at `size`, for layout only (DejaVu Sans averages
/// about 0.62 em per character in labels like these).
fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.62
}

fn n(v: f64) -> String {
    // One decimal is plenty at this scale and keeps the markup small.
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() { format!("{}", r as i64) } else { format!("{r:.1}") }
}

fn text(out: &mut String, x: f64, y: f64, size: f64, anchor: &str, fill: &str, s: &str) {
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"{}\" font-size=\"{size}\" text-anchor=\"{anchor}\" fill=\"{fill}\">{}</text>",
        n(x),
        n(y),
        esc(s)
    );
}

/// A mark carrying its value: native `<title>` plus `data-tip` for the page's tooltip.
fn tipped_rect(out: &mut String, (x, y, w, h): (f64, f64, f64, f64), fill: &str, extra: &str, tip: &str) {
    let t = esc(tip);
    let _ = write!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\"{extra} data-tip=\"{t}\"><title>{t}</title></rect>",
        n(x),
        n(y),
        n(w.max(0.0)),
        n(h.max(0.0))
    );
}

/// Lays legend items out left to right from `x0`, wrapping at the chart width. Returns the
/// markup and the y below the last row.
fn legend(items: &[LegendItem], x0: f64, y0: f64, size: f64, width: f64) -> (String, f64) {
    let mut out = String::new();
    let (mut x, mut y) = (x0, y0);
    let line = size + 6.0;
    let max_chars = ((width - x0 - 24.0) / (size * 0.62)) as usize;
    for item in items {
        let label = truncate(&item.text, max_chars);
        let w = 14.0 + text_width(&label, size) + 12.0;
        if x > x0 && x + w > width - 4.0 {
            x = x0;
            y += line;
        }
        let _ = write!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" rx=\"2\" fill=\"{}\"/>",
            n(x),
            n(y - size * 0.8),
            item.color
        );
        text(&mut out, x + 14.0, y, size, "start", TEXT, &label);
        x += w;
    }
    (out, y + line * 0.5)
}

/// Keeps each pixel column's first, lowest and highest point, in x order: the polyline drawn
/// from them covers the same pixels as the full one.
fn thin(points: &[(f64, f64)], to_px: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
    if points.len() <= MAX_LINE_POINTS {
        return points.to_vec();
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < points.len() {
        let col = to_px(points[i].0).floor();
        let mut j = i;
        let (mut lo, mut hi) = (i, i);
        while j < points.len() && to_px(points[j].0).floor() == col {
            if points[j].1 < points[lo].1 {
                lo = j;
            }
            if points[j].1 > points[hi].1 {
                hi = j;
            }
            j += 1;
        }
        let mut keep = [i, lo, hi, j - 1];
        keep.sort_unstable();
        let mut last = usize::MAX;
        for k in keep {
            if k != last {
                out.push(points[k]);
                last = k;
            }
        }
        i = j;
    }
    out
}

/// Draws a line chart.
pub fn line_chart(c: &LineChart) -> Chart {
    let height = 240.0;
    let mut body = String::new();
    let items: Vec<LegendItem> = c.series.iter().map(|s| LegendItem { color: s.color, text: s.name.clone() }).collect();
    let (leg, leg_bottom) = legend(&items, 8.0, 14.0, 12.0, WIDTH);
    body.push_str(&leg);

    let xs = c.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (mut x_min, mut x_max) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
    if !x_min.is_finite() {
        (x_min, x_max) = (0.0, 1.0);
    }
    if x_max <= x_min {
        x_max = x_min + 1.0;
    }
    let y_data_max = c.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0_f64, f64::max);
    let y_step = nice_step(y_data_max, 4.0);
    let y_max = (y_data_max / y_step).ceil().max(1.0) * y_step;

    let top_label = format!("{} {}", tick(y_max), c.y_unit);
    let left = (text_width(&top_label, 11.0) + 10.0).max(34.0);
    let (right, top, bottom) = (WIDTH - 10.0, leg_bottom + 8.0, height - 34.0);
    let px = |x: f64| left + (x - x_min) / (x_max - x_min) * (right - left);
    let py = |y: f64| bottom - (y / y_max).clamp(-0.05, 1.05) * (bottom - top);

    // Grid and y ticks.
    let mut v = 0.0;
    while v <= y_max + y_step * 0.01 {
        let y = py(v);
        let _ = write!(
            body,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{GRID}\"/>",
            n(left),
            n(y),
            n(right),
            n(y)
        );
        let label = if (v - y_max).abs() < y_step * 0.01 { top_label.clone() } else { tick(v) };
        text(&mut body, left - 4.0, y + 4.0, 11.0, "end", MUTED, &label);
        v += y_step;
    }
    // X ticks.
    let x_step = nice_step(x_max - x_min, 5.0);
    let mut x = (x_min / x_step).ceil() * x_step;
    while x <= x_max + x_step * 0.01 {
        let xx = px(x);
        let _ = write!(
            body,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{GRID}\"/>",
            n(xx),
            n(bottom),
            n(xx),
            n(bottom + 4.0)
        );
        text(&mut body, xx, bottom + 16.0, 11.0, "middle", MUTED, &tick(x));
        x += x_step;
    }
    text(&mut body, right, height - 4.0, 11.0, "end", MUTED, &c.x_label);
    // Phase markers.
    for (mx, label) in &c.markers {
        if *mx < x_min || *mx > x_max {
            continue;
        }
        let xx = px(*mx);
        let _ = write!(
            body,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#9aa5b1\" stroke-dasharray=\"3 3\"/>",
            n(xx),
            n(top),
            n(xx),
            n(bottom)
        );
        text(&mut body, xx + 3.0, top + 10.0, 9.0, "start", MUTED, &truncate(label, 14));
    }
    let _ = write!(
        body,
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{MUTED}\"/>",
        n(left),
        n(bottom),
        n(right),
        n(bottom)
    );

    // Lines.
    for s in &c.series {
        if s.points.is_empty() {
            continue;
        }
        let pts = thin(&s.points, px);
        let mut d = String::new();
        for (i, (x, y)) in pts.iter().enumerate() {
            let _ = write!(d, "{}{},{}", if i == 0 { "M" } else { "L" }, n(px(*x)), n(py(*y)));
        }
        let dash = if s.dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        let _ = write!(
            body,
            "<path d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" stroke-linejoin=\"round\"{dash}><title>{}</title></path>",
            s.color,
            esc(&s.name)
        );
        if s.points.len() <= MAX_DOTS {
            for (x, y) in &s.points {
                let _ =
                    write!(body, "<circle cx=\"{}\" cy=\"{}\" r=\"2.5\" fill=\"{}\"/>", n(px(*x)), n(py(*y)), s.color);
            }
        }
    }

    // Hover columns: one per (kept) interval, spanning half-way to its neighbours.
    let stride = c.tips.len().div_ceil(MAX_HOVER_COLUMNS).max(1);
    let kept: Vec<&(f64, String)> = c.tips.iter().step_by(stride).collect();
    for (i, (x, tip)) in kept.iter().enumerate() {
        let xx = px(*x);
        let prev = if i == 0 { left } else { (px(kept[i - 1].0) + xx) / 2.0 };
        let next = if i + 1 == kept.len() { right } else { (px(kept[i + 1].0) + xx) / 2.0 };
        tipped_rect(
            &mut body,
            (prev, top, next - prev, bottom - top),
            "#102a43",
            " fill-opacity=\"0\" class=\"hit\"",
            tip,
        );
    }
    Chart { id: c.id.clone(), title: c.title.clone(), width: WIDTH, height, body }
}

/// Draws horizontal bars, grouped, with the value written at the end of each bar.
pub fn bar_chart(id: &str, title: &str, groups: &[BarGroup], legend_items: &[LegendItem]) -> Chart {
    let mut body = String::new();
    let mut y = 8.0;
    if !legend_items.is_empty() {
        let (leg, bottom) = legend(legend_items, 8.0, 14.0, 12.0, WIDTH);
        body.push_str(&leg);
        y = bottom + 4.0;
    }
    let labels: Vec<String> = groups.iter().map(|g| truncate(&g.label, 22)).collect();
    let label_w = labels.iter().map(|l| text_width(l, 12.0)).fold(40.0, f64::max) + 10.0;
    let value_w =
        groups.iter().flat_map(|g| g.bars.iter().map(|b| text_width(&b.text, 11.0))).fold(24.0, f64::max) + 8.0;
    let (x0, x1) = (label_w, WIDTH - value_w);
    let max = groups.iter().flat_map(|g| g.bars.iter().map(|b| b.value)).fold(0.0_f64, f64::max);
    let scale = |v: f64| if max > 0.0 { (v.max(0.0) / max) * (x1 - x0) } else { 0.0 };
    let (bar_h, gap, group_gap) = (14.0, 3.0, 12.0);
    for (g, label) in groups.iter().zip(&labels) {
        let group_h = g.bars.len() as f64 * (bar_h + gap) - gap;
        let _ = write!(body, "<g><title>{}</title>", esc(&g.label));
        text(&mut body, x0 - 6.0, y + group_h / 2.0 + 4.0, 12.0, "end", TEXT, label);
        body.push_str("</g>");
        for b in &g.bars {
            let w = scale(b.value);
            tipped_rect(&mut body, (x0, y, w.max(1.0), bar_h), b.color, " rx=\"2\"", &b.tip);
            text(&mut body, x0 + w + 4.0, y + bar_h - 3.0, 11.0, "start", TEXT, &b.text);
            y += bar_h + gap;
        }
        y += group_gap - gap;
    }
    let _ = write!(
        body,
        "<line x1=\"{}\" y1=\"4\" x2=\"{}\" y2=\"{}\" stroke=\"{MUTED}\"/>",
        n(x0),
        n(x0),
        n(y - group_gap + 4.0)
    );
    Chart { id: id.to_owned(), title: title.to_owned(), width: WIDTH, height: (y + 4.0).ceil(), body }
}

/// Draws 100 % stacked bars, one per row, with the legend below, `width` units wide
/// ([`WIDTH`] in the page; wider for a full-width panel of the PNG).
pub fn stacked_chart(id: &str, title: &str, rows: &[StackRow], legend_items: &[LegendItem], width: f64) -> Chart {
    let mut body = String::new();
    let (x0, x1) = (8.0, width - 8.0);
    let mut y = 16.0;
    for row in rows {
        let max_chars = ((x1 - x0) / (12.0 * 0.62)) as usize;
        text(&mut body, x0, y, 12.0, "start", TEXT, &truncate(&row.label, max_chars));
        y += 5.0;
        let total: f64 = row.segments.iter().map(|s| s.share_pct.max(0.0)).sum();
        let mut x = x0;
        let bar_h = 22.0;
        for s in row.segments.iter().filter(|s| s.share_pct > 0.0) {
            let w = s.share_pct / total * (x1 - x0);
            tipped_rect(&mut body, (x, y, w, bar_h), s.color, "", &s.tip);
            let label = format!("{:.0}%", s.share_pct);
            if w >= text_width(&label, 11.0) + 6.0 {
                text(&mut body, x + w / 2.0, y + 15.0, 11.0, "middle", "#ffffff", &label);
            }
            x += w;
        }
        if total <= 0.0 {
            let _ = write!(
                body,
                "<rect x=\"{x0}\" y=\"{}\" width=\"{}\" height=\"{bar_h}\" fill=\"{GRID}\"/>",
                n(y),
                n(x1 - x0)
            );
        }
        y += bar_h + 14.0;
    }
    let (leg, bottom) = legend(legend_items, x0, y + 2.0, 12.0, width);
    body.push_str(&leg);
    Chart { id: id.to_owned(), title: title.to_owned(), width, height: (bottom + 2.0).ceil(), body }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: Vec<(f64, f64)>) -> Series {
        Series { name: "p50".into(), color: "#000", dashed: false, points }
    }

    #[test]
    fn nice_steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(100.0, 4.0), 50.0);
        assert_eq!(nice_step(12.0, 4.0), 5.0);
        assert_eq!(nice_step(0.9, 4.0), 0.5);
        assert_eq!(nice_step(0.0, 4.0), 1.0);
        assert_eq!(nice_step(f64::NAN, 4.0), 1.0);
    }

    #[test]
    fn line_chart_escapes_names_and_tips() {
        let c = line_chart(&LineChart {
            id: "x".into(),
            title: "t".into(),
            y_unit: "ms".into(),
            x_label: "s".into(),
            series: vec![Series { name: "<b>".into(), ..series(vec![(0.0, 1.0), (1.0, 2.0)]) }],
            tips: vec![(0.0, "a<script>".into())],
            markers: vec![(0.5, "\"phase\"".into())],
        });
        let html = c.to_html();
        assert!(!html.contains("<b>") && !html.contains("<script>") && !html.contains("\"phase\""), "{html}");
        assert!(html.contains("&lt;b&gt;") && html.contains("a&lt;script&gt;"));
    }

    #[test]
    fn long_series_are_thinned_to_pixel_extremes_and_keep_their_peak() {
        let mut pts: Vec<(f64, f64)> = (0..100_000).map(|i| (i as f64, 1.0)).collect();
        pts[54_321].1 = 999.0;
        let c = line_chart(&LineChart {
            id: "x".into(),
            title: "t".into(),
            y_unit: "ms".into(),
            x_label: "s".into(),
            series: vec![series(pts.clone())],
            tips: pts.iter().map(|p| (p.0, "tip".into())).collect(),
            markers: vec![],
        });
        let html = c.to_html();
        assert!(html.len() < 200_000, "{} bytes", html.len());
        assert!(html.matches("class=\"hit\"").count() <= MAX_HOVER_COLUMNS);
        // The peak maps to the top of the plot: y = top of the grid.
        let thinned = thin(&pts, |x| x / 250.0);
        assert!(thinned.iter().any(|p| p.1 == 999.0));
        assert!(thinned.len() < 2000);
    }

    #[test]
    fn empty_and_zero_data_draw_without_nan() {
        let c = line_chart(&LineChart {
            id: "x".into(),
            title: "t".into(),
            y_unit: "ms".into(),
            x_label: "s".into(),
            series: vec![series(vec![]), series(vec![(5.0, 0.0)])],
            tips: vec![],
            markers: vec![],
        });
        assert!(!c.to_html().contains("NaN") && !c.to_html().contains("inf"));
        let b = bar_chart(
            "b",
            "t",
            &[BarGroup {
                label: "x".into(),
                bars: vec![Bar { name: "n".into(), color: "#000", value: 0.0, text: "0".into(), tip: "0".into() }],
            }],
            &[],
        );
        assert!(!b.to_html().contains("NaN"));
        let s = stacked_chart(
            "s",
            "t",
            &[StackRow {
                label: "r".into(),
                segments: vec![Segment { color: "#000", share_pct: -3.0, tip: "x".into() }],
            }],
            &[],
            WIDTH,
        );
        assert!(!s.to_html().contains("NaN"));
    }
}
