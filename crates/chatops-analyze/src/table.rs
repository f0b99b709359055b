//! The human rendering of a [`MetricsSummary`] for the terminal: fixed-width, plain ASCII
//! tables, deterministic for a given summary (snapshot-tested). The JSON carries every
//! figure; the table shows the ones people read first.

use std::collections::BTreeMap;
use std::fmt::Write;

use chatops_core::stats::LatencySummary;
use chatops_core::time::format_rfc3339_ms;

use crate::metric::Metric;
use crate::summary::{Group, JoinBreakdown, MetricsSummary, WindowSource};

/// Figures shown per group (the JSON has all of them).
const GROUP_METRICS: [Metric; 4] = [Metric::RouterDuration, Metric::TotalE2e, Metric::QueueWait, Metric::Handler];

/// Milliseconds with precision that suits the magnitude.
pub fn fmt_ms(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn pct(rate: f64) -> String {
    format!("{:.2}%", rate * 100.0)
}

fn counts(map: &BTreeMap<String, u64>) -> String {
    map.iter().map(|(k, v)| format!("{k} x{v}")).collect::<Vec<_>>().join(", ")
}

fn stats_cells(s: &LatencySummary) -> String {
    format!(
        "{:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        s.count,
        fmt_ms(s.mean),
        fmt_ms(s.p50),
        fmt_ms(s.p95),
        fmt_ms(s.p99),
        fmt_ms(s.max)
    )
}

const STATS_HEADER: &str = "   count       avg       p50       p95       p99       max";

/// The full table for the terminal.
pub fn render_summary(s: &MetricsSummary) -> String {
    let mut o = String::new();
    let l = &s.lines;
    let _ = writeln!(
        o,
        "chatops analyze: {} input(s), {} lines: {} router, {} worker metric lines",
        s.inputs.len(),
        l.total,
        l.router,
        l.worker
    );
    let skipped: Vec<String> = [
        (l.not_json, "not JSON"),
        (l.not_metric, "not metrics"),
        (l.malformed, "malformed"),
        (l.outside_window, "outside window"),
        (l.no_timestamp, "without timestamp"),
        (l.oversized, "oversized"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if !skipped.is_empty() {
        let _ = writeln!(o, "skipped: {}", skipped.join(", "));
    }
    let w = &s.window;
    let bound = |ms: Option<i64>| ms.map_or("-".to_owned(), format_rfc3339_ms);
    let source = match w.source {
        WindowSource::All => "all lines".to_owned(),
        WindowSource::Results => format!("from results, +{} ms buffer", w.buffer_ms),
        WindowSource::Since => "--since".to_owned(),
        WindowSource::Explicit => "--start/--end".to_owned(),
    };
    let _ = writeln!(o, "window:  {} .. {} ({source})", bound(w.start_ms), bound(w.end_ms));
    if w.first_line_ms.is_some() {
        let _ = writeln!(o, "lines:   {} .. {}", bound(w.first_line_ms), bound(w.last_line_ms));
    }
    for note in &s.notes {
        let _ = writeln!(o, "note:    {note}");
    }

    let r = &s.router;
    let _ = writeln!(o);
    let _ = writeln!(o, "router:  {} requests, {} errors ({})", r.requests, r.errors, pct(r.error_rate));
    if !r.by_status.is_empty() {
        let _ = writeln!(o, "  status:        {}", counts(&r.by_status));
    }
    if !r.errors_by_status.is_empty() {
        let _ = writeln!(o, "  errors/status: {}", counts(&r.errors_by_status));
        let _ = writeln!(o, "  errors/type:   {}", counts(&r.errors_by_type));
    }
    let wk = &s.worker;
    let _ = writeln!(
        o,
        "worker:  {} attempts, {} failed ({}), {} retries",
        wk.attempts,
        wk.failures,
        pct(wk.failure_rate),
        wk.retries
    );
    if !wk.errors_by_type.is_empty() {
        let _ = writeln!(o, "  errors/type:   {}", counts(&wk.errors_by_type));
    }

    if !s.stages.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "{:<20}{STATS_HEADER}   (ms)", "stage");
        for st in &s.stages {
            let _ = writeln!(o, "{:<20}{}", format!("{} ", st.metric.field()), stats_cells(&st.stats));
        }
    }

    let b = &s.e2e_breakdown;
    if b.lines > 0 {
        let _ = writeln!(o);
        let _ = writeln!(o, "e2e breakdown: mean {} ms over {} worker lines", fmt_ms(b.total_mean_ms), b.lines);
        for seg in &b.segments {
            let _ = writeln!(o, "  {:<22}{:>10} ms {:>7.1}%", seg.label, fmt_ms(seg.mean_ms), seg.share_pct);
        }
    }

    for (title, groups) in [
        ("component", &s.groups.by_component),
        ("command", &s.groups.by_command),
        ("quadrant", &s.groups.by_quadrant),
        ("status", &s.groups.by_status),
        ("outcome", &s.groups.by_outcome),
    ] {
        render_groups(&mut o, title, groups);
    }

    if let Some(bins) = &s.bins {
        let _ = writeln!(o);
        let _ = writeln!(o, "time bins of {} ms", bins.width_ms);
        let _ = writeln!(
            o,
            "{:<25}{:>8}{:>7}{:>10}{:>10}{:>8}{:>7}{:>10}{:>10}{:>10}",
            "start", "router", "errors", "p50", "p95", "worker", "failed", "e2e p50", "e2e p95", "e2e p99"
        );
        for p in &bins.points {
            let _ = writeln!(
                o,
                "{:<25}{:>8}{:>7}{:>10}{:>10}{:>8}{:>7}{:>10}{:>10}{:>10}",
                format_rfc3339_ms(p.start_ms),
                p.router_lines,
                p.router_errors,
                fmt_ms(p.router.p50),
                fmt_ms(p.router.p95),
                p.worker_lines,
                p.worker_failures,
                fmt_ms(p.e2e.p50),
                fmt_ms(p.e2e.p95),
                fmt_ms(p.e2e.p99)
            );
        }
    }

    if let Some(j) = &s.join {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "join with {}: {} client records, {} with router line, {} with worker line, {} complete",
            j.requests_file, j.client_records, j.matched_router, j.matched_worker, j.complete
        );
        let _ = writeln!(
            o,
            "  {} client only, {} server lines without client record, {} invalid records",
            j.client_only, j.server_only_lines, j.invalid_records
        );
        for jb in std::iter::once(&j.overall).chain(&j.by_command) {
            render_join(&mut o, jb);
        }
    }
    o
}

