//! The HTML report in a real browser: headless Chromium (Debian's `chromium` package),
//! driven through the Chrome DevTools Protocol over `--remote-debugging-pipe` (JSON messages
//! separated by NUL bytes on file descriptors 3 and 4, which `sh` sets up, so no websocket
//! client and no unsafe code are needed).
//!
//! Checked at phone (375 px), tablet (768 px) and desktop (1280 px) widths: no console error,
//! no exception, no network request other than the file itself, every chart laid out with
//! visible marks, no horizontal overflow, and the tooltip showing a mark's exact value on
//! hover. Screenshots are written under the target dir (the path is printed). With
//! `UPDATE_DOCS=1` they are also copied to `docs/report/` for the README.
//!
//! When Chromium is missing the tests fail and say how to install it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support;

/// Generous: the machine is shared and a cold Chromium start can take many seconds.
const TIMEOUT: Duration = Duration::from_secs(90);

fn find_chromium() -> PathBuf {
    let install = "install Debian's package with `apt-get install -y chromium` (scripts/test.sh does this), \
                   or set CHROMIUM=/path/to/chrome";
    if let Some(p) = std::env::var_os("CHROMIUM") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "CHROMIUM={} is not a file: {install}", p.display());
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    for p in ["/usr/bin/chromium", "/usr/lib/chromium/chromium"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!("the browser test needs Chromium and none was found: {install}");
}

/// One headless Chromium with a fresh profile, and one page attached to it.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    rx: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    /// Events received so far (console messages, exceptions, log entries, requests).
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let chromium = find_chromium();
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        let mut child = Command::new("sh")
            .arg("-c")
            // fd 3 = our stdin (commands), fd 4 = our stdout (answers); Chromium's own stdout
            // joins its stderr in the log file.
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromium.display()));
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            while r.read_until(0, &mut buf).map(|n| n > 0).unwrap_or(false) {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf)
                    && tx.send(v).is_err()
                {
                    break;
                }
                buf.clear();
            }
        });
        let mut b =
            Browser { child, stdin, rx, next_id: 0, session: String::new(), events: Vec::new(), _profile: profile };
        let target = b.call_browser("Target.createTarget", json!({ "url": "about:blank" }));
        let attached =
            b.call_browser("Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true }));
        b.session = attached["sessionId"].as_str().unwrap().to_owned();
        for domain in ["Runtime.enable", "Log.enable", "Page.enable", "Network.enable"] {
            b.call(domain, json!({}));
        }
        b
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self._profile.path().join("chromium.log")).unwrap_or_default();
        text.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.stdin.write_all(&bytes).unwrap();
        self.stdin.flush().unwrap();
        loop {
            let v = self.rx.recv_timeout(TIMEOUT).unwrap_or_else(|e| {
                panic!("no answer from Chromium to {method} ({e}); its log ends with:\n{}", self.log_tail())
            });
            if v["id"].as_u64() == Some(id) {
                if let Some(err) = v.get("error") {
                    panic!("{method} failed: {err}");
                }
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, None)
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(method, params, Some(&session))
    }

    fn wait_event(&mut self, method: &str, after: usize) -> Value {
        loop {
            if let Some(e) = self.events[after.min(self.events.len())..].iter().find(|e| e["method"] == method) {
                return e.clone();
            }
            let v = self.rx.recv_timeout(TIMEOUT).unwrap_or_else(|e| panic!("waiting for {method}: {e}"));
            self.events.push(v);
        }
    }

    /// Evaluates an expression that returns a JSON string (or a promise of one), and parses it.
    fn eval_json(&mut self, expr: &str) -> Value {
        let r =
            self.call("Runtime.evaluate", json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }));
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("evaluating a probe threw: {ex}");
        }
        serde_json::from_str(r["result"]["value"].as_str().expect("probe returns a JSON string")).unwrap()
    }

    fn open(&mut self, url: &str, width: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600 }),
        );
        let before = self.events.len();
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_event("Page.loadEventFired", before);
    }

    /// Every console error, uncaught exception, error log entry (CSP violations, failed loads)
    /// and script dialog seen so far.
    fn problems(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| {
                let p = &e["params"];
                match e["method"].as_str()? {
                    "Runtime.exceptionThrown" => Some(format!("exception: {}", p["exceptionDetails"])),
                    "Runtime.consoleAPICalled"
                        if matches!(p["type"].as_str(), Some("error" | "assert" | "warning")) =>
                    {
                        Some(format!("console.{}: {}", p["type"], p["args"]))
                    }
                    "Log.entryAdded" if matches!(p["entry"]["level"].as_str(), Some("error" | "warning")) => {
                        Some(format!("log {}: {}", p["entry"]["level"], p["entry"]["text"]))
                    }
                    "Page.javascriptDialogOpening" => Some(format!("dialog: {}", p["message"])),
                    _ => None,
                }
            })
            .collect()
    }

    /// URLs of every request the page made.
    fn requests(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .filter_map(|e| e["params"]["request"]["url"].as_str().map(str::to_owned))
            .collect()
    }

    fn screenshot(&mut self, width: u32, max_height: f64, path: &Path) {
        let height = self.eval_json("JSON.stringify(document.documentElement.scrollHeight)").as_f64().unwrap();
        let shot = self.call(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": width, "height": height.min(max_height), "scale": 1 }
            }),
        );
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
        println!("screenshot: {}", path.display());
    }

    fn close(mut self) {
        // Ask politely so the browser takes its helper processes down with it; fall back
        // to killing the one process we started.
        let _ = self.send("Browser.close", json!({}), None);
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
