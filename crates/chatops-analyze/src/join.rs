//! The client/server join (`analyze --requests requests.ndjson`): the load generator's
//! per-request records, keyed by the correlation id the bot logs, are held in memory; the
//! bot's lines are matched against them as they stream by; the result is the full path of
//! each command, client send → router → (approval wait, for a command that needed
//! approvals) → durable enqueue → queue wait → handler → each response → arrival at the
//! receiver, with the unexplained remainder shown.
//!
//! The request records are the one part of the analysis whose memory grows with the input
//! (about 150 bytes per request); at most [`MAX_CLIENT_RECORDS`] are kept.
//!
//! Record shape: one JSON object per line, as `chatops loadtest --record-requests` writes it:
//! `id` (the `x-request-id` the load generator sent, which the bot adopts as its correlation
//! id; `correlationId` is accepted too), `command`, `scheduledMs` and `sentMs` (epoch ms),
//! `ackStatus` (absent or null on a transport error), `error`, `ackMs` (scheduled → HTTP
//! answer), `serviceMs` (sent → HTTP answer), `responses` (count), `firstResponseMs` and
//! `lastResponseMs` (scheduled → first / last post at the receiver). Durations are converted
//! to "since sent" by subtracting the client's lateness (`sentMs - scheduledMs`), so the path
//! starts when the request left the client. A `responsesMs` array of arrival instants (epoch
//! ms) or offsets from `sentMs` is accepted instead of the first/last fields. Any of these
//! times given as an epoch instant (≥ 1e11) is read as one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chatops_core::Segment as SegmentKind;
use serde::Deserialize;

use crate::dist::{Dist, Precision, round_us};
use crate::error::AnalyzeError;
use crate::input::{self, Input, MAX_LINE_BYTES};
use crate::line::{RouterLine, WorkerLine};
use crate::metric::Metric;
use crate::summary::{JoinBreakdown, JoinSegment, JoinSummary};

/// Most client records held for the join; further records are counted as invalid.
pub const MAX_CLIENT_RECORDS: usize = 2_000_000;
/// Distinct commands tracked; records with further commands are grouped under `(other)`.
const MAX_COMMANDS: usize = 200;

/// Client records plus what the bot's lines said about each.
#[derive(Debug)]
pub struct Joiner {
    path: String,
    records: HashMap<Box<str>, Rec>,
    commands: Vec<String>,
    command_index: HashMap<String, u16>,
    client_records: u64,
    invalid: u64,
    server_only_lines: u64,
}

#[derive(Debug)]
struct Rec {
    command: u16,
    /// `sentMs - scheduledMs`.
    lateness: Option<f64>,
    /// Times since `sentMs`: HTTP answer, first and last response arrival.
    ack: Option<f64>,
    first: Option<f64>,
    last: Option<f64>,
    /// A transport error or a non-2xx answer.
    failed: bool,
    router_duration: Option<f64>,
    worker_attempt: u32,
    /// routerMs, enqueueMs, queueWaitMs, firstResponseE2eMs, lastResponseE2eMs (NaN: absent).
    worker: [f64; 5],
    /// approvalWaitMs of the same line (NaN: the job waited for no approval).
    approval_wait: f64,
}

const WORKER_FIELDS: [Metric; 5] =
    [Metric::Router, Metric::Enqueue, Metric::QueueWait, Metric::FirstResponseE2e, Metric::LastResponseE2e];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequest<'a> {
    #[serde(borrow, alias = "correlationId")]
    id: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    command: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    scheduled_ms: Option<f64>,
    sent_ms: f64,
    #[serde(default)]
    ack_status: Option<u16>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    ack_ms: Option<f64>,
    #[serde(default)]
    service_ms: Option<f64>,
    #[serde(default)]
    first_response_ms: Option<f64>,
    #[serde(default)]
    last_response_ms: Option<f64>,
    #[serde(default)]
    responses_ms: Vec<f64>,
}

/// Epoch milliseconds below this are durations, not instants (1e11 ms is in 1973).
const EPOCH_FLOOR_MS: f64 = 1e11;

