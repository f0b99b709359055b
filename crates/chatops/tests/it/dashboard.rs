//! `chatops loadtest --dashboard` through the real binary, against the real bot it spawns:
//! a headless Chromium watches the page while the test runs (the numbers move) and after it
//! (the numbers are the results file's, the verdict is shown), a plain HTTP client reads the
//! event stream (JSON events, monotone offsets, the verdict last), and hostile requests get
//! 404, 405, 413, 403 and, past the client cap, 503.
//!
//! The runs linger after the test (`--dashboard-linger`) so the checks can look at the final
//! state; each test ends its run with SIGINT, as Ctrl-C would, and checks the exit code.
//! Screenshots go under the target dir; with `UPDATE_DOCS=1` the one taken while the test
//! runs also goes to `docs/dashboard/dashboard-live.png` for the README.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chatops_testkit::chromium::Browser;
use serde_json::Value;

/// Twelve seconds of /echo (which answers twice) in two named phases. A short response
/// window lets intervals close while the test still runs.
const PROFILE: &str = r#"config:
  target: "http://127.0.0.1:9"
  phases:
    - duration: 6
      arrivalRate: 4
      name: warm up
    - duration: 6
      arrivalRate: 8
      name: peak
scenarios:
  - name: echo
    flow:
      - post:
          url: /slack/commands
          body: "command=%2Fecho&text=hi&user_id=U1&team_id=T1&channel_id=C1&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1%2F2%2F3"
          expectAnswers: 2
"#;

/// Generous, for a shared machine: how long any one wait may take.
const PATIENCE: Duration = Duration::from_secs(120);

/// A `chatops loadtest --spawn --dashboard 127.0.0.1:0` child process.
struct Run {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
}

impl Run {
    fn start(profile: &str, extra: &[&str]) -> Run {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("profile.yml"), profile).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatops"))
            .current_dir(dir.path())
            .args(["loadtest", "profile.yml", "--spawn", "--quiet", "-o", "r.json", "--dashboard", "127.0.0.1:0"])
            .args(["--dashboard-linger", "300s", "--response-window", "3s", "--timeout", "2s", "--max-lost", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut run = Run { child, dir, addr: "127.0.0.1:1".parse().unwrap(), lines, stderr: Vec::new() };
        let url = run.wait_line("dashboard: http://");
        let addr = url.trim_start_matches("dashboard: http://").trim_end_matches('/');
        run.addr = addr.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(url.ends_with('/'), "{url}");
        run
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Waits for a stderr line starting with `prefix`.
    fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(l) = self.stderr.iter().find(|l| l.starts_with(prefix)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.stderr.push(l),
                Err(e) => panic!("no `{prefix}` line on stderr ({e}); it said:\n{}", self.stderr.join("\n")),
            }
        }
    }

    /// The results are written: the dashboard says it lingers.
    fn wait_written(&mut self) -> Value {
        self.wait_line("dashboard: serving the final results");
        serde_json::from_str(&std::fs::read_to_string(self.results_path()).unwrap()).unwrap()
    }

    fn results_path(&self) -> PathBuf {
        self.dir.path().join("r.json")
    }

    /// Ctrl-C: ends the linger; returns the exit code.
    fn interrupt(mut self) -> Option<i32> {
        let ok = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill -INT failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the dashboard did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP/1.1 exchange on a new connection: (status, head, body).
fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw.get(split + 4..).unwrap_or_default().to_vec();
    (status, head, body)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    exchange(addr, format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
}

/// An open event stream.
struct Events {
    reader: BufReader<TcpStream>,
    status: u16,
}

impl Events {
    fn open(addr: SocketAddr) -> Events {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut w = s.try_clone().unwrap();
        write!(w, "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n").unwrap();
        let mut reader = BufReader::new(s);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).unwrap();
        let status = status_line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                break;
            }
            if status == 200 && h.to_ascii_lowercase().starts_with("content-type:") {
                assert!(h.contains("text/event-stream"), "{h}");
            }
        }
        Events { reader, status }
    }

    /// The next event's (name, JSON data), skipping comments and `retry:`. The body is
    /// chunked, so chunk-size lines are skipped too (they are never `event:`/`data:`).
    fn next(&mut self) -> (String, Value) {
        let (mut name, mut data) = (String::new(), None);
        loop {
            let mut line = String::new();
            assert!(self.reader.read_line(&mut line).unwrap() > 0, "the event stream ended");
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(d).unwrap_or_else(|e| panic!("event data is not JSON ({e}): {d}")));
            } else if line.is_empty()
                && let Some(d) = data.take()
            {
                return (name, d);
            }
        }
    }
}

