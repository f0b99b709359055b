//! Sending on time: the generator's own send lag (actual send − scheduled time) on real runs
//! against a local stub. The default test's bound is generous, for a shared, noisy machine
//! and a debug build: it fails when pacing is grossly wrong (arrivals held back, a backlog),
//! not on a slow moment, and cannot tell the precise timer from tokio's 1 ms one. The strict check of the pacer's precision is `#[ignore]`d, for a quiet
//! machine (run alone, like the other timing tests).

use crate::helpers::{StubConfig, echo_profile, run, spawn_stub, write_profile};

async fn send_lag_at(rate: u32, secs: u32) -> chatops_core::stats::LatencySummary {
    let stub = spawn_stub(StubConfig::default()).await;
    let phase = format!("    - duration: {secs}\n      arrivalRate: {rate}");
    let (_g, profile) = write_profile(&echo_profile(&phase, ""));
    let r = run(&["--profile", &profile, "--target", &stub.url, "--no-receiver", "--threads", "1"]).await;
    let res = r.results();
    assert_eq!(res.counters.requests, u64::from(rate * secs), "{:?}", res.counters);
    assert_eq!(res.counters.errors.values().sum::<u64>(), 0, "{:?}", res.counters.errors);
    res.summaries.send_lag
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_lag_at_a_thousand_a_second_stays_small() {
    // 1,000/s rather than more: this runs as a debug build next to other tests, and a debug
    // generator starved of CPU falls behind, which is a backlog, not a pacing error.
    let lag = send_lag_at(1000, 3).await;
    assert_eq!(lag.count, 3000);
    // Measured here: 0.1–0.9 ms p50 and 5–12 ms p99 with the machine's load average at 8
    // (2 cores); a pacer that waited a tick too long per slot would build a backlog of
    // hundreds of milliseconds within the 3 s.
    assert!(lag.p99 < 25.0, "send lag p99 {} ms: {lag:?}", lag.p99);
}

/// On a quiet machine the pacer releases arrivals well inside tokio's 1 ms tick: with the
/// old coarse sleeps the median alone was 0.7–1.0 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing bound: needs a quiet machine, run alone (scripts/test.sh runs ignored tests last)"]
async fn send_lag_is_sub_millisecond_on_a_quiet_machine() {
    let lag = send_lag_at(1000, 5).await;
    assert!(lag.p50 < 0.3, "send lag p50 {} ms: {lag:?}", lag.p50);
    assert!(lag.p99 < 1.0, "send lag p99 {} ms: {lag:?}", lag.p99);
}
