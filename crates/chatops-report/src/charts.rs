//! The report's charts, built from the results and the metrics summary: which fields go into
//! which chart, with what colour and label. The HTML page and the PNG both draw from here,
//! so they always show the same figures. Each function returns `None` when its data is
//! absent, and the caller says so in words instead of drawing an empty frame.

use chatops_analyze::Metric;
use chatops_analyze::artillery::is_artillery;
use chatops_analyze::summary::{E2eBreakdown, JoinBreakdown, MetricsSummary};
use chatops_core::Segment as SegmentKind;
use chatops_core::results::LoadTestResults;
use chatops_core::stats::LatencySummary;

use crate::fmt::{count, ms, ms_unit, pct, secs};
use crate::svg::{self, Bar, BarGroup, Chart, LegendItem, LineChart, Segment, Series, StackRow};
use crate::timeline::{self, Timeline};

pub(crate) const P50: &str = "#8fb8de";
pub(crate) const P95: &str = "#3a7ebf";
pub(crate) const P99: &str = "#0b3d75";
const OK: &str = "#2f8f5b";
const WARN: &str = "#d9822b";
const BAD: &str = "#c23030";

/// At most this many rows per bar or stacked chart; the tables list every row.
pub(crate) const MAX_CHART_ROWS: usize = 24;

/// The colour of an E2E segment, the same in every chart and legend.
pub(crate) fn stage_color(segment: SegmentKind) -> &'static str {
    match segment {
        SegmentKind::Router => "#4e79a7",
        // The palette's yellow: a human's wait, unlike any of the bot's stages.
        SegmentKind::ApprovalWait => "#edc948",
        SegmentKind::Enqueue => "#f28e2b",
        SegmentKind::QueueWait => "#e15759",
        SegmentKind::Handler | SegmentKind::HandlerToFirstResponse => "#76b7b2",
        SegmentKind::SyncResponse => "#59a14f",
        SegmentKind::AsyncResponse | SegmentKind::FirstToLastResponse => "#b07aa1",
        SegmentKind::Unexplained => "#9c755f",
        SegmentKind::Other => "#bab0ac",
    }
}

fn pct_legend() -> Vec<LegendItem> {
    vec![
        LegendItem { color: P50, text: "p50".into() },
        LegendItem { color: P95, text: "p95".into() },
        LegendItem { color: P99, text: "p99".into() },
    ]
}

fn phase_markers(r: &LoadTestResults) -> Vec<(f64, String)> {
    r.phases.iter().map(|p| (p.start_offset_ms as f64 / 1000.0, p.name.clone())).collect()
}

/// Ack latency (scheduled send → HTTP answer) per interval.
pub(crate) fn ack_over_time(r: &LoadTestResults) -> Option<Chart> {
    timeline::ack_chart(&Timeline::of(r))
}

/// Client-observed E2E latency (scheduled send → first response) per interval; none for
/// Artillery's results, which have no E2E figures to draw (not a line at zero).
pub(crate) fn e2e_over_time(r: &LoadTestResults) -> Option<Chart> {
    timeline::e2e_chart(&Timeline::of(r))
}

/// The title of [`server_gauges_over_time`]'s chart.
pub(crate) const SERVER_TITLE: &str = timeline::SERVER_TITLE;

/// The bot's gauges scraped per interval (`TimePoint::server`): queue depth, jobs in flight
/// and dead letters, each summed over the quadrants; `None` when no interval has them (a
/// run without `--spawn` or `--scrape`).
pub(crate) fn server_gauges_over_time(r: &LoadTestResults) -> Option<Chart> {
    timeline::server_chart(&Timeline::of(r))
}

/// What the E2E chart's place says when there is no chart.
pub(crate) fn no_e2e_series(r: &LoadTestResults) -> &'static str {
    if is_artillery(r) {
        "Not measured: Artillery does not receive the bot's response_url posts."
    } else {
        "No time series in the results."
    }
}

/// The rate chart's title: Artillery's results record no target rate.
pub(crate) fn rate_title(r: &LoadTestResults) -> &'static str {
    timeline::rate_title(&Timeline::of(r))
}

/// Target and achieved request rate per interval (Artillery's results record no target).
pub(crate) fn rate_over_time(r: &LoadTestResults) -> Option<Chart> {
    timeline::rate_chart(&Timeline::of(r))
}

