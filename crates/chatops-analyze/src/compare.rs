//! `chatops compare BASELINE CANDIDATE`: each key figure side by side with its absolute and
//! relative change, and a verdict for CI.
//!
//! Rules (also in `--help`):
//! - each figure knows which direction is worse: throughput down, error rate / lost /
//!   latency up;
//! - a figure is *worse* when it moved in the bad direction by more than the tolerance
//!   (relative to the baseline) **and** by more than its absolute floor: `--min-latency-change`
//!   (default 1 ms) for latencies, `--min-rate-change` (default 0.1 percentage point) for
//!   error rates, nothing for counts and throughput. The floor keeps sub-millisecond stages
//!   from flapping (0.2 → 0.3 ms is +50 % but means nothing). A baseline of 0 makes any change
//!   beyond the floor count.
//! - *better* is the mirror image; anything else is *same*; a figure missing on either side is
//!   *n/a* and never fails the verdict.
//! - the verdict is `regression` (exit 1) when any figure is worse, else `pass` (exit 0).
//!
//! Inputs are two load-test results files (ours or Artillery's `--output` JSON, in any mix; the
//! `X.metrics.json` beside each adds the server figures when both exist) or two metrics
//! summaries. Artillery measures no E2E latency and no lost commands: those figures are *n/a*
//! when either side is Artillery's.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use chatops_core::results::LoadTestResults;
use chatops_core::stats::LatencySummary;
use serde::{Deserialize, Serialize};

use crate::analyze::{MAX_RESULTS_BYTES, default_metrics_path, parse_results, write_json};
use crate::args::CompareArgs;
use crate::artillery::{self, KindProbe};
use crate::error::{CompareError, ResultsError};
use crate::metric::Metric;
use crate::summary::{METRICS_KIND, MetricsSummary};
use crate::table::fmt_ms;

/// Bumped when a field of [`Comparison`] changes meaning or disappears.
pub const COMPARISON_SCHEMA_VERSION: u32 = 1;

/// The thresholds a comparison judges by. [`Rules::default`] is what `chatops compare` and
/// `chatops report --baseline` use when no flag says otherwise (clap's defaults come from it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// Relative change (0.10 = 10 %) beyond which a figure counts as better or worse.
    pub tolerance: f64,
    /// Latency changes smaller than this never count.
    pub min_latency_change: Duration,
    /// Error-rate changes smaller than this many percentage points never count.
    pub min_rate_change_points: f64,
}

impl Rules {
    /// The defaults, as a constant so clap's `default_value_t` can name them.
    pub const DEFAULT: Rules =
        Rules { tolerance: 0.10, min_latency_change: Duration::from_millis(1), min_rate_change_points: 0.1 };

