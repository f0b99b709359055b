//! The PNG: a one-page summary of the report (header, key figures, seven chart panels) drawn
//! as one SVG from the same charts as the HTML page and rasterised by `resvg`, without a
//! browser. Text uses the DejaVu Sans font embedded in the binary (`fonts/`, Bitstream Vera
//! licence); system fonts are never loaded, so the picture is the same on a machine without
//! any font installed.

use std::fmt::Write as _;
use std::sync::Arc;

use chatops_analyze::artillery::is_artillery;
use chatops_analyze::compare::Comparison;
use chatops_analyze::summary::MetricsSummary;
use chatops_core::results::LoadTestResults;
use resvg::{tiny_skia, usvg};

use crate::charts;
use crate::error::ReportError;
use crate::fmt::{count, duration, esc, instant, ms_unit, rate, ratio_pct, truncate};
use crate::html::{NO_METRICS_HINT, verdict_word};
use crate::svg::{Chart, FONT};

static DEJAVU_SANS: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
const FONT_NAME: &str = "DejaVu Sans";

const MARGIN: u32 = 24;
const GAP: u32 = 16;
const HEADER_H: u32 = 92;
const CARDS_Y: u32 = HEADER_H + 14;
const CARD_H: u32 = 72;
const PANELS_Y: u32 = CARDS_Y + CARD_H + GAP;
const PANEL_H: u32 = 330;
const PANEL_ROWS: u32 = 3;
/// The last row: the E2E breakdown, full width, drawn on a wider coordinate system.
const WIDE_Y: u32 = PANELS_Y + PANEL_ROWS * (PANEL_H + GAP);
const WIDE_H: u32 = 440;
const WIDE_CHART_WIDTH: f64 = 900.0;
const FOOTER_H: u32 = 30;

/// Width of the PNG in pixels.
pub const PNG_WIDTH: u32 = 1200;
/// Height of the PNG in pixels: always the same, whatever the data (absent charts become a
/// sentence in their panel).
pub const PNG_HEIGHT: u32 = WIDE_Y + WIDE_H + GAP + FOOTER_H;

/// Renders the summary page as PNG bytes, [`PNG_WIDTH`] × [`PNG_HEIGHT`] pixels.
pub fn render_png(
    results: &LoadTestResults,
    metrics: Option<&MetricsSummary>,
    baseline: Option<&Comparison>,
) -> Result<Vec<u8>, ReportError> {
    let pixmap = rasterize(&page_svg(results, metrics, baseline), true)?;
    pixmap.encode_png().map_err(|e| ReportError::Png(e.to_string()))
}

/// Parses and draws an SVG of the page's size. `with_font: false` leaves the font database
/// empty, which tests use to show that text comes from the embedded font.
pub(crate) fn rasterize(svg: &str, with_font: bool) -> Result<tiny_skia::Pixmap, ReportError> {
    let mut opt = usvg::Options { font_family: FONT_NAME.to_owned(), ..usvg::Options::default() };
    if with_font {
        let db = opt.fontdb_mut();
        db.load_font_source(usvg::fontdb::Source::Binary(Arc::new(DEJAVU_SANS)));
        db.set_sans_serif_family(FONT_NAME);
        db.set_serif_family(FONT_NAME);
        db.set_monospace_family(FONT_NAME);
    }
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| ReportError::Png(format!("invalid page SVG: {e}")))?;
    let mut pixmap = tiny_skia::Pixmap::new(PNG_WIDTH, PNG_HEIGHT)
        .ok_or_else(|| ReportError::Png("cannot allocate the image".into()))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::identity(), &mut pixmap.as_mut());
    Ok(pixmap)
}

