//! `run_report` on real files in a temporary directory: default paths, explicit and disabled
//! metrics, the baseline section, and every way an input can be wrong.

use std::path::PathBuf;

use chatops_report::{ReportArgs, ReportError, run_report};

use crate::support::{self, args};

/// A temp dir holding the fixture run as `test-1.json` and `test-1.metrics.json`.
fn run_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("test-1.json");
    std::fs::copy(support::fixture_dir().join("run/results.json"), &results).unwrap();
    std::fs::copy(support::fixture_dir().join("run/results.metrics.json"), dir.path().join("test-1.metrics.json"))
        .unwrap();
    (dir, results)
}

#[test]
fn writes_the_report_beside_the_results_with_the_metrics_found_there() {
    let (dir, results) = run_dir();
    let png = dir.path().join("out.png");
    let out = run_report(&ReportArgs { png: Some(png.clone()), ..args(&results) }).unwrap();
    assert_eq!(out.html_path, dir.path().join("test-1.report.html"));
    assert_eq!(out.metrics_path, Some(dir.path().join("test-1.metrics.json")));
    assert_eq!(out.png_path, Some(png.clone()));
    assert!(!out.test_passed, "the fixture run failed its `lost` threshold");
    let html = std::fs::read_to_string(&out.html_path).unwrap();
    assert!(html.contains("id=\"chart-e2e-breakdown\""), "server side filled from the default metrics");
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn no_metrics_leaves_the_server_side_out_and_explicit_metrics_win() {
    let (dir, results) = run_dir();
    let html_path = dir.path().join("r.html");
    let out = run_report(&ReportArgs { no_metrics: true, output: Some(html_path.clone()), ..args(&results) }).unwrap();
    assert_eq!(out.metrics_path, None);
    assert!(std::fs::read_to_string(&html_path).unwrap().contains("id=\"no-metrics\""));

    let other = dir.path().join("elsewhere.json");
    std::fs::rename(dir.path().join("test-1.metrics.json"), &other).unwrap();
    let out = run_report(&ReportArgs { output: Some(html_path.clone()), ..args(&results) }).unwrap();
    assert_eq!(out.metrics_path, None, "no default file, no server side");
    let out =
        run_report(&ReportArgs { metrics: Some(other.clone()), output: Some(html_path.clone()), ..args(&results) })
            .unwrap();
    assert_eq!(out.metrics_path, Some(other));
    assert!(std::fs::read_to_string(&html_path).unwrap().contains("id=\"chart-service-latency\""));
}

#[test]
fn baseline_adds_the_comparison_computed_by_compare() {
    let (dir, results) = run_dir();
    let base_dir = dir.path().join("base");
    std::fs::create_dir(&base_dir).unwrap();
    for f in ["results.json", "results.metrics.json"] {
        std::fs::copy(support::fixture_dir().join("baseline").join(f), base_dir.join(f)).unwrap();
    }
    let out = run_report(&ReportArgs { baseline: Some(base_dir.join("results.json")), ..args(&results) }).unwrap();
    let c = out.comparison.expect("a comparison");
    assert!(c.figures.iter().any(|f| f.name.starts_with("stage.")), "server figures from both metrics files");
    let html = std::fs::read_to_string(&out.html_path).unwrap();
    assert!(html.contains(&format!("id=\"baseline-verdict\">{}</span>", c.verdict)));
}

#[test]
fn the_baseline_section_is_the_library_comparison_under_the_users_tolerance() {
    let (dir, results) = run_dir();
    let base_dir = dir.path().join("base");
    std::fs::create_dir(&base_dir).unwrap();
    for f in ["results.json", "results.metrics.json"] {
        std::fs::copy(support::fixture_dir().join("baseline").join(f), base_dir.join(f)).unwrap();
    }
    let baseline = base_dir.join("results.json");
    let (base, cand) = chatops_analyze::Run::load_pair(&baseline, &results).unwrap();
    for percent in [10.0, 1000.0] {
        let tolerance = chatops_analyze::args::Percent(percent / 100.0);
        let out = run_report(&ReportArgs { baseline: Some(baseline.clone()), tolerance, ..args(&results) }).unwrap();
        let rules = chatops_analyze::Rules { tolerance: percent / 100.0, ..chatops_analyze::Rules::default() };
        let expected = chatops_analyze::compare(&base, &cand, &rules);
        assert_eq!(out.comparison.as_ref(), Some(&expected), "tolerance {percent}%");
    }
    // The fixture run regressed against its baseline at the default 10 %; a 1000 % tolerance
    // forgives every relative change, so the user's flag must have reached the comparison.
    let strict = chatops_analyze::compare(&base, &cand, &chatops_analyze::Rules::default());
    let lax = chatops_analyze::compare(&base, &cand, &chatops_analyze::Rules { tolerance: 10.0, ..Default::default() });
    assert!(strict.regressed(), "fixture baseline vs run regresses at 10 %: {:?}", strict.regressions);
    assert!(
        lax.regressions.len() < strict.regressions.len(),
        "{} regressions at 1000 % vs {} at 10 %",
        lax.regressions.len(),
        strict.regressions.len()
    );
}

#[test]
fn malformed_inputs_are_reported_with_their_path() {
    let (dir, results) = run_dir();
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{not json").unwrap();

    let err = run_report(&args(&junk)).unwrap_err();
    assert!(matches!(&err, ReportError::Results { path, .. } if *path == junk), "{err:?}");

    let err = run_report(&args(&dir.path().join("missing.json"))).unwrap_err();
    assert!(matches!(err, ReportError::Results { .. }), "{err:?}");

    let err = run_report(&ReportArgs { metrics: Some(junk.clone()), ..args(&results) }).unwrap_err();
    assert!(matches!(&err, ReportError::Metrics { path, .. } if *path == junk), "{err:?}");

    // A results file passed as the metrics summary is refused, not half-rendered.
    let err = run_report(&ReportArgs { metrics: Some(results.clone()), ..args(&results) }).unwrap_err();
    assert!(matches!(err, ReportError::Metrics { .. }), "{err:?}");

    let err = run_report(&ReportArgs { baseline: Some(junk.clone()), ..args(&results) }).unwrap_err();
    assert!(matches!(&err, ReportError::Baseline { path, .. } if *path == junk), "{err:?}");

    let nowhere = dir.path().join("no/such/dir/report.html");
    let err = run_report(&ReportArgs { output: Some(nowhere.clone()), ..args(&results) }).unwrap_err();
    assert!(matches!(&err, ReportError::Output { path, .. } if *path == nowhere), "{err:?}");
    assert!(format!("{err}").contains("report.html"));
}

#[test]
fn a_newer_schema_is_refused_instead_of_misread() {
    let (dir, results) = run_dir();
    let text = std::fs::read_to_string(&results).unwrap().replacen("\"schemaVersion\": 1", "\"schemaVersion\": 99", 1);
    let newer = dir.path().join("newer.json");
    std::fs::write(&newer, text).unwrap();
    let err = run_report(&args(&newer)).unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains("newer than this tool understands"), "{chain}");
}

#[test]
fn hostile_and_oversized_files_render() {
    let dir = tempfile::tempdir().unwrap();
    let (r, m, _) = support::hostile();
    let results = dir.path().join("hostile.json");
    std::fs::write(&results, serde_json::to_vec(&r).unwrap()).unwrap();
    std::fs::write(dir.path().join("hostile.metrics.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let out = run_report(&args(&results)).unwrap();
    let html = std::fs::read_to_string(out.html_path).unwrap();
    assert_eq!(html.matches("<script").count(), 1);

    let big = dir.path().join("big.json");
    std::fs::write(&big, serde_json::to_vec(&support::oversized()).unwrap()).unwrap();
    assert!(std::fs::metadata(&big).unwrap().len() > 10 << 20, "the oversized fixture is large");
    let out = run_report(&ReportArgs { png: Some(dir.path().join("big.png")), ..args(&big) }).unwrap();
    assert!(std::fs::metadata(out.html_path).unwrap().len() < 12 << 20);
}
