//! Artillery's `--output` JSON as a results file: the committed fixtures are real runs
//! (`tests/fixtures/artillery/README.md` says how they were made) of Artillery 2.0.21 against
//! the bot (with the bot's own log beside) and against a deliberately slow stand-in. They go
//! through `analyze --from-results`, `compare` (with each other and with our results), and
//! every malformed, truncated, oversized or wrong-typed variant is a clear error.

use std::path::{Path, PathBuf};

use chatops_analyze::analyze::read_results;
use chatops_analyze::artillery::is_artillery;
use chatops_analyze::compare::Verdict;
use chatops_analyze::{AnalyzeError, CompareError, ResultsError};
use serde_json::Value;

use crate::support::{analyze, analyze_args, compare, copy_fixture_dir, fixture, s};

const RUN: &str = "artillery/artillery-echo-light.json";
const SLOW: &str = "artillery/artillery-echo-light-slow.json";

fn fixture_json(rel: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(rel)).unwrap()).unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn f64_at(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer).and_then(Value::as_f64).unwrap_or_else(|| panic!("no number at {pointer}"))
}

#[test]
fn the_real_file_converts_with_the_fixture_s_own_numbers() {
    let raw = fixture_json(RUN);
    let r = read_results(&fixture(RUN)).unwrap();
    assert!(is_artillery(&r));
    let rt = "/aggregate/summaries/http.response_time";
    let a = r.summaries.ack;
    assert_eq!(a.count as f64, f64_at(&raw, &format!("{rt}/count")));
    for (ours, theirs) in [(a.p50, "p50"), (a.p95, "p95"), (a.p99, "p99"), (a.max, "max"), (a.mean, "mean")] {
        assert_eq!(ours, f64_at(&raw, &format!("{rt}/{theirs}")), "{theirs}");
    }
    assert_eq!(r.counters.requests as f64, f64_at(&raw, "/aggregate/counters/http.requests"));
    assert_eq!(r.counters.acks["200"] as f64, f64_at(&raw, "/aggregate/counters/http.codes.200"));
    assert_eq!(r.counters.scheduled as f64, f64_at(&raw, "/aggregate/counters/vusers.created"));
    assert_eq!(r.counters.n_errors(), 0);
    assert_eq!(r.test.start_ms as f64, f64_at(&raw, "/aggregate/firstCounterAt"));
    assert_eq!(r.test.end_ms as f64, f64_at(&raw, "/aggregate/lastCounterAt"));
    assert_eq!(r.summaries.first_response.count, 0, "Artillery never sees the answers");

    let periods = raw["intermediate"].as_array().unwrap();
    assert!(periods.len() >= 2, "the fixture's two phases span several periods");
    assert_eq!(r.time_series.points.len(), periods.len());
    assert_eq!(r.time_series.interval_ms, 10_000);
    let requests: Vec<u64> = r.time_series.points.iter().map(|p| p.requests).collect();
    let theirs: Vec<u64> = periods.iter().map(|p| p["counters"]["http.requests"].as_u64().unwrap_or(0)).collect();
    assert_eq!(requests, theirs);
    assert_eq!(requests.iter().sum::<u64>(), r.counters.requests);
    let p99s: Vec<f64> = r.time_series.points.iter().map(|p| p.ack_p99).collect();
    let theirs: Vec<f64> =
        periods.iter().map(|p| p["summaries"]["http.response_time"]["p99"].as_f64().unwrap()).collect();
    assert_eq!(p99s, theirs);

    assert_eq!(r.by_command.keys().collect::<Vec<_>>(), ["echo"], "the request's name, from metrics-by-endpoint");
    assert_eq!(r.by_command["echo"].requests, r.counters.requests);
}

#[test]
fn analyze_takes_its_window_from_the_artillery_file_and_reads_the_bot_log_given() {
    let dir = copy_fixture_dir("artillery");
    let results = dir.path().join("artillery-echo-light.json");
    let log = dir.path().join("echo-light.bot.log");
    let (out, table) = analyze(&["--from-results", s(&results), s(&log)]);
    let m = &out.summary;
    let r = read_results(&results).unwrap();
    assert_eq!(m.window.start_ms, Some(r.test.start_ms));
    assert_eq!(m.window.end_ms, Some(r.test.end_ms + 30_000), "lastCounterAt + the default buffer");
    assert_eq!(m.router.requests, r.counters.requests, "every request Artillery sent reached the bot once");
    assert_eq!(m.worker.attempts, r.counters.requests);
    assert_eq!(m.lines.outside_window, 0);
    assert!(m.notes.iter().any(|n| n.contains("Artillery")), "{:?}", m.notes);
    assert!(table.contains("Artillery"), "{table}");
    assert_eq!(out.json_path.as_deref(), Some(dir.path().join("artillery-echo-light.metrics.json").as_path()));
    assert!(out.json_path.unwrap().is_file());
}