/// The whole summary page as one SVG document.
pub(crate) fn page_svg(r: &LoadTestResults, metrics: Option<&MetricsSummary>, baseline: Option<&Comparison>) -> String {
    let (w, h) = (PNG_WIDTH, PNG_HEIGHT);
    let mut o = String::with_capacity(256 * 1024);
    let _ = write!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"{FONT}\">\
         <rect width=\"{w}\" height=\"{h}\" fill=\"#f0f4f8\"/><rect width=\"{w}\" height=\"{HEADER_H}\" fill=\"#102a43\"/>"
    );
    // Header: title, when/what, verdict.
    let title = format!("chatops load test · {}", truncate(&r.test.profile, 60));
    let _ = write!(
        o,
        "<text id=\"title\" x=\"{MARGIN}\" y=\"40\" font-size=\"26\" font-weight=\"bold\" fill=\"#ffffff\">{}</text>",
        esc(&title)
    );
    let sub = format!(
        "{} · {} · {} requests · target {}",
        instant(r.test.start_ms),
        duration(r.test.duration_ms),
        count(r.counters.requests),
        truncate(&r.test.target, 60)
    );
    let _ = write!(o, "<text x=\"{MARGIN}\" y=\"70\" font-size=\"15\" fill=\"#bcccdc\">{}</text>", esc(&sub));
    let (class, word) = verdict_word(r);
    // The page's badge colours (report.css).
    let fill = match class {
        "pass" => "#2f8f5b",
        "nodata" => "#7b8794",
        _ => "#c23030",
    };
    let pill_x = w - MARGIN - 130;
    let _ = write!(
        o,
        "<rect x=\"{pill_x}\" y=\"24\" width=\"130\" height=\"34\" rx=\"17\" fill=\"{fill}\"/>\
         <text x=\"{}\" y=\"47\" font-size=\"17\" font-weight=\"bold\" fill=\"#ffffff\" text-anchor=\"middle\">{word}</text>",
        pill_x + 65
    );
    if let Some(c) = baseline {
        let text = if c.verdict == "pass" {
            "no regression vs baseline".to_owned()
        } else {
            "REGRESSION vs baseline".to_owned()
        };
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"78\" font-size=\"13\" fill=\"#ffffff\" text-anchor=\"end\">{}</text>",
            w - MARGIN,
            esc(&text)
        );
    }

    // Key figures.
    let e2e = &r.summaries.first_response;
    let lat = |v: f64| if e2e.count == 0 { "—".to_owned() } else { ms_unit(v) };
    let errors = r.counters.n_errors();
    let cards: [(&str, String, bool); 8] = [
        ("throughput", r.throughput().map_or("n/a".into(), rate), false),
        ("requests", count(r.counters.requests), false),
        ("error rate", ratio_pct(r.counters.error_rate()), errors > 0),
        ("lost", if is_artillery(r) { "n/a".into() } else { count(r.counters.lost) }, r.counters.lost > 0),
        ("ack p99", if r.summaries.ack.count == 0 { "—".into() } else { ms_unit(r.summaries.ack.p99) }, false),
        ("E2E p50", lat(e2e.p50), false),
        ("E2E p95", lat(e2e.p95), false),
        ("E2E p99", lat(e2e.p99), false),
    ];
    let card_w = (w - 2 * MARGIN - 7 * 10) / 8;
    for (i, (key, value, bad)) in cards.iter().enumerate() {
        let x = MARGIN + i as u32 * (card_w + 10);
        let hl = key.starts_with("E2E");
        let (bg, border) = if hl { ("#e8f1fb", "#3a7ebf") } else { ("#ffffff", "#d9e2ec") };
        let color = if *bad { "#c23030" } else { "#1f2933" };
        let _ = write!(
            o,
            "<rect x=\"{x}\" y=\"{CARDS_Y}\" width=\"{card_w}\" height=\"{CARD_H}\" rx=\"6\" fill=\"{bg}\" stroke=\"{border}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"13\" fill=\"#52606d\">{}</text>\
             <text x=\"{}\" y=\"{}\" font-size=\"21\" font-weight=\"bold\" fill=\"{color}\">{}</text>",
            x + 10,
            CARDS_Y + 24,
            esc(key),
            x + 10,
            CARDS_Y + 56,
            esc(value)
        );
    }

    // Chart panels: three rows of two, then the E2E breakdown across the page.
    let no_metrics = format!("No server metrics: run {NO_METRICS_HINT}");
    let no_series = "No time series in the results.".to_owned();
    let service = match metrics {
        Some(m) => (charts::service_latency(m), "No router or worker lines.".to_owned()),
        None => (None, no_metrics.clone()),
    };
    let panels: [(&str, Option<Chart>, String); 6] = [
        ("Ack latency over time", charts::ack_over_time(r), no_series.clone()),
        ("E2E latency (first response) over time", charts::e2e_over_time(r), charts::no_e2e_series(r).into()),
        (charts::rate_title(r), charts::rate_over_time(r), no_series),
        ("Client latency percentiles (ms)", charts::client_percentiles(r), "No latency samples.".into()),
        ("Server latency: router, worker, E2E (ms)", service.0, service.1),
        ("HTTP answers and client errors", charts::answers_and_errors(r), "No HTTP answer and no error.".into()),
    ];
    let panel_w = (w - 2 * MARGIN - GAP) / 2;
    for (i, (title, chart, empty)) in panels.iter().enumerate() {
        let x = MARGIN + (i as u32 % 2) * (panel_w + GAP);
        let y = PANELS_Y + (i as u32 / 2) * (PANEL_H + GAP);
        panel(&mut o, (x, y, panel_w, PANEL_H), title, chart.as_ref(), empty);
    }
    let breakdown = match metrics {
        Some(m) => (charts::e2e_breakdown(m, WIDE_CHART_WIDTH), "No worker line carried totalE2eMs.".to_owned()),
        None => (None, no_metrics),
    };
    panel(
        &mut o,
        (MARGIN, WIDE_Y, w - 2 * MARGIN, WIDE_H),
        "Where the E2E time goes: share of the mean per stage, all commands and each command",
        breakdown.0.as_ref(),
        &breakdown.1,
    );
    let foot = format!(
        "chatops-report {} · E2E = scheduled send → first response_url post · server stages across machines use wall clocks",
        env!("CARGO_PKG_VERSION")
    );
    let _ = write!(
        o,
        "<text x=\"{MARGIN}\" y=\"{}\" font-size=\"12\" fill=\"#52606d\">{}</text></svg>",
        h - 12,
        esc(&foot)
    );
    o
}

