//! `chatops compare`: verdicts, directions, floors, exit codes, server figures from the
//! metrics summaries beside the results, and refusal of files it cannot compare.

use std::path::{Path, PathBuf};

use chatops_analyze::CompareError;
use chatops_analyze::compare::Verdict;
use serde_json::Value;

use crate::support::{analyze, compare, fixture, s};

fn baseline() -> Value {
    serde_json::from_slice(&std::fs::read(fixture("results-baseline.json")).unwrap()).unwrap()
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p
}

/// Writes the baseline and a candidate edited by `edit`; returns their paths.
fn pair(dir: &Path, edit: impl FnOnce(&mut Value)) -> (PathBuf, PathBuf) {
    let mut cand = baseline();
    edit(&mut cand);
    (write(dir, "base.json", &baseline()), write(dir, "cand.json", &cand))
}

fn verdict_of<'a>(c: &'a chatops_analyze::Comparison, name: &str) -> &'a chatops_analyze::compare::FigureChange {
    c.figures.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no figure {name}"))
}

#[test]
fn identical_runs_pass_with_every_figure_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (b, c) = pair(dir.path(), |_| {});
    let (out, table) = compare(&[s(&b), s(&c)]).unwrap();
    assert_eq!(out.exit_code(), 0);
    assert_eq!(out.comparison.figures.len(), 12);
    assert!(out.comparison.figures.iter().all(|f| f.verdict == Verdict::Same), "{table}");
    assert!(table.contains("verdict: pass"), "{table}");
}

#[test]
fn a_slower_ack_p95_is_a_regression_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (b, c) = pair(dir.path(), |v| v["summaries"]["ack"]["p95"] = 12.0.into());
    let (out, table) = compare(&[s(&b), s(&c)]).unwrap();
    assert_eq!(out.exit_code(), 1);
    assert_eq!(out.comparison.regressions, ["ack.p95"]);
    let f = verdict_of(&out.comparison, "ack.p95");
    assert_eq!((f.baseline, f.candidate, f.abs_change, f.rel_change), (Some(8.0), Some(12.0), Some(4.0), Some(0.5)));
    assert!(table.contains("REGRESSION in ack.p95"), "{table}");
}

#[test]
fn throughput_down_is_worse_and_up_is_better() {
    let dir = tempfile::tempdir().unwrap();
    let (b, c) = pair(dir.path(), |v| v["counters"]["requests"] = 800.into());
    let (out, _) = compare(&[s(&b), s(&c)]).unwrap();
    assert_eq!(verdict_of(&out.comparison, "throughput").verdict, Verdict::Worse);
    assert_eq!(out.exit_code(), 1);

    let (b, c) = pair(dir.path(), |v| v["counters"]["requests"] = 1200.into());
    let (out, _) = compare(&[s(&b), s(&c)]).unwrap();
    let f = verdict_of(&out.comparison, "throughput");
    assert_eq!((f.verdict, f.baseline, f.candidate), (Verdict::Better, Some(99.0), Some(119.0)));
    // The same 10 errors in more requests: the error rate improved too; nothing got worse.
    assert_eq!(out.exit_code(), 0, "{:?}", out.comparison.regressions);
}

#[test]
fn lower_latency_is_better_not_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let (b, c) = pair(dir.path(), |v| {
        v["summaries"]["lastResponse"]["p99"] = 45.0.into();
        v["counters"]["lost"] = 0.into();
    });
    let (out, _) = compare(&[s(&b), s(&c)]).unwrap();
    assert_eq!(verdict_of(&out.comparison, "e2e_last_response.p99").verdict, Verdict::Better);
    assert_eq!(verdict_of(&out.comparison, "lost").verdict, Verdict::Better);
    assert_eq!(out.exit_code(), 0);
}

#[test]
fn error_rate_and_lost_count_against_their_floors() {
    let dir = tempfile::tempdir().unwrap();
    // 10 → 11 errors: +0.1 point, +10 %: within the tolerance.
    let (b, c) = pair(dir.path(), |v| v["counters"]["errors"]["status_5xx"] = 11.into());
    assert_eq!(compare(&[s(&b), s(&c)]).unwrap().0.exit_code(), 0);
    // 10 → 12 errors: +0.2 point, +20 %.
    let (b, c) = pair(dir.path(), |v| v["counters"]["errors"]["status_5xx"] = 12.into());
    let (out, _) = compare(&[s(&b), s(&c)]).unwrap();
    assert_eq!(out.comparison.regressions, ["error_rate"]);
    // A wider rate floor absorbs it.
    let (out, _) = compare(&[s(&b), s(&c), "--min-rate-change", "0.5"]).unwrap();
    assert_eq!(out.exit_code(), 0);
    // 2 → 3 lost is +50 %.
    let (b, c) = pair(dir.path(), |v| v["counters"]["lost"] = 3.into());
    assert_eq!(compare(&[s(&b), s(&c)]).unwrap().0.comparison.regressions, ["lost"]);
}

#[test]
fn the_tolerance_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let (b, c) = pair(dir.path(), |v| v["summaries"]["ack"]["p99"] = 14.4.into()); // 12 → 14.4: +20 %
    assert_eq!(compare(&[s(&b), s(&c)]).unwrap().0.exit_code(), 1);
    assert_eq!(compare(&[s(&b), s(&c), "--tolerance", "25%"]).unwrap().0.exit_code(), 0);
    assert_eq!(compare(&[s(&b), s(&c), "--min-latency-change", "5ms"]).unwrap().0.exit_code(), 0);
}

