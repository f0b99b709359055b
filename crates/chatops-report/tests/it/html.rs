//! The HTML page from the fixtures: self-contained, every section present, the figures
//! shown equal to the input's, hostile strings escaped, oversized input bounded.

use chatops_analyze::Metric;
use chatops_analyze::table::fmt_ms;
use chatops_report::render_html;

use crate::support::{self, HOSTILE, text_of};

fn full() -> String {
    render_html(&support::results(), Some(&support::metrics()), Some(&support::comparison()))
}

/// Every attribute value named `name` in the page.
fn attr_values<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let pat = format!(" {name}=\"");
    html.match_indices(&pat)
        .map(|(i, _)| {
            let rest = &html[i + pat.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

fn ms_text(v: f64) -> String {
    if v >= 1000.0 { format!("{:.3} s", v / 1000.0) } else { format!("{} ms", fmt_ms(v)) }
}

fn count_text(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' '); // text_of collapses the thin space to this
        }
        out.push(c);
    }
    out
}

#[test]
fn page_is_self_contained_and_forbids_fetching_anything() {
    let html = full();
    for tag in
        ["<link", "<img", "<iframe", "<object", "<embed", "<audio", "<video", "<source", "<base", "@import", "url("]
    {
        assert!(!html.contains(tag), "page contains {tag}");
    }
    for name in ["src", "href", "xlink:href", "action", "srcset", "poster"] {
        for v in attr_values(&html, name) {
            assert!(v.starts_with('#'), "{name}=\"{v}\" points outside the page");
        }
    }
    // The only URLs allowed are the SVG namespace and data shown as text (the target).
    for (i, _) in html.match_indices("://") {
        let before = &html[i.saturating_sub(40)..i];
        let is_namespace = before.ends_with("xmlns=\"http");
        let in_text = html[..i].rfind('>') > html[..i].rfind('<');
        assert!(is_namespace || in_text, "URL outside text: …{}…", &html[i.saturating_sub(40)..i + 30]);
    }
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none';"));
    assert_eq!(html.matches("<script").count(), 1, "one inline script");
    assert!(!html.contains("<script src"));
}

#[test]
fn every_section_and_chart_is_present() {
    let html = full();
    for id in ["config", "summary", "client", "server", "thresholds", "baseline", "appendix"] {
        assert!(html.contains(&format!("<section class=\"card\" id=\"{id}\">")), "section #{id}");
    }
    for id in [
        "chart-ack-latency",
        "chart-e2e-latency",
        "chart-rate",
        "chart-percentiles",
        "chart-status-codes",
        "chart-error-types",
        "chart-service-latency",
        "chart-e2e-breakdown",
        "chart-server-latency",
        "chart-join-breakdown",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "chart #{id}");
    }
    for id in [
        "config-table",
        "phases-table",
        "client-latency-table",
        "command-table",
        "breakdown-table",
        "stages-table",
        "component-table",
        "server-errors-table",
        "join-table",
        "thresholds-table",
        "baseline-table",
        "raw-summaries",
        "raw-time-series",
        "raw-stages",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "table #{id}");
    }
    let note = text_of(&html, "wall-clock-note");
    assert!(note.contains("wall-clock"), "{note}");
    // Every chart mark with a value has a native tooltip and the data for the script's.
    assert_eq!(html.matches(" data-tip=\"").count(), html.matches("</title></rect>").count());
    assert!(html.contains("@media print"));
}

#[test]
fn summary_cards_show_the_results_figures() {
    let r = support::results();
    let html = render_html(&r, None, None);
    let e2e = &r.summaries.first_response;
    assert_eq!(text_of(&html, "card-e2e-p50"), format!("E2E p50 {}", ms_text(e2e.p50)));
    assert_eq!(text_of(&html, "card-e2e-p95"), format!("E2E p95 {}", ms_text(e2e.p95)));
    assert_eq!(text_of(&html, "card-e2e-p99"), format!("E2E p99 {}", ms_text(e2e.p99)));
    assert_eq!(text_of(&html, "card-ack-p99"), format!("ack p99 {}", ms_text(r.summaries.ack.p99)));
    assert_eq!(text_of(&html, "card-requests"), format!("requests sent {}", count_text(r.counters.requests)));
    assert_eq!(text_of(&html, "card-lost"), format!("lost (no response) {}", r.counters.lost));
    let errors: u64 = r.counters.errors.values().sum();
    assert_eq!(text_of(&html, "card-errors"), format!("errors {errors}"));
    assert_eq!(text_of(&html, "card-error-rate"), format!("error rate {:.2}%", r.counters.error_rate() * 100.0));
    let tput = (r.counters.requests - errors) as f64 / (r.test.duration_ms as f64 / 1000.0);
    assert_eq!(text_of(&html, "card-throughput"), format!("throughput (successful) {tput:.1}/s"));
    assert_eq!(text_of(&html, "verdict"), if r.passed { "PASSED" } else { "FAILED" });
}

