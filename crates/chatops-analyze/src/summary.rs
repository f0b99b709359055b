//! [`MetricsSummary`]: what `chatops analyze` computes, written as `X.metrics.json`, rendered
//! by `chatops report` and read back by `chatops compare`. It is the analyzer's public
//! contract: versioned by [`METRICS_SCHEMA_VERSION`], camelCase, times in milliseconds,
//! instants in unix epoch milliseconds. The committed JSON schema
//! (`crates/chatops-analyze/schema/metrics-summary.schema.json`) is generated from these types
//! and a test fails when the two drift apart.
//!
//! Every latency is a [`LatencySummary`] (count, min, mean, p50, p90, p95, p99, p999, max):
//! exact while a distribution holds at most 1024 values, HDR histogram with 3 significant
//! digits beyond (see [`crate::dist`]); time bins use 2 significant digits.

use std::collections::BTreeMap;
use std::path::Path;

use chatops_core::Stage;
use chatops_core::stats::LatencySummary;
use serde::{Deserialize, Serialize};

use crate::error::ResultsError;
use crate::metric::Metric;
use chatops_core::Segment as SegmentKind;

/// Bumped when a field changes meaning or disappears; adding a field does not bump it.
pub const METRICS_SCHEMA_VERSION: u32 = 1;

/// The `kind` of a metrics summary file, so tools can tell it from a results file.
pub const METRICS_KIND: &str = "chatops.metrics";
/// The group key under which keys beyond a grouping's limit are counted.
pub const OTHER_KEY: &str = "(other)";

/// Largest summary file [`MetricsSummary::read`] accepts.
pub const MAX_SUMMARY_BYTES: u64 = 256 << 20;

/// Everything `chatops analyze` computed from one set of logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MetricsSummary {
    /// [`METRICS_SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// Always [`METRICS_KIND`].
    pub kind: String,
    /// Version of the chatops build that wrote the file.
    pub tool_version: String,
    /// The log sources read, as given (`-` is stdin).
    pub inputs: Vec<String>,
    /// The results file the window came from (`--from-results`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_file: Option<String>,
    pub window: WindowInfo,
    pub lines: LineCounts,
    pub router: RouterTotals,
    pub worker: WorkerTotals,
    /// Every figure present in the logs, in [`Metric::ALL`] order, over all lines.
    pub stages: Vec<StageStats>,
    /// Where the mean E2E time went, from the worker lines.
    pub e2e_breakdown: E2eBreakdown,
    pub groups: Groups,
    /// Present with `--bin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bins: Option<TimeBins>,
    /// Present with `--requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<JoinSummary>,
    /// What the reader should know: a truncated input, widened bins, a missing requests file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl MetricsSummary {
    /// The overall statistics of one figure, if the logs had it.
    pub fn stage(&self, metric: Metric) -> Option<&LatencySummary> {
        self.stages.iter().find(|s| s.metric == metric).map(|s| &s.stats)
    }

    /// Reads a summary file, refusing a newer schema instead of misreading it.
    pub fn read(path: &Path) -> Result<MetricsSummary, ResultsError> {
        let bytes = read_capped(path, MAX_SUMMARY_BYTES)?;
        let probe: VersionProbe = serde_json::from_slice(&bytes)?;
        if probe.schema_version > METRICS_SCHEMA_VERSION {
            return Err(ResultsError::NewerSchema { found: probe.schema_version, supported: METRICS_SCHEMA_VERSION });
        }
        Ok(serde_json::from_slice(&bytes)?)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionProbe {
    schema_version: u32,
}

/// Reads a whole JSON file, refusing one larger than `max` bytes.
pub(crate) fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, ResultsError> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    // The length first, so an oversized file is refused without reading it; the capped read
    // below still guards files that grow and pipes.
    if f.metadata()?.len() > max {
        return Err(ResultsError::TooLarge { max });
    }
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(ResultsError::TooLarge { max });
    }
    Ok(bytes)
}