/// A time since the send, from either an epoch instant or a duration that started
/// `base_to_sent` ms before the send (the client's lateness for "since scheduled" durations).
fn since_sent(t: f64, sent: f64, base_to_sent: f64) -> Option<f64> {
    if !t.is_finite() {
        return None;
    }
    Some(if t >= EPOCH_FLOOR_MS { t - sent } else { t - base_to_sent })
}

impl Joiner {
    /// Reads a requests file (plain or gzip). Invalid lines are counted, never fatal; an
    /// unreadable file is an error.
    pub fn read(path: &Path) -> Result<Joiner, AnalyzeError> {
        let mut joiner = Joiner::new(path.display().to_string());
        let mut r = input::open(&Input::File(path.to_path_buf())).map_err(|e| match e {
            AnalyzeError::Input { path, source } => AnalyzeError::Requests { path, source },
            other => other,
        })?;
        let (stats, err) = input::for_each_line(&mut r, MAX_LINE_BYTES, |line| joiner.add_client_line(line));
        joiner.invalid += stats.oversized;
        if let Some(source) = err {
            return Err(AnalyzeError::Requests { path: path.to_path_buf(), source });
        }
        Ok(joiner)
    }

    fn new(path: String) -> Joiner {
        Joiner {
            path,
            records: HashMap::new(),
            commands: Vec::new(),
            command_index: HashMap::new(),
            client_records: 0,
            invalid: 0,
            server_only_lines: 0,
        }
    }

    /// Adds one line of the requests file.
    pub fn add_client_line(&mut self, line: &[u8]) {
        let line = line.trim_ascii();
        if line.is_empty() {
            return;
        }
        let Ok(raw) = serde_json::from_slice::<RawRequest<'_>>(line) else {
            self.invalid += 1;
            return;
        };
        if raw.id.is_empty() || !raw.sent_ms.is_finite() || self.records.len() >= MAX_CLIENT_RECORDS {
            self.invalid += 1;
            return;
        }
        let command = self.command_idx(raw.command.as_deref().unwrap_or("(none)"));
        let sent = raw.sent_ms;
        let lateness = raw.scheduled_ms.filter(|s| s.is_finite()).map(|s| sent - s);
        // Durations in the record run from the scheduled time; the path starts at the send.
        let late = lateness.unwrap_or(0.0);
        let ack = match raw.service_ms.filter(|v| v.is_finite()) {
            Some(service) => Some(service),
            None => raw.ack_ms.and_then(|a| since_sent(a, sent, late)),
        };
        let (mut first, mut last) = (
            raw.first_response_ms.and_then(|t| since_sent(t, sent, late)),
            raw.last_response_ms.and_then(|t| since_sent(t, sent, late)),
        );
        if first.is_none() && !raw.responses_ms.is_empty() {
            // Arrival instants, or offsets already measured from the send.
            let offsets = raw.responses_ms.iter().filter_map(|&t| since_sent(t, sent, 0.0));
            first = offsets.clone().min_by(f64::total_cmp);
            last = offsets.max_by(f64::total_cmp);
        }
        let failed = raw.error.is_some() || raw.ack_status.is_none_or(|s| !(200..300).contains(&s));
        let rec = Rec {
            command,
            lateness,
            ack,
            first,
            last: last.or(first),
            failed,
            router_duration: None,
            worker_attempt: 0,
            worker: [f64::NAN; 5],
            approval_wait: f64::NAN,
        };
        self.client_records += 1;
        if self.records.insert(raw.id.as_ref().into(), rec).is_some() {
            // A repeated id replaces the earlier record; count it once.
            self.client_records -= 1;
        }
    }

    fn command_idx(&mut self, command: &str) -> u16 {
        if let Some(&i) = self.command_index.get(command) {
            return i;
        }
        let key = if self.commands.len() < MAX_COMMANDS { command } else { crate::summary::OTHER_KEY };
        if let Some(&i) = self.command_index.get(key) {
            return i;
        }
        self.commands.push(key.to_owned());
        let i = (self.commands.len() - 1) as u16;
        self.command_index.insert(key.to_owned(), i);
        i
    }

    pub(crate) fn add_router(&mut self, id: &str, r: &RouterLine<'_>) {
        match self.records.get_mut(id) {
            Some(rec) => rec.router_duration = Some(r.duration_ms),
            None => self.server_only_lines += 1,
        }
    }

    pub(crate) fn add_worker(&mut self, id: &str, w: &WorkerLine<'_>) {
        let Some(rec) = self.records.get_mut(id) else {
            self.server_only_lines += 1;
            return;
        };
        // The final attempt is the one whose responses the client saw.
        if w.attempt >= rec.worker_attempt {
            rec.worker_attempt = w.attempt;
            for (slot, m) in rec.worker.iter_mut().zip(WORKER_FIELDS) {
                *slot = w.get(m).unwrap_or(f64::NAN);
            }
            rec.approval_wait = w.get(Metric::ApprovalWait).unwrap_or(f64::NAN);
        }
    }

    /// Computes the breakdowns.
    pub fn finish(self) -> JoinSummary {
        let mut overall = JoinAcc::default();
        let mut by_command: BTreeMap<&str, JoinAcc> = BTreeMap::new();
        let (mut matched_router, mut matched_worker, mut complete, mut client_only) = (0, 0, 0, 0);
        for rec in self.records.values() {
            matched_router += u64::from(rec.router_duration.is_some());
            matched_worker += u64::from(rec.worker_attempt > 0);
            client_only += u64::from(rec.router_duration.is_none() && rec.worker_attempt == 0);
            let is_complete = overall.add(rec);
            by_command.entry(&self.commands[usize::from(rec.command)]).or_default().add(rec);
            complete += u64::from(is_complete);
        }
        JoinSummary {
            requests_file: self.path,
            client_records: self.client_records,
            invalid_records: self.invalid,
            matched_router,
            matched_worker,
            complete,
            client_only,
            server_only_lines: self.server_only_lines,
            overall: overall.finish("all"),
            by_command: by_command.into_iter().map(|(c, acc)| acc.finish(c)).collect(),
        }
    }
}

