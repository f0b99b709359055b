//! Thresholds decide the exit code: 0 when all hold, 1 when one fails (one line each),
//! 2 for a profile or argument error.

use std::time::Duration;

use crate::helpers::{StubConfig, echo_profile, run, spawn_stub, write_profile};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_is_zero_when_every_threshold_holds() {
    let stub = spawn_stub(StubConfig { answer_after: vec![Duration::from_millis(5)], ..Default::default() }).await;
    let (_g, profile) = write_profile(&echo_profile("    - duration: 1\n      arrivalRate: 10", ""));
    let r = run(&[
        "--profile",
        &profile,
        "--target",
        &stub.url,
        "--p95",
        "5000",
        "--p99",
        "5000",
        "--e2e-p95",
        "5000",
        "--e2e-p99",
        "5000",
        "--max-error-rate",
        "0",
        "--max-lost",
        "0",
    ])
    .await;
    let o = r.ok();
    assert!(o.passed() && o.failures.is_empty(), "{:?}", o.failures);
    assert_eq!(o.exit_code(), 0);
    assert_eq!(r.results().thresholds.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_is_one_with_a_line_per_failed_condition() {
    let stub = spawn_stub(StubConfig::default()).await;
    let phase = "    - duration: 1\n      arrivalRate: 10";
    let ensure = "  ensure:\n    conditions:\n      - expression: \"http.requests > 1000\"\n        strict: false";
    let (_g, profile) = write_profile(&echo_profile(phase, ensure));
    let r = run(&[
        "--profile",
        &profile,
        "--target",
        &stub.url,
        "--drain-timeout",
        "200ms",
        "--p99",
        "0.001",
        "--max-lost",
        "0",
        "--e2e-p99",
        "5000",
        "--max-error-rate",
        "1",
    ])
    .await;
    let o = r.ok();
    assert!(!o.passed());
    assert_eq!(o.exit_code(), 1);
    assert_eq!(o.failures.len(), 4, "{:#?}", o.failures);
    assert!(
        o.failures
            .iter()
            .any(|l| l.starts_with("threshold failed: http.response_time.p99 <= 0.001 (limit 0.001, measured ")),
        "{:#?}",
        o.failures
    );
    assert!(o.failures.iter().any(|l| l == "threshold failed: lost <= 0 (limit 0, measured 10)"), "{:#?}", o.failures);
    // No answer arrived, so an E2E limit cannot be shown to hold.
    assert!(
        o.failures.iter().any(|l| l == "threshold failed: e2e.p99 <= 5000 (limit 5000, measured nothing: no samples)"),
        "{:#?}",
        o.failures
    );
    // A non-strict failure is reported but does not decide the exit code.
    assert!(
        o.failures.iter().any(|l| l.contains("not strict") && l.contains("http.requests > 1000")),
        "{:#?}",
        o.failures
    );
    let t = &r.results().thresholds;
    assert!(t.iter().any(|t| t.condition == "error_rate <= 1" && t.passed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_is_two_for_a_profile_error() {
    let (_g, profile) = write_profile(&echo_profile("    - duration: 1\n      arrivalRatte: 10", ""));
    let r = run(&["--profile", &profile]).await;
    let err = r.outcome.as_ref().unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(msg.contains("arrivalRatte") && msg.contains("line 5"), "{msg}");
    assert!(!r.path("results.json").exists(), "no results for a run that never started");
}
