//! `chatops analyze` end to end: resolve the window and the inputs (from the arguments or a
//! results file), stream every input through the [`Aggregator`], assemble the
//! [`MetricsSummary`], write it as JSON and print the table.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use chatops_core::results::{LoadTestResults, RESULTS_SCHEMA_VERSION};

use crate::aggregate::{Aggregator, MAX_KEYS, OTHER_KEY, WindowNs};
use crate::args::AnalyzeArgs;
use crate::artillery::{self, KindProbe};
use crate::error::{AnalyzeError, ResultsError};
use crate::input::{self, Input, MAX_LINE_BYTES};
use crate::join::Joiner;
use crate::parallel;
use crate::summary::{METRICS_KIND, METRICS_SCHEMA_VERSION, MetricsSummary, WindowInfo, WindowSource, read_capped};
use crate::table;

/// Largest results file read (ours or Artillery's).
pub const MAX_RESULTS_BYTES: u64 = 256 << 20;

/// What a successful `chatops analyze` produced.
#[derive(Debug, Clone)]
pub struct AnalyzeOutcome {
    pub summary: MetricsSummary,
    /// Where the JSON was written, if it was written to a file.
    pub json_path: Option<PathBuf>,
    /// False when a check failed (reserved for SLO flags; always true today).
    pub passed: bool,
}

impl AnalyzeOutcome {
    /// 0 when the analysis ran and every check passed, 1 when a check failed.
    pub fn exit_code(&self) -> u8 {
        if self.passed { 0 } else { 1 }
    }
}

/// Runs `chatops analyze`, printing the table (or the JSON, with `--json -`) on stdout.
pub fn run_analyze(args: &AnalyzeArgs) -> Result<AnalyzeOutcome, AnalyzeError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_analyze_to(args, &mut out)
}

/// [`run_analyze`] writing to `out` instead of stdout.
pub fn run_analyze_to(args: &AnalyzeArgs, out: &mut dyn Write) -> Result<AnalyzeOutcome, AnalyzeError> {
    let results = match &args.from_results {
        Some(path) => Some(read_results(path).map_err(|source| AnalyzeError::Results { path: path.clone(), source })?),
        None => None,
    };
    let results_dir = args.from_results.as_deref().map(|p| p.parent().unwrap_or(Path::new("")).to_path_buf());

    let window = resolve_window(args, results.as_ref())?;
    let bin_ns = match args.bin {
        Some(b) if b.as_millis() == 0 => return Err(AnalyzeError::Args("--bin must be at least 1ms".into())),
        Some(b) => Some(i64::try_from(b.as_nanos()).map_err(|_| AnalyzeError::Args("--bin is too large".into()))?),
        None => None,
    };

    let mut notes = Vec::new();
    let mut paths = args.inputs.clone();
    if paths.is_empty()
        && let (Some(r), Some(dir)) = (&results, &results_dir)
        && let Some(log) = &r.test.bot_log
    {
        paths.push(inside_results_dir(dir, log, "test.botLog")?);
    }
    if paths.is_empty() {
        return Err(match (&results, &args.from_results) {
            (Some(r), Some(path)) if artillery::is_artillery(r) => {
                AnalyzeError::NoInputBesideArtillery { path: path.clone() }
            }
            _ => AnalyzeError::NoInput,
        });
    }
    if let Some(r) = results.as_ref().filter(|r| artillery::is_artillery(r)) {
        notes.push(format!(
            "window from Artillery's results: firstCounterAt .. lastCounterAt ({} ms) + the buffer, by the clock \
             of the machine that ran Artillery",
            r.test.duration_ms
        ));
    }
    let inputs = input::expand_inputs(&paths)?;

    let requests = match (&args.requests, &results, &results_dir) {
        (Some(p), _, _) => Some(p.clone()),
        (None, Some(r), Some(dir)) => match &r.test.requests_file {
            Some(f) => Some(inside_results_dir(dir, f, "test.requestsFile")?).filter(|p| {
                let exists = p.is_file();
                if !exists {
                    notes.push(format!("requests file {} named by the results is missing: no join", p.display()));
                }
                exists
            }),
            None => None,
        },
        _ => None,
    };
    let joiner = requests.as_deref().map(Joiner::read).transpose()?;

    let block_bytes = args.block_kib.map_or(parallel::BLOCK_BYTES, |k| k as usize * 1024);
    let agg = aggregate_inputs(&inputs, window.ns, bin_ns, joiner, (args.threads, block_bytes), &mut notes)?;
    let a = agg.finish();
    if let Some(b) = &a.bins
        && b.width_ms != b.requested_width_ms
    {
        notes.push(format!(
            "time bins widened from {} ms to {} ms to stay within 1000 bins",
            b.requested_width_ms, b.width_ms
        ));
    }

    let summary = MetricsSummary {
        schema_version: METRICS_SCHEMA_VERSION,
        kind: METRICS_KIND.to_owned(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        inputs: inputs.iter().map(Input::display).collect(),
        results_file: args.from_results.as_ref().map(|p| p.display().to_string()),
        window: WindowInfo {
            start_ms: window.start_ms,
            end_ms: window.end_ms,
            source: window.source,
            buffer_ms: window.buffer_ms,
            first_line_ms: a.first_ms,
            last_line_ms: a.last_ms,
        },
        lines: a.lines,
        router: a.router,
        worker: a.worker,
        stages: a.stages,
        e2e_breakdown: a.e2e_breakdown,
        groups: a.groups,
        bins: a.bins,
        join: a.join.map(Joiner::finish),
        notes,
    };

    let json_path = match (&args.json, &args.from_results) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(r)) if !args.no_json => Some(default_metrics_path(r)),
        _ => None,
    };
    let to_stdout = json_path.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if to_stdout {
        let json = serde_json::to_string_pretty(&summary).expect("a summary always serializes");
        writeln!(out, "{json}").map_err(AnalyzeError::Stdout)?;
    } else {
        if let Some(p) = &json_path {
            write_json(p, &summary).map_err(|source| AnalyzeError::Output { path: p.clone(), source })?;
        }
        out.write_all(table::render_summary(&summary).as_bytes()).map_err(AnalyzeError::Stdout)?;
        if let Some(p) = &json_path {
            writeln!(out, "metrics summary written to {}", p.display()).map_err(AnalyzeError::Stdout)?;
        }
    }
    Ok(AnalyzeOutcome { summary, json_path: json_path.filter(|_| !to_stdout), passed: true })
}

