//! Client-observed E2E: answers posted to response_url are timed from the scheduled send.

use std::time::Duration;

use crate::helpers::{StubConfig, echo_profile, run, spawn_stub, write_profile};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_and_last_response_e2e_cover_the_handler_sleep() {
    let stub = spawn_stub(StubConfig {
        answer_after: vec![Duration::from_millis(150), Duration::from_millis(300)],
        bogus_post: true,
        ..Default::default()
    })
    .await;
    let (_g, profile) = write_profile(&echo_profile("    - duration: 2\n      arrivalRate: 5", ""));
    let r = run(&["--profile", &profile, "--target", &stub.url, "--record-requests", "{dir}/req.ndjson"]).await;
    let res = r.results();
    let c = &res.counters;
    assert_eq!((c.requests, c.responses, c.lost), (10, 20, 0));
    assert_eq!(c.unmatched_responses, 1, "a post naming no request is counted, not matched");
    let (first, last) = (&res.summaries.first_response, &res.summaries.last_response);
    assert_eq!((first.count, last.count), (10, 10));
    assert!(first.min >= 150.0 && last.min >= 300.0, "{first:?} {last:?}");
    // At 5/s the generator adds next to nothing: within a few ms (generous bound here).
    assert!(first.p50 < 150.0 + 100.0, "{first:?}");
    assert!(last.p50 < 300.0 + 100.0, "{last:?}");
    let echo = &res.by_command["/echo"];
    assert_eq!((echo.responses, echo.first_response.count), (20, 10));
    // The per-request record carries the same times.
    let text = std::fs::read_to_string(r.path("req.ndjson")).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 10);
    for l in &lines {
        assert_eq!(l["responses"], 2);
        assert!(l["firstResponseMs"].as_f64().unwrap() >= 150.0, "{l}");
        assert!(l["lastResponseMs"].as_f64().unwrap() >= 300.0, "{l}");
        assert!(l["sentMs"].as_f64().unwrap() >= l["scheduledMs"].as_f64().unwrap());
    }
    assert_eq!(res.test.requests_file.as_deref(), Some("req.ndjson"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_commands_are_counted_lost_after_the_drain_timeout() {
    let stub = spawn_stub(StubConfig::default()).await;
    let (_g, profile) = write_profile(&echo_profile("    - duration: 1\n      arrivalRate: 10", ""));
    let r = run(&["--profile", &profile, "--target", &stub.url, "--drain-timeout", "300ms"]).await;
    let c = &r.results().counters;
    assert_eq!((c.requests, c.responses, c.lost), (10, 0, 10));
    assert_eq!(r.results().by_command["/echo"].lost, 10);
}