#[derive(Debug)]
struct SegAcc {
    dist: Dist,
    sum: f64,
    negative: u64,
}

impl Default for SegAcc {
    fn default() -> Self {
        SegAcc { dist: Dist::new(Precision::Fine), sum: 0.0, negative: 0 }
    }
}

#[derive(Debug)]
struct JoinAcc {
    requests: u64,
    complete: u64,
    client_errors: u64,
    lost: u64,
    lateness: Dist,
    ack: Dist,
    router_duration: Dist,
    ack_unexplained_sum: f64,
    ack_unexplained_n: u64,
    client_e2e: Dist,
    segments: [SegAcc; SegmentKind::JOIN.len()],
    /// Complete records whose job waited for approvals.
    approval_records: u64,
    first_arrival: Dist,
    last_arrival: Dist,
}

impl Default for JoinAcc {
    fn default() -> Self {
        JoinAcc {
            requests: 0,
            complete: 0,
            client_errors: 0,
            lost: 0,
            lateness: Dist::new(Precision::Fine),
            ack: Dist::new(Precision::Fine),
            router_duration: Dist::new(Precision::Fine),
            ack_unexplained_sum: 0.0,
            ack_unexplained_n: 0,
            client_e2e: Dist::new(Precision::Fine),
            segments: Default::default(),
            approval_records: 0,
            first_arrival: Dist::new(Precision::Fine),
            last_arrival: Dist::new(Precision::Fine),
        }
    }
}