/// Analyzes known.log into `X.metrics.json` beside `X.json`, then lets `edit` change it.
fn metrics_beside(results: &Path, edit: impl FnOnce(&mut Value)) {
    let json = results.with_file_name(format!("{}.metrics.json", results.file_stem().unwrap().to_str().unwrap()));
    analyze(&["--json", s(&json), s(&fixture("known.log"))]);
    let mut v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&json, serde_json::to_vec(&v).unwrap()).unwrap();
}

fn set_stage(v: &mut Value, field: &str, stat: &str, value: f64) {
    let stages = v["stages"].as_array_mut().unwrap();
    let st = stages.iter_mut().find(|s| s["metric"] == field).unwrap();
    st["stats"][stat] = value.into();
}

#[test]
fn adds_per_stage_figures_from_the_metrics_beside_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let (b, c) = pair(dir.path(), |_| {});
    metrics_beside(&b, |_| {});
    metrics_beside(&c, |v| {
        set_stage(v, "queueWaitMs", "p99", 2500.0); // 1095 → 2500 ms: a regression
        set_stage(v, "enqueueMs", "p99", 0.9); // 0.5 → 0.9 ms: +80 % but under the 1 ms floor
    });
    let (out, table) = compare(&[s(&b), s(&c)]).unwrap();
    let cmp = &out.comparison;
    assert!(cmp.baseline_metrics.as_deref().unwrap().ends_with("base.metrics.json"));
    assert_eq!(cmp.figures.len(), 12 + 2 + 11 * 3);
    assert_eq!(cmp.regressions, ["stage.queueWaitMs.p99"]);
    assert_eq!(verdict_of(cmp, "stage.enqueueMs.p99").verdict, Verdict::Same);
    assert_eq!(out.exit_code(), 1);
    assert!(table.contains("stage.queueWaitMs.p99 (ms)"), "{table}");
}

#[test]
fn metrics_beside_only_one_side_are_ignored_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let (b, c) = pair(dir.path(), |_| {});
    metrics_beside(&b, |_| {});
    let (out, _) = compare(&[s(&b), s(&c)]).unwrap();
    assert_eq!(out.comparison.figures.len(), 12);
    assert!(out.comparison.notes[0].contains("only one"), "{:?}", out.comparison.notes);
}

#[test]
fn compares_two_metrics_summaries_directly() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("a.json");
    let c = dir.path().join("b.json");
    analyze(&["--json", s(&b), s(&fixture("known.log"))]);
    analyze(&["--json", s(&c), s(&fixture("origin-cloudwatch.log"))]);
    let (out, _) = compare(&[s(&b), s(&c)]).unwrap();
    let f = verdict_of(&out.comparison, "stage.totalE2eMs.p50");
    assert_eq!((f.baseline, f.candidate, f.verdict), (Some(60.0), Some(800.0), Verdict::Worse));
    assert_eq!(verdict_of(&out.comparison, "stage.handlerMs.p50").verdict, Verdict::NotApplicable);
    assert_eq!(out.exit_code(), 1);
}

#[test]
fn writes_json_to_a_file_or_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let (b, c) = pair(dir.path(), |v| v["summaries"]["ack"]["p50"] = 10.0.into());
    let json = dir.path().join("cmp.json");
    let (out, table) = compare(&[s(&b), s(&c), "--json", s(&json)]).unwrap();
    let written: chatops_analyze::Comparison = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(written, out.comparison);
    assert_eq!(written.verdict, "regression");
    assert!(table.contains("figure"));
    let (out, printed) = compare(&[s(&b), s(&c), "--json", "-"]).unwrap();
    let parsed: chatops_analyze::Comparison = serde_json::from_str(&printed).unwrap();
    assert_eq!(parsed, out.comparison);
}

#[test]
fn refuses_what_it_cannot_compare() {
    let dir = tempfile::tempdir().unwrap();
    let results = write(dir.path(), "r.json", &baseline());
    let metrics = dir.path().join("m.json");
    analyze(&["--json", s(&metrics), s(&fixture("known.log"))]);
    let unknown = write(dir.path(), "u.json", &serde_json::json!({"foo": 1}));
    let garbage = dir.path().join("g.json");
    std::fs::write(&garbage, "not json at all").unwrap();
    let mut newer = baseline();
    newer["schemaVersion"] = 2.into();
    let newer = write(dir.path(), "n.json", &newer);

    assert!(matches!(compare(&[s(&results), s(&metrics)]), Err(CompareError::MixedKinds)));
    assert!(matches!(compare(&[s(&results), s(&unknown)]), Err(CompareError::UnknownFile { .. })));
    assert!(matches!(compare(&[s(&results), s(&garbage)]), Err(CompareError::Read { .. })));
    assert!(matches!(compare(&[s(&results), "/nonexistent.json"]), Err(CompareError::Read { .. })));
    let err = compare(&[s(&results), s(&newer)]).unwrap_err();
    assert!(format!("{err:?}").contains("NewerSchema"), "{err:?}");
}