    fn latency_floor_ms(&self) -> f64 {
        self.min_latency_change.as_secs_f64() * 1000.0
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One side of a comparison: a load test's client results (optionally with the server's
/// metrics summary) or a metrics summary alone. The labels are what the comparison names the
/// inputs by (the CLI uses the paths).
#[derive(Debug, Clone)]
pub struct Run {
    pub label: String,
    pub results: Option<Box<LoadTestResults>>,
    /// The metrics summary and its label.
    pub metrics: Option<(String, MetricsSummary)>,
}

impl Run {
    /// A load test's results without server figures.
    pub fn from_results(label: impl Into<String>, results: LoadTestResults) -> Self {
        Self { label: label.into(), results: Some(Box::new(results)), metrics: None }
    }

    /// A metrics summary alone.
    pub fn from_metrics(label: impl Into<String>, summary: MetricsSummary) -> Self {
        let label = label.into();
        Self { label: label.clone(), results: None, metrics: Some((label, summary)) }
    }

    /// Adds the server figures to a results run.
    pub fn with_metrics(mut self, label: impl Into<String>, summary: MetricsSummary) -> Self {
        self.metrics = Some((label.into(), summary));
        self
    }

    /// Reads a results file (ours or Artillery's `--output` JSON, with the `X.metrics.json`
    /// beside it, when present) or a metrics summary, telling them apart by their content.
    pub fn load(path: &Path) -> Result<Self, CompareError> {
        let label = path.display().to_string();
        let read_err = |source| CompareError::Read { path: path.to_path_buf(), source };
        let bytes = crate::summary::read_capped(path, MAX_RESULTS_BYTES).map_err(read_err)?;
        let probe: KindProbe = serde_json::from_slice(&bytes).map_err(|e| read_err(ResultsError::from_json(e)))?;
        if probe.kind.as_deref() == Some(METRICS_KIND) {
            let m = MetricsSummary::read(path).map_err(read_err)?;
            return Ok(Self::from_metrics(label, m));
        }
        if probe.test.is_none() && !artillery::looks_like_artillery(&probe) {
            return Err(CompareError::UnknownFile { path: path.to_path_buf() });
        }
        let run = Self::from_results(label, parse_results(&bytes).map_err(read_err)?);
        let metrics_path = default_metrics_path(path);
        if !metrics_path.is_file() {
            return Ok(run);
        }
        let m = MetricsSummary::read(&metrics_path)
            .map_err(|source| CompareError::Read { path: metrics_path.clone(), source })?;
        Ok(run.with_metrics(metrics_path.display().to_string(), m))
    }
}

impl Run {
    /// [`Run::load`]s a baseline and a candidate file, refusing two of different kinds: given
    /// as files they are a mistake, not a partial comparison.
    pub fn load_pair(baseline: &Path, candidate: &Path) -> Result<(Run, Run), CompareError> {
        let base = Run::load(baseline)?;
        let cand = Run::load(candidate)?;
        if base.results.is_some() != cand.results.is_some() {
            return Err(CompareError::MixedKinds);
        }
        Ok((base, cand))
    }
}

/// Which way a figure should move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
}

/// How a figure fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Better,
    Same,
    Worse,
    /// Missing on one side.
    NotApplicable,
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FigureChange {
    /// Stable key, e.g. `ack.p95` or `stage.queueWaitMs.p99`.
    pub name: String,
    /// `ms`, `req/s`, `%`, `count`.
    pub unit: String,
    pub better: Better,
    pub baseline: Option<f64>,
    pub candidate: Option<f64>,
    /// `candidate - baseline`.
    pub abs_change: Option<f64>,
    /// `(candidate - baseline) / baseline`, absent when the baseline is 0.
    pub rel_change: Option<f64>,
    /// The absolute floor applied.
    pub floor: f64,
    pub verdict: Verdict,
}

/// The whole comparison (`--json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub schema_version: u32,
    pub baseline: String,
    pub candidate: String,
    /// Metrics summaries used for the server figures, if any.
    pub baseline_metrics: Option<String>,
    pub candidate_metrics: Option<String>,
    pub tolerance: f64,
    pub min_latency_change_ms: f64,
    pub min_rate_change_points: f64,
    pub figures: Vec<FigureChange>,
    /// Names of the figures that got worse.
    pub regressions: Vec<String>,
    /// `pass` or `regression`.
    pub verdict: String,
    /// E.g. the two runs used different profiles.
    pub notes: Vec<String>,
}

impl Comparison {
    /// Whether any figure got worse beyond the rules.
    pub fn regressed(&self) -> bool {
        !self.regressions.is_empty()
    }
}

/// Compares two runs by `rules`: client figures when both sides have results, server figures
/// when both have a metrics summary; a side missing one of them adds a note instead.
pub fn compare(baseline: &Run, candidate: &Run, rules: &Rules) -> Comparison {
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    match (&baseline.results, &candidate.results) {
        (Some(b), Some(c)) => {
            compare_results(rules, b, c, &mut figures);
            if b.test.profile != c.test.profile {
                notes.push(format!("different profiles: {} vs {}", b.test.profile, c.test.profile));
            }
        }
        (None, None) => {}
        _ => notes.push("only one side has load-test results: no client figures".into()),
    }
    let metrics = match (&baseline.metrics, &candidate.metrics) {
        (Some(b), Some(c)) => Some((b, c)),
        (None, None) => None,
        _ => {
            notes.push("a metrics summary sits beside only one of the results files: no server figures".into());
            None
        }
    };
    if let Some(((_, b), (_, c))) = metrics {
        compare_metrics(rules, b, c, &mut figures);
    }
    let regressions: Vec<String> =
        figures.iter().filter(|f| f.verdict == Verdict::Worse).map(|f| f.name.clone()).collect();
    Comparison {
        schema_version: COMPARISON_SCHEMA_VERSION,
        baseline: baseline.label.clone(),
        candidate: candidate.label.clone(),
        baseline_metrics: metrics.map(|((p, _), _)| p.clone()),
        candidate_metrics: metrics.map(|(_, (p, _))| p.clone()),
        tolerance: rules.tolerance,
        min_latency_change_ms: rules.latency_floor_ms(),
        min_rate_change_points: rules.min_rate_change_points,
        verdict: if regressions.is_empty() { "pass" } else { "regression" }.to_owned(),
        figures,
        regressions,
        notes,
    }
}

/// What `chatops compare` produced.
#[derive(Debug, Clone)]
pub struct CompareOutcome {
    pub comparison: Comparison,
    pub regressed: bool,
}

impl CompareOutcome {
    /// 1 on a regression, else 0.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.regressed)
    }
}