/// The time window lines were kept for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct WindowInfo {
    /// Lines before this instant were skipped (epoch ms).
    pub start_ms: Option<i64>,
    /// Lines after this instant were skipped (epoch ms), buffer included.
    pub end_ms: Option<i64>,
    pub source: WindowSource,
    /// Grace period added after the test end for late lines (`--buffer`), in ms.
    pub buffer_ms: u64,
    /// Timestamp of the earliest metric line kept.
    pub first_line_ms: Option<i64>,
    /// Timestamp of the latest metric line kept.
    pub last_line_ms: Option<i64>,
}

/// Where the window came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum WindowSource {
    /// No window: every line counts.
    All,
    /// `--from-results`: the test's start and end, plus the buffer.
    Results,
    /// `--since`.
    Since,
    /// `--start` / `--end`.
    Explicit,
}

/// What happened to each line read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct LineCounts {
    /// Lines read, oversized ones excluded.
    pub total: u64,
    /// Router metric lines kept.
    pub router: u64,
    /// Worker metric lines kept.
    pub worker: u64,
    /// Lines holding no JSON object.
    pub not_json: u64,
    /// JSON lines that are not metric lines.
    pub not_metric: u64,
    /// Lines naming a metric message but invalid JSON or missing the figures.
    pub malformed: u64,
    /// Lines longer than the 1 MiB limit, skipped unread.
    pub oversized: u64,
    /// Metric lines outside the window.
    pub outside_window: u64,
    /// Metric lines without a usable timestamp, skipped because a window was set.
    pub no_timestamp: u64,
    /// Inputs whose read stopped on an error (e.g. a truncated gzip file); their lines
    /// up to the error are counted.
    pub read_errors: u64,
}

/// The router's lines: one per HTTP request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RouterTotals {
    pub requests: u64,
    /// Lines with `success: false`.
    pub errors: u64,
    /// `errors / requests`, 0 when there were none.
    pub error_rate: f64,
    /// Every request by status code (`"200"`, `"401"`, `"unknown"`).
    pub by_status: BTreeMap<String, u64>,
    /// Failed requests by status code.
    pub errors_by_status: BTreeMap<String, u64>,
    /// Failed requests by `errorType` (`"unknown"` when absent).
    pub errors_by_type: BTreeMap<String, u64>,
}

/// The workers' lines: one per job attempt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkerTotals {
    pub attempts: u64,
    /// Attempts with `success: false`.
    pub failures: u64,
    /// `failures / attempts`.
    pub failure_rate: f64,
    /// Attempts with `attempt > 1`.
    pub retries: u64,
    /// Failed attempts by `errorType`.
    pub errors_by_type: BTreeMap<String, u64>,
}

/// Statistics of one figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct StageStats {
    /// The log field, e.g. `totalE2eMs` (`duration` is the router line's).
    #[cfg_attr(test, schemars(with = "crate::metric::MetricSchema"))]
    pub metric: Metric,
    /// The contract stage measured (`queue_wait`, ...), absent for `duration` and the
    /// first/last response E2E figures.
    #[cfg_attr(test, schemars(with = "Option<String>"))]
    pub stage: Option<Stage>,
    /// Human label, e.g. `queue wait`.
    pub label: String,
    #[cfg_attr(test, schemars(with = "LatencySummarySchema"))]
    pub stats: LatencySummary,
}

/// The mean E2E time of worker lines split into consecutive stages, for a stacked bar.
/// Segments sum to `totalMeanMs`. Per line: `handler` is `handlerMs` (or `workerDurationMs`
/// when absent) minus the response posts; `approval_wait` is `approvalWaitMs` (0 on a line
/// without it); `other` is what no stage accounts for (dequeue, clock differences); it can
/// be negative.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct E2eBreakdown {
    /// Worker lines that carried `totalE2eMs`.
    pub lines: u64,
    pub total_mean_ms: f64,
    /// `router`, `approval_wait` (only when a line carried `approvalWaitMs`), `enqueue`,
    /// `queue_wait`, `handler`, `sync_response`, `async_response`, `other`.
    pub segments: Vec<Segment>,
}

