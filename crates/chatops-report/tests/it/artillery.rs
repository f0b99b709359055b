//! `chatops report` on Artillery's `--output` JSON (the real runs committed in
//! chatops-analyze's `tests/fixtures/artillery`): the page shows the ack latency with the
//! file's own numbers, says what Artillery does not measure instead of showing zeros, takes
//! the server side from the bot's log analysed beside it, compares with a baseline, and
//! refuses damaged files with the file's name.

use std::path::{Path, PathBuf};

use chatops_analyze::table::fmt_ms;
use chatops_report::{ReportArgs, ReportError, run_report};
use serde_json::Value;

use crate::support::{args, text_of};

fn artillery_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../chatops-analyze/tests/fixtures/artillery")
}

/// A temp dir with the real Artillery run (`run.json`), its bot log and the slow run.
fn run_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("artillery-echo-light.json", "run.json"),
        ("echo-light.bot.log", "bot.log"),
        ("artillery-echo-light-slow.json", "slow.json"),
    ] {
        std::fs::copy(artillery_dir().join(from), dir.path().join(to)).unwrap();
    }
    let results = dir.path().join("run.json");
    (dir, results)
}

fn raw_response_time(path: &Path) -> Value {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["aggregate"]["summaries"]["http.response_time"].clone()
}

fn ms_of(v: &Value, stat: &str) -> String {
    fmt_ms(v[stat].as_f64().unwrap_or_else(|| panic!("no {stat}")))
}

#[test]
fn the_page_shows_artillery_s_ack_latency_and_says_what_it_does_not_measure() {
    let (dir, results) = run_dir();
    let png = dir.path().join("run.png");
    let out = run_report(&ReportArgs { png: Some(png.clone()), ..args(&results) }).unwrap();
    assert_eq!(out.html_path, dir.path().join("run.report.html"));
    assert_eq!(out.metrics_path, None, "no analysis beside it yet");
    let html = std::fs::read_to_string(&out.html_path).unwrap();

    // The ack row holds the file's own numbers: count, min, mean, p50, p90, p95, p99, max.
    let rt = raw_response_time(&results);
    let row = format!(
        "ack (sent → HTTP answer: Artillery's http.response_time) {} {} {} {} {} {} {} {}",
        rt["count"],
        ms_of(&rt, "min"),
        ms_of(&rt, "mean"),
        ms_of(&rt, "p50"),
        ms_of(&rt, "p90"),
        ms_of(&rt, "p95"),
        ms_of(&rt, "p99"),
        ms_of(&rt, "max")
    );
    let table = text_of(&html, "client-latency-table");
    assert!(table.contains(&row), "want {row:?} in {table}");
    assert_eq!(text_of(&html, "card-ack-p95"), format!("ack p95 {} ms", ms_of(&rt, "p95")));
    assert_eq!(text_of(&html, "card-ack-p99"), format!("ack p99 {} ms", ms_of(&rt, "p99")));

    assert_eq!(text_of(&html, "verdict"), "NOT JUDGED", "Artillery's ensure verdict is not in its output");
    for card in ["card-e2e-p50", "card-e2e-p95", "card-e2e-p99", "card-lost", "card-responses"] {
        assert!(text_of(&html, card).ends_with("not measured"), "{card}: {}", text_of(&html, card));
    }
    assert!(text_of(&html, "artillery-note").contains("response_url"));
    assert!(!html.contains("id=\"chart-e2e-latency\""), "no line at zero for a figure never measured");
    assert!(html.contains("Not measured: Artillery does not receive"));
    assert!(html.contains("id=\"chart-ack-latency\"") && html.contains("id=\"chart-rate\""));
    let rate = text_of(&html, "chart-rate");
    assert!(!rate.to_lowercase().contains("target"), "Artillery records no target rate: {rate}");
    let config = text_of(&html, "config");
    assert!(config.contains("no E2E figures") && config.contains("http.response_time"), "{config}");
    assert!(text_of(&html, "thresholds").contains("does not record its ensure checks"));
    let commands = text_of(&html, "command-table");
    assert!(commands.contains(&format!("echo {} 0 n/a n/a", rt["count"])), "metrics-by-endpoint's figures: {commands}");
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
}

#[test]
fn the_bot_log_analysed_beside_it_fills_the_server_side() {
    let (dir, results) = run_dir();
    let analyze = chatops_analyze::AnalyzeArgs {
        inputs: vec![dir.path().join("bot.log")],
        from_results: Some(results.clone()),
        buffer: std::time::Duration::from_secs(30),
        since: None,
        start: None,
        end: None,
        bin: None,
        requests: None,
        json: None,
        no_json: false,
        threads: None,
        block_kib: None,
    };
    let analysed = chatops_analyze::run_analyze_to(&analyze, &mut Vec::new()).unwrap();
    assert_eq!(analysed.json_path, Some(dir.path().join("run.metrics.json")));
    let out = run_report(&args(&results)).unwrap();
    assert_eq!(out.metrics_path, Some(dir.path().join("run.metrics.json")));
    let html = std::fs::read_to_string(&out.html_path).unwrap();
    assert!(html.contains("id=\"chart-service-latency\"") && html.contains("id=\"stages-table\""));
    let requests = raw_response_time(&results)["count"].as_u64().unwrap();
    let server = text_of(&html, "server-errors-table");
    assert!(server.contains(&format!("{requests} requests, 0 errors")), "{server}");
}

#[test]
fn a_slower_artillery_run_against_it_as_baseline_is_a_regression_section() {
    let (dir, results) = run_dir();
    let slow = dir.path().join("slow.json");
    let out = run_report(&ReportArgs { baseline: Some(results.clone()), ..args(&slow) }).unwrap();
    let c = out.comparison.expect("a comparison");
    assert_eq!(c.verdict, "regression");
    assert!(c.regressions.iter().any(|r| r == "ack.p95"), "{:?}", c.regressions);
    let html = std::fs::read_to_string(&out.html_path).unwrap();
    assert_eq!(text_of(&html, "baseline-verdict"), "regression");
}

#[test]
fn damaged_artillery_files_are_refused_with_their_name() {
    let (dir, results) = run_dir();
    let real = std::fs::read(&results).unwrap();
    let cut = dir.path().join("cut.json");
    std::fs::write(&cut, &real[..real.len() * 2 / 3]).unwrap();
    let wrong = dir.path().join("wrong.json");
    let mut v: Value = serde_json::from_slice(&real).unwrap();
    v["intermediate"][0]["counters"]["http.requests"] = "many".into();
    std::fs::write(&wrong, serde_json::to_vec(&v).unwrap()).unwrap();
    let huge = dir.path().join("huge.json");
    std::fs::File::create(&huge).unwrap().set_len((256 << 20) + 1).unwrap();

    for (path, want) in
        [(&cut, "truncated"), (&wrong, "intermediate[0].counters.http.requests"), (&huge, "256 MiB limit")]
    {
        let err = run_report(&args(path)).unwrap_err();
        assert!(matches!(err, ReportError::Results { .. }), "{err:?}");
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        assert!(text.contains(&path.display().to_string()) && text.contains(want), "want {want:?}: {text}");
        assert!(!dir.path().join(format!("{}.report.html", path.file_stem().unwrap().to_string_lossy())).exists());
    }
}