/// The page's cards as {id: value}, its kind and its number of points.
const PROBE: &str = r#"JSON.stringify({
  kind: document.body.getAttribute('data-kind'),
  seq: Number(document.body.getAttribute('data-seq')),
  points: Number(document.body.getAttribute('data-points')),
  cards: Object.fromEntries([...document.querySelectorAll('.stat')].map(c => [c.id.replace('card-', ''), Number(c.getAttribute('data-value'))])),
  charts: [...document.querySelectorAll('svg.chart')].map(s => s.id),
  markers: [...document.querySelectorAll('#chart-rate text')].map(t => t.textContent),
  verdict: document.getElementById('verdict').hidden ? null : document.getElementById('verdict-badge').textContent,
  thresholds: document.querySelectorAll('#thresholds tbody tr').length,
  reportCommand: document.getElementById('report-command').textContent,
  scrollWidth: document.documentElement.scrollWidth,
})"#;

fn probe_until(b: &mut Browser, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let p = b.eval_json(PROBE);
        if ok(&p) {
            return p;
        }
        assert!(Instant::now() < deadline, "the page never showed {what}; last: {p}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn docs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard")
}

fn artefact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn n_errors(results: &Value) -> u64 {
    results["counters"]["errors"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum()
}

#[test]
fn the_page_moves_while_the_test_runs_and_ends_with_the_results_file_figures_and_verdict() {
    // The browser first: a cold start may take longer than the test.
    let mut b = Browser::start();
    let mut run = Run::start(PROFILE, &[]);
    let url = run.url();
    b.open(&url, 1280);

    let first = probe_until(&mut b, "a running test with points", |p| {
        p["kind"] == "progress" && p["points"].as_u64() >= Some(1) && p["cards"]["requests"].as_f64() > Some(0.0)
    });
    std::thread::sleep(Duration::from_millis(2500));
    let second = b.eval_json(PROBE);
    assert_eq!(second["kind"], "progress", "the test is still running: {second}");
    assert!(second["seq"].as_u64() > first["seq"].as_u64(), "{first} then {second}");
    assert!(
        second["cards"]["requests"].as_f64() > first["cards"]["requests"].as_f64(),
        "the request count moved: {first} then {second}"
    );
    assert_ne!(first["cards"], second["cards"], "two looks a while apart differ");
    for chart in ["chart-rate", "chart-ack-latency", "chart-e2e-latency"] {
        assert!(second["charts"].as_array().unwrap().iter().any(|c| c == chart), "{chart} drawn live: {second}");
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(docs_dir()).unwrap();
        b.screenshot(1280, 1400.0, &docs_dir().join("dashboard-live.png"));
    }

    let results = run.wait_written();
    let last = probe_until(&mut b, "the final figures", |p| p["kind"] == "final");
    let c = &results["counters"];
    let s = &results["summaries"];
    let cards = &last["cards"];
    assert_eq!(cards["requests"].as_u64(), c["requests"].as_u64(), "{last}");
    assert_eq!(cards["requests"].as_f64(), c["requests"].as_f64());
    assert_eq!(cards["errors"].as_f64(), Some(n_errors(&results) as f64));
    assert_eq!(cards["lost"].as_f64(), c["lost"].as_f64());
    assert_eq!(cards["incomplete"].as_f64(), c["incomplete"].as_f64());
    assert_eq!(cards["dropped"].as_f64(), c["dropped"].as_f64());
    assert_eq!(cards["ack-p99"].as_f64(), s["ack"]["p99"].as_f64());
    assert_eq!(cards["e2e-p99"].as_f64(), s["firstResponse"]["p99"].as_f64());
    assert_eq!(cards["e2e-p50"].as_f64(), s["firstResponse"]["p50"].as_f64());
    assert_eq!(last["points"].as_u64(), Some(results["timeSeries"]["points"].as_array().unwrap().len() as u64));
    assert!(c["requests"].as_u64().unwrap() >= 60, "{c}");
    assert_eq!(last["verdict"], "PASSED");
    assert_eq!(last["thresholds"].as_u64(), Some(results["thresholds"].as_array().unwrap().len() as u64));
    assert_eq!(last["reportCommand"], format!("chatops report {}", "r.json"));
    let markers = last["markers"].as_array().unwrap();
    assert!(markers.iter().any(|m| m == "warm up") && markers.iter().any(|m| m == "peak"), "{markers:?}");
    assert!(last["scrollWidth"].as_f64() <= Some(1280.0), "{last}");
    b.screenshot(1280, 2400.0, &artefact("dashboard-final.png"));

    // The links of the final view work, and the JSON is the file's.
    b.open(&format!("{url}report.html"), 1280);
    let report = b.eval_json("JSON.stringify(document.getElementById('verdict').textContent)");
    assert_eq!(report, "PASSED");
    let (status, head, body) = get(run.addr, "/results.json");
    assert_eq!(status, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("content-disposition: attachment; filename=\"r.json\""), "{head}");
    assert_eq!(body, std::fs::read(run.results_path()).unwrap(), "the download is the results file");

    let problems = b.problems();
    let requests = b.requests();
    b.close();
    assert!(problems.is_empty(), "console errors or warnings: {problems:#?}");
    let allowed = [url.clone(), format!("{url}events"), format!("{url}report.html")];
    assert!(requests.iter().all(|r| allowed.contains(r)), "the page fetched something else: {requests:?}");
    assert_eq!(run.interrupt(), Some(0), "Ctrl-C ends the linger with the verdict's exit code");
}

#[test]
fn the_event_stream_is_json_with_monotone_offsets_and_ends_with_the_verdict() {
    let profile = PROFILE.replace("duration: 6", "duration: 3");
    let mut run = Run::start(&profile, &["--p99", "0.001"]);
    let mut events = Events::open(run.addr);
    assert_eq!(events.status, 200);

    let mut points: Vec<Value> = Vec::new();
    let (mut last_seq, mut last_elapsed, mut kinds) = (0u64, 0u64, Vec::new());
    let mut gauges_while_running = false;
    let fin = loop {
        let (name, e) = events.next();
        assert_eq!(e["kind"], name.as_str(), "the event's name is its kind");
        let seq = e["seq"].as_u64().unwrap();
        assert!(seq > last_seq || kinds.is_empty(), "seq goes up: {last_seq} then {seq}");
        let elapsed = e["elapsedMs"].as_u64().unwrap();
        assert!(elapsed >= last_elapsed, "elapsed goes up: {last_elapsed} then {elapsed}");
        (last_seq, last_elapsed) = (seq, elapsed);
        let from = e["points"]["from"].as_u64().unwrap() as usize;
        assert!(from <= points.len(), "no gap: from {from} with {} points", points.len());
        points.truncate(from);
        points.extend(e["points"]["items"].as_array().unwrap().iter().cloned());
        let offsets: Vec<u64> = points.iter().map(|p| p["offsetMs"].as_u64().unwrap()).collect();
        let step = e["intervalMs"].as_u64().unwrap();
        assert!(offsets.iter().enumerate().all(|(i, o)| *o == i as u64 * step), "offsets {offsets:?}");
        kinds.push(name.clone());
        if name == "final" {
            break e;
        }
        // A stream opened before the run's first update starts with "waiting".
        assert!(name == "progress" || name == "waiting" && kinds.len() == 1, "{kinds:?}");
        gauges_while_running |= points.iter().any(|p| p["server"]["queueDepth"].is_number());
        assert!(e["verdict"].is_null());
    };
    assert!(kinds.len() >= 3, "updates while running: {kinds:?}");
    assert!(gauges_while_running, "the spawned bot's scraped gauges show while the test runs");
    let results = run.wait_written();
    assert_eq!(Value::Array(points), results["timeSeries"]["points"], "the stream's points are the file's");
    let v = &fin["verdict"];
    assert_eq!(v["passed"], false, "--p99 0.001 cannot hold");
    assert_eq!(v["exitCode"], 1);
    let failed: Vec<&Value> = v["thresholds"].as_array().unwrap().iter().filter(|t| t["passed"] == false).collect();
    assert_eq!(failed.len(), 1, "{v}");
    assert_eq!(failed[0]["condition"], "http.response_time.p99 <= 0.001");
    assert_eq!(failed[0]["limit"], "0.001");
    assert_eq!(fin["totals"]["requests"], results["counters"]["requests"]);
    assert_eq!(fin["totals"]["ack"]["p99"], results["summaries"]["ack"]["p99"]);
    assert_eq!(fin["phases"], results["phases"]);

    // A browser that comes late gets everything at once.
    let mut late = Events::open(run.addr);
    let (name, e) = late.next();
    assert_eq!(name, "final");
    assert_eq!(e["points"]["from"], 0);
    assert_eq!(e["points"]["items"], results["timeSeries"]["points"]);

    hostile_requests_are_refused(&run, events, late);
    assert_eq!(run.interrupt(), Some(1), "the failed threshold's exit code");
}

/// Called with two event streams open.
fn hostile_requests_are_refused(run: &Run, a: Events, b: Events) {
    let addr = run.addr;
    let (status, _, body) = get(addr, "/etc/passwd");
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    assert_eq!(get(addr, "/events/../results.json").0, 404);
    let (status, head, _) = exchange(
        addr,
        format!("POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi").as_bytes(),
    );
    assert_eq!(status, 405, "{head}");
    assert!(head.to_ascii_lowercase().contains("allow: get"), "{head}");
    for method in ["PUT", "DELETE", "HEAD", "OPTIONS"] {
        let req = format!("{method} /events HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        assert_eq!(exchange(addr, req.as_bytes()).0, 405, "{method}");
    }
    let with_body = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    assert_eq!(exchange(addr, with_body.as_bytes()).0, 413);
    let rebound = "GET /results.json HTTP/1.1\r\nHost: dashboard.evil.example\r\nConnection: close\r\n\r\n";
    assert_eq!(exchange(addr, rebound.as_bytes()).0, 403, "a name that may rebind to 127.0.0.1");
    let huge =
        format!("GET / HTTP/1.1\r\nHost: {addr}\r\nX-Fill: {}\r\nConnection: close\r\n\r\n", "a".repeat(64 * 1024));
    let status = exchange(addr, huge.as_bytes()).0;
    assert!(status == 431 || status == 0, "an oversized head is refused, got {status}");
    let (status, head, body) = get(addr, "/");
    assert_eq!(status, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("content-security-policy: default-src 'none'"), "{head}");
    assert!(String::from_utf8_lossy(&body).starts_with("<!DOCTYPE html>"));

    // Sixteen streams at once, counting the two open ones; the seventeenth is refused.
    let mut open = vec![a, b];
    while open.len() < chatops_loadtest::dashboard::MAX_EVENT_CLIENTS {
        let e = Events::open(addr);
        assert_eq!(e.status, 200, "stream {} of {}", open.len() + 1, chatops_loadtest::dashboard::MAX_EVENT_CLIENTS);
        open.push(e);
    }
    let refused = Events::open(addr);
    assert_eq!(refused.status, 503, "past the cap");
    // A client that leaves frees its slot (once the server notices the closed connection).
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let again = Events::open(addr);
        if again.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never freed");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_run_that_cannot_start_shows_its_error_while_it_lingers() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatops"))
        .current_dir(dir.path())
        .args(["loadtest", "--profile", "smoke", "--target", "http://no-such-host.invalid:1", "--quiet"])
        .args(["--dashboard", "127.0.0.1:0", "--dashboard-linger", "300s"])
        .env("SLACK_SIGNING_SECRET", "it-secret")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr: SocketAddr = line.trim().trim_start_matches("dashboard: http://").trim_end_matches('/').parse().unwrap();
    let mut events = Events::open(addr);
    let error = loop {
        let (name, e) = events.next();
        if name == "error" {
            break e;
        }
        assert_eq!(name, "waiting", "{e}");
    };
    let message = error["error"].as_str().unwrap();
    assert!(message.contains("no-such-host.invalid"), "{message}");
    assert!(error["verdict"].is_null());
    assert_eq!(get(addr, "/results.json").0, 404, "no results to serve");
    let ok = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success();
    assert!(ok);
    assert_eq!(child.wait().unwrap().code(), Some(2));
}

#[test]
fn a_port_taken_by_another_program_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chatops"))
        .current_dir(dir.path())
        .args(["loadtest", "--profile", "smoke", "--target", "http://127.0.0.1:9", "--quiet", "--dashboard", &addr])
        .env("SLACK_SIGNING_SECRET", "it-secret")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("binding the dashboard on {addr}")), "{stderr}");
    assert!(!Path::new(&dir.path().join("results")).exists(), "nothing ran");
}
