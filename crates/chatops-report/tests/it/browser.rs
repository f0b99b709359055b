//! The HTML report in a real browser: headless Chromium (Debian's `chromium` package),
//! driven through the Chrome DevTools Protocol by `chatops_testkit::chromium`.
//!
//! Checked at phone (375 px), tablet (768 px) and desktop (1280 px) widths: no console error,
//! no exception, no network request other than the file itself, every chart laid out with
//! visible marks, no horizontal overflow, and the tooltip showing a mark's exact value on
//! hover. Screenshots are written under the target dir (the path is printed). With
//! `UPDATE_DOCS=1` they are also copied to `docs/report/` for the README.
//!
//! When Chromium is missing the tests fail and say how to install it.

use std::path::PathBuf;

use base64::Engine as _;
use chatops_testkit::chromium::Browser;
use serde_json::{Value, json};

use crate::support;

const PROBE: &str = r#"JSON.stringify((() => {
  const vw = document.documentElement.clientWidth;
  const charts = [...document.querySelectorAll('svg.chart')].map(s => {
    const r = s.getBoundingClientRect();
    const marks = [...s.querySelectorAll('path, rect, circle')].filter(e => {
      const b = e.getBBox();
      return b.width > 0 || b.height > 0;
    }).length;
    return { id: s.id, width: r.width, height: r.height, marks };
  });
  const wide = [...document.querySelectorAll('body *')]
    .filter(e => !e.closest('.table-wrap') && e.getBoundingClientRect().right > vw + 0.5)
    .map(e => e.tagName + (e.id ? '#' + e.id : '') + (e.className && e.className.baseVal === undefined ? '.' + e.className : ''))
    .slice(0, 10);
  return {
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: vw,
    charts,
    wide,
    sections: [...document.querySelectorAll('section.card')].map(s => s.id),
    pwned: window.__pwned === undefined ? null : String(window.__pwned),
    scripts: document.scripts.length,
  };
})())"#;

/// Moves the mouse onto the first mark with a value in `chart` and reads the tooltip.
/// (After scrolling it into view and letting the scroll event pass: scrolling hides the tooltip.)
const HOVER_TARGET: &str = r#"(async () => {
  const el = document.querySelector('#CHART [data-tip]');
  el.scrollIntoView({ block: 'center' });
  await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
  const r = el.getBoundingClientRect();
  return JSON.stringify({ x: r.left + r.width / 2, y: r.top + r.height / 2, tip: el.getAttribute('data-tip') });
})()"#;

const TOOLTIP: &str = r#"JSON.stringify((() => {
  const t = document.querySelector('.tip');
  return { shown: getComputedStyle(t).display !== 'none', text: t.textContent };
})())"#;

const ALL_CHARTS: [&str; 10] = [
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
];

fn check_layout(b: &mut Browser, width: u32, expect_charts: &[&str]) -> Value {
    let probe = b.eval_json(PROBE);
    assert!(
        probe["scrollWidth"].as_f64().unwrap() <= f64::from(width),
        "horizontal overflow at {width} px: scrollWidth {} (too wide: {})",
        probe["scrollWidth"],
        probe["wide"]
    );
    assert_eq!(probe["wide"], json!([]), "elements wider than the {width} px viewport");
    let ids: Vec<&str> = probe["charts"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, expect_charts, "charts on the page at {width} px");
    for c in probe["charts"].as_array().unwrap() {
        assert!(
            c["width"].as_f64().unwrap() > 100.0 && c["height"].as_f64().unwrap() > 30.0,
            "chart not laid out: {c}"
        );
        assert!(c["marks"].as_u64().unwrap() >= 1, "chart has no visible marks: {c}");
        assert!(c["width"].as_f64().unwrap() <= f64::from(width), "chart wider than the viewport: {c}");
    }
    probe
}

fn hover_shows_value(b: &mut Browser, chart: &str) {
    let target = b.eval_json(&HOVER_TARGET.replace("CHART", chart));
    let (x, y) = (target["x"].as_f64().unwrap(), target["y"].as_f64().unwrap());
    b.call("Input.dispatchMouseEvent", json!({ "type": "mouseMoved", "x": x, "y": y }));
    let tip = b.eval_json(TOOLTIP);
    assert_eq!(tip["shown"], json!(true), "tooltip hidden after hovering a mark of {chart}");
    assert_eq!(tip["text"], target["tip"], "tooltip shows the mark's value");
    assert!(tip["text"].as_str().unwrap().chars().any(|c| c.is_ascii_digit()), "tooltip has a number: {tip}");
}