/// Runs `chatops compare`, printing the table (or the JSON, with `--json -`) on stdout.
pub fn run_compare(args: &CompareArgs) -> Result<CompareOutcome, CompareError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_compare_to(args, &mut out)
}

/// [`run_compare`] writing to `out` instead of stdout: loads both files, [`compare`]s them
/// and prints or writes the result.
pub fn run_compare_to(args: &CompareArgs, out: &mut dyn Write) -> Result<CompareOutcome, CompareError> {
    let (base, cand) = Run::load_pair(&args.baseline, &args.candidate)?;
    let comparison = compare(&base, &cand, &args.rules());
    let to_stdout = args.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if to_stdout {
        let json = serde_json::to_string_pretty(&comparison).expect("a comparison always serializes");
        writeln!(out, "{json}").map_err(CompareError::Stdout)?;
    } else {
        if let Some(p) = &args.json {
            write_json(p, &comparison).map_err(|source| CompareError::Output { path: p.clone(), source })?;
        }
        out.write_all(render_comparison(&comparison).as_bytes()).map_err(CompareError::Stdout)?;
    }
    Ok(CompareOutcome { regressed: comparison.regressed(), comparison })
}

/// Judges one figure by the rules in the module docs.
fn judge(tolerance: f64, floor: f64, better: Better, base: f64, cand: f64) -> Verdict {
    // `gain` > 0 means the candidate improved.
    let gain = match better {
        Better::Higher => cand - base,
        Better::Lower => base - cand,
    };
    if gain.abs() <= floor {
        return Verdict::Same;
    }
    let beyond = if base == 0.0 { true } else { gain.abs() / base.abs() > tolerance };
    match (beyond, gain > 0.0) {
        (false, _) => Verdict::Same,
        (true, true) => Verdict::Better,
        (true, false) => Verdict::Worse,
    }
}

fn figure(
    rules: &Rules,
    name: String,
    unit: &str,
    better: Better,
    floor: f64,
    base: Option<f64>,
    cand: Option<f64>,
) -> FigureChange {
    let (abs_change, rel_change, verdict) = match (base, cand) {
        (Some(b), Some(c)) => {
            (Some(c - b), (b != 0.0).then(|| (c - b) / b.abs()), judge(rules.tolerance, floor, better, b, c))
        }
        _ => (None, None, Verdict::NotApplicable),
    };
    FigureChange {
        name,
        unit: unit.to_owned(),
        better,
        baseline: base,
        candidate: cand,
        abs_change,
        rel_change,
        floor,
        verdict,
    }
}

/// A latency statistic, absent when the summary counted nothing.
fn stat(s: &LatencySummary, which: &str) -> Option<f64> {
    if s.count == 0 { None } else { s.get(which) }
}

fn compare_results(rules: &Rules, b: &LoadTestResults, c: &LoadTestResults, out: &mut Vec<FigureChange>) {
    out.push(figure(rules, "throughput".into(), "req/s", Better::Higher, 0.0, b.throughput(), c.throughput()));
    out.push(figure(
        rules,
        "error_rate".into(),
        "%",
        Better::Lower,
        rules.min_rate_change_points,
        Some(b.counters.error_rate() * 100.0),
        Some(c.counters.error_rate() * 100.0),
    ));
    // Artillery never sees the answers, so it has no lost commands to count (not zero).
    let lost = |r: &LoadTestResults| (!artillery::is_artillery(r)).then_some(r.counters.lost as f64);
    out.push(figure(rules, "lost".into(), "count", Better::Lower, 0.0, lost(b), lost(c)));
    for (name, bs, cs) in [
        ("ack", &b.summaries.ack, &c.summaries.ack),
        ("e2e_first_response", &b.summaries.first_response, &c.summaries.first_response),
        ("e2e_last_response", &b.summaries.last_response, &c.summaries.last_response),
    ] {
        for p in ["p50", "p95", "p99"] {
            out.push(figure(
                rules,
                format!("{name}.{p}"),
                "ms",
                Better::Lower,
                rules.latency_floor_ms(),
                stat(bs, p),
                stat(cs, p),
            ));
        }
    }
}

fn compare_metrics(rules: &Rules, b: &MetricsSummary, c: &MetricsSummary, out: &mut Vec<FigureChange>) {
    let rate = |requests: u64, r: f64| (requests > 0).then_some(r * 100.0);
    out.push(figure(
        rules,
        "server.router_error_rate".into(),
        "%",
        Better::Lower,
        rules.min_rate_change_points,
        rate(b.router.requests, b.router.error_rate),
        rate(c.router.requests, c.router.error_rate),
    ));
    out.push(figure(
        rules,
        "server.worker_failure_rate".into(),
        "%",
        Better::Lower,
        rules.min_rate_change_points,
        rate(b.worker.attempts, b.worker.failure_rate),
        rate(c.worker.attempts, c.worker.failure_rate),
    ));
    for m in Metric::ALL {
        let (bs, cs) = (b.stage(m), c.stage(m));
        if bs.is_none() && cs.is_none() {
            continue;
        }
        for p in ["p50", "p95", "p99"] {
            out.push(figure(
                rules,
                format!("stage.{}.{p}", m.field()),
                "ms",
                Better::Lower,
                rules.latency_floor_ms(),
                bs.and_then(|s| stat(s, p)),
                cs.and_then(|s| stat(s, p)),
            ));
        }
    }
}