/// One slice of a breakdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    /// Which slice (serialized as its stable name: a [`Stage::as_str`] name or `other`).
    #[cfg_attr(test, schemars(with = "String"))]
    pub name: SegmentKind,
    pub label: String,
    pub mean_ms: f64,
    /// Share of the total mean, in percent (may be negative for `other`).
    pub share_pct: f64,
}

/// The same statistics per value of each grouping key, like Logs Insights' `stats ... by`.
/// Groups are sorted by key. At most 200 distinct keys per dimension are kept; lines with
/// further keys are counted under `(other)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Groups {
    /// Worker lines by `component` (`sr-worker`, ...).
    pub by_component: Vec<Group>,
    /// Both line kinds by `command` (`(none)` when absent).
    pub by_command: Vec<Group>,
    /// Both line kinds by `quadrant`.
    pub by_quadrant: Vec<Group>,
    /// Router lines by `statusCode`.
    pub by_status: Vec<Group>,
    /// Both line kinds by outcome: `success`, else the `errorType` (`error` when absent).
    pub by_outcome: Vec<Group>,
}

/// Statistics of the lines sharing one key value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub key: String,
    pub router_lines: u64,
    pub router_errors: u64,
    pub worker_lines: u64,
    pub worker_failures: u64,
    pub stages: Vec<StageStats>,
    /// Absent when the group has no worker line with `totalE2eMs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_breakdown: Option<E2eBreakdown>,
}

impl Group {
    pub fn stage(&self, metric: Metric) -> Option<&LatencySummary> {
        self.stages.iter().find(|s| s.metric == metric).map(|s| &s.stats)
    }
}

/// Counts and key latencies per time bin (`--bin`). Bins are aligned to multiples of the
/// width since the epoch, like Logs Insights' `bin()`, and contiguous (empty bins included).
/// When more than 1000 bins would be needed the width is doubled until they fit, so
/// `widthMs` may exceed `requestedWidthMs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TimeBins {
    pub width_ms: u64,
    pub requested_width_ms: u64,
    pub points: Vec<BinPoint>,
}

/// One time bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct BinPoint {
    /// Bin start, epoch ms.
    pub start_ms: i64,
    pub router_lines: u64,
    pub router_errors: u64,
    pub worker_lines: u64,
    pub worker_failures: u64,
    /// Router `duration`.
    #[cfg_attr(test, schemars(with = "LatencySummarySchema"))]
    pub router: LatencySummary,
    /// `queueWaitMs`.
    #[cfg_attr(test, schemars(with = "LatencySummarySchema"))]
    pub queue_wait: LatencySummary,
    /// `totalE2eMs`.
    #[cfg_attr(test, schemars(with = "LatencySummarySchema"))]
    pub e2e: LatencySummary,
}

/// Client records (`--requests`) joined with the bot's lines by correlation id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct JoinSummary {
    pub requests_file: String,
    /// Client records read.
    pub client_records: u64,
    /// Lines of the requests file that were not valid records (or beyond the 5 M cap).
    pub invalid_records: u64,
    /// Client records with a router line.
    pub matched_router: u64,
    /// Client records with at least one worker line.
    pub matched_worker: u64,
    /// Client records with everything the breakdown needs (router and final worker line
    /// with the fine stage fields, and at least one response arrival).
    pub complete: u64,
    /// Client records no bot line named (e.g. rejected before the router, or logs missing).
    pub client_only: u64,
    /// Metric lines whose correlation id is not in the requests file.
    pub server_only_lines: u64,
    pub overall: JoinBreakdown,
    /// Sorted by command.
    pub by_command: Vec<JoinBreakdown>,
}