fn pct_bars(label: &str, s: &LatencySummary) -> BarGroup {
    let bar = |name: &str, color, v: f64| Bar {
        name: name.into(),
        color,
        value: v,
        text: ms(v),
        tip: format!("{label} {name}: {} ({} samples)", ms_unit(v), count(s.count)),
    };
    BarGroup { label: label.into(), bars: vec![bar("p50", P50, s.p50), bar("p95", P95, s.p95), bar("p99", P99, s.p99)] }
}

/// p50/p95/p99 of each client-side latency that has samples.
pub(crate) fn client_percentiles(r: &LoadTestResults) -> Option<Chart> {
    let s = &r.summaries;
    let groups: Vec<BarGroup> = [
        ("ack", &s.ack),
        ("service time", &s.service_time),
        ("E2E first response", &s.first_response),
        ("E2E last response", &s.last_response),
    ]
    .into_iter()
    .filter(|(_, s)| s.count > 0)
    .map(|(l, s)| pct_bars(l, s))
    .collect();
    (!groups.is_empty())
        .then(|| svg::bar_chart("chart-percentiles", "Client latency percentiles (ms)", &groups, &pct_legend()))
}

fn count_bars(
    id: &str,
    title: &str,
    map: &std::collections::BTreeMap<String, u64>,
    color: impl Fn(&str) -> &'static str,
) -> Option<Chart> {
    if map.is_empty() {
        return None;
    }
    let groups: Vec<BarGroup> = map
        .iter()
        .take(MAX_CHART_ROWS)
        .map(|(k, v)| BarGroup {
            label: k.clone(),
            bars: vec![Bar {
                name: k.clone(),
                color: color(k),
                value: *v as f64,
                text: count(*v),
                tip: format!("{k}: {}", count(*v)),
            }],
        })
        .collect();
    Some(svg::bar_chart(id, title, &groups, &[]))
}

fn status_color(code: &str) -> &'static str {
    match code.as_bytes().first() {
        Some(b'2' | b'3') => OK,
        Some(b'4') => WARN,
        _ => BAD,
    }
}

/// HTTP answers by status code.
pub(crate) fn status_codes(r: &LoadTestResults) -> Option<Chart> {
    count_bars("chart-status-codes", "HTTP status codes", &r.counters.acks, status_color)
}

/// Failed requests by error type.
pub(crate) fn error_types(r: &LoadTestResults) -> Option<Chart> {
    count_bars("chart-error-types", "Client errors by type", &r.counters.errors, |_| BAD)
}

/// HTTP answers by status code followed by client errors by type, in one chart (the PNG's
/// panel; the page shows them apart).
pub(crate) fn answers_and_errors(r: &LoadTestResults) -> Option<Chart> {
    let mut groups: Vec<BarGroup> = Vec::new();
    let mut push = |label: String, v: u64, color: &'static str| {
        groups.push(BarGroup {
            label: label.clone(),
            bars: vec![Bar {
                name: label.clone(),
                color,
                value: v as f64,
                text: count(v),
                tip: format!("{label}: {}", count(v)),
            }],
        })
    };
    for (k, v) in r.counters.acks.iter().take(MAX_CHART_ROWS / 2) {
        push(format!("HTTP {k}"), *v, status_color(k));
    }
    for (k, v) in r.counters.errors.iter().take(MAX_CHART_ROWS / 2) {
        push(format!("error {k}"), *v, BAD);
    }
    (!groups.is_empty()).then(|| svg::bar_chart("chart-answers", "HTTP answers and client errors", &groups, &[]))
}

/// Router, worker and E2E at p50/p95/p99, from the bot's own lines.
pub(crate) fn service_latency(m: &MetricsSummary) -> Option<Chart> {
    let groups: Vec<BarGroup> = [Metric::RouterDuration, Metric::WorkerDuration, Metric::TotalE2e]
        .into_iter()
        .filter_map(|metric| m.stage(metric).filter(|s| s.count > 0).map(|s| pct_bars(metric.label(), s)))
        .collect();
    (!groups.is_empty()).then(|| {
        svg::bar_chart("chart-service-latency", "Service latency: router, worker, E2E (ms)", &groups, &pct_legend())
    })
}

fn breakdown_row(label: String, b: &E2eBreakdown) -> StackRow {
    StackRow {
        label,
        segments: b
            .segments
            .iter()
            .map(|s| Segment {
                color: stage_color(s.name),
                share_pct: s.share_pct,
                tip: format!("{}: {} mean, {} of E2E", s.label, ms_unit(s.mean_ms), pct(s.share_pct)),
            })
            .collect(),
    }
}