#[test]
fn report_renders_in_chromium_without_errors_or_overflow_at_phone_tablet_and_desktop_width() {
    let dir = support::artefact_dir("browser");
    let html =
        chatops_report::render_html(&support::results(), Some(&support::metrics()), Some(&support::comparison()));
    let file = dir.join("report.html");
    std::fs::write(&file, html).unwrap();
    let url = format!("file://{}", file.display());

    let mut b = Browser::start();
    let docs = std::env::var_os("UPDATE_DOCS").is_some();
    for width in [375u32, 768, 1280] {
        b.open(&url, width);
        let probe = check_layout(&mut b, width, &ALL_CHARTS);
        assert_eq!(
            probe["sections"],
            json!(["config", "summary", "client", "server", "thresholds", "baseline", "appendix"]),
        );
        assert_eq!(probe["scripts"], json!(1));
        hover_shows_value(&mut b, "chart-e2e-breakdown");
        hover_shows_value(&mut b, "chart-ack-latency");
        b.call("Runtime.evaluate", json!({ "expression": "window.scrollTo(0, 0)" }));
        b.screenshot(width, 30_000.0, &dir.join(format!("report-{width}.png")));
        if docs && width != 768 {
            let name = if width == 375 { "report-phone.png" } else { "report-desktop.png" };
            let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/report").join(name);
            b.screenshot(width, if width == 375 { 2400.0 } else { 1900.0 }, &out);
        }
    }
    let problems = b.problems();
    let requests = b.requests();
    b.close();
    assert!(problems.is_empty(), "console errors or warnings: {problems:#?}");
    assert!(requests.iter().all(|u| *u == url), "the page fetched something besides itself: {requests:?}");
    assert_eq!(requests.len(), 3, "one load per width: {requests:?}");
}

#[test]
fn printing_opens_every_details_block_and_keeps_the_charts() {
    let dir = support::artefact_dir("browser-print");
    let file = dir.join("report.html");
    std::fs::write(&file, chatops_report::render_html(&support::results(), Some(&support::metrics()), None)).unwrap();
    let url = format!("file://{}", file.display());

    let mut b = Browser::start();
    b.open(&url, 1280);
    let closed = b.eval_json("JSON.stringify(document.querySelectorAll('details:not([open])').length)");
    assert!(closed.as_u64().unwrap() > 0, "the appendix starts folded on screen");
    let pdf = b.call("Page.printToPDF", json!({ "printBackground": true }));
    let pdf = base64::engine::general_purpose::STANDARD.decode(pdf["data"].as_str().unwrap()).unwrap();
    let out = dir.join("report.pdf");
    std::fs::write(&out, &pdf).unwrap();
    println!("pdf: {}", out.display());
    let closed = b.eval_json("JSON.stringify(document.querySelectorAll('details:not([open])').length)");
    b.call("Emulation.setEmulatedMedia", json!({ "media": "print" }));
    let probe = b.eval_json(PROBE);
    let problems = b.problems();
    b.close();
    assert!(pdf.starts_with(b"%PDF"), "a PDF came out");
    assert_eq!(closed, json!(0), "beforeprint opened every <details>");
    let charts = probe["charts"].as_array().unwrap();
    assert_eq!(charts.len(), ALL_CHARTS.len(), "every chart kept in print");
    assert!(charts.iter().all(|c| c["width"].as_f64().unwrap() > 100.0), "charts laid out in print: {charts:?}");
    assert!(problems.is_empty(), "console errors or warnings: {problems:#?}");
}

#[test]
fn hostile_names_run_no_script_and_long_names_do_not_widen_the_phone_layout() {
    let dir = support::artefact_dir("browser-hostile");
    let (r, m, c) = support::hostile();
    let file = dir.join("report.html");
    std::fs::write(&file, chatops_report::render_html(&r, Some(&m), Some(&c))).unwrap();
    let url = format!("file://{}", file.display());

    let mut b = Browser::start();
    b.open(&url, 375);
    let probe = check_layout(&mut b, 375, &ALL_CHARTS);
    assert_eq!(probe["pwned"], json!(null), "an injected script ran");
    assert_eq!(probe["scripts"], json!(1), "only the report's own script element exists");
    b.screenshot(375, 30_000.0, &dir.join("report-375.png"));
    let problems = b.problems();
    let requests = b.requests();
    b.close();
    assert!(problems.is_empty(), "console errors or warnings: {problems:#?}");
    assert_eq!(requests, [url], "an injected element fetched something");
}

#[test]
fn report_without_metrics_draws_the_client_charts_and_explains_the_server_side() {
    let dir = support::artefact_dir("browser-no-metrics");
    let file = dir.join("report.html");
    std::fs::write(&file, chatops_report::render_html(&support::results(), None, None)).unwrap();
    let url = format!("file://{}", file.display());

    let mut b = Browser::start();
    b.open(&url, 375);
    check_layout(&mut b, 375, &ALL_CHARTS[..6]);
    let hint = b.eval_json("JSON.stringify(document.getElementById('no-metrics').textContent)");
    let problems = b.problems();
    b.close();
    assert!(hint.as_str().unwrap().contains("chatops analyze --from-results"), "{hint}");
    assert!(problems.is_empty(), "console errors or warnings: {problems:#?}");
}