/// Most threads that parse and aggregate unless `--threads` says otherwise: beyond that the
/// reading of blocks, which is sequential, becomes the limit.
const MAX_DEFAULT_WORKERS: usize = 4;

/// Streams every input through aggregators: without a join, on one thread per core
/// ([`parallel`]); a join needs the one shared table of client records, so it runs on this
/// thread, as does `--threads 1`. The result is the same either way: when a key table
/// overflowed in the parallel run (which keys are kept past a cap depends on which lines came
/// first), the inputs are read again on one thread.
fn aggregate_inputs(
    inputs: &[Input],
    window: WindowNs,
    bin_ns: Option<i64>,
    joiner: Option<Joiner>,
    (threads, block_bytes): (Option<u16>, usize),
    notes: &mut Vec<String>,
) -> Result<Aggregator, AnalyzeError> {
    let workers = match threads {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_DEFAULT_WORKERS),
    };
    if joiner.is_some() || workers < 2 {
        return aggregate_sequential(inputs, window, bin_ns, joiner, notes);
    }
    let split = parallel::Split { workers, block_bytes, max_line: MAX_LINE_BYTES };
    let run = parallel::aggregate_parallel(inputs, window, bin_ns, split)?;
    if run.hit_caps {
        if !inputs.contains(&Input::Stdin) {
            return aggregate_sequential(inputs, window, bin_ns, None, notes);
        }
        notes.push(format!(
            "more than {MAX_KEYS} keys in a grouping: which ones are kept (the rest count as `{OTHER_KEY}`) \
             may differ from a --threads 1 run, and stdin cannot be read twice to settle it"
        ));
    }
    notes.extend(run.notes);
    Ok(run.agg)
}

/// One aggregator on this thread, fed line by line.
fn aggregate_sequential(
    inputs: &[Input],
    window: WindowNs,
    bin_ns: Option<i64>,
    joiner: Option<Joiner>,
    notes: &mut Vec<String>,
) -> Result<Aggregator, AnalyzeError> {
    let mut agg = Aggregator::new(window, bin_ns, joiner);
    for inp in inputs {
        let mut reader = input::open(inp)?;
        let (stats, err) = input::for_each_line(&mut *reader, MAX_LINE_BYTES, |line| agg.feed(line));
        agg.add_oversized(stats.oversized);
        if let Some(e) = err {
            agg.add_read_error();
            notes.push(format!("reading {} stopped after {} lines: {e}", inp.display(), stats.lines));
        }
    }
    Ok(agg)
}

/// `results/test-1.json` → `results/test-1.metrics.json`.
pub fn default_metrics_path(results: &Path) -> PathBuf {
    let stem = results.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "results".into());
    results.with_file_name(format!("{stem}.metrics.json"))
}

