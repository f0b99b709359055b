//! `--scrape URL` against a fake bot's `/metrics` (a small axum app serving fixed
//! Prometheus text with labels, comments, HELP/TYPE lines and other metrics): the gauges are
//! summed per interval into the results' time series; a garbage page, an oversized one, an
//! error status, a closed connection and a silent server are refused with a reason, and a
//! run whose scrapes failed says so in its notes.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::get;
use chatops_loadtest::scrape::{self, ScrapeTarget, Scraper};

use crate::helpers::{StubConfig, echo_profile, run, spawn_stub, write_profile};

/// Queue depth 2 + 5 = 7 over two quadrants, 3 in flight, 1 dead letter; plus what a real
/// page also has: other metrics (one whose name starts like a wanted one), HELP/TYPE lines,
/// a blank line and OpenMetrics' `# EOF`.
const PAGE: &str = "# HELP chatops_http_requests_total Requests.\n\
# TYPE chatops_http_requests_total counter\n\
chatops_http_requests_total{route=\"/slack/commands\",status=\"200\"} 1234\n\
# HELP chatops_queue_depth Jobs waiting per quadrant.\n\
# TYPE chatops_queue_depth gauge\n\
chatops_queue_depth{quadrant=\"short-read\"} 2\n\
chatops_queue_depth{quadrant=\"long-write\"} 5\n\
\n\
# TYPE chatops_jobs_in_flight gauge\n\
chatops_jobs_in_flight{quadrant=\"short-read\"} 1\n\
chatops_jobs_in_flight{quadrant=\"short-write\",note=\"a \\\"quoted\\\" } brace\"} 2\n\
chatops_jobs_in_flight_seconds_total 99\n\
# TYPE chatops_dlq_size gauge\n\
chatops_dlq_size 1\n\
some_other_exporter{x=\"y\"} not-our-problem\n\
# EOF\n";

/// A wanted gauge whose value is not a number.
const GARBAGE: &str = "# TYPE chatops_queue_depth gauge\n\
chatops_queue_depth{quadrant=\"short-read\"} lots\n\
chatops_jobs_in_flight 0\nchatops_dlq_size 0\n";