fn fmt_value(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "-".into(),
        Some(v) if unit == "count" => format!("{v:.0}"),
        Some(v) if unit == "ms" => fmt_ms(v),
        Some(v) => format!("{v:.2}"),
    }
}

fn fmt_change(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "-".into(),
        Some(v) => {
            let s = fmt_value(Some(v), unit);
            if v > 0.0 { format!("+{s}") } else { s }
        }
    }
}

/// The comparison as a table for the terminal.
pub fn render_comparison(c: &Comparison) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "baseline:  {}", c.baseline);
    let _ = writeln!(o, "candidate: {}", c.candidate);
    let _ = writeln!(
        o,
        "tolerance {:.1}%, ignoring latency changes under {} ms and rate changes under {} points",
        c.tolerance * 100.0,
        fmt_ms(c.min_latency_change_ms),
        c.min_rate_change_points
    );
    for n in &c.notes {
        let _ = writeln!(o, "note: {n}");
    }
    let _ = writeln!(o);
    let _ =
        writeln!(o, "{:<34}{:>12}{:>12}{:>12}{:>10}  verdict", "figure", "baseline", "candidate", "change", "change%");
    for f in &c.figures {
        let label = format!("{} ({})", f.name, f.unit);
        let rel = f.rel_change.map_or("-".to_owned(), |r| format!("{:+.1}%", r * 100.0));
        let verdict = match f.verdict {
            Verdict::Better => "better",
            Verdict::Same => "same",
            Verdict::Worse => "WORSE",
            Verdict::NotApplicable => "n/a",
        };
        let _ = writeln!(
            o,
            "{label:<34}{:>12}{:>12}{:>12}{rel:>10}  {verdict}",
            fmt_value(f.baseline, &f.unit),
            fmt_value(f.candidate, &f.unit),
            fmt_change(f.abs_change, &f.unit)
        );
    }
    let _ = writeln!(o);
    if c.regressions.is_empty() {
        let _ = writeln!(o, "verdict: pass (no figure worse beyond the tolerance)");
    } else {
        let _ = writeln!(o, "verdict: REGRESSION in {}", c.regressions.join(", "));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_up_is_worse_and_down_is_better() {
        assert_eq!(judge(0.1, 1.0, Better::Lower, 100.0, 120.0), Verdict::Worse);
        assert_eq!(judge(0.1, 1.0, Better::Lower, 100.0, 80.0), Verdict::Better);
        assert_eq!(judge(0.1, 1.0, Better::Lower, 100.0, 109.0), Verdict::Same);
    }

    #[test]
    fn throughput_down_is_worse_and_up_is_better() {
        assert_eq!(judge(0.1, 0.0, Better::Higher, 100.0, 80.0), Verdict::Worse);
        assert_eq!(judge(0.1, 0.0, Better::Higher, 100.0, 120.0), Verdict::Better);
        assert_eq!(judge(0.1, 0.0, Better::Higher, 100.0, 95.0), Verdict::Same);
    }

    #[test]
    fn tiny_absolute_changes_on_sub_millisecond_figures_do_not_flap() {
        assert_eq!(judge(0.1, 1.0, Better::Lower, 0.2, 0.9), Verdict::Same, "+350% but under the 1 ms floor");
        assert_eq!(judge(0.1, 1.0, Better::Lower, 0.2, 1.3), Verdict::Worse);
    }

    #[test]
    fn a_zero_baseline_counts_any_change_beyond_the_floor() {
        assert_eq!(judge(0.1, 0.0, Better::Lower, 0.0, 1.0), Verdict::Worse, "lost 0 -> 1");
        assert_eq!(judge(0.1, 0.1, Better::Lower, 0.0, 0.05), Verdict::Same, "error rate under the floor");
        assert_eq!(judge(0.1, 0.0, Better::Lower, 0.0, 0.0), Verdict::Same);
    }

    #[test]
    fn the_boundary_itself_is_not_a_regression() {
        assert_eq!(judge(0.1, 0.0, Better::Lower, 100.0, 110.0), Verdict::Same);
        assert_eq!(judge(0.0, 1.0, Better::Lower, 10.0, 11.0), Verdict::Same);
    }
}