impl JoinAcc {
    /// Adds one record; true when it was complete.
    fn add(&mut self, rec: &Rec) -> bool {
        self.requests += 1;
        if let Some(l) = rec.lateness {
            self.lateness.record(l);
        }
        if let Some(a) = rec.ack {
            self.ack.record(a);
            if let Some(d) = rec.router_duration {
                self.router_duration.record(d);
                self.ack_unexplained_sum += a - d;
                self.ack_unexplained_n += 1;
            }
        }
        self.client_errors += u64::from(rec.failed);
        self.lost += u64::from(!rec.failed && rec.first.is_none());
        if let Some(f) = rec.first {
            self.first_arrival.record(f);
        }
        if let Some(l) = rec.last {
            self.last_arrival.record(l);
        }
        let [router, enqueue, queue_wait, first, last] = rec.worker;
        let Some(client_e2e) = rec.last else {
            return false;
        };
        if rec.worker.iter().any(|v| v.is_nan()) {
            return false;
        }
        let approval_wait = if rec.approval_wait.is_nan() { 0.0 } else { rec.approval_wait };
        self.approval_records += u64::from(!rec.approval_wait.is_nan());
        let before_dequeue = router + approval_wait + enqueue + queue_wait;
        // In `SegmentKind::JOIN` order.
        let parts =
            [router, approval_wait, enqueue, queue_wait, first - before_dequeue, last - first, client_e2e - last];
        for (acc, v) in self.segments.iter_mut().zip(parts) {
            acc.dist.record(v);
            acc.sum += v;
            acc.negative += u64::from(v < 0.0);
        }
        self.client_e2e.record(client_e2e);
        self.complete += 1;
        true
    }

