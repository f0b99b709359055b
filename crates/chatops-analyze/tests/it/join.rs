//! The client/server join on a small requests file with hand-computed expectations.

use crate::support::{analyze, fixture, s};

#[test]
fn joins_client_records_with_bot_lines_and_shows_the_full_path() {
    let (out, table) = analyze(&["--requests", s(&fixture("join/requests.ndjson")), s(&fixture("join/bot.log"))]);
    let j = out.summary.join.expect("join summary");
    assert_eq!((j.client_records, j.invalid_records), (4, 1));
    assert_eq!((j.matched_router, j.matched_worker, j.complete, j.client_only, j.server_only_lines), (4, 3, 3, 0, 1));

    let commands: Vec<&str> = j.by_command.iter().map(|b| b.command.as_str()).collect();
    assert_eq!(commands, ["/deploy", "/echo"]);
    let echo = &j.by_command[1];
    assert_eq!((echo.requests, echo.complete), (3, 2));
    let means: Vec<(&str, f64)> = echo.segments.iter().map(|s| (s.name.as_str(), s.mean_ms)).collect();
    assert_eq!(
        means,
        [
            ("router", 0.5),
            ("enqueue", 1.0),
            ("queue_wait", 2.5),
            ("handler_to_first_response", 5.5),
            ("first_to_last_response", 8.0),
            ("unexplained", 2.5)
        ]
    );
    assert_eq!((echo.client_e2e.mean, echo.client_e2e.count), (20.0, 2));
    assert_eq!(echo.segments.iter().map(|s| s.share_pct).sum::<f64>(), 100.0);
    assert_eq!((echo.client_ack.count, echo.client_ack.mean), (3, 2.667));
    assert_eq!(echo.router_duration.mean, 2.0);
    assert_eq!(echo.ack_unexplained_mean_ms, 0.667);
    assert_eq!(echo.client_lateness.max, 1.0);
    assert_eq!((echo.first_arrival.count, echo.first_arrival.mean), (2, 12.0));
    assert_eq!((echo.last_arrival.count, echo.last_arrival.mean), (2, 20.0));
    assert_eq!((echo.client_errors, echo.lost), (0, 1), "e3 was answered but never got a response");

    let deploy = &j.by_command[0];
    let means: Vec<f64> = deploy.segments.iter().map(|s| s.mean_ms).collect();
    assert_eq!(means, [1.0, 1.0, 500.0, 488.0, 0.0, 10.0], "the final attempt's stamps are used");
    assert_eq!(deploy.client_e2e.max, 1000.0);

    assert_eq!((j.overall.requests, j.overall.complete), (4, 3));
    assert!(table.contains("unexplained (network, clock)"), "{table}");
    assert!(table.contains("/deploy: 1 requests, 1 complete, 0 client errors, 0 lost"), "{table}");
}

#[test]
fn from_results_finds_the_requests_file_it_names() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["bot.log", "requests.ndjson"] {
        std::fs::copy(fixture(&format!("join/{f}")), dir.path().join(f)).unwrap();
    }
    let mut results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("results-baseline.json")).unwrap()).unwrap();
    results["test"]["startMs"] = 1_764_331_200_000i64.into();
    results["test"]["endMs"] = 1_764_331_201_000i64.into();
    results["test"]["botLog"] = "bot.log".into();
    results["test"]["requestsFile"] = "requests.ndjson".into();
    let path = dir.path().join("results.json");
    std::fs::write(&path, serde_json::to_vec(&results).unwrap()).unwrap();
    let (out, _) = analyze(&["--from-results", s(&path)]);
    let j = out.summary.join.expect("joined through the results file");
    assert_eq!((j.client_records, j.complete), (4, 3));
    assert!(dir.path().join("results.metrics.json").is_file());
}

#[test]
fn a_missing_requests_file_is_an_error() {
    let args =
        crate::support::analyze_args(&["--requests", "/nonexistent/requests.ndjson", s(&fixture("join/bot.log"))]);
    let err = chatops_analyze::run_analyze_to(&args, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, chatops_analyze::AnalyzeError::Requests { .. }), "{err:?}");
}
