//! The load-test results file (`results/test-YYYYMMDD-HHMMSS.json`): written by
//! `chatops loadtest`, read by `analyze --from-results`, `report` and `compare`.
//!
//! The schema is versioned by [`RESULTS_SCHEMA_VERSION`]; readers refuse a newer major
//! version instead of misreading it. Field names are camelCase; times are milliseconds,
//! instants are unix epoch milliseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::stats::LatencySummary;

/// Bumped when a field changes meaning or disappears; adding a field does not bump it.
pub const RESULTS_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadTestResults {
    pub schema_version: u32,
    pub test: TestInfo,
    pub phases: Vec<ResolvedPhase>,
    pub counters: Counters,
    pub summaries: Summaries,
    /// Per command (`/echo`, ...), or per request name when the body has no command.
    #[serde(default)]
    pub by_command: BTreeMap<String, Breakdown>,
    #[serde(default)]
    pub by_scenario: BTreeMap<String, Breakdown>,
    pub time_series: TimeSeries,
    #[serde(default)]
    pub thresholds: Vec<ThresholdResult>,
    /// All thresholds held.
    pub passed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestInfo {
    /// Built-in profile name or the profile file's path.
    pub profile: String,
    pub target: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub duration_ms: i64,
    pub tool_version: String,
    pub host: String,
    pub os: String,
    pub cpus: u32,
    #[serde(default = "one")]
    pub rate_scale: f64,
    #[serde(default = "one")]
    pub duration_scale: f64,
    /// True when the bot was spawned in-process with `--spawn`.
    #[serde(default)]
    pub spawned: bool,
    /// The spawned bot's JSON log file, relative to the results file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_log: Option<String>,
    /// The per-request NDJSON file from `--record-requests`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_file: Option<String>,
    /// Free-form notes (e.g. "config.processor ignored").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn one() -> f64 {
    1.0
}

/// A phase after scaling, with the time it starts at and the arrivals planned in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedPhase {
    pub name: String,
    pub start_offset_ms: u64,
    pub duration_ms: u64,
    /// Arrivals per second at the start of the phase (0 for a pause).
    pub arrival_rate: f64,
    /// Arrivals per second at the end (same as `arrival_rate` when constant).
    pub ramp_to: f64,
    pub planned_requests: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Arrivals scheduled by the phases.
    pub scheduled: u64,
    /// Requests actually sent.
    pub requests: u64,
    /// Arrivals not sent because the in-flight cap was reached.
    pub dropped: u64,
    /// HTTP answers by status code.
    pub acks: BTreeMap<String, u64>,
    /// Failed requests by error type (`timeout`, `connect`, `status_5xx`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Posts that arrived at the response receiver.
    pub responses: u64,
    /// Acknowledged commands whose first response never arrived before the drain timeout.
    pub lost: u64,
    /// Acknowledged commands that got some but not all of their expected answers
    /// (`expectAnswers`) within the response window. A lost command is not incomplete.
    #[serde(default)]
    pub incomplete: u64,
    /// Responses whose path named no request this test sent.
    #[serde(default)]
    pub unmatched_responses: u64,
    /// Responses that arrived after their request's response window had closed (already
    /// counted as lost or finished); they are not in the E2E summaries.
    #[serde(default)]
    pub late_responses: u64,
    /// Failed expectations (a request's `expect`) by kind (`statusCode`, `contentType`,
    /// `hasProperty`, `equals`). A request that failed any is one `expect_failed` in
    /// `errors`, unless it already counts there for its status.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed_expectations: BTreeMap<String, u64>,
    /// TCP connections the generator opened to the target. Far fewer than `requests` means
    /// keep-alive reused them; close to `requests` means the target closed them.
    #[serde(default)]
    pub connections: u64,
    /// TLS handshakes completed with an `https://` target (0 for `http://`); a failed
    /// handshake is a `tls` error instead.
    #[serde(default)]
    pub tls_handshakes: u64,
}

impl Counters {
    /// Failed requests: transport errors and non-2xx answers, all types.
    pub fn n_errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Errors (transport errors and non-2xx answers) over requests sent.
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        self.n_errors() as f64 / self.requests as f64
    }
}

