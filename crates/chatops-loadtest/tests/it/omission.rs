//! Coordinated omission: a target that stalls once must show in latency measured from the
//! scheduled send time, and not in the service time of requests that waited for it.

use crate::helpers::{StubConfig, echo_profile, run, spawn_stub, write_profile};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_shows_in_latency_from_scheduled_time_but_not_in_service_time() {
    let stub = spawn_stub(StubConfig { stall_on: Some(50), stall: Duration::from_secs(1), ..Default::default() }).await;
    // One connection (Artillery's http.pool): requests due during the stall wait for it in
    // the generator, as they would behind any stalled server.
    let (_g, profile) = write_profile(&echo_profile(
        "    - duration: 4\n      arrivalRate: 50",
        "  http:\n    pool: 1\n    timeout: 10",
    ));
    let r = run(&["--profile", &profile, "--target", &stub.url, "--no-receiver"]).await;
    let s = &r.results().summaries;
    assert_eq!(r.results().counters.requests, 200);
    assert!(s.ack.p99 >= 800.0, "p99 from scheduled time shows the 1 s stall: {:?}", s.ack);
    assert!(s.ack.max >= 1000.0, "{:?}", s.ack);
    assert!(s.service_time.p99 < 200.0, "service time hides it: {:?}", s.service_time);
    assert!(s.service_time.max >= 1000.0, "only the stalled request itself took 1 s: {:?}", s.service_time);
    // About a second's worth of arrivals (≈50 of 200) waited: far more than 1%.
    let waited = s.ack.p90;
    assert!(waited > 50.0, "p90 {waited}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_queued_past_the_timeout_fail_without_being_sent() {
    let stub = spawn_stub(StubConfig::default()).await;
    // One connection, and each virtual user holds it for a second (`think`): arrivals pile
    // up behind it and, once older than the 0.5 s timeout, are failed without being sent.
    let yaml = r#"
config:
  phases:
    - duration: 2
      arrivalRate: 20
  http:
    pool: 1
    timeout: 0.5
scenarios:
  - flow:
      - get:
          url: /healthz
      - think: 1
"#;
    let (_g, profile) = write_profile(yaml);
    let r = run(&["--profile", &profile, "--target", &stub.url, "--no-receiver"]).await;
    let c = &r.results().counters;
    assert_eq!(c.requests, 40, "every arrival is accounted for: {c:?}");
    let timeouts = c.errors.get("timeout").copied().unwrap_or(0);
    let ok = c.acks.get("200").copied().unwrap_or(0);
    assert_eq!(ok + timeouts, 40, "{c:?}");
    assert!(timeouts >= 30, "arrivals queued behind the busy connection time out: {c:?}");
    let sent = stub.state.requests.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(sent, ok, "only the answered requests ever reached the target");
}