/// A white panel with a title, holding a chart fitted to it or a sentence saying why not.
fn panel(o: &mut String, (x, y, w, h): (u32, u32, u32, u32), title: &str, chart: Option<&Chart>, empty: &str) {
    let _ = write!(
        o,
        "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"8\" fill=\"#ffffff\" stroke=\"#d9e2ec\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"16\" font-weight=\"bold\" fill=\"#1f2933\">{}</text>",
        x + 14,
        y + 26,
        esc(title)
    );
    match chart {
        Some(c) => o.push_str(&c.to_nested(f64::from(x + 8), f64::from(y + 36), f64::from(w - 16), f64::from(h - 44))),
        None => {
            let _ = write!(
                o,
                "<text x=\"{}\" y=\"{}\" font-size=\"14\" fill=\"#52606d\" text-anchor=\"middle\">{}</text>",
                x + w / 2,
                y + h / 2,
                esc(empty)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pixels in the header's title line that are lighter than the dark band behind them.
    fn light_pixels_in_title(p: &tiny_skia::Pixmap) -> usize {
        let mut n = 0;
        for y in 14..48 {
            for x in MARGIN..600 {
                let c = p.pixel(x, y).unwrap();
                if c.red() > 160 && c.green() > 160 && c.blue() > 160 {
                    n += 1;
                }
            }
        }
        n
    }

    fn minimal() -> LoadTestResults {
        serde_json::from_str(include_str!("../tests/fixtures/run/results.json")).unwrap()
    }

    #[test]
    fn title_glyphs_come_from_the_embedded_font() {
        let svg = page_svg(&minimal(), None, None);
        let with_font = rasterize(&svg, true).unwrap();
        let without = rasterize(&svg, false).unwrap();
        assert!(light_pixels_in_title(&with_font) > 500, "{}", light_pixels_in_title(&with_font));
        assert_eq!(light_pixels_in_title(&without), 0, "no font, no glyphs");
    }

    #[test]
    fn page_size_is_fixed_whatever_the_data() {
        let svg = page_svg(&minimal(), None, None);
        assert!(svg.contains(&format!("width=\"{PNG_WIDTH}\" height=\"{PNG_HEIGHT}\"")));
        assert!(svg.contains("No server metrics: run chatops analyze --from-results"));
    }
}
