//! Artillery's results file (`artillery run --output out.json config.yml`, Artillery 2.x) read
//! as a [`LoadTestResults`], so `analyze --from-results`, `report` and `compare` take it as
//! they take ours. It is recognised by its content (a top level with `aggregate` and
//! `intermediate`, no `schemaVersion`), never by its name.
//!
//! Artillery measures less than `chatops loadtest`, and the conversion says so rather than
//! filling gaps: `http.response_time` becomes the ack latency (and the service time, which it
//! really is: Artillery times a request from its actual send); `http.codes.*` the acks by
//! status; `errors.*` and 4xx/5xx answers the errors; `vusers.created` the arrivals; the
//! `intermediate` periods the time series; the `metrics-by-endpoint` plugin's figures the
//! per-request-name breakdown. Artillery never sees the bot's `response_url` posts, so there
//! are no E2E figures, responses or lost commands: they stay empty (no samples), and
//! [`is_artillery`] lets `compare` and `report` show them as not measured instead of as
//! zero. Its output has no config either (profile, target, phases, `ensure`). Every such gap
//! is a note in `test.notes`. Unknown keys (custom counters, plugins, `histograms`) are
//! ignored; a wrong type is an error naming its JSON path ([`ArtilleryError`]).

use std::collections::BTreeMap;
use std::fmt;

use chatops_core::results::{
    Breakdown, Counters, LoadTestResults, RESULTS_SCHEMA_VERSION, Summaries, TestInfo, TimePoint, TimeSeries,
};
use chatops_core::stats::LatencySummary;
use serde::Deserialize;
use serde::de::{self, IgnoredAny};

use crate::aggregate::MAX_KEYS;
use crate::summary::OTHER_KEY;

/// `test.toolVersion` of a converted file; [`is_artillery`] recognises it.
pub const TOOL_VERSION: &str = "artillery (its --output records no version)";

/// Artillery's reporting period when a file has too few periods to tell (its default, and
/// the only value Artillery 2 uses).
pub const DEFAULT_PERIOD_MS: u64 = 10_000;

/// Most intermediate periods turned into time-series points (28 hours of 10 s periods); the
/// rest stay in the aggregate figures and a note says how many were left out.
pub const MAX_POINTS: usize = 10_000;

/// Longest error or request name kept; longer ones are cut (they come from a file).
const MAX_NAME_CHARS: usize = 120;

/// Latest instant accepted (year 3000 in epoch ms), so arithmetic on instants cannot overflow.
const MAX_EPOCH_MS: i64 = 32_503_680_000_000;

const METRICS_BY_ENDPOINT: &str = "plugins.metrics-by-endpoint.";

/// Why an Artillery file could not be converted. The reader adds the file's path.
#[derive(Debug, thiserror::Error)]
pub enum ArtilleryError {
    #[error("Artillery results: `{path}`: {message}")]
    Shape { path: String, message: String },
    #[error(
        "Artillery results: `aggregate` has no `counters` but a `latency`: this is Artillery 1.x output, which is \
         not read; run the test with Artillery 2 (`npx artillery@2 run --output out.json config.yml`)"
    )]
    Version1,
    #[error("Artillery results: {0}")]
    Invalid(String),
}

/// True for a converted Artillery file: its E2E figures, responses and lost commands were not
/// measured (rather than measured as none).
pub fn is_artillery(results: &LoadTestResults) -> bool {
    results.test.tool_version == TOOL_VERSION
}

/// The top-level keys that tell the files apart (other values are skipped, not kept).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KindProbe {
    /// A metrics summary's marker.
    #[serde(default)]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) schema_version: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) test: Option<IgnoredAny>,
    #[serde(default)]
    aggregate: Option<IgnoredAny>,
    #[serde(default)]
    intermediate: Option<IgnoredAny>,
}

/// Artillery's shape: `aggregate` or `intermediate` at the top, and none of our keys (one of
/// the two alone is read as a damaged Artillery file, so the error says what is missing).
pub(crate) fn looks_like_artillery(p: &KindProbe) -> bool {
    p.schema_version.is_none()
        && p.test.is_none()
        && p.kind.is_none()
        && (p.aggregate.is_some() || p.intermediate.is_some())
}

