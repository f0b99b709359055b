//! Headless Chromium (Debian's `chromium` package) driven through the Chrome DevTools
//! Protocol over `--remote-debugging-pipe`: JSON messages separated by NUL bytes on file
//! descriptors 3 and 4, which `sh` sets up, so no websocket client and no unsafe code are
//! needed. One [`Browser`] is one browser process with a fresh profile and one page; it
//! records every event it sees, so a test can ask afterwards for console errors
//! ([`Browser::problems`]) and for the URLs the page requested ([`Browser::requests`]).
//!
//! When Chromium is missing, [`Browser::start`] fails and says how to install it.
#![allow(clippy::unwrap_used)] // a test fixture: a failed unwrap is the failure report

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

/// Generous: the machine is shared and a cold Chromium start can take many seconds.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// The Chromium binary: `$CHROMIUM`, else the first of the usual names on `PATH`.
pub fn find_chromium() -> PathBuf {
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
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    rx: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    /// Events received so far (console messages, exceptions, log entries, requests).
    pub events: Vec<Value>,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser").field("session", &self.session).finish_non_exhaustive()
    }
}

impl Browser {
    /// Starts Chromium and attaches to a blank page with the Runtime, Log, Page and Network
    /// domains enabled.
    pub fn start() -> Browser {
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

    /// The last lines of Chromium's own log.
    pub fn log_tail(&self) -> String {
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

    /// A browser-level command.
    pub fn call_browser(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, None)
    }

    /// A command to the page.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(method, params, Some(&session))
    }

    /// The first event named `method` among those from index `after` on, waiting for it.
    pub fn wait_event(&mut self, method: &str, after: usize) -> Value {
        loop {
            if let Some(e) = self.events[after.min(self.events.len())..].iter().find(|e| e["method"] == method) {
                return e.clone();
            }
            let v = self.rx.recv_timeout(TIMEOUT).unwrap_or_else(|e| panic!("waiting for {method}: {e}"));
            self.events.push(v);
        }
    }

    /// Evaluates an expression that returns a JSON string (or a promise of one), and parses it.
    pub fn eval_json(&mut self, expr: &str) -> Value {
        let r =
            self.call("Runtime.evaluate", json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }));
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("evaluating a probe threw: {ex}");
        }
        serde_json::from_str(r["result"]["value"].as_str().expect("probe returns a JSON string")).unwrap()
    }

    /// Navigates to `url` at `width` CSS pixels (a phone below 600) and waits for the load event.
    pub fn open(&mut self, url: &str, width: u32) {
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
    pub fn problems(&self) -> Vec<String> {
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
    pub fn requests(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .filter_map(|e| e["params"]["request"]["url"].as_str().map(str::to_owned))
            .collect()
    }

    /// A PNG of the page from its top, at most `max_height` pixels tall.
    pub fn screenshot(&mut self, width: u32, max_height: f64, path: &Path) {
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

    /// Closes the browser (and kills it if it does not go).
    pub fn close(mut self) {
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