#[test]
fn tables_show_the_inputs_numbers() {
    let (r, m) = (support::results(), support::metrics());
    let html = render_html(&r, Some(&m), None);

    let commands = text_of(&html, "command-table");
    for (name, b) in &r.by_command {
        let row = format!("{name} {} {} {} {}", count_text(b.requests), b.errors, b.lost, count_text(b.responses));
        assert!(commands.contains(&row), "row `{row}` in {commands}");
        assert!(commands.contains(&fmt_ms(b.first_response.p95)));
    }
    let raw = text_of(&html, "raw-summaries");
    let s = &r.summaries.last_response;
    let row = format!(
        "lastResponse {} {} {} {} {} {} {} {} {}",
        s.count, s.min, s.mean, s.p50, s.p90, s.p95, s.p99, s.p999, s.max
    );
    assert!(raw.contains(&row), "row `{row}` in {raw}");

    let breakdown = text_of(&html, "breakdown-table");
    for seg in &m.e2e_breakdown.segments {
        let row = format!("{} {} {:.2}%", seg.label, fmt_ms(seg.mean_ms), seg.share_pct);
        assert!(breakdown.contains(&row), "row `{row}` in {breakdown}");
    }
    let stages = text_of(&html, "stages-table");
    let e2e = m.stage(Metric::TotalE2e).unwrap();
    let row = format!(
        "totalE2eMs {} {} {} {} {} {}",
        count_text(e2e.count),
        fmt_ms(e2e.mean),
        fmt_ms(e2e.p50),
        fmt_ms(e2e.p95),
        fmt_ms(e2e.p99),
        fmt_ms(e2e.max)
    );
    assert!(stages.contains(&row), "row `{row}` in {stages}");
    let components = text_of(&html, "component-table");
    for g in &m.groups.by_component {
        assert!(
            components.contains(&format!("{} 0 0 {} {}", g.key, count_text(g.worker_lines), g.worker_failures)),
            "{components}"
        );
    }
    let thresholds = text_of(&html, "thresholds-table");
    for t in &r.thresholds {
        assert!(thresholds.contains(&format!("{} {} {}", t.condition, t.limit, t.measured)), "{thresholds}");
    }
    // The chart tooltips carry the same values as the tables.
    let seg = &m.e2e_breakdown.segments[3];
    assert!(html.contains(&format!(
        "data-tip=\"{}: {} mean, {:.2}% of E2E\"",
        seg.label,
        ms_text(seg.mean_ms),
        seg.share_pct
    )));
    let p = &r.time_series.points[12];
    assert!(html.contains(&format!(
        "ack p50 {} · p95 {} · p99 {}",
        ms_text(p.ack_p50),
        ms_text(p.ack_p95),
        ms_text(p.ack_p99)
    )));
}

#[test]
fn the_approval_wait_has_its_own_colour_label_and_row() {
    use chatops_analyze::summary::Segment;
    use chatops_core::Segment as SegmentKind;

    let mut m = support::metrics();
    // As the analyzer writes it for a run where some jobs waited for approvals.
    let b = &mut m.e2e_breakdown;
    b.total_mean_ms += 1500.0;
    let wait = Segment {
        name: SegmentKind::ApprovalWait,
        label: SegmentKind::ApprovalWait.label().to_owned(),
        mean_ms: 1500.0,
        share_pct: 60.0,
    };
    b.segments.insert(1, wait);
    let html = render_html(&support::results(), Some(&m), None);

    let breakdown = text_of(&html, "breakdown-table");
    assert!(breakdown.contains("approval wait (human) 1500 60.00%"), "{breakdown}");
    let tip = format!("data-tip=\"approval wait (human): {} mean, 60.00% of E2E\"", ms_text(1500.0));
    let chart = &html[html.find("id=\"chart-e2e-breakdown\"").unwrap()..];
    let mark = &chart[..chart.find(&tip).unwrap_or_else(|| panic!("{tip} in the chart"))];
    assert!(mark.rsplit("<rect").next().unwrap().contains("fill=\"#edc948\""), "drawn in its own colour");
    let others: Vec<&str> = m.e2e_breakdown.segments.iter().skip(2).map(|s| s.label.as_str()).collect();
    assert!(!others.is_empty() && others.iter().all(|l| breakdown.contains(l)), "the other rows stay");
}