/// Parses and converts Artillery's `--output` JSON.
pub fn from_slice(bytes: &[u8]) -> Result<LoadTestResults, ArtilleryError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let report: Report = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| ArtilleryError::Shape { path: e.path().to_string(), message: e.inner().to_string() })?;
    de.end().map_err(|e| ArtilleryError::Invalid(format!("trailing data after the JSON: {e}")))?;
    convert(&report)
}

/// Artillery's whole file: the figures of the whole run, and of each reporting period.
#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    #[serde(default)]
    pub aggregate: Option<Period>,
    #[serde(default)]
    pub intermediate: Option<Vec<Period>>,
}

/// One set of figures (the aggregate, or one period). Keys Artillery adds that are not read
/// here (`histograms`, `firstHistogramAt`, ...) are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Period {
    pub counters: Option<BTreeMap<String, u64>>,
    pub rates: BTreeMap<String, f64>,
    pub summaries: BTreeMap<String, Summary>,
    pub first_counter_at: Option<i64>,
    pub last_counter_at: Option<i64>,
    pub first_metric_at: Option<i64>,
    pub last_metric_at: Option<i64>,
    /// The period's start (epoch ms; a number in `aggregate`, a string in `intermediate`).
    #[serde(deserialize_with = "epoch_ms_number_or_string")]
    pub period: Option<i64>,
    /// Only Artillery 1.x has it (its latencies lived here).
    latency: Option<IgnoredAny>,
}

/// One of Artillery's summaries (milliseconds).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub median: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
}

