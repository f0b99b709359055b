//! Command-line arguments of `chatops analyze` and `chatops compare` (clap derive), with the
//! value parsers for durations (`30s`, `15m`), instants (RFC 3339 or epoch ms) and
//! percentages (`10%`). The `chatops` binary embeds these structs as its subcommands' args.

use std::path::PathBuf;
use std::time::Duration;

use chatops_core::time::parse_rfc3339_ns;

use crate::compare::Rules;

/// `chatops analyze`: per-stage statistics from the bot's JSON logs.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Exit status: 0 when the analysis ran, 2 on error (unreadable input, bad arguments).")]
pub struct AnalyzeArgs {
    /// Log files, folders (read recursively), gzip files, or `-` for stdin.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,

    /// Window = the load test's start .. end + --buffer, from its results file. Without INPUTs,
    /// reads the bot log the results name (`test.botLog`, relative to the results file), and
    /// joins with their requests file (`test.requestsFile`) unless --requests is given. Also
    /// takes Artillery's `--output` JSON (window: firstCounterAt .. lastCounterAt; give the
    /// bot's log as INPUT, Artillery's file names none).
    #[arg(long, value_name = "RESULTS_JSON")]
    pub from_results: Option<PathBuf>,

    /// Grace period after the test end for late lines (with --from-results).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub buffer: Duration,

    /// Only lines from the last DURATION (e.g. `15m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with_all = ["from_results", "start", "end"])]
    pub since: Option<Duration>,

    /// Only lines at or after this instant (RFC 3339 or epoch milliseconds).
    #[arg(long, value_name = "INSTANT", value_parser = parse_instant_ms, conflicts_with = "from_results")]
    pub start: Option<i64>,

    /// Only lines at or before this instant (RFC 3339 or epoch milliseconds).
    #[arg(long, value_name = "INSTANT", value_parser = parse_instant_ms, conflicts_with = "from_results")]
    pub end: Option<i64>,

    /// Also report counts and latencies per time bin of this width (e.g. `10s`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub bin: Option<Duration>,

    /// Join with the load generator's per-request records (`loadtest --record-requests`).
    #[arg(long, value_name = "REQUESTS_NDJSON")]
    pub requests: Option<PathBuf>,

    /// Write the metrics summary JSON to FILE (`-`: print it instead of the table).
    /// Default with --from-results X.json: X.metrics.json beside it.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Do not write the default X.metrics.json.
    #[arg(long, conflicts_with = "json")]
    pub no_json: bool,

    /// Threads that parse and aggregate (default: one per core, at most 4). The result is the
    /// same for any number; a join (--requests) always runs on one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,

    /// KiB of lines a thread takes at a time (a tuning knob for measuring; hidden).
    #[arg(long, hide = true, value_name = "KIB", value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    pub block_kib: Option<u32>,
}

/// `chatops compare`: baseline vs candidate, with a regression verdict for CI.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Exit status: 0 when no figure got worse beyond the tolerance, 1 on a regression, 2 on error.")]
pub struct CompareArgs {
    /// Baseline: a load-test results file, ours or Artillery's `--output` JSON (its
    /// X.metrics.json beside it adds per-stage figures), or a metrics summary.
    #[arg(value_name = "BASELINE")]
    pub baseline: PathBuf,

    /// Candidate, of the same kind as the baseline (a results file of either tool, or a metrics
    /// summary).
    #[arg(value_name = "CANDIDATE")]
    pub candidate: PathBuf,

    /// Relative change beyond which a figure counts as better or worse (`10%`, or `10`).
    #[arg(long, value_name = "PERCENT", default_value_t = Percent(Rules::DEFAULT.tolerance))]
    pub tolerance: Percent,

    /// Latency changes smaller than this never count, whatever their relative size, so that
    /// sub-millisecond figures do not flap.
    #[arg(long, value_name = "DURATION", default_value_t = Rules::DEFAULT.min_latency_change.into(), value_parser = parse_human_duration)]
    pub min_latency_change: humantime::Duration,

    /// Error-rate changes smaller than this many percentage points never count.
    #[arg(long, value_name = "POINTS", default_value_t = Rules::DEFAULT.min_rate_change_points, value_parser = parse_points)]
    pub min_rate_change: f64,