/// Where the mean E2E time went, overall and per command, as 100 % stacked bars `width`
/// units wide.
pub(crate) fn e2e_breakdown(m: &MetricsSummary, width: f64) -> Option<Chart> {
    let b = &m.e2e_breakdown;
    if b.lines == 0 || b.segments.is_empty() {
        return None;
    }
    let mut rows = vec![breakdown_row(
        format!("all commands · mean {} over {} jobs", ms_unit(b.total_mean_ms), count(b.lines)),
        b,
    )];
    for g in m.groups.by_command.iter().filter(|g| g.e2e_breakdown.is_some()).take(MAX_CHART_ROWS) {
        if let Some(gb) = &g.e2e_breakdown {
            rows.push(breakdown_row(format!("{} · mean {}", g.key, ms_unit(gb.total_mean_ms)), gb));
        }
    }
    let legend: Vec<LegendItem> = b
        .segments
        .iter()
        .map(|s| LegendItem {
            color: stage_color(s.name),
            text: format!("{} {} · {}", s.label, ms(s.mean_ms), pct(s.share_pct)),
        })
        .collect();
    Some(svg::stacked_chart("chart-e2e-breakdown", "E2E breakdown by stage (share of mean E2E)", &rows, &legend, width))
}

fn join_row(b: &JoinBreakdown) -> StackRow {
    StackRow {
        label: format!(
            "{} · mean client E2E {} over {} requests",
            b.command,
            ms_unit(b.client_e2e.mean),
            count(b.complete)
        ),
        segments: b
            .segments
            .iter()
            .map(|s| Segment {
                color: stage_color(s.name),
                share_pct: s.share_pct,
                tip: format!(
                    "{}: {} mean, {} of client E2E{}",
                    s.label,
                    ms_unit(s.mean_ms),
                    pct(s.share_pct),
                    if s.negative > 0 {
                        format!(", negative in {} requests", count(s.negative))
                    } else {
                        String::new()
                    }
                ),
            })
            .collect(),
    }
}

/// The client-observed E2E time split into server stages and the unexplained rest (`--requests`).
pub(crate) fn join_breakdown(m: &MetricsSummary, width: f64) -> Option<Chart> {
    let j = m.join.as_ref()?;
    if j.overall.complete == 0 || j.overall.segments.is_empty() {
        return None;
    }
    let mut rows = vec![join_row(&j.overall)];
    rows.extend(j.by_command.iter().filter(|b| b.complete > 0).take(MAX_CHART_ROWS).map(join_row));
    let legend: Vec<LegendItem> = j
        .overall
        .segments
        .iter()
        .map(|s| LegendItem {
            color: stage_color(s.name),
            text: format!("{} {} · {}", s.label, ms(s.mean_ms), pct(s.share_pct)),
        })
        .collect();
    Some(svg::stacked_chart(
        "chart-join-breakdown",
        "Client E2E split by stage (joined by correlation id)",
        &rows,
        &legend,
        width,
    ))
}

/// Server-side p95 per time bin (`analyze --bin`), on the test's time axis.
pub(crate) fn server_over_time(m: &MetricsSummary, r: &LoadTestResults) -> Option<Chart> {
    let bins = m.bins.as_ref()?;
    if bins.points.is_empty() {
        return None;
    }
    let x = |start_ms: i64| (start_ms - r.test.start_ms) as f64 / 1000.0;
    let line = |name: &str, color, f: &dyn Fn(&chatops_analyze::summary::BinPoint) -> f64| Series {
        name: name.into(),
        color,
        dashed: false,
        points: bins.points.iter().map(|b| (x(b.start_ms), f(b))).collect(),
    };
    let tips = bins
        .points
        .iter()
        .map(|b| {
            (
                x(b.start_ms),
                format!(
                    "{:.0} s · p95 router {} · queue wait {} · E2E {} · {} requests, {} jobs",
                    x(b.start_ms),
                    ms_unit(b.router.p95),
                    ms_unit(b.queue_wait.p95),
                    ms_unit(b.e2e.p95),
                    count(b.router_lines),
                    count(b.worker_lines)
                ),
            )
        })
        .collect();
    Some(svg::line_chart(&LineChart {
        id: "chart-server-latency".into(),
        title: format!("Server p95 per {} bin", secs(bins.width_ms)),
        y_unit: "ms".into(),
        x_label: "seconds since test start".into(),
        series: vec![
            line("router p95", stage_color(SegmentKind::Router), &|b| b.router.p95),
            line("queue wait p95", stage_color(SegmentKind::QueueWait), &|b| b.queue_wait.p95),
            line("E2E p95", P99, &|b| b.e2e.p95),
        ],
        tips,
        markers: phase_markers(r),
    }))
}