fn epoch_ms_number_or_string<'de, D: de::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct V;
    impl de::Visitor<'_> for V {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("epoch milliseconds, as a number or a string of digits")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v).map(Some).map_err(|_| E::custom("epoch milliseconds out of range"))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.fract() == 0.0 && v.abs() < MAX_EPOCH_MS as f64 {
                Ok(Some(v as i64))
            } else {
                Err(E::custom(format!("`{v}` is not whole epoch milliseconds")))
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            v.trim().parse().map(Some).map_err(|_| E::custom(format!("`{v}` is not epoch milliseconds")))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// Converts a parsed file; see the module docs for what maps to what.
pub fn convert(report: &Report) -> Result<LoadTestResults, ArtilleryError> {
    let agg = report.aggregate.as_ref().ok_or_else(|| {
        ArtilleryError::Invalid("no `aggregate`: the file is not a complete `artillery run --output` file".into())
    })?;
    let periods = report.intermediate.as_deref().ok_or_else(|| {
        ArtilleryError::Invalid("no `intermediate`: the file is not a complete `artillery run --output` file".into())
    })?;
    let Some(counters) = &agg.counters else {
        if agg.latency.is_some() {
            return Err(ArtilleryError::Version1);
        }
        return Err(ArtilleryError::Invalid("`aggregate` has no `counters`".into()));
    };
    let start_ms = instant(agg.first_counter_at.or(agg.first_metric_at), "aggregate.firstCounterAt")?;
    let end_ms = instant(agg.last_counter_at.or(agg.last_metric_at), "aggregate.lastCounterAt")?;
    if end_ms < start_ms {
        return Err(ArtilleryError::Invalid(format!(
            "`aggregate.lastCounterAt` ({end_ms}) is before `aggregate.firstCounterAt` ({start_ms})"
        )));
    }

    let total = Tally::of(counters);
    let ack = latency(agg.summaries.get("http.response_time"), "aggregate.summaries.http.response_time")?;
    let by_command = by_request_name(agg)?;
    let (time_series, left_out) = time_series(periods, start_ms)?;

    let mut notes = vec![
        "converted from Artillery's --output JSON: http.requests → requests sent, http.codes.* → HTTP answers \
         (4xx/5xx also count as errors), errors.* → errors (ETIMEDOUT → timeout, ECONNREFUSED and other \
         failures to connect → connect, the rest by Artillery's name), vusers.created → arrivals; the time \
         series is Artillery's intermediate periods"
            .to_owned(),
        "ack latency is Artillery's http.response_time, timed from each request's actual send (Artillery has \
         no scheduled send time), so ack and service time are the same figure and a stalled target can hide \
         in it"
            .to_owned(),
        "no E2E figures: Artillery does not receive the bot's response_url posts, so responses, lost commands \
         and the E2E latencies are not measured (run `chatops loadtest` with the same file to get them)"
            .to_owned(),
        "Artillery's output records no config: the profile, target, phases and `ensure` thresholds are not \
         known here (Artillery's own exit code was its ensure verdict)"
            .to_owned(),
        format!(
            "virtual users: {} created, {} completed, {} failed",
            counter(counters, "vusers.created"),
            counter(counters, "vusers.completed"),
            counter(counters, "vusers.failed")
        ),
    ];
    if !by_command.is_empty() {
        notes.push("per-command figures are per request name, from Artillery's metrics-by-endpoint plugin".into());
    }
    if left_out > 0 {
        notes.push(format!(
            "{left_out} intermediate periods beyond the first {MAX_POINTS} are not in the time series (they are \
             in the totals)"
        ));
    }

    Ok(LoadTestResults {
        schema_version: RESULTS_SCHEMA_VERSION,
        test: TestInfo {
            profile: "artillery run".into(),
            target: "not recorded by Artillery".into(),
            start_ms,
            end_ms,
            duration_ms: end_ms - start_ms,
            tool_version: TOOL_VERSION.into(),
            host: "not recorded".into(),
            os: "not recorded".into(),
            cpus: 0,
            rate_scale: 1.0,
            duration_scale: 1.0,
            spawned: false,
            bot_log: None,
            requests_file: None,
            notes,
        },
        phases: Vec::new(),
        counters: Counters {
            scheduled: counter(counters, "vusers.created"),
            requests: total.requests,
            acks: total.acks,
            errors: total.errors,
            ..Counters::default()
        },
        summaries: Summaries { ack, service_time: ack, ..Summaries::default() },
        by_command,
        by_scenario: BTreeMap::new(),
        time_series,
        thresholds: Vec::new(),
        passed: true,
    })
}

fn counter(counters: &BTreeMap<String, u64>, key: &str) -> u64 {
    counters.get(key).copied().unwrap_or(0)
}

fn instant(v: Option<i64>, key: &str) -> Result<i64, ArtilleryError> {
    match v {
        None => Err(ArtilleryError::Invalid(format!("no `{key}`: the run cannot be placed in time"))),
        Some(ms) if !(0..=MAX_EPOCH_MS).contains(&ms) => {
            Err(ArtilleryError::Invalid(format!("`{key}` ({ms}) is not an instant in epoch milliseconds")))
        }
        Some(ms) => Ok(ms),
    }
}

/// Requests, answers and errors from one set of counters.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    requests: u64,
    acks: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn of(counters: &BTreeMap<String, u64>) -> Self {
        let mut t = Tally { requests: counter(counters, "http.requests"), ..Tally::default() };
        for (key, &n) in counters {
            if let Some(code) = key.strip_prefix("http.codes.") {
                t.answer(code, n);
            } else if let Some(name) = key.strip_prefix("errors.") {
                t.error(name, n);
            }
        }
        t
    }

    /// An HTTP status as our recorder counts it: every answer by code, 4xx/5xx as errors too.
    fn answer(&mut self, code: &str, n: u64) {
        let Ok(status) = code.parse::<u16>() else { return };
        if !(100..=599).contains(&status) {
            return;
        }
        add_capped(&mut self.acks, status.to_string(), n);
        let class = match status {
            400..=499 => "status_4xx",
            500..=599 => "status_5xx",
            _ => return,
        };
        add_capped(&mut self.errors, class.to_owned(), n);
    }

    fn error(&mut self, name: &str, n: u64) {
        add_capped(&mut self.errors, error_kind(name), n);
    }

    fn n_errors(&self) -> u64 {
        self.errors.values().fold(0u64, |a, &b| a.saturating_add(b))
    }

    fn n_answers(&self) -> u64 {
        self.acks.values().fold(0u64, |a, &b| a.saturating_add(b))
    }
}

/// Artillery's error name (Node's error code, or a message) as one of our error types where
/// one fits, else the name itself, cleaned.
fn error_kind(name: &str) -> String {
    match name {
        "ETIMEDOUT" | "ESOCKETTIMEDOUT" | "ECONNABORTED" => "timeout".into(),
        "ECONNREFUSED" | "EHOSTUNREACH" | "ENETUNREACH" | "ENOTFOUND" | "EAI_AGAIN" => "connect".into(),
        "ECONNRESET" | "EPIPE" => "io".into(),
        other => clean_name(other),
    }
}

