//! `chatops report` end to end: read the results, find the metrics summary (given, or
//! `X.metrics.json` beside `X.json`), compare with a baseline when asked, render, and write
//! each file through a temporary name and a rename so a reader never sees half a report.

use std::path::{Path, PathBuf};

use chatops_analyze::analyze::{default_metrics_path, read_results};
use chatops_analyze::compare::Comparison;
use chatops_analyze::{MetricsSummary, Rules, Run, compare};

use crate::args::ReportArgs;
use crate::error::ReportError;
use crate::html::render_html;
use crate::png::render_png;

/// What a successful `chatops report` wrote.
#[derive(Debug, Clone)]
pub struct ReportOutcome {
    pub html_path: PathBuf,
    pub png_path: Option<PathBuf>,
    /// The metrics summary that filled the server side, if any.
    pub metrics_path: Option<PathBuf>,
    /// The baseline comparison, with `--baseline`.
    pub comparison: Option<Comparison>,
    /// The load test's own verdict (every strict threshold held). Informative: the report
    /// was written either way.
    pub test_passed: bool,
}

/// `results/test-1.json` → `results/test-1.report.html`.
pub fn default_report_path(results: &Path) -> PathBuf {
    let stem = results.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "results".into());
    results.with_file_name(format!("{stem}.report.html"))
}

/// Runs `chatops report`: writes the HTML (and the PNG with `--png`).
pub fn run_report(args: &ReportArgs) -> Result<ReportOutcome, ReportError> {
    let results =
        read_results(&args.results).map_err(|source| ReportError::Results { path: args.results.clone(), source })?;
    let metrics_path = match (&args.metrics, args.no_metrics) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => None,
        (None, false) => Some(default_metrics_path(&args.results)).filter(|p| p.is_file()),
    };
    let metrics = match &metrics_path {
        Some(p) => Some(MetricsSummary::read(p).map_err(|source| ReportError::Metrics { path: p.clone(), source })?),
        None => None,
    };
    let comparison = match &args.baseline {
        Some(b) => {
            // The same judgement as `chatops compare BASELINE RESULTS_JSON`, with the user's
            // tolerance and the library's other defaults.
            let rules = Rules { tolerance: args.tolerance.ratio(), ..Rules::default() };
            let (base, cand) =
                Run::load_pair(b, &args.results).map_err(|source| ReportError::Baseline { path: b.clone(), source })?;
            Some(compare(&base, &cand, &rules))
        }
        None => None,
    };

    let html = render_html(&results, metrics.as_ref(), comparison.as_ref());
    let html_path = args.output.clone().unwrap_or_else(|| default_report_path(&args.results));
    write_atomic(&html_path, html.as_bytes())?;
    let png_path = match &args.png {
        Some(p) => {
            let bytes = render_png(&results, metrics.as_ref(), comparison.as_ref())?;
            write_atomic(p, &bytes)?;
            Some(p.clone())
        }
        None => None,
    };
    Ok(ReportOutcome { html_path, png_path, metrics_path, comparison, test_passed: results.passed })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let err = |source| ReportError::Output { path: path.to_path_buf(), source };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_report_sits_beside_the_results() {
        assert_eq!(default_report_path(Path::new("results/test-1.json")), PathBuf::from("results/test-1.report.html"));
    }
}
