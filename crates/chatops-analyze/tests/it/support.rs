//! Shared helpers: fixture paths, argument parsing through clap as the `chatops` binary
//! does, and temporary copies of fixtures for tests that write beside their inputs.

use std::path::{Path, PathBuf};

use chatops_analyze::{AnalyzeArgs, AnalyzeOutcome, CompareArgs, CompareOutcome};
use clap::Parser;

#[derive(Debug, Parser)]
enum Cli {
    Analyze(AnalyzeArgs),
    Compare(CompareArgs),
}

pub(crate) fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

pub(crate) fn analyze_args(args: &[&str]) -> AnalyzeArgs {
    match Cli::try_parse_from(std::iter::once("chatops").chain(std::iter::once("analyze")).chain(args.iter().copied()))
    {
        Ok(Cli::Analyze(a)) => a,
        other => panic!("bad analyze args {args:?}: {other:?}"),
    }
}

pub(crate) fn compare_args(args: &[&str]) -> CompareArgs {
    match Cli::try_parse_from(std::iter::once("chatops").chain(std::iter::once("compare")).chain(args.iter().copied()))
    {
        Ok(Cli::Compare(c)) => c,
        other => panic!("bad compare args {args:?}: {other:?}"),
    }
}

/// Runs `chatops analyze ARGS`, returning the outcome and what it printed.
pub(crate) fn analyze(args: &[&str]) -> (AnalyzeOutcome, String) {
    let mut out = Vec::new();
    let outcome = chatops_analyze::run_analyze_to(&analyze_args(args), &mut out).expect("analyze runs");
    (outcome, String::from_utf8(out).unwrap())
}

/// Runs `chatops compare ARGS`, returning the outcome and what it printed.
pub(crate) fn compare(args: &[&str]) -> Result<(CompareOutcome, String), chatops_analyze::CompareError> {
    let mut out = Vec::new();
    let outcome = chatops_analyze::run_compare_to(&compare_args(args), &mut out)?;
    Ok((outcome, String::from_utf8(out).unwrap()))
}

/// Copies a fixture folder into a fresh temporary folder.
pub(crate) fn copy_fixture_dir(rel: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(rel)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