/// Reads a load-test results file: ours (refusing a newer schema instead of misreading it) or
/// Artillery's `--output` JSON, told apart by their content and converted by [`artillery`].
pub fn read_results(path: &Path) -> Result<LoadTestResults, ResultsError> {
    let bytes = read_capped(path, MAX_RESULTS_BYTES)?;
    parse_results(&bytes)
}

/// [`read_results`] on bytes already read.
pub fn parse_results(bytes: &[u8]) -> Result<LoadTestResults, ResultsError> {
    let probe: KindProbe = serde_json::from_slice(bytes).map_err(ResultsError::from_json)?;
    if artillery::looks_like_artillery(&probe) {
        return Ok(artillery::from_slice(bytes)?);
    }
    if probe.schema_version.is_none() {
        return Err(ResultsError::UnknownKind);
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        schema_version: u32,
    }
    let probe: Probe = serde_json::from_slice(bytes)?;
    if probe.schema_version > RESULTS_SCHEMA_VERSION {
        return Err(ResultsError::NewerSchema { found: probe.schema_version, supported: RESULTS_SCHEMA_VERSION });
    }
    Ok(serde_json::from_slice(bytes)?)
}

/// Writes pretty JSON through a temporary file and a rename, so a reader never sees half a file.
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, [json.as_slice(), b"\n"].concat())?;
    std::fs::rename(&tmp, path)
}

/// Resolves a file named by a results file inside the results file's folder, and only
/// there: a results file is data (it may come from a CI artifact or a colleague), so it
/// must not make `analyze` read `/etc/shadow` or `~/.ssh` and echo what it finds. A plain
/// relative name is joined to the folder; absolute paths, `..`, and symlinks that lead out
/// of the folder are refused.
fn inside_results_dir(dir: &Path, name: &str, key: &'static str) -> Result<PathBuf, AnalyzeError> {
    let refuse =
        |reason: &str| AnalyzeError::UnsafeResultsPath { key, name: name.to_owned(), reason: reason.to_owned() };
    let relative = Path::new(name);
    if name.is_empty() {
        return Err(refuse("it is empty"));
    }
    if relative.is_absolute() || relative.has_root() {
        return Err(refuse("it is an absolute path"));
    }
    if !relative.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(refuse("it leaves the folder with `..`"));
    }
    let joined = dir.join(relative);
    // A name that does not exist (yet) cannot lead anywhere; the callers report it missing.
    if let (Ok(real_dir), Ok(real)) =
        (dir.canonicalize().or_else(|_| Path::new(".").canonicalize()), joined.canonicalize())
        && !real.starts_with(&real_dir)
    {
        return Err(refuse("a symlink leads out of the folder"));
    }
    Ok(joined)
}

struct Window {
    ns: WindowNs,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    source: WindowSource,
    buffer_ms: u64,
}

fn resolve_window(args: &AnalyzeArgs, results: Option<&LoadTestResults>) -> Result<Window, AnalyzeError> {
    let (start_ms, end_ms, source, buffer_ms) = if let Some(r) = results {
        let buffer_ms = u64::try_from(args.buffer.as_millis()).unwrap_or(u64::MAX);
        // Lines are written when a request or job ends, never before the test started; late
        // lines (jobs still draining) get the buffer.
        (
            Some(r.test.start_ms),
            Some(r.test.end_ms.saturating_add_unsigned(buffer_ms)),
            WindowSource::Results,
            buffer_ms,
        )
    } else if let Some(since) = args.since {
        let now_ms = (chatops_core::time::now_unix_ns() / 1_000_000) as i64;
        let since_ms = i64::try_from(since.as_millis()).unwrap_or(i64::MAX);
        (Some(now_ms.saturating_sub(since_ms)), None, WindowSource::Since, 0)
    } else if args.start.is_some() || args.end.is_some() {
        (args.start, args.end, WindowSource::Explicit, 0)
    } else {
        (None, None, WindowSource::All, 0)
    };
    if let (Some(s), Some(e)) = (start_ms, end_ms)
        && e < s
    {
        return Err(AnalyzeError::Args(format!("the window ends ({e}) before it starts ({s})")));
    }
    let to_ns = |ms: i64| ms.saturating_mul(1_000_000);
    // End is inclusive to the millisecond: a line at 12:00:00.999999 belongs to `--end 12:00:00.999`.
    let ns = WindowNs { start: start_ms.map(to_ns), end: end_ms.map(|e| to_ns(e).saturating_add(999_999)) };
    Ok(Window { ns, start_ms, end_ms, source, buffer_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_metrics_path_sits_beside_the_results() {
        assert_eq!(
            default_metrics_path(Path::new("results/test-1.json")),
            PathBuf::from("results/test-1.metrics.json")
        );
        assert_eq!(default_metrics_path(Path::new("r")), PathBuf::from("r.metrics.json"));
    }
}