/// A name from the file as a map key: control characters dropped, at most [`MAX_NAME_CHARS`].
fn clean_name(name: &str) -> String {
    let cleaned: String = name.chars().filter(|c| !c.is_control()).take(MAX_NAME_CHARS).collect();
    if cleaned.is_empty() { "(unnamed)".into() } else { cleaned }
}

/// Adds `n` under `key`, folding new keys beyond [`MAX_KEYS`] into [`OTHER_KEY`] so a hostile
/// file cannot make the results grow without bound.
fn add_capped(map: &mut BTreeMap<String, u64>, key: String, n: u64) {
    let key = if map.contains_key(&key) || map.len() < MAX_KEYS { key } else { OTHER_KEY.to_owned() };
    let slot = map.entry(key).or_default();
    *slot = slot.saturating_add(n);
}

/// One of Artillery's summaries as ours; absent or empty is "no samples".
fn latency(s: Option<&Summary>, key: &str) -> Result<LatencySummary, ArtilleryError> {
    let Some(s) = s else { return Ok(LatencySummary::default()) };
    if s.count == 0 {
        return Ok(LatencySummary::default());
    }
    let get = |name: &str, v: Option<f64>| -> Result<f64, ArtilleryError> {
        let v = v.ok_or_else(|| ArtilleryError::Invalid(format!("`{key}` has a count but no `{name}`")))?;
        if !v.is_finite() || v < 0.0 {
            return Err(ArtilleryError::Invalid(format!("`{key}.{name}` is {v}, not a latency in ms")));
        }
        Ok(v)
    };
    Ok(LatencySummary {
        count: s.count,
        min: get("min", s.min)?,
        mean: get("mean", s.mean)?,
        p50: get("p50", s.p50.or(s.median))?,
        p90: get("p90", s.p90)?,
        p95: get("p95", s.p95)?,
        p99: get("p99", s.p99)?,
        p999: get("p999", s.p999)?,
        max: get("max", s.max)?,
    })
}

/// The metrics-by-endpoint plugin's figures per request name (its `useOnlyRequestNames`) or
/// URL: `plugins.metrics-by-endpoint.NAME.codes.CODE`, `….NAME.errors.ERROR` and the summary
/// `plugins.metrics-by-endpoint.response_time.NAME`. Names may contain dots, so the counter
/// keys are split at their last `.codes.` / `.errors.`.
fn by_request_name(agg: &Period) -> Result<BTreeMap<String, Breakdown>, ArtilleryError> {
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    fn name_of(raw: &str, tallies: &BTreeMap<String, Tally>) -> String {
        let name = clean_name(raw);
        if tallies.contains_key(&name) || tallies.len() < MAX_KEYS { name } else { OTHER_KEY.to_owned() }
    }
    for (key, &n) in agg.counters.iter().flatten() {
        let Some(rest) = key.strip_prefix(METRICS_BY_ENDPOINT) else { continue };
        if let Some((name, code)) = rest.rsplit_once(".codes.") {
            let name = name_of(name, &tallies);
            tallies.entry(name).or_default().answer(code, n);
        } else if let Some((name, error)) = rest.rsplit_once(".errors.") {
            let name = name_of(name, &tallies);
            tallies.entry(name).or_default().error(error, n);
        }
    }
    let mut out: BTreeMap<String, Breakdown> = tallies
        .into_iter()
        .map(|(name, t)| {
            let transport_errors = t.errors.iter().filter(|(k, _)| !k.starts_with("status_")).map(|(_, n)| *n);
            let requests = t.n_answers().saturating_add(transport_errors.sum());
            (name, Breakdown { requests, errors: t.n_errors(), ..Breakdown::default() })
        })
        .collect();
    for (key, s) in &agg.summaries {
        let Some(name) = key.strip_prefix(METRICS_BY_ENDPOINT).and_then(|r| r.strip_prefix("response_time.")) else {
            continue;
        };
        let ack = latency(Some(s), &format!("aggregate.summaries.{key}"))?;
        let name = clean_name(name);
        if let Some(b) = out.get_mut(&name) {
            b.ack = ack;
        } else if out.len() < MAX_KEYS {
            out.insert(name, Breakdown { ack, ..Breakdown::default() });
        }
    }
    Ok(out)
}

