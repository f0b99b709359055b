//! The charts on a run's time axis (request rate, ack and E2E latency, the bot's gauges),
//! drawn from a slice of `TimePoint`s and the resolved phases rather than from a whole
//! results file, so that the report and `chatops loadtest --dashboard` draw them with one
//! implementation: the dashboard redraws them every second from the points it has so far,
//! and at the end from the results file's own points, which makes its last picture the
//! report's. Phase starts are dashed markers labelled with the phase's name.

use chatops_core::results::{LoadTestResults, ResolvedPhase, ServerGauges, TimePoint};

use crate::charts::{P50, P95, P99};
use crate::fmt::{count, ms_unit, rate, secs};
use crate::svg::{self, Chart, LineChart, Series};

const TARGET: &str = "#7b8794";
const ACHIEVED: &str = "#2f8f5b";
const QUEUE_DEPTH: &str = "#e15759";
const JOBS_IN_FLIGHT: &str = "#4e79a7";
const DLQ: &str = "#9c755f";

/// What the time-axis charts are drawn from.
#[derive(Debug, Clone, Copy)]
pub struct Timeline<'a> {
    pub points: &'a [TimePoint],
    pub phases: &'a [ResolvedPhase],
    /// Artillery's results record no target rate and no E2E: their charts leave those out
    /// instead of drawing a line at zero.
    pub artillery: bool,
}