/// The full path of a command, client and server side, over complete records.
///
/// `segments` split the client-observed E2E time (`sentMs` → last response arrival) into:
/// `router` (`routerMs`), `approval_wait` (`approvalWaitMs`; only when a complete record's
/// job waited for approvals), `enqueue` (`enqueueMs`), `queue_wait` (`queueWaitMs`),
/// `handler_to_first_response` (dequeue, handler, until the first response was delivered:
/// `firstResponseE2eMs` minus the stages before), `first_to_last_response`
/// (`lastResponseE2eMs - firstResponseE2eMs`), and `unexplained`: the client E2E time minus
/// `lastResponseE2eMs`, i.e. network both ways and clock differences, shown rather than hidden.
/// Segment means sum to the mean client E2E time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct JoinBreakdown {
    /// The command, or `all`.
    pub command: String,
    /// Client records.
    pub requests: u64,
    /// Complete records the segments are computed from.
    pub complete: u64,
    /// Records with a transport error or a non-2xx answer.
    pub client_errors: u64,
    /// Answered records whose first response never arrived.
    pub lost: u64,
    /// `sentMs - scheduledMs`: how late the client sent (a stalled load generator).
    #[cfg_attr(test, schemars(with = "LatencySummarySchema"))]
    pub client_lateness: LatencySummary,
    /// Client send → HTTP answer.
    #[cfg_attr(test, schemars(with = "LatencySummarySchema"))]
    pub client_ack: LatencySummary,
    /// The router line's `duration` for the same requests.
    #[cfg_attr(test, schemars(with = "LatencySummarySchema"))]
    pub router_duration: LatencySummary,
    /// Signed mean of client ack minus router duration (network, HTTP stack, clock).
    pub ack_unexplained_mean_ms: f64,
    /// Client send → last response arrival.
    #[cfg_attr(test, schemars(with = "LatencySummarySchema"))]
    pub client_e2e: LatencySummary,
    pub segments: Vec<JoinSegment>,
    /// Client send → arrival of the first response.
    #[cfg_attr(test, schemars(with = "LatencySummarySchema"))]
    pub first_arrival: LatencySummary,
    /// Client send → arrival of the last response.
    #[cfg_attr(test, schemars(with = "LatencySummarySchema"))]
    pub last_arrival: LatencySummary,
}

/// One segment of a joined breakdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct JoinSegment {
    /// Which slice (serialized as its stable name).
    #[cfg_attr(test, schemars(with = "String"))]
    pub name: SegmentKind,
    pub label: String,
    /// Signed mean (clock differences can make a segment negative).
    pub mean_ms: f64,
    /// Share of the mean client E2E time, in percent.
    pub share_pct: f64,
    /// Distribution, negative values counted as 0.
    #[cfg_attr(test, schemars(with = "LatencySummarySchema"))]
    pub stats: LatencySummary,
    /// Records where the segment was negative.
    pub negative: u64,
}

/// Mirror of [`LatencySummary`] (which lives in `chatops-core`, without a schema derive), used
/// only to generate the JSON schema.
#[cfg(test)]
#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
struct LatencySummarySchema {
    count: u64,
    min: f64,
    mean: f64,
    p50: f64,
    p90: f64,
    p95: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/metrics-summary.schema.json");

    #[test]
    fn committed_json_schema_matches_the_types() {
        let schema = schemars::schema_for!(MetricsSummary);
        let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(SCHEMA_PATH, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(SCHEMA_PATH).unwrap_or_default();
        assert!(
            committed == generated,
            "{SCHEMA_PATH} is stale: rerun with UPDATE_EXPECT=1 and, if a field changed meaning or \
             disappeared, bump METRICS_SCHEMA_VERSION"
        );
    }

    #[test]
    fn latency_summary_mirror_has_the_same_fields() {
        let json = serde_json::to_value(LatencySummary::default()).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        let schema = serde_json::to_value(schemars::schema_for!(LatencySummarySchema)).unwrap();
        let mirror: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        let (mut keys, mut mirror) = (keys, mirror.clone());
        keys.sort();
        mirror.sort();
        assert_eq!(keys, mirror);
    }

    #[test]
    fn refuses_a_newer_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.metrics.json");
        std::fs::write(&path, r#"{"schemaVersion": 99}"#).unwrap();
        assert!(matches!(MetricsSummary::read(&path), Err(ResultsError::NewerSchema { found: 99, .. })));
        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(MetricsSummary::read(&path), Err(ResultsError::Json(_))));
    }
}