/// One point per intermediate period, in time order, offset from the run's start (a period
/// that began before the first counter, as Artillery's clock-aligned periods do, starts at 0).
fn time_series(periods: &[Period], start_ms: i64) -> Result<(TimeSeries, usize), ArtilleryError> {
    let mut starts = Vec::with_capacity(periods.len().min(MAX_POINTS));
    for (i, p) in periods.iter().enumerate() {
        let at = p.period.or(p.first_counter_at).or(p.first_metric_at);
        starts.push((instant(at, &format!("intermediate[{i}].period"))?, i));
    }
    starts.sort_unstable();
    let left_out = starts.len().saturating_sub(MAX_POINTS);
    starts.truncate(MAX_POINTS);
    let interval_ms = starts
        .windows(2)
        .filter_map(|w| u64::try_from(w[1].0 - w[0].0).ok().filter(|d| *d > 0))
        .min()
        .unwrap_or(DEFAULT_PERIOD_MS);
    let mut points = Vec::with_capacity(starts.len());
    for (at, i) in starts {
        let p = &periods[i];
        let tally = p.counters.as_ref().map(Tally::of).unwrap_or_default();
        let ack =
            latency(p.summaries.get("http.response_time"), &format!("intermediate[{i}].summaries.http.response_time"))?;
        let achieved_rate = match p.rates.get("http.request_rate") {
            Some(r) if r.is_finite() && *r >= 0.0 => *r,
            _ => tally.requests as f64 / (interval_ms as f64 / 1000.0),
        };
        points.push(TimePoint {
            offset_ms: u64::try_from(at - start_ms).unwrap_or(0),
            achieved_rate,
            requests: tally.requests,
            errors: tally.n_errors(),
            ack_p50: ack.p50,
            ack_p95: ack.p95,
            ack_p99: ack.p99,
            ..TimePoint::default()
        });
    }
    Ok((TimeSeries { interval_ms, points }, left_out))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn summary(count: u64, p50: f64, p95: f64, p99: f64) -> serde_json::Value {
        json!({"min": p50 / 2.0, "max": p99 * 2.0, "count": count, "mean": p50, "p50": p50, "median": p50,
               "p75": p50, "p90": p95, "p95": p95, "p99": p99, "p999": p99})
    }

    fn period(at: i64, counters: serde_json::Value, rt: serde_json::Value) -> serde_json::Value {
        json!({"counters": counters, "rates": {"http.request_rate": 3}, "firstCounterAt": at + 5,
               "lastCounterAt": at + 9_000, "period": at.to_string(),
               "summaries": {"http.response_time": rt}, "histograms": {"http.response_time": rt}})
    }

    fn sample() -> serde_json::Value {
        json!({
            "aggregate": {
                "counters": {
                    "vusers.created": 12, "vusers.completed": 10, "vusers.failed": 2,
                    "http.requests": 24, "http.codes.200": 20, "http.codes.503": 1, "http.codes.404": 1,
                    "errors.ETIMEDOUT": 1, "errors.ECONNREFUSED": 1,
                    "plugins.metrics-by-endpoint.echo.v2.codes.200": 20,
                    "plugins.metrics-by-endpoint.echo.v2.codes.503": 1,
                    "plugins.metrics-by-endpoint.echo.v2.errors.ETIMEDOUT": 1,
                    "my.custom.counter": 7
                },
                "rates": {"http.request_rate": 2},
                "firstCounterAt": 1_000_004_000, "lastCounterAt": 1_000_024_000, "period": 1_000_020_000,
                "summaries": {
                    "http.response_time": summary(22, 2.1, 9.5, 30.2),
                    "plugins.metrics-by-endpoint.response_time.echo.v2": summary(21, 2.0, 9.0, 30.0),
                    "vusers.session_length": summary(10, 200.0, 300.0, 400.0)
                },
                "histograms": {}
            },
            "intermediate": [
                period(1_000_010_000, json!({"http.requests": 14, "http.codes.200": 12, "http.codes.503": 1,
                                             "errors.ETIMEDOUT": 1}), summary(13, 3.0, 10.0, 31.0)),
                period(1_000_000_000, json!({"http.requests": 6, "http.codes.200": 6}), summary(6, 1.0, 2.0, 3.0)),
                period(1_000_020_000, json!({"http.requests": 4, "http.codes.200": 2, "http.codes.404": 1,
                                             "errors.ECONNREFUSED": 1}), summary(3, 2.0, 4.0, 5.0)),
            ]
        })
    }

    fn convert_json(v: &serde_json::Value) -> Result<LoadTestResults, ArtilleryError> {
        from_slice(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn counters_become_requests_answers_and_errors_by_our_names() {
        let r = convert_json(&sample()).unwrap();
        let c = &r.counters;
        assert_eq!((c.scheduled, c.requests, c.dropped, c.responses, c.lost), (12, 24, 0, 0, 0));
        let acks: Vec<(&str, u64)> = c.acks.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(acks, [("200", 20), ("404", 1), ("503", 1)]);
        let errors: Vec<(&str, u64)> = c.errors.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(errors, [("connect", 1), ("status_4xx", 1), ("status_5xx", 1), ("timeout", 1)]);
        assert_eq!(c.n_errors(), 4);
        assert!(is_artillery(&r));
        assert_eq!((r.test.start_ms, r.test.end_ms, r.test.duration_ms), (1_000_004_000, 1_000_024_000, 20_000));
        assert!(r.test.notes.iter().any(|n| n.contains("no E2E figures")), "{:?}", r.test.notes);
        assert!(r.test.notes.iter().any(|n| n.contains("12 created, 10 completed, 2 failed")), "{:?}", r.test.notes);
        assert!(r.phases.is_empty() && r.thresholds.is_empty() && r.passed);
    }

    #[test]
    fn http_response_time_is_the_ack_latency_and_there_is_no_e2e() {
        let r = convert_json(&sample()).unwrap();
        let s = &r.summaries;
        let a = s.ack;
        assert_eq!(
            (a.count, a.min, a.mean, a.p50, a.p90, a.p95, a.p99, a.p999, a.max),
            (22, 1.05, 2.1, 2.1, 9.5, 9.5, 30.2, 30.2, 60.4)
        );
        assert_eq!(s.service_time, a, "Artillery times from the actual send: the same figure");
        for e2e in [s.first_response, s.last_response, s.send_lag] {
            assert_eq!(e2e.count, 0, "not measured");
        }
    }

    #[test]
    fn metrics_by_endpoint_gives_the_per_request_name_breakdown_even_with_dots_in_names() {
        let r = convert_json(&sample()).unwrap();
        assert_eq!(r.by_command.keys().collect::<Vec<_>>(), ["echo.v2"]);
        let b = &r.by_command["echo.v2"];
        assert_eq!((b.requests, b.errors, b.responses, b.lost), (22, 2, 0, 0));
        assert_eq!((b.ack.count, b.ack.p50, b.ack.p95, b.ack.p99), (21, 2.0, 9.0, 30.0));
    }

    #[test]
    fn intermediate_periods_become_the_time_series_in_time_order() {
        let r = convert_json(&sample()).unwrap();
        let ts = &r.time_series;
        assert_eq!(ts.interval_ms, 10_000);
        let got: Vec<(u64, u64, u64, f64, f64, f64)> =
            ts.points.iter().map(|p| (p.offset_ms, p.requests, p.errors, p.ack_p50, p.ack_p95, p.ack_p99)).collect();
        // The first period began (clock-aligned) before the first counter: it starts at 0.
        assert_eq!(got, [(0, 6, 0, 1.0, 2.0, 3.0), (6_000, 14, 2, 3.0, 10.0, 31.0), (16_000, 4, 2, 2.0, 4.0, 5.0)]);
        assert!(ts.points.iter().all(|p| p.achieved_rate == 3.0 && p.e2e_p99 == 0.0 && p.target_rate == 0.0));
    }

    #[test]
    fn unknown_keys_are_ignored_and_a_missing_rate_is_derived_from_the_period() {
        let mut v = sample();
        v["aggregate"]["somethingNew"] = json!({"deep": [1, 2, {"x": null}]});
        v["intermediate"][0]["rates"] = json!({});
        v["intermediate"][0]["http.request_rate"] = json!(null);
        let r = convert_json(&v).unwrap();
        let p = r.time_series.points.iter().find(|p| p.requests == 14).unwrap();
        assert_eq!(p.achieved_rate, 1.4, "14 requests in a 10 s period");
    }

    #[test]
    fn a_wrong_type_names_its_json_path() {
        let mut v = sample();
        v["aggregate"]["counters"]["http.requests"] = json!("lots");
        let err = convert_json(&v).unwrap_err().to_string();
        assert!(err.contains("aggregate.counters.http.requests") && err.contains("invalid type"), "{err}");

        let mut v = sample();
        v["intermediate"][1]["summaries"]["http.response_time"]["p95"] = json!([]);
        let err = convert_json(&v).unwrap_err().to_string();
        assert!(err.contains("intermediate[1].summaries.http.response_time.p95"), "{err}");

        let mut v = sample();
        v["aggregate"]["counters"]["http.requests"] = json!(-3);
        assert!(convert_json(&v).unwrap_err().to_string().contains("aggregate.counters.http.requests"));

        let mut v = sample();
        v["intermediate"][0]["period"] = json!("yesterday");
        let err = convert_json(&v).unwrap_err().to_string();
        assert!(err.contains("intermediate[0].period") && err.contains("yesterday"), "{err}");
    }

    #[test]
    fn missing_parts_and_impossible_values_are_clear_errors() {
        type Edit = fn(&mut serde_json::Value);
        let cases: [(&str, Edit); 7] = [
            ("no `intermediate`", |v| drop(v.as_object_mut().unwrap().remove("intermediate"))),
            ("no `aggregate`", |v| drop(v.as_object_mut().unwrap().remove("aggregate"))),
            ("`aggregate` has no `counters`", |v| drop(v["aggregate"].as_object_mut().unwrap().remove("counters"))),
            ("firstCounterAt", |v| drop(v["aggregate"].as_object_mut().unwrap().remove("firstCounterAt"))),
            ("is before", |v| v["aggregate"]["lastCounterAt"] = json!(5)),
            ("not a latency", |v| v["aggregate"]["summaries"]["http.response_time"]["p99"] = json!(-1.0)),
            ("has a count but no `p95`", |v| {
                drop(v["aggregate"]["summaries"]["http.response_time"].as_object_mut().unwrap().remove("p95"))
            }),
        ];
        for (want, edit) in cases {
            let mut v = sample();
            edit(&mut v);
            let err = convert_json(&v).unwrap_err().to_string();
            assert!(err.contains(want) && err.starts_with("Artillery results"), "{want}: {err}");
        }
    }

    #[test]
    fn artillery_1_output_is_refused_with_what_to_do() {
        let v1 = json!({"aggregate": {"timestamp": "2020-01-01T00:00:00Z", "latency": {"median": 1}, "codes": {}},
                        "intermediate": []});
        let err = convert_json(&v1).unwrap_err();
        assert!(matches!(err, ArtilleryError::Version1), "{err}");
        assert!(err.to_string().contains("Artillery 2"), "{err}");
    }

    #[test]
    fn hostile_names_are_cleaned_and_their_number_is_capped() {
        let mut v = sample();
        let counters = v["aggregate"]["counters"].as_object_mut().unwrap();
        for i in 0..(MAX_KEYS + 50) {
            counters.insert(format!("errors.E{i}\u{7}"), json!(1));
            counters.insert(format!("plugins.metrics-by-endpoint.n{i}.codes.200"), json!(1));
        }
        counters.insert(format!("errors.{}", "x".repeat(10_000)), json!(1));
        let r = convert_json(&v).unwrap();
        assert!(r.counters.errors.len() <= MAX_KEYS + 1, "{}", r.counters.errors.len());
        assert!(r.counters.errors.keys().all(|k| k.chars().count() <= MAX_NAME_CHARS && !k.contains('\u{7}')));
        assert_eq!(r.counters.n_errors(), 4 + MAX_KEYS as u64 + 50 + 1, "folded, not dropped");
        assert!(r.by_command.len() <= MAX_KEYS + 1);
    }

    #[test]
    fn an_empty_run_converts_to_empty_figures() {
        let v = json!({"aggregate": {"counters": {}, "firstCounterAt": 5, "lastCounterAt": 5, "summaries": {}},
                       "intermediate": []});
        let r = convert_json(&v).unwrap();
        assert_eq!((r.counters.requests, r.summaries.ack.count, r.time_series.points.len()), (0, 0, 0));
        assert_eq!(r.time_series.interval_ms, DEFAULT_PERIOD_MS);
        assert_eq!(r.throughput(), None);
    }
}
