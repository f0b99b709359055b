//! Run with `cargo run -p chatops-report --example render_fixture -- docs/report`
//!
//! Renders the committed fixture run (results, metrics summary, and the baseline run for the
//! diff section) into OUT_DIR/report.html and OUT_DIR/report.png: the pictures in the README.
//! The same thing `chatops report tests/fixtures/run/results.json --baseline
//! tests/fixtures/baseline/results.json --png report.png` does once the binary is wired.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failed unwrap is the failure report

use std::path::PathBuf;

use chatops_report::{ReportArgs, run_report};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "docs/report".into()));
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::create_dir_all(&out)?;
    let outcome = run_report(&ReportArgs {
        results: fixtures.join("run/results.json"),
        metrics: None,
        no_metrics: false,
        output: Some(out.join("report.html")),
        png: Some(out.join("report.png")),
        baseline: Some(fixtures.join("baseline/results.json")),
        tolerance: chatops_analyze::args::Percent(chatops_analyze::Rules::DEFAULT.tolerance),
    })?;
    println!("wrote {}", outcome.html_path.display());
    if let Some(p) = outcome.png_path {
        println!("wrote {}", p.display());
    }
    Ok(())
}
