//! The bot's side of a load test: while the test runs, the generator reads the bot's
//! Prometheus `/metrics` once per time-series interval (`--spawn` knows the spawned bot's
//! metrics address; `--scrape URL` names a remote bot's) and keeps its queue depth, jobs in
//! flight and dead-letter count, each summed over its labels (the quadrants). A scrape is
//! taken at the middle of its interval with a timeout of under half an interval, so it
//! belongs to the interval it was started in; a failed one leaves that interval without
//! gauges and is counted, with the first reason, for the results' notes. The joining to the
//! time series happens after the run ([`ScrapeLog::join_into`]), never in the recorder's
//! hot path. The text format is parsed here ([`parse_gauges`]), strictly for the three
//! wanted names and skipping every other line, over a body capped at [`MAX_BODY`]: a small
//! parser rather than a dependency, as the format is a line per sample.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chatops_core::results::{ServerGauges, TimeSeries};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{ACCEPT, HOST, HeaderValue};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Largest `/metrics` body read; a bot's is a few tens of KiB.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// The longest a scrape may take, whatever the interval.
const MAX_TIMEOUT: Duration = Duration::from_secs(4);

/// The gauges read, as the bot names them (`chatops_service::metrics`).
pub const QUEUE_DEPTH: &str = "chatops_queue_depth";
pub const JOBS_IN_FLIGHT: &str = "chatops_jobs_in_flight";
pub const DLQ_SIZE: &str = "chatops_dlq_size";

/// A checked `/metrics` URL.
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    /// As given (with `/metrics` added to a bare host), for messages.
    pub url: String,
    authority: String,
    path: Uri,
}

/// `--scrape` is not a usable URL.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScrapeUrlError(String);

impl ScrapeTarget {
    /// `http://host:port[/path]`; a URL without a path gets `/metrics`. The bot serves its
    /// metrics on plain HTTP, so `https://` is refused.
    pub fn parse(url: &str) -> Result<ScrapeTarget, ScrapeUrlError> {
        let uri: Uri = url.parse().map_err(|e| ScrapeUrlError(format!("--scrape `{url}` is not a URL: {e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(ScrapeUrlError(format!(
                    "--scrape `{url}`: https is not supported (the bot serves /metrics on plain http)"
                )));
            }
            _ => return Err(ScrapeUrlError(format!("--scrape `{url}` must start with http://"))),
        }
        let a = uri.authority().ok_or_else(|| ScrapeUrlError(format!("--scrape `{url}` has no host")))?;
        let authority = format!("{}:{}", a.host(), a.port_u16().unwrap_or(80));
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        let (path, url) = if pq == "/" {
            ("/metrics".to_owned(), format!("{}/metrics", url.trim_end_matches('/')))
        } else {
            (pq.to_owned(), url.to_owned())
        };
        let path = path.parse().map_err(|e| ScrapeUrlError(format!("--scrape `{url}`: {e}")))?;
        Ok(ScrapeTarget { url, authority, path })
    }
}

/// What the scrapes of one run found.
#[derive(Debug, Default)]
pub struct ScrapeLog {
    /// Successful scrapes: when they started (ns from the test start) and what they read.
    pub samples: Vec<(u64, ServerGauges)>,
    pub attempts: u64,
    pub failures: u64,
    pub first_failure: Option<String>,
}

impl ScrapeLog {
    /// Gives each interval of `ts` the gauges of the scrape started in it (the later one if
    /// there are two); samples after the last interval are dropped.
    pub fn join_into(&self, ts: &mut TimeSeries) {
        let interval_ns = ts.interval_ms.max(1) * 1_000_000;
        for (offset_ns, gauges) in &self.samples {
            if let Some(point) = ts.points.get_mut((offset_ns / interval_ns) as usize) {
                point.server = Some(gauges.clone());
            }
        }
    }

    /// The results' note about failed scrapes, if any failed.
    pub fn note(&self) -> Option<String> {
        (self.failures > 0).then(|| {
            format!(
                "{} of {} scrapes failed: {}",
                self.failures,
                self.attempts,
                self.first_failure.as_deref().unwrap_or("unknown reason")
            )
        })
    }
}

/// The successful scrapes so far, as [`ScrapeLog::samples`], for the live dashboard.
pub type LiveGauges = watch::Receiver<Vec<(u64, ServerGauges)>>;

/// The scraper task of a run.
pub struct Scraper {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<ScrapeLog>,
    samples: LiveGauges,
}