#[test]
fn baseline_section_shows_the_comparison() {
    let c = support::comparison();
    let html = render_html(&support::results(), Some(&support::metrics()), Some(&c));
    assert_eq!(text_of(&html, "baseline-verdict"), c.verdict);
    let table = text_of(&html, "baseline-table");
    for f in &c.figures {
        assert!(table.contains(&f.name), "{} in the table", f.name);
    }
    for name in &c.regressions {
        assert!(table.contains(&format!("{name} ")), "{name}");
    }
    assert_eq!(table.matches("WORSE").count(), c.regressions.len());
}

#[test]
fn hostile_strings_are_escaped_everywhere() {
    let (r, m, c) = support::hostile();
    let html = render_html(&r, Some(&m), Some(&c));
    assert_eq!(html.matches("<script").count(), 1, "only the report's own script");
    assert!(!html.contains("<img"), "no injected element");
    assert!(!html.contains("onerror=\""), "no injected attribute");
    assert!(!html.contains('\u{1}'), "control characters replaced");
    assert!(html.contains("&lt;script&gt;window.__pwned=1&lt;/script&gt;"));
    // Each hostile value shows up, escaped, in the section that displays it.
    assert!(text_of(&html, "command-table").contains("<script>window.__pwned=1</script>"));
    assert!(text_of(&html, "config-table").contains("\"><img src=x"));
    assert!(!HOSTILE.is_empty());
}

#[test]
fn missing_metrics_explain_how_to_get_them() {
    let html = render_html(&support::results(), None, None);
    let hint = text_of(&html, "no-metrics");
    assert!(hint.contains("chatops analyze --from-results RESULTS.json"), "{hint}");
    assert!(!html.contains("id=\"chart-service-latency\""));
    assert!(!html.contains("id=\"baseline\""), "no baseline section without a baseline");
}

#[test]
fn empty_results_render_sentences_instead_of_charts() {
    let mut r = support::results();
    r.time_series.points.clear();
    r.by_command.clear();
    r.by_scenario.clear();
    r.thresholds.clear();
    r.counters = Default::default();
    r.summaries = Default::default();
    r.test.duration_ms = 0;
    let html = render_html(&r, None, None);
    assert!(!html.contains("<svg class=\"chart\""), "no chart without data");
    assert!(html.contains("No time series in the results."));
    assert!(html.contains("No thresholds were set."));
    assert_eq!(text_of(&html, "card-e2e-p95"), "E2E p95 no samples");
    assert_eq!(text_of(&html, "card-throughput"), "throughput (successful) n/a");
    for bad in ["NaN", "inf"] {
        assert!(!html.contains(bad), "{bad} in the page");
    }
}

#[test]
fn oversized_results_stay_bounded() {
    let r = support::oversized();
    let html = render_html(&r, Some(&support::metrics()), None);
    assert!(html.len() < 12 << 20, "{} bytes", html.len());
    assert!(html.contains("more rows are not shown"), "long tables are cut");
    let ack = &html[html.find("id=\"chart-ack-latency\"").unwrap()..];
    let ack = &ack[..ack.find("</svg>").unwrap()];
    assert!(ack.matches("class=\"hit\"").count() <= 400, "hover targets are capped");
    assert!(ack.len() < 400_000, "the ack chart is {} bytes", ack.len());
}

#[test]
fn the_server_gauges_chart_sits_under_the_latency_chart_only_when_the_bot_was_scraped() {
    let html = full();
    assert!(!html.contains("chart-server-gauges") && !html.contains("Server: queue depth"), "no scrape, no chart");

    let mut r = support::results();
    let n = r.time_series.points.len();
    assert!(n >= 3);
    for (i, p) in r.time_series.points.iter_mut().enumerate() {
        // One interval's scrape failed.
        p.server = (i != 1).then_some(chatops_core::results::ServerGauges {
            queue_depth: 7.0 + i as f64,
            jobs_in_flight: 3.0,
            dlq_size: 1.0,
        });
    }
    let html = render_html(&r, Some(&support::metrics()), None);
    let at = |id: &str| html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id}"));
    assert!(at("chart-ack-latency") < at("chart-server-gauges"), "after the ack latency");
    assert!(at("chart-server-gauges") < at("chart-rate"), "before the rate chart");
    assert!(html.contains("<figcaption>Server: queue depth, in flight, DLQ</figcaption>"));
    let chart = text_of(&html, "chart-server-gauges");
    for legend in ["queue depth", "in flight", "DLQ"] {
        assert!(chart.contains(legend), "legend {legend}: {chart}");
    }
    assert!(html.contains("queue depth 7 · in flight 3 · DLQ 1"), "the first interval's values in its tip");
    assert!(html.contains(&format!("queue depth {} · in flight 3 · DLQ 1", 7 + n - 1)), "the last interval's");
    assert!(html.contains("not scraped"), "the failed interval says so");
}
