//! Rate accuracy on real runs: a constant phase holds its rate, a ramp rises linearly.

use crate::helpers::{StubConfig, echo_profile, run, spawn_stub, write_profile};

fn sent_ms(dir: &std::path::Path) -> Vec<f64> {
    let text = std::fs::read_to_string(dir.join("requests.ndjson")).unwrap();
    let mut v: Vec<f64> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["sentMs"].as_f64().unwrap())
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_phase_holds_its_rate_within_two_percent() {
    let stub = spawn_stub(StubConfig::default()).await;
    let (_g, profile) = write_profile(&echo_profile("    - duration: 10\n      arrivalRate: 200", ""));
    let r = run(&[
        "--profile",
        &profile,
        "--target",
        &stub.url,
        "--no-receiver",
        "--record-requests",
        "{dir}/requests.ndjson",
    ])
    .await;
    let res = r.results();
    assert_eq!(res.counters.scheduled, 2000);
    assert_eq!(res.counters.requests, 2000);
    assert_eq!(res.counters.dropped, 0);
    assert_eq!(res.counters.errors.values().sum::<u64>(), 0, "{:?}", res.counters.errors);
    // Achieved rate: requests over the span in which they were actually sent.
    let sent = sent_ms(r.dir.path());
    let span_s = (sent[sent.len() - 1] - sent[0]) / 1000.0;
    let achieved = (sent.len() - 1) as f64 / span_s;
    assert!((achieved - 200.0).abs() / 200.0 < 0.02, "achieved {achieved:.2}/s over {span_s:.3} s");
    // Per-second time series agrees (generous: a busy machine may shift one batch).
    let pts = &res.time_series.points;
    assert_eq!(pts.len(), 10);
    for p in pts {
        assert_eq!(p.target_rate, 200.0);
        assert!((p.achieved_rate - 200.0).abs() <= 20.0, "{p:?}");
    }
    assert_eq!(stub.state.requests.load(std::sync::atomic::Ordering::SeqCst), 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramp_phase_rises_linearly_on_a_real_run() {
    let stub = spawn_stub(StubConfig::default()).await;
    let phase = "    - duration: 5\n      arrivalRate: 50\n      rampTo: 250";
    let (_g, profile) = write_profile(&echo_profile(phase, ""));
    let r = run(&[
        "--profile",
        &profile,
        "--target",
        &stub.url,
        "--no-receiver",
        "--record-requests",
        "{dir}/requests.ndjson",
    ])
    .await;
    let res = r.results();
    assert_eq!(res.counters.requests, 750);
    let start = res.test.start_ms as f64;
    let mut per_sec = [0u32; 5];
    for t in sent_ms(r.dir.path()) {
        per_sec[(((t - start) / 1000.0) as usize).min(4)] += 1;
    }
    // The rate rises by 40/s each second: 70, 110, 150, 190, 230 arrivals.
    for (s, n) in per_sec.iter().enumerate() {
        let expected = 70.0 + 40.0 * s as f64;
        assert!((*n as f64 - expected).abs() <= expected * 0.1 + 3.0, "second {s}: {n} vs {expected}: {per_sec:?}");
    }
    let targets: Vec<f64> = res.time_series.points.iter().map(|p| p.target_rate).collect();
    assert_eq!(targets, [70.0, 110.0, 150.0, 190.0, 230.0]);
}