impl Scraper {
    /// Scrapes `target` in each of `n_intervals` intervals from `start`, at the middle of
    /// each; stops by itself after the last, or at [`Scraper::finish`].
    pub fn spawn(target: ScrapeTarget, start: Instant, interval: Duration, n_intervals: u64) -> Scraper {
        let (stop, stopped) = watch::channel(false);
        let (published, samples) = watch::channel(Vec::new());
        let task = tokio::spawn(run(target, start, interval, n_intervals, stopped, published));
        Scraper { stop, task, samples }
    }

    /// The scrapes so far, updated after each one (a few a second at most).
    pub fn live(&self) -> LiveGauges {
        self.samples.clone()
    }

    /// Waits up to `grace` for the last interval's scrape, then stops scraping and returns
    /// what was read.
    pub async fn finish(mut self, grace: Duration) -> ScrapeLog {
        if let Ok(done) = tokio::time::timeout(grace, &mut self.task).await {
            return done.unwrap_or_default();
        }
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// A scrape's time limit: under half an interval, so that it ends in its own interval.
pub fn scrape_timeout(interval: Duration) -> Duration {
    (interval * 2 / 5).min(MAX_TIMEOUT)
}

async fn run(
    target: ScrapeTarget,
    start: Instant,
    interval: Duration,
    n_intervals: u64,
    mut stopped: watch::Receiver<bool>,
    published: watch::Sender<Vec<(u64, ServerGauges)>>,
) -> ScrapeLog {
    let mut log = ScrapeLog::default();
    let timeout = scrape_timeout(interval);
    for k in 0..n_intervals {
        let due = start + interval * (k as u32) + interval / 2;
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {}
            _ = stopped.changed() => break,
        }
        let offset_ns = start.elapsed().as_nanos() as u64;
        log.attempts += 1;
        let outcome = tokio::select! {
            r = tokio::time::timeout(timeout, scrape_once(&target)) => {
                r.unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
            }
            _ = stopped.changed() => {
                log.attempts -= 1;
                break;
            }
        };
        match outcome {
            Ok(gauges) => {
                log.samples.push((offset_ns, gauges));
                // Nobody listening (no dashboard) is fine.
                published.send_replace(log.samples.clone());
            }
            Err(reason) => {
                log.failures += 1;
                log.first_failure.get_or_insert_with(|| format!("{}: {reason}", target.url));
            }
        }
    }
    log
}

/// One GET of the metrics page on a fresh connection, parsed.
pub async fn scrape_once(target: &ScrapeTarget) -> Result<ServerGauges, String> {
    let body = fetch(target).await?;
    parse_gauges(&body)
}

async fn fetch(target: &ScrapeTarget) -> Result<Bytes, String> {
    let tcp = TcpStream::connect(target.authority.as_str()).await.map_err(|e| format!("cannot connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    // The connection is driven beside the request and dropped with it, so a server that
    // stops answering leaves nothing behind once the timeout drops this future. When it
    // ends, the request's own future reports how.
    let drive = async move {
        let _ = conn.await;
        std::future::pending::<std::convert::Infallible>().await
    };
    let get = async {
        let mut req = Request::new(Empty::<Bytes>::new());
        *req.uri_mut() = target.path.clone();
        let host = HeaderValue::from_str(&target.authority).map_err(|_| "bad host".to_owned())?;
        req.headers_mut().insert(HOST, host);
        req.headers_mut().insert(ACCEPT, HeaderValue::from_static("text/plain, application/openmetrics-text"));
        let resp = sender.send_request(req).await.map_err(|e| format!("request failed: {e}"))?;
        if resp.status() != hyper::StatusCode::OK {
            return Err(format!("HTTP {}", resp.status().as_u16()));
        }
        match Limited::new(resp.into_body(), MAX_BODY).collect().await {
            Ok(b) => Ok(b.to_bytes()),
            Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                Err(format!("the body is larger than {} MiB", MAX_BODY / (1024 * 1024)))
            }
            Err(e) => Err(format!("reading the body: {e}")),
        }
    };
    tokio::select! {
        r = get => r,
        never = drive => match never {},
    }
}

/// Sums the three gauges over their labels in a Prometheus (or OpenMetrics) text page.
/// Lines of other metrics are skipped unread; a line of a wanted gauge must be a well-formed
/// sample with a finite value, and each gauge must appear (as samples, or as a family
/// declared by `# TYPE … gauge` with none, which sums to 0), or the page is refused.
pub fn parse_gauges(body: &[u8]) -> Result<ServerGauges, String> {
    const WANTED: [&str; 3] = [QUEUE_DEPTH, JOBS_IN_FLIGHT, DLQ_SIZE];
    let mut sums = [0.0f64; 3];
    let mut seen = [false; 3];
    for (idx, raw) in body.split(|b| *b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw).trim_ascii_start();
        let lineno = idx + 1;
        if let Some(comment) = line.strip_prefix(b"#") {
            // `# TYPE name kind` declares a family even when it has no samples.
            let mut words = comment.split(|b| *b == b' ' || *b == b'\t').filter(|w| !w.is_empty());
            if words.next() == Some(b"TYPE")
                && let Some(name) = words.next()
                && let Some(i) = WANTED.iter().position(|w| w.as_bytes() == name)
            {
                let kind = words.next().unwrap_or_default();
                if kind != b"gauge" {
                    return Err(format!(
                        "line {lineno}: `{}` is declared `{}`, not a gauge",
                        WANTED[i],
                        String::from_utf8_lossy(kind)
                    ));
                }
                seen[i] = true;
            }
            continue;
        }
        let Some(i) = WANTED.iter().position(|w| is_sample_of(line, w)) else { continue };
        let value = sample_value(&line[WANTED[i].len()..]).map_err(|e| {
            let shown: String = String::from_utf8_lossy(line).chars().take(80).collect();
            format!("line {lineno} (`{shown}`): {e}")
        })?;
        sums[i] += value;
        seen[i] = true;
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(format!("no `{}` in the page: is this a chatops bot's /metrics?", WANTED[missing]));
    }
    Ok(ServerGauges { queue_depth: sums[0], jobs_in_flight: sums[1], dlq_size: sums[2] })
}

/// The line is a sample of exactly `name` (not of `name_total` or another longer name).
fn is_sample_of(line: &[u8], name: &str) -> bool {
    line.starts_with(name.as_bytes()) && matches!(line.get(name.len()), Some(b'{' | b' ' | b'\t'))
}

/// Parses what follows the metric name: `[{labels}] value [timestamp]`.
fn sample_value(rest: &[u8]) -> Result<f64, String> {
    let rest = rest.trim_ascii_start();
    let rest = match rest.strip_prefix(b"{") {
        Some(labels) => skip_labels(labels)?,
        None => rest,
    };
    let text = std::str::from_utf8(rest).map_err(|_| "not UTF-8".to_owned())?;
    let mut fields = text.split_ascii_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value: f64 = value.parse().map_err(|_| format!("`{value}` is not a number"))?;
    if !value.is_finite() {
        return Err(format!("the value {value} is not finite"));
    }
    if let Some(ts) = fields.next()
        && ts.parse::<f64>().is_err()
    {
        return Err(format!("`{ts}` is not a timestamp"));
    }
    if fields.next().is_some() {
        return Err("unexpected text after the timestamp".into());
    }
    Ok(value)
}

/// Skips `name="value",…}` (escapes `\\`, `\"`, `\n` in values) and returns what follows.
fn skip_labels(mut s: &[u8]) -> Result<&[u8], String> {
    loop {
        s = s.trim_ascii_start();
        if let Some(after) = s.strip_prefix(b"}") {
            return Ok(after);
        }
        let name_len = s.iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
        if name_len == 0 || s[0].is_ascii_digit() {
            return Err("a label has no valid name".into());
        }
        s = s[name_len..].trim_ascii_start();
        s = s.strip_prefix(b"=").ok_or("a label has no `=`")?.trim_ascii_start();
        s = s.strip_prefix(b"\"").ok_or("a label value is not quoted")?;
        let mut i = 0;
        loop {
            match s.get(i) {
                None => return Err("a label value is not closed".into()),
                Some(b'\\') => match s.get(i + 1) {
                    Some(b'\\' | b'"' | b'n') => i += 2,
                    _ => return Err("a label value has a bad escape".into()),
                },
                Some(b'"') => break,
                Some(_) => i += 1,
            }
        }
        s = s[i + 1..].trim_ascii_start();
        if let Some(after) = s.strip_prefix(b",") {
            s = after;
        } else if !s.starts_with(b"}") {
            return Err("labels are not separated by `,`".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOT_PAGE: &str = "# HELP chatops_queue_depth Jobs waiting per quadrant.\n\
        # TYPE chatops_queue_depth gauge\n\
        chatops_queue_depth{quadrant=\"short-read\"} 3\n\
        chatops_queue_depth{quadrant=\"long-write\"} 4\n\
        # TYPE chatops_jobs_in_flight gauge\n\
        chatops_jobs_in_flight{quadrant=\"short-read\"} 2\n\
        chatops_jobs_in_flight_total 99\n\
        # TYPE chatops_dlq_size gauge\n\
        chatops_dlq_size 1\n\
        # EOF\n";

    #[test]
    fn sums_each_gauge_over_its_labels_and_skips_other_names() {
        let g = parse_gauges(BOT_PAGE.as_bytes()).unwrap();
        assert_eq!((g.queue_depth, g.jobs_in_flight, g.dlq_size), (7.0, 2.0, 1.0));
    }

    #[test]
    fn reads_escapes_timestamps_crlf_and_declared_empty_families() {
        let page = "chatops_queue_depth{quadrant=\"a\\\"}b\",x=\"\\\\\",} 1.5 1700000000000\r\n\
            # TYPE chatops_jobs_in_flight gauge\r\n\
            \tchatops_dlq_size  2e0\r\n";
        let g = parse_gauges(page.as_bytes()).unwrap();
        assert_eq!((g.queue_depth, g.jobs_in_flight, g.dlq_size), (1.5, 0.0, 2.0));
    }

    #[test]
    fn refuses_malformed_lines_of_wanted_gauges() {
        let ok = "chatops_jobs_in_flight 0\nchatops_dlq_size 0\n";
        for bad in [
            "chatops_queue_depth{quadrant=\"a\"} many",
            "chatops_queue_depth{quadrant=\"a\" 3",
            "chatops_queue_depth{quadrant=a} 3",
            "chatops_queue_depth{=\"a\"} 3",
            "chatops_queue_depth{quadrant=\"a\\x\"} 3",
            "chatops_queue_depth NaN",
            "chatops_queue_depth +Inf",
            "chatops_queue_depth 1 2 3",
            "chatops_queue_depth 1 soon",
            "chatops_queue_depth ",
            "# TYPE chatops_queue_depth counter",
        ] {
            let err = parse_gauges(format!("{bad}\n{ok}").as_bytes()).unwrap_err();
            assert!(err.starts_with("line 1"), "{bad}: {err}");
        }
    }

    #[test]
    fn refuses_a_page_without_the_gauges() {
        let err = parse_gauges(b"<html>not metrics</html>\n\xff\xfe garbage\n").unwrap_err();
        assert!(err.contains("chatops_queue_depth") && err.contains("/metrics"), "{err}");
    }

    #[test]
    fn scrape_urls_get_metrics_as_their_default_path() {
        let t = ScrapeTarget::parse("http://127.0.0.1:9464").unwrap();
        assert_eq!((t.url.as_str(), t.path.to_string().as_str()), ("http://127.0.0.1:9464/metrics", "/metrics"));
        let t = ScrapeTarget::parse("http://bot:1/custom/metrics?x=1").unwrap();
        assert_eq!((t.authority.as_str(), t.path.to_string().as_str()), ("bot:1", "/custom/metrics?x=1"));
        for bad in ["https://bot/metrics", "ftp://x", "bot:9464", "", "http://"] {
            assert!(ScrapeTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scrapes_join_the_interval_they_started_in() {
        let mut ts = TimeSeries { interval_ms: 1000, points: vec![Default::default(); 3] };
        let g = |d: f64| ServerGauges { queue_depth: d, ..Default::default() };
        let log = ScrapeLog {
            samples: vec![(500_000_000, g(1.0)), (2_400_000_000, g(3.0)), (9_000_000_000, g(9.0))],
            attempts: 4,
            failures: 1,
            first_failure: Some("x: HTTP 503".into()),
        };
        log.join_into(&mut ts);
        let depths: Vec<Option<f64>> = ts.points.iter().map(|p| p.server.as_ref().map(|s| s.queue_depth)).collect();
        assert_eq!(depths, [Some(1.0), None, Some(3.0)]);
        assert_eq!(log.note().unwrap(), "1 of 4 scrapes failed: x: HTTP 503");
        assert!(ScrapeLog::default().note().is_none());
    }

    #[test]
    fn a_scrape_ends_within_its_interval() {
        assert!(scrape_timeout(Duration::from_secs(1)) < Duration::from_millis(500));
        assert_eq!(scrape_timeout(Duration::from_secs(10)), MAX_TIMEOUT);
    }
}