impl<'a> Timeline<'a> {
    /// The time series of a results file (ours or Artillery's).
    pub fn of(r: &'a LoadTestResults) -> Timeline<'a> {
        Timeline {
            points: &r.time_series.points,
            phases: &r.phases,
            artillery: chatops_analyze::artillery::is_artillery(r),
        }
    }

    fn markers(&self) -> Vec<(f64, String)> {
        self.phases.iter().map(|p| (point_x(p.start_offset_ms), p.name.clone())).collect()
    }
}

/// Seconds since the test start of a time-series point.
fn point_x(offset_ms: u64) -> f64 {
    offset_ms as f64 / 1000.0
}

fn three_lines(
    t: &Timeline<'_>,
    id: &str,
    title: &str,
    label: &str,
    pick: impl Fn(&TimePoint) -> [f64; 3],
) -> Option<Chart> {
    if t.points.is_empty() {
        return None;
    }
    let mut lines: [Vec<(f64, f64)>; 3] = Default::default();
    let mut tips = Vec::with_capacity(t.points.len());
    for p in t.points {
        let v = pick(p);
        for (line, y) in lines.iter_mut().zip(v) {
            line.push((point_x(p.offset_ms), y));
        }
        tips.push((
            point_x(p.offset_ms),
            format!(
                "{} · {label} p50 {} · p95 {} · p99 {} · {} requests",
                secs(p.offset_ms),
                ms_unit(v[0]),
                ms_unit(v[1]),
                ms_unit(v[2]),
                count(p.requests)
            ),
        ));
    }
    let [l50, l95, l99] = lines;
    Some(svg::line_chart(&LineChart {
        id: id.into(),
        title: title.into(),
        y_unit: "ms".into(),
        x_label: "seconds since start".into(),
        series: vec![
            Series { name: format!("{label} p50"), color: P50, dashed: false, points: l50 },
            Series { name: format!("{label} p95"), color: P95, dashed: false, points: l95 },
            Series { name: format!("{label} p99"), color: P99, dashed: false, points: l99 },
        ],
        tips,
        markers: t.markers(),
    }))
}

/// Ack latency (scheduled send → HTTP answer) per interval.
pub fn ack_chart(t: &Timeline<'_>) -> Option<Chart> {
    three_lines(t, "chart-ack-latency", "Ack latency over time", "ack", |p| [p.ack_p50, p.ack_p95, p.ack_p99])
}

/// Client-observed E2E latency (scheduled send → first response) per interval; none for
/// Artillery's results.
pub fn e2e_chart(t: &Timeline<'_>) -> Option<Chart> {
    if t.artillery {
        return None;
    }
    three_lines(t, "chart-e2e-latency", "E2E latency (first response) over time", "E2E", |p| {
        [p.e2e_p50, p.e2e_p95, p.e2e_p99]
    })
}

/// The rate chart's title: Artillery's results record no target rate.
pub fn rate_title(t: &Timeline<'_>) -> &'static str {
    if t.artillery { "Achieved request rate" } else { "Target vs achieved request rate" }
}

/// Target and achieved request rate per interval (Artillery's results record no target).
pub fn rate_chart(t: &Timeline<'_>) -> Option<Chart> {
    let pts = t.points;
    if pts.is_empty() {
        return None;
    }
    let target = pts.iter().map(|p| (point_x(p.offset_ms), p.target_rate)).collect();
    let achieved = pts.iter().map(|p| (point_x(p.offset_ms), p.achieved_rate)).collect();
    let tips = pts
        .iter()
        .map(|p| {
            let text = if t.artillery {
                format!("{} · achieved {} · {} errors", secs(p.offset_ms), rate(p.achieved_rate), count(p.errors))
            } else {
                format!(
                    "{} · target {} · achieved {} · {} errors · {} dropped",
                    secs(p.offset_ms),
                    rate(p.target_rate),
                    rate(p.achieved_rate),
                    count(p.errors),
                    count(p.dropped)
                )
            };
            (point_x(p.offset_ms), text)
        })
        .collect();
    Some(svg::line_chart(&LineChart {
        id: "chart-rate".into(),
        title: rate_title(t).into(),
        y_unit: "/s".into(),
        x_label: "seconds since start".into(),
        // Target last, so its dashes stay visible where the achieved rate matches it.
        series: if t.artillery {
            vec![Series { name: "achieved".into(), color: ACHIEVED, dashed: false, points: achieved }]
        } else {
            vec![
                Series { name: "achieved".into(), color: ACHIEVED, dashed: false, points: achieved },
                Series { name: "target".into(), color: TARGET, dashed: true, points: target },
            ]
        },
        tips,
        markers: t.markers(),
    }))
}

/// The title of [`server_chart`]'s chart.
pub const SERVER_TITLE: &str = "Server: queue depth, in flight, DLQ";

/// The bot's queue depth, jobs in flight and dead-letter queue per interval, from the
/// points that carry `server` (intervals whose scrape failed are left out, not drawn as 0);
/// none when no point does.
pub fn server_chart(t: &Timeline<'_>) -> Option<Chart> {
    let gauged: Vec<(u64, &ServerGauges)> =
        t.points.iter().filter_map(|p| p.server.as_ref().map(|g| (p.offset_ms, g))).collect();
    if gauged.is_empty() {
        return None;
    }
    let line = |name: &str, color, f: fn(&ServerGauges) -> f64| Series {
        name: name.into(),
        color,
        dashed: false,
        points: gauged.iter().map(|(at, g)| (point_x(*at), f(g))).collect(),
    };
    // Every interval has a tip: one whose scrape failed says so instead of showing a 0.
    let tips = t
        .points
        .iter()
        .map(|p| {
            let text = match &p.server {
                Some(g) => format!(
                    "{} · queue depth {} · in flight {} · DLQ {}",
                    secs(p.offset_ms),
                    gauge(g.queue_depth),
                    gauge(g.jobs_in_flight),
                    gauge(g.dlq_size)
                ),
                None => format!("{} · not scraped", secs(p.offset_ms)),
            };
            (point_x(p.offset_ms), text)
        })
        .collect();
    Some(svg::line_chart(&LineChart {
        id: "chart-server-gauges".into(),
        title: SERVER_TITLE.into(),
        y_unit: "jobs".into(),
        x_label: "seconds since start".into(),
        series: vec![
            line("queue depth", QUEUE_DEPTH, |g| g.queue_depth),
            line("jobs in flight", JOBS_IN_FLIGHT, |g| g.jobs_in_flight),
            line("DLQ", DLQ, |g| g.dlq_size),
        ],
        tips,
        markers: t.markers(),
    }))
}

/// A gauge is a count of jobs, but the text format carries floats.
fn gauge(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { count(v.max(0.0) as u64) } else { format!("{v:.1}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(offset_ms: u64, server: Option<ServerGauges>) -> TimePoint {
        TimePoint { offset_ms, achieved_rate: 5.0, target_rate: 5.0, ack_p99: 3.0, server, ..Default::default() }
    }

    fn phase(name: &str, start_ms: u64) -> ResolvedPhase {
        ResolvedPhase {
            name: name.into(),
            start_offset_ms: start_ms,
            duration_ms: 1000,
            arrival_rate: 5.0,
            ramp_to: 5.0,
            planned_requests: 5,
        }
    }

    #[test]
    fn phase_names_label_the_time_axis() {
        let points = [point(0, None), point(1000, None), point(2000, None)];
        let phases = [phase("warm <up>", 0), phase("peak", 1000)];
        let t = Timeline { points: &points, phases: &phases, artillery: false };
        for chart in [rate_chart(&t), ack_chart(&t), e2e_chart(&t)] {
            let html = chart.unwrap().to_html();
            assert!(html.contains("warm &lt;up&gt;") && html.contains(">peak<"), "{html}");
        }
    }

    #[test]
    fn the_server_chart_needs_gauges_and_marks_intervals_without() {
        let phases = [phase("p", 0)];
        let none = [point(0, None), point(1000, None)];
        assert!(server_chart(&Timeline { points: &none, phases: &phases, artillery: false }).is_none());
        let g = ServerGauges { queue_depth: 12.0, jobs_in_flight: 3.0, dlq_size: 1.0 };
        let some = [point(0, Some(g.clone())), point(1000, None), point(2000, Some(g))];
        let html = server_chart(&Timeline { points: &some, phases: &phases, artillery: false }).unwrap().to_html();
        assert!(html.contains("queue depth 12 · in flight 3 · DLQ 1"), "{html}");
        assert_eq!(html.matches("data-tip=").count(), 3, "one hover column per interval");
        assert!(html.contains("not scraped"), "the gap says why: {html}");
    }

    #[test]
    fn artillery_timelines_have_no_target_and_no_e2e() {
        let points = [point(0, None)];
        let t = Timeline { points: &points, phases: &[], artillery: true };
        assert!(e2e_chart(&t).is_none());
        assert!(!rate_chart(&t).unwrap().to_html().contains(">target<"));
        assert_eq!(rate_title(&t), "Achieved request rate");
    }
}