    fn finish(&self, command: &str) -> JoinBreakdown {
        let n = self.complete as f64;
        let e2e_mean = if self.complete > 0 { self.client_e2e.sum() / n } else { 0.0 };
        let segments = if self.complete == 0 {
            Vec::new()
        } else {
            SegmentKind::JOIN
                .into_iter()
                .zip(&self.segments)
                .filter(|&(kind, _)| kind != SegmentKind::ApprovalWait || self.approval_records > 0)
                .map(|(kind, acc)| {
                    let mean = acc.sum / n;
                    JoinSegment {
                        name: kind,
                        label: kind.label().to_owned(),
                        mean_ms: round_us(mean),
                        share_pct: if e2e_mean > 0.0 { (mean / e2e_mean * 1e4).round() / 100.0 } else { 0.0 },
                        stats: acc.dist.summary(),
                        negative: acc.negative,
                    }
                })
                .collect()
        };
        JoinBreakdown {
            command: command.to_owned(),
            requests: self.requests,
            complete: self.complete,
            client_errors: self.client_errors,
            lost: self.lost,
            client_lateness: self.lateness.summary(),
            client_ack: self.ack.summary(),
            router_duration: self.router_duration.summary(),
            ack_unexplained_mean_ms: if self.ack_unexplained_n > 0 {
                round_us(self.ack_unexplained_sum / self.ack_unexplained_n as f64)
            } else {
                0.0
            },
            client_e2e: self.client_e2e.summary(),
            segments,
            first_arrival: self.first_arrival.summary(),
            last_arrival: self.last_arrival.summary(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::{LineKind, LineParser};

    fn feed_server(j: &mut Joiner, line: &str) {
        match LineParser::new().parse(line.as_bytes()) {
            LineKind::Router(r) => j.add_router(r.correlation_id.as_deref().unwrap(), &r),
            LineKind::Worker(w) => j.add_worker(w.correlation_id.as_deref().unwrap(), &w),
            other => panic!("{other:?}"),
        }
    }

    fn joiner(lines: &[&str]) -> Joiner {
        let mut j = Joiner::new("requests.ndjson".into());
        for l in lines {
            j.add_client_line(l.as_bytes());
        }
        j
    }

    const T0: f64 = 1_764_331_200_000.0;

    #[test]
    fn splits_the_client_e2e_time_into_segments_that_sum_to_it() {
        // As `loadtest --record-requests` writes it: durations from the scheduled time.
        let client = format!(
            r#"{{"id":"a","scenario":"s","command":"/echo","scheduledMs":{},"sentMs":{},"ackStatus":200,"error":null,"ackMs":4.0,"serviceMs":3.0,"responses":2,"firstResponseMs":13.0,"lastResponseMs":21.0}}"#,
            T0,
            T0 + 1.0
        );
        let mut j = joiner(&[&client]);
        feed_server(
            &mut j,
            r#"{"message":"Router performance metrics","correlationId":"a","duration":2.5,"statusCode":200}"#,
        );
        feed_server(
            &mut j,
            r#"{"message":"Performance metrics","correlationId":"a","attempt":1,"routerMs":0.5,"enqueueMs":1,"queueWaitMs":3,"firstResponseE2eMs":10,"lastResponseE2eMs":18,"totalE2eMs":18.5}"#,
        );
        let s = j.finish();
        assert_eq!((s.client_records, s.matched_router, s.matched_worker, s.complete, s.client_only), (1, 1, 1, 1, 0));
        let b = &s.overall;
        assert_eq!((b.client_errors, b.lost), (0, 0));
        assert_eq!((b.client_lateness.p50, b.client_ack.p50, b.router_duration.p50), (1.0, 3.0, 2.5));
        assert_eq!(b.ack_unexplained_mean_ms, 0.5);
        assert_eq!(b.client_e2e.p50, 20.0);
        let means: Vec<(&str, f64)> = b.segments.iter().map(|s| (s.name.as_str(), s.mean_ms)).collect();
        assert_eq!(
            means,
            [
                ("router", 0.5),
                ("enqueue", 1.0),
                ("queue_wait", 3.0),
                ("handler_to_first_response", 5.5),
                ("first_to_last_response", 8.0),
                ("unexplained", 2.0)
            ]
        );
        assert_eq!(b.segments.iter().map(|s| s.mean_ms).sum::<f64>(), b.client_e2e.mean);
        assert_eq!((b.first_arrival.p50, b.last_arrival.p50), (12.0, 20.0));
        assert_eq!(s.by_command.len(), 1);
        assert_eq!(s.by_command[0].command, "/echo");
    }

    #[test]
    fn an_approved_commands_wait_for_a_human_is_its_own_segment_of_the_client_time() {
        let client = |id: &str, last: f64| {
            format!(
                r#"{{"id":"{id}","command":"/deploy","sentMs":{T0},"ackStatus":200,"serviceMs":3.0,"firstResponseMs":{},"lastResponseMs":{last}}}"#,
                last - 8.0
            )
        };
        let mut j = joiner(&[&client("approved", 5021.0), &client("plain", 21.0)]);
        feed_server(
            &mut j,
            r#"{"message":"Performance metrics","correlationId":"approved","attempt":1,"routerMs":0.5,"approvalWaitMs":5000,"enqueueMs":1,"queueWaitMs":3,"firstResponseE2eMs":5010,"lastResponseE2eMs":5018}"#,
        );
        feed_server(
            &mut j,
            r#"{"message":"Performance metrics","correlationId":"plain","attempt":1,"routerMs":0.5,"enqueueMs":1,"queueWaitMs":3,"firstResponseE2eMs":10,"lastResponseE2eMs":18}"#,
        );
        let s = j.finish();
        assert_eq!(s.complete, 2);
        let b = &s.overall;
        let means: Vec<(&str, f64)> = b.segments.iter().map(|s| (s.name.as_str(), s.mean_ms)).collect();
        assert_eq!(
            means,
            [
                ("router", 0.5),
                ("approval_wait", 2500.0),
                ("enqueue", 1.0),
                ("queue_wait", 3.0),
                ("handler_to_first_response", 5.5),
                ("first_to_last_response", 8.0),
                ("unexplained", 3.0)
            ],
            "the wait is not counted as handler time"
        );
        assert_eq!(b.segments.iter().map(|s| s.mean_ms).sum::<f64>(), b.client_e2e.mean);
        // Without an approved job, no approval segment.
        let mut j = joiner(&[&client("plain", 21.0)]);
        feed_server(
            &mut j,
            r#"{"message":"Performance metrics","correlationId":"plain","attempt":1,"routerMs":0.5,"enqueueMs":1,"queueWaitMs":3,"firstResponseE2eMs":10,"lastResponseE2eMs":18}"#,
        );
        let plain = j.finish();
        assert_eq!(plain.complete, 1);
        assert!(plain.overall.segments.iter().all(|s| s.name != SegmentKind::ApprovalWait));
    }

    #[test]
    fn accepts_epoch_instants_and_a_responses_array() {
        let client = format!(
            r#"{{"id":"a","command":"/echo","scheduledMs":{T0},"sentMs":{},"ackStatus":200,"ackMs":{},"responsesMs":[{},{},{}]}}"#,
            T0 + 2.0,
            T0 + 6.0,
            T0 + 32.0,
            T0 + 12.0,
            T0 + 22.0
        );
        let s = joiner(&[&client]).finish();
        let b = &s.overall;
        assert_eq!((b.client_ack.p50, b.first_arrival.p50, b.last_arrival.p50), (4.0, 10.0, 30.0));
    }

    #[test]
    fn uses_the_final_attempt_and_shows_negative_remainders() {
        let mut j = joiner(&[
            r#"{"id":"r","command":"/deploy","sentMs":1764331200000,"ackStatus":200,"firstResponseMs":5,"lastResponseMs":5}"#,
        ]);
        feed_server(
            &mut j,
            r#"{"message":"Performance metrics","correlationId":"r","attempt":2,"routerMs":1,"enqueueMs":1,"queueWaitMs":1,"firstResponseE2eMs":6,"lastResponseE2eMs":6}"#,
        );
        feed_server(
            &mut j,
            r#"{"message":"Performance metrics","correlationId":"r","attempt":1,"routerMs":1,"enqueueMs":1,"queueWaitMs":1,"firstResponseE2eMs":99,"lastResponseE2eMs":99}"#,
        );
        let s = j.finish();
        let unexplained = s.overall.segments.last().unwrap();
        assert_eq!((unexplained.name.as_str(), unexplained.mean_ms, unexplained.negative), ("unexplained", -1.0, 1));
        assert_eq!(unexplained.stats.max, 0.0, "the distribution counts negatives as 0");
    }

    #[test]
    fn counts_invalid_records_unmatched_lines_and_incomplete_records() {
        let mut j = joiner(&[
            "not json",
            r#"{"id":"","sentMs":1}"#,
            r#"{"command":"/echo","sentMs":1}"#,
            r#"{"id":"x","sentMs":"soon"}"#,
            r#"{"id":"lost","command":"/echo","sentMs":1764331200000,"ackStatus":200,"ackMs":3,"responses":0}"#,
            r#"{"id":"origin","command":"/echo","sentMs":1764331200000,"ackStatus":200,"firstResponseMs":9}"#,
            r#"{"id":"refused","command":"/echo","sentMs":1764331200000,"ackStatus":null,"error":"connect"}"#,
            "",
        ]);
        feed_server(&mut j, r#"{"message":"Router performance metrics","correlationId":"stranger","duration":1}"#);
        feed_server(
            &mut j,
            r#"{"message":"Performance metrics","correlationId":"origin","totalE2eMs":5,"queueWaitMs":1}"#,
        );
        let s = j.finish();
        assert_eq!((s.client_records, s.invalid_records, s.server_only_lines), (3, 4, 1));
        assert_eq!((s.matched_router, s.matched_worker, s.complete, s.client_only), (0, 1, 0, 2));
        assert!(s.overall.segments.is_empty());
        assert_eq!(s.overall.client_ack.p50, 3.0);
        assert_eq!((s.overall.client_errors, s.overall.lost), (1, 1));
        assert_eq!(s.overall.last_arrival.max, 9.0, "a single response is first and last");
    }

    #[test]
    fn reads_a_gzipped_requests_file() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.ndjson.gz");
        let mut e = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
        writeln!(e, r#"{{"id":"a","command":"/echo","sentMs":1764331200000,"ackStatus":200,"firstResponseMs":10}}"#)
            .unwrap();
        e.finish().unwrap();
        let s = Joiner::read(&path).unwrap().finish();
        assert_eq!(s.client_records, 1);
        assert_eq!(s.overall.first_arrival.p50, 10.0);
    }
}