impl LoadTestResults {
    /// Successful requests per second of test time; `None` without a duration. The one
    /// definition `compare` and `report` both show.
    pub fn throughput(&self) -> Option<f64> {
        if self.test.duration_ms <= 0 {
            return None;
        }
        Some(
            self.counters.requests.saturating_sub(self.counters.n_errors()) as f64
                / (self.test.duration_ms as f64 / 1000.0),
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summaries {
    /// Scheduled send → HTTP answer (includes any wait caused by a stalled target).
    pub ack: LatencySummary,
    /// Actual send → HTTP answer (what the server alone took).
    pub service_time: LatencySummary,
    /// Scheduled send → first post at the response receiver.
    pub first_response: LatencySummary,
    /// Scheduled send → last post at the response receiver.
    pub last_response: LatencySummary,
    /// Scheduled send → last post, for the commands that got every answer they expect
    /// (`expectAnswers`); incomplete and lost commands are not in it.
    #[serde(default)]
    pub all_answers: LatencySummary,
    /// Scheduled send → actually sent: the delay the generator itself adds (timer
    /// granularity, rendering, signing, waiting for a free connection under `http.pool`).
    #[serde(default)]
    pub send_lag: LatencySummary,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Breakdown {
    pub requests: u64,
    pub errors: u64,
    pub lost: u64,
    /// Acknowledged commands with some but not all of their expected answers.
    #[serde(default)]
    pub incomplete: u64,
    pub responses: u64,
    pub ack: LatencySummary,
    pub first_response: LatencySummary,
    pub last_response: LatencySummary,
    /// As [`Summaries::all_answers`].
    #[serde(default)]
    pub all_answers: LatencySummary,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeSeries {
    pub interval_ms: u64,
    pub points: Vec<TimePoint>,
}

/// One interval of the test. Latency fields summarise requests *scheduled* in the interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimePoint {
    /// Interval start, from the test start.
    pub offset_ms: u64,
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub requests: u64,
    pub errors: u64,
    pub dropped: u64,
    pub ack_p50: f64,
    pub ack_p95: f64,
    pub ack_p99: f64,
    pub e2e_p50: f64,
    pub e2e_p95: f64,
    pub e2e_p99: f64,
    /// The bot's own gauges in the interval, scraped from its `/metrics` once per interval
    /// (at its middle) while the test ran (`loadtest --spawn` or `--scrape URL`); absent when
    /// nothing was scraped or the scrape of that interval failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerGauges>,
}

/// Server-side gauges of one interval, each summed over the quadrants, so that a backlog
/// shows where it forms, next to the latency it causes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerGauges {
    /// `chatops_queue_depth`: jobs stored and waiting for a worker.
    pub queue_depth: f64,
    /// `chatops_jobs_in_flight`: jobs leased by workers.
    pub jobs_in_flight: f64,
    /// `chatops_dlq_size`: jobs in the dead-letter queue.
    pub dlq_size: f64,
}

/// One `ensure` condition and how it fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdResult {
    /// The condition as written, e.g. `http.response_time.p99 < 500`.
    pub condition: String,
    pub limit: f64,
    pub measured: f64,
    pub passed: bool,
    /// A non-strict condition (Artillery `strict: false`) is reported but does not fail the test.
    #[serde(default = "yes")]
    pub strict: bool,
    /// The condition names a latency with no samples (e.g. no answer ever arrived), so it
    /// cannot hold; `measured` is then 0.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_data: bool,
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results written before `incomplete`, `allAnswers`, `failedExpectations`,
    /// `connections` and `tlsHandshakes` existed still read, with the new fields empty.
    #[test]
    fn older_results_without_the_answer_fields_still_read() {
        let counters: Counters = serde_json::from_str(
            r#"{"scheduled":3,"requests":3,"dropped":0,"acks":{"200":3},"errors":{},"responses":2,"lost":1}"#,
        )
        .unwrap();
        assert_eq!((counters.lost, counters.incomplete), (1, 0));
        assert!(counters.failed_expectations.is_empty());
        assert_eq!((counters.connections, counters.tls_handshakes), (0, 0), "older files have no connection counts");
        let zero = r#"{"count":0,"min":0,"mean":0,"p50":0,"p90":0,"p95":0,"p99":0,"p999":0,"max":0}"#;
        let breakdown: Breakdown = serde_json::from_str(&format!(
            r#"{{"requests":1,"errors":0,"lost":0,"responses":1,"ack":{zero},"firstResponse":{zero},"lastResponse":{zero}}}"#
        ))
        .unwrap();
        assert_eq!((breakdown.incomplete, breakdown.all_answers.count), (0, 0));
        let summaries: Summaries = serde_json::from_str(&format!(
            r#"{{"ack":{zero},"serviceTime":{zero},"firstResponse":{zero},"lastResponse":{zero}}}"#
        ))
        .unwrap();
        assert_eq!(summaries.all_answers, LatencySummary::default());
        // An empty map of failed expectations is not written at all.
        assert!(!serde_json::to_string(&counters).unwrap().contains("failedExpectations"));
    }
}