#[test]
fn analyze_says_an_artillery_file_needs_the_bot_log_named() {
    let err = chatops_analyze::run_analyze_to(&analyze_args(&["--from-results", s(&fixture(RUN))]), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, AnalyzeError::NoInputBesideArtillery { .. }), "{err:?}");
    assert!(err.to_string().contains("BOT_LOG"), "{err}");
}

#[test]
fn the_same_artillery_run_twice_passes_and_a_slower_one_regresses() {
    let (same, _) = compare(&[s(&fixture(RUN)), s(&fixture(RUN))]).unwrap();
    assert_eq!(same.exit_code(), 0);
    assert!(same.comparison.regressions.is_empty());

    let (slow, table) = compare(&[s(&fixture(RUN)), s(&fixture(SLOW))]).unwrap();
    assert_eq!(slow.exit_code(), 1, "{table}");
    for name in ["ack.p50", "ack.p95", "ack.p99"] {
        assert!(slow.comparison.regressions.iter().any(|r| r == name), "{name}: {table}");
    }
    let figure = |name: &str| slow.comparison.figures.iter().find(|f| f.name == name).unwrap();
    for name in ["lost", "e2e_first_response.p95", "e2e_last_response.p99"] {
        assert_eq!(figure(name).verdict, Verdict::NotApplicable, "{name}: not measured by Artillery");
    }
    assert_eq!(
        figure("ack.p95").baseline,
        Some(f64_at(&fixture_json(RUN), "/aggregate/summaries/http.response_time/p95"))
    );
    assert!(table.contains("REGRESSION"), "{table}");
}

#[test]
fn artillery_and_our_results_compare_on_what_both_measured() {
    let ours = fixture("results-baseline.json");
    let (out, table) = compare(&[s(&ours), s(&fixture(RUN))]).unwrap();
    let c = &out.comparison;
    let figure = |name: &str| c.figures.iter().find(|f| f.name == name).unwrap();
    assert_eq!(figure("lost").verdict, Verdict::NotApplicable, "{table}");
    assert_eq!(figure("e2e_first_response.p50").verdict, Verdict::NotApplicable);
    assert_ne!(figure("ack.p95").verdict, Verdict::NotApplicable);
    assert_ne!(figure("throughput").verdict, Verdict::NotApplicable);
    assert!(!c.regressions.iter().any(|r| r == "lost" || r.starts_with("e2e")), "{:?}", c.regressions);
    assert_eq!(out.exit_code(), u8::from(!c.regressions.is_empty()));
}

#[test]
fn malformed_truncated_oversized_and_wrong_typed_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let real = std::fs::read(fixture(RUN)).unwrap();
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut v = fixture_json(RUN);
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let truncated = write(d, "cut.json", &real[..real.len() / 2]);
    let wrong_type =
        write(d, "wrong.json", &edited(&|v| v["aggregate"]["summaries"]["http.response_time"]["p99"] = "slow".into()));
    let no_intermediate = write(d, "half.json", &edited(&|v| drop(v.as_object_mut().unwrap().remove("intermediate"))));
    let not_an_object = write(d, "list.json", b"[1, 2, 3]");
    let neither = write(d, "other.json", br#"{"something": "else"}"#);
    let v1 = write(d, "v1.json", br#"{"aggregate": {"latency": {"median": 3}, "codes": {}}, "intermediate": []}"#);
    let oversized = d.join("huge.json");
    std::fs::File::create(&oversized).unwrap().set_len((256 << 20) + 1).unwrap();

    let cases: [(&Path, &str); 7] = [
        (&truncated, "truncated"),
        (&wrong_type, "aggregate.summaries.http.response_time.p99"),
        (&no_intermediate, "no `intermediate`"),
        (&not_an_object, "not valid JSON of the expected shape"),
        (&neither, "neither a"),
        (&v1, "Artillery 1.x"),
        (&oversized, "256 MiB"),
    ];
    for (path, want) in cases {
        for err in [
            error_chain(
                &chatops_analyze::run_analyze_to(
                    &analyze_args(&["--from-results", s(path), s(&fixture("known.log"))]),
                    &mut Vec::new(),
                )
                .unwrap_err(),
            ),
            error_chain(&compare(&[s(&fixture(RUN)), s(path)]).unwrap_err()),
        ] {
            assert!(err.contains(want), "{}: want {want:?} in {err}", path.display());
            assert!(err.contains(&path.display().to_string()), "names the file: {err}");
        }
    }
    assert!(matches!(read_results(&truncated), Err(ResultsError::Truncated(_))));
    assert!(matches!(read_results(&oversized), Err(ResultsError::TooLarge { .. })));
    assert!(matches!(compare(&[s(&fixture(RUN)), s(&neither)]), Err(CompareError::UnknownFile { .. })));
}

/// The error and its sources on one line, as the binary prints them (`error: {e:#}`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