fn render_groups(o: &mut String, title: &str, groups: &[Group]) {
    if groups.is_empty() {
        return;
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "by {title}");
    let _ = writeln!(o, "{:<16}{:>8}{:>8}  {:<18}{STATS_HEADER}", title, "lines", "errors", "figure");
    for g in groups {
        let mut first = true;
        for m in GROUP_METRICS {
            let Some(st) = g.stage(m) else { continue };
            let (key, lines, errors) = if first {
                (
                    g.key.as_str(),
                    (g.router_lines + g.worker_lines).to_string(),
                    (g.router_errors + g.worker_failures).to_string(),
                )
            } else {
                ("", String::new(), String::new())
            };
            first = false;
            let _ = writeln!(o, "{key:<16}{lines:>8}{errors:>8}  {:<18}{}", m.field(), stats_cells(st));
        }
        if first {
            let _ = writeln!(
                o,
                "{:<16}{:>8}{:>8}",
                g.key,
                g.router_lines + g.worker_lines,
                g.router_errors + g.worker_failures
            );
        }
    }
}

fn render_join(o: &mut String, jb: &JoinBreakdown) {
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{}: {} requests, {} complete, {} client errors, {} lost",
        jb.command, jb.requests, jb.complete, jb.client_errors, jb.lost
    );
    if jb.client_ack.count > 0 {
        let _ = writeln!(
            o,
            "  ack: client {} ms = router {} ms + unexplained {} ms (means); client late to send by {} ms (p95)",
            fmt_ms(jb.client_ack.mean),
            fmt_ms(jb.router_duration.mean),
            fmt_ms(jb.ack_unexplained_mean_ms),
            fmt_ms(jb.client_lateness.p95)
        );
    }
    if jb.segments.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "  {:<30}{:>10}{:>8}{:>10}{:>10}{:>10}{:>6}",
        "client send ->", "mean", "share", "p50", "p95", "p99", "neg"
    );
    for seg in &jb.segments {
        let _ = writeln!(
            o,
            "  {:<30}{:>10}{:>7.1}%{:>10}{:>10}{:>10}{:>6}",
            seg.label,
            fmt_ms(seg.mean_ms),
            seg.share_pct,
            fmt_ms(seg.stats.p50),
            fmt_ms(seg.stats.p95),
            fmt_ms(seg.stats.p99),
            seg.negative
        );
    }
    let e = &jb.client_e2e;
    let _ = writeln!(
        o,
        "  {:<30}{:>10}{:>7.1}%{:>10}{:>10}{:>10}",
        "= arrival of last response",
        fmt_ms(e.mean),
        100.0,
        fmt_ms(e.p50),
        fmt_ms(e.p95),
        fmt_ms(e.p99)
    );
    for (label, a) in [("first response arrival", &jb.first_arrival), ("last response arrival", &jb.last_arrival)] {
        let _ = writeln!(
            o,
            "  {:<30}{:>10}{:>8}{:>10}{:>10}{:>10}",
            format!("{label} (n={})", a.count),
            fmt_ms(a.mean),
            "",
            fmt_ms(a.p50),
            fmt_ms(a.p95),
            fmt_ms(a.p99)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_milliseconds_by_magnitude() {
        assert_eq!(fmt_ms(0.1234), "0.123");
        assert_eq!(fmt_ms(12.345), "12.35");
        assert_eq!(fmt_ms(123.45), "123.5");
        assert_eq!(fmt_ms(12345.6), "12346");
        assert_eq!(fmt_ms(-2.0), "-2.000");
    }
}
