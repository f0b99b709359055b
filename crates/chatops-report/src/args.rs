//! Command-line arguments of `chatops report` (clap derive). The `chatops` binary embeds
//! [`ReportArgs`] as the subcommand's args and calls [`crate::run_report`].

use std::path::PathBuf;

use chatops_analyze::Rules;
use chatops_analyze::args::Percent;

/// `chatops report`: one self-contained HTML file (and optionally a PNG) from a load test's
/// results and, when present, the bot's metrics summary.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Exit status: 0 when the report was written (whatever the test's verdict), 2 on error.")]
pub struct ReportArgs {
    /// The load-test results file (`chatops loadtest` writes results/test-*.json), or
    /// Artillery's (`artillery run --output out.json`; it has no E2E figures).
    #[arg(value_name = "RESULTS_JSON")]
    pub results: PathBuf,

    /// The metrics summary from `chatops analyze`. Default: X.metrics.json beside
    /// RESULTS_JSON (X.json), when that file exists.
    #[arg(long, value_name = "METRICS_JSON")]
    pub metrics: Option<PathBuf>,

    /// Leave the server side out even when X.metrics.json exists.
    #[arg(long, conflicts_with = "metrics")]
    pub no_metrics: bool,

    /// Where to write the HTML report. Default: X.report.html beside RESULTS_JSON.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Also write the charts as one PNG page (rendered without a browser).
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,

    /// Add a section comparing this run with a baseline results file (as `chatops compare
    /// BASELINE RESULTS_JSON` would; metrics summaries beside both add the server figures).
    #[arg(long, value_name = "BASELINE_JSON")]
    pub baseline: Option<PathBuf>,

    /// Relative change beyond which a figure counts as worse in the baseline section.
    #[arg(long, value_name = "PERCENT", default_value_t = Percent(Rules::DEFAULT.tolerance), requires = "baseline")]
    pub tolerance: Percent,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ReportArgs,
    }

    #[test]
    fn parses_the_documented_forms() {
        let a = Cli::try_parse_from(["report", "r.json", "-o", "out.html", "--png", "out.png"]).unwrap().args;
        assert_eq!(a.results, PathBuf::from("r.json"));
        assert_eq!(a.output, Some(PathBuf::from("out.html")));
        assert_eq!(a.png, Some(PathBuf::from("out.png")));
        assert_eq!(a.tolerance.ratio(), Rules::default().tolerance);
        let a = Cli::try_parse_from(["report", "r.json", "--baseline", "b.json", "--tolerance", "5%"]).unwrap().args;
        assert_eq!((a.baseline, a.tolerance.ratio()), (Some(PathBuf::from("b.json")), 0.05));
    }

    #[test]
    fn rejects_contradictions_and_bad_values() {
        assert!(Cli::try_parse_from(["report"]).is_err(), "results file is required");
        assert!(Cli::try_parse_from(["report", "r.json", "--metrics", "m.json", "--no-metrics"]).is_err());
        assert!(Cli::try_parse_from(["report", "r.json", "--tolerance", "5%"]).is_err(), "tolerance needs a baseline");
        assert!(Cli::try_parse_from(["report", "r.json", "--baseline", "b", "--tolerance", "lots"]).is_err());
    }
}