struct FakeBot {
    base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn spawn_fake_metrics() -> FakeBot {
    // 3 MiB of other metrics before the gauges: large, but under the 4 MiB cap.
    let padding: String = (0..80_000).map(|i| format!("chatops_padding_total{{n=\"{i:08}\"}} {i}\n")).collect();
    assert!(padding.len() > 3 * 1024 * 1024 && padding.len() < 4 * 1024 * 1024 - PAGE.len());
    let big = format!("{padding}{PAGE}");
    let huge = "# x\n".repeat(5 * 1024 * 1024 / 4 + 1);
    let app = axum::Router::new()
        .route("/metrics", get(|| async { PAGE }))
        .route("/garbage", get(|| async { GARBAGE }))
        .route("/big", get(move || async move { big }))
        .route("/huge", get(move || async move { huge }))
        .route("/unavailable", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "not ready") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    FakeBot { base, task }
}

/// Three seconds at 5 arrivals a second against the stub bot, scraping `scrape_url`.
async fn run_scraping(scrape_url: &str) -> crate::helpers::Run {
    let stub = spawn_stub(StubConfig::default()).await;
    let (_g, profile) = write_profile(&echo_profile("    - duration: 3\n      arrivalRate: 5", ""));
    let argv = ["--profile", profile.as_str(), "--target", &stub.url, "--no-receiver", "--scrape", scrape_url];
    tokio::time::timeout(Duration::from_secs(60), run(&argv)).await.expect("the run ends by itself")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_gauges_are_summed_over_labels_into_each_interval() {
    let bot = spawn_fake_metrics().await;
    let r = run_scraping(&format!("{}/metrics", bot.base)).await;
    let res = r.results();
    let points = &res.time_series.points;
    assert_eq!(points.len(), 3);
    let with_server: Vec<_> = points.iter().filter_map(|p| p.server.as_ref()).collect();
    // One scrape per interval, at its middle; a loaded machine may miss one.
    assert!(with_server.len() >= points.len() - 1, "{points:?}");
    for g in &with_server {
        assert_eq!((g.queue_depth, g.jobs_in_flight, g.dlq_size), (7.0, 3.0, 1.0));
    }
    if with_server.len() == points.len() {
        assert!(!res.test.notes.iter().any(|n| n.contains("scrapes failed")), "{:?}", res.test.notes);
    }
    // The file holds them too.
    let on_disk = std::fs::read_to_string(r.path("results.json")).unwrap();
    assert!(on_disk.contains("\"queueDepth\": 7.0"), "{on_disk}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_metrics_page_leaves_the_intervals_empty_and_says_why() {
    let bot = spawn_fake_metrics().await;
    let url = format!("{}/garbage", bot.base);
    let r = run_scraping(&url).await;
    let res = r.results();
    assert!(res.time_series.points.iter().all(|p| p.server.is_none()), "{:?}", res.time_series.points);
    let note = res.test.notes.iter().find(|n| n.contains("scrapes failed")).cloned().unwrap_or_default();
    assert!(note.starts_with("3 of 3 scrapes failed: ") || note.starts_with("2 of 2 scrapes failed: "), "{note}");
    assert!(note.contains(&url) && note.contains("line 2") && note.contains("`lots` is not a number"), "{note}");
    assert!(!serde_json::to_string(res).unwrap().contains("\"server\""), "no server gauges in the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_metrics_endpoints_are_refused_with_a_reason() {
    let bot = spawn_fake_metrics().await;
    let target = |path: &str| ScrapeTarget::parse(&format!("{}{path}", bot.base)).unwrap();

    let big = scrape::scrape_once(&target("/big")).await.unwrap();
    assert_eq!((big.queue_depth, big.jobs_in_flight, big.dlq_size), (7.0, 3.0, 1.0), "a large page under the cap");
    let huge = scrape::scrape_once(&target("/huge")).await.unwrap_err();
    assert!(huge.contains("larger than 4 MiB"), "{huge}");
    let status = scrape::scrape_once(&target("/unavailable")).await.unwrap_err();
    assert_eq!(status, "HTTP 503");
    let missing = scrape::scrape_once(&target("/nothing-here")).await.unwrap_err();
    assert_eq!(missing, "HTTP 404");

    // A server that hangs up at once, and one that never answers.
    let hang_up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_up_url = format!("http://{}/metrics", hang_up.local_addr().unwrap());
    let closer = tokio::spawn(async move {
        loop {
            if let Ok((tcp, _)) = hang_up.accept().await {
                drop(tcp);
            }
        }
    });
    let closed = scrape::scrape_once(&ScrapeTarget::parse(&hang_up_url).unwrap()).await.unwrap_err();
    assert!(closed.starts_with("request failed"), "{closed}");
    closer.abort();

    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/metrics", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            if let Ok((tcp, _)) = silent.accept().await {
                held.push(tcp);
            }
        }
    });
    let scraper = Scraper::spawn(ScrapeTarget::parse(&silent_url).unwrap(), Instant::now(), Duration::from_secs(1), 1);
    let log = tokio::time::timeout(Duration::from_secs(10), scraper.finish(Duration::from_secs(3))).await.unwrap();
    holder.abort();
    assert_eq!((log.attempts, log.failures), (1, 1), "{log:?}");
    assert!(log.first_failure.as_deref().unwrap().ends_with("no answer within 400 ms"), "{log:?}");
    assert!(log.samples.is_empty());
}

#[tokio::test]
async fn unusable_scrape_urls_are_refused_before_the_run() {
    for (url, says) in [
        ("https://127.0.0.1:9464/metrics", "https is not supported"),
        ("not a url", "is not a URL"),
        ("127.0.0.1:9464", "must start with http://"),
    ] {
        let r = run(&["--profile", "smoke", "--target", "http://127.0.0.1:9", "--scrape", url]).await;
        let err = r.outcome.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(says), "{url}: {err}");
    }
}