    /// Write the comparison as JSON to FILE (`-`: print it instead of the table).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

impl CompareArgs {
    /// The judging rules these flags describe.
    pub fn rules(&self) -> Rules {
        Rules {
            tolerance: self.tolerance.ratio(),
            min_latency_change: self.min_latency_change.into(),
            min_rate_change_points: self.min_rate_change,
        }
    }
}

/// A percentage flag: typed as `10%` or `10`, held as the ratio (0.10), shown as `10%` so that
/// clap's `default_value_t` round-trips through [`parse_percent`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

impl Percent {
    /// The ratio: 0.10 for `10%`.
    pub fn ratio(self) -> f64 {
        self.0
    }
}

impl std::fmt::Display for Percent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}%", self.0 * 100.0)
    }
}

impl std::str::FromStr for Percent {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_percent(s).map(Percent)
    }
}

/// [`parse_duration`] as humantime's `Duration`, whose `Display` round-trips (for
/// `default_value_t`).
pub fn parse_human_duration(s: &str) -> Result<humantime::Duration, String> {
    parse_duration(s).map(Into::into)
}

/// `30s`, `15m`, `1h30m`, `500ms` (humantime's syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    chatops_core::time::parse_duration(s)
}

/// An instant: RFC 3339 (`2026-11-28T12:00:00Z`) or epoch milliseconds. Returns epoch ms.
pub fn parse_instant_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Some(ns) = parse_rfc3339_ns(s) {
        return Ok(ns.div_euclid(1_000_000));
    }
    match s.parse::<i64>() {
        Ok(ms) if ms >= 0 => Ok(ms),
        _ => Err(format!("`{s}` is neither an RFC 3339 instant (2026-11-28T12:00:00Z) nor epoch milliseconds")),
    }
}

/// `10%` or `10` → 0.10. Between 0 and 1000 %.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let t = t.strip_suffix('%').unwrap_or(t).trim();
    match t.parse::<f64>() {
        Ok(p) if p.is_finite() && (0.0..=1000.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!("`{s}` is not a percentage like 10%")),
    }
}

/// Percentage points, between 0 and 100.
fn parse_points(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if p.is_finite() && (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("`{s}` is not a number of percentage points between 0 and 100")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    enum Cli {
        Analyze(AnalyzeArgs),
        Compare(CompareArgs),
    }

    #[test]
    fn parses_durations_instants_and_percentages() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5s").is_err());
        assert_eq!(parse_instant_ms("1970-01-01T00:00:01.5Z"), Ok(1500));
        assert_eq!(parse_instant_ms("1764331200000"), Ok(1_764_331_200_000));
        assert!(parse_instant_ms("yesterday").is_err());
        assert!(parse_instant_ms("-1").is_err());
        assert_eq!(parse_percent("10%"), Ok(0.10));
        assert_eq!(parse_percent("2.5"), Ok(0.025));
        for bad in ["-1%", "ten", "NaN", "1e9"] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn analyze_defaults_and_conflicts() {
        let Cli::Analyze(a) = Cli::try_parse_from(["x", "analyze", "bot.log", "-"]).unwrap() else { unreachable!() };
        assert_eq!(a.inputs, [PathBuf::from("bot.log"), PathBuf::from("-")]);
        assert_eq!(a.buffer, Duration::from_secs(30));
        assert!(Cli::try_parse_from(["x", "analyze", "--since", "15m", "--from-results", "r.json"]).is_err());
        assert!(Cli::try_parse_from(["x", "analyze", "--start", "0", "--from-results", "r.json"]).is_err());
        assert!(Cli::try_parse_from(["x", "analyze", "--json", "a", "--no-json"]).is_err());
        assert!(Cli::try_parse_from(["x", "analyze", "--bin", "often"]).is_err());
    }

    #[test]
    fn compare_defaults() {
        let Cli::Compare(c) = Cli::try_parse_from(["x", "compare", "a.json", "b.json"]).unwrap() else {
            unreachable!()
        };
        assert_eq!(c.rules(), Rules::default(), "clap's defaults are the library's");
        assert_eq!((c.tolerance.ratio(), Duration::from(c.min_latency_change)), (0.10, Duration::from_millis(1)));
        let c =
            Cli::try_parse_from(["x", "compare", "a", "b", "--tolerance", "5", "--min-latency-change", "2ms"]).unwrap();
        let Cli::Compare(c) = c else { unreachable!() };
        assert_eq!((c.rules().tolerance, c.rules().min_latency_change), (0.05, Duration::from_millis(2)));
        assert!(Cli::try_parse_from(["x", "compare", "a.json"]).is_err());
    }
}
