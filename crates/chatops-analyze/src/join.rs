//! The client/server join (`analyze --requests requests.ndjson`): the load generator's
//! per-request records, keyed by the correlation id the bot logs, are held in memory; the
//! bot's lines are matched against them as they stream by; the result is the full path of
//! each command, client send → router → durable enqueue → queue wait → handler → each
//! response → arrival at the receiver, with the unexplained remainder shown.
//!
//! The request records are the one part of the analysis whose memory grows with the input
//! (about 150 bytes per request); at most [`MAX_CLIENT_RECORDS`] are kept.
//!
//! Record shape (one JSON object per line, written by `chatops loadtest --record-requests`):
//! `id` (or `correlationId`), `command`, `scheduledMs`, `sentMs` (epoch ms), `ackStatus`,
//! `ackMs`, `responsesMs` (array). `ackMs` and each response time may be epoch milliseconds
//! or milliseconds since `sentMs`; values below 1e11 (a 1973 instant) are read as offsets.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use crate::dist::{Dist, Precision, round_us};
use crate::error::AnalyzeError;
use crate::input::{self, Input, MAX_LINE_BYTES};
use crate::line::{RouterLine, WorkerLine};
use crate::metric::Metric;
use crate::summary::{JoinBreakdown, JoinSegment, JoinSummary};

/// Most client records held for the join; further records are counted as invalid.
pub const MAX_CLIENT_RECORDS: usize = 2_000_000;
/// Most responses per command Slack allows, hence the most arrivals tracked.
const MAX_ARRIVALS: usize = 5;
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
    /// Ack latency from `sentMs`.
    ack: Option<f64>,
    /// Response arrival offsets from `sentMs`, ascending.
    arrivals: [f64; MAX_ARRIVALS],
    n_arrivals: u8,
    router_duration: Option<f64>,
    worker_attempt: u32,
    /// routerMs, enqueueMs, queueWaitMs, firstResponseE2eMs, lastResponseE2eMs (NaN: absent).
    worker: [f64; 5],
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
    ack_ms: Option<f64>,
    #[serde(default)]
    responses_ms: Vec<f64>,
}

/// Epoch milliseconds below this are offsets, not instants (1e11 ms is in 1973).
const EPOCH_FLOOR_MS: f64 = 1e11;

fn offset_from(sent: f64, t: f64) -> Option<f64> {
    if !t.is_finite() {
        return None;
    }
    Some(if t >= EPOCH_FLOOR_MS { t - sent } else { t })
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
        let mut arrivals = [f64::NAN; MAX_ARRIVALS];
        let mut offsets: Vec<f64> = raw.responses_ms.iter().filter_map(|&t| offset_from(raw.sent_ms, t)).collect();
        offsets.sort_by(f64::total_cmp);
        offsets.truncate(MAX_ARRIVALS);
        arrivals[..offsets.len()].copy_from_slice(&offsets);
        let rec = Rec {
            command,
            lateness: raw.scheduled_ms.filter(|s| s.is_finite()).map(|s| raw.sent_ms - s),
            ack: raw.ack_ms.and_then(|a| offset_from(raw.sent_ms, a)),
            arrivals,
            n_arrivals: offsets.len() as u8,
            router_duration: None,
            worker_attempt: 0,
            worker: [f64::NAN; 5],
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
        let key = if self.commands.len() < MAX_COMMANDS { command } else { crate::aggregate::OTHER_KEY };
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

/// Names and labels of the joined segments, in path order.
const JOIN_SEGMENTS: [(&str, &str); 6] = [
    ("router", "router"),
    ("enqueue", "durable enqueue"),
    ("queue_wait", "queue wait"),
    ("handler_to_first_response", "handler → first response"),
    ("first_to_last_response", "first → last response"),
    ("unexplained", "unexplained (network, clock)"),
];

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
    lateness: Dist,
    ack: Dist,
    router_duration: Dist,
    ack_unexplained_sum: f64,
    ack_unexplained_n: u64,
    client_e2e: Dist,
    segments: [SegAcc; 6],
    arrivals: [Dist; MAX_ARRIVALS],
}

impl Default for JoinAcc {
    fn default() -> Self {
        JoinAcc {
            requests: 0,
            complete: 0,
            lateness: Dist::new(Precision::Fine),
            ack: Dist::new(Precision::Fine),
            router_duration: Dist::new(Precision::Fine),
            ack_unexplained_sum: 0.0,
            ack_unexplained_n: 0,
            client_e2e: Dist::new(Precision::Fine),
            segments: Default::default(),
            arrivals: std::array::from_fn(|_| Dist::new(Precision::Fine)),
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
        let n = usize::from(rec.n_arrivals);
        for (dist, &t) in self.arrivals.iter_mut().zip(&rec.arrivals[..n]) {
            dist.record(t);
        }
        let [router, enqueue, queue_wait, first, last] = rec.worker;
        if n == 0 || rec.worker.iter().any(|v| v.is_nan()) {
            return false;
        }
        let client_e2e = rec.arrivals[n - 1];
        let parts =
            [router, enqueue, queue_wait, first - (router + enqueue + queue_wait), last - first, client_e2e - last];
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
            JOIN_SEGMENTS
                .iter()
                .zip(&self.segments)
                .map(|(&(name, label), acc)| {
                    let mean = acc.sum / n;
                    JoinSegment {
                        name: name.to_owned(),
                        label: label.to_owned(),
                        mean_ms: round_us(mean),
                        share_pct: if e2e_mean > 0.0 { (mean / e2e_mean * 1e4).round() / 100.0 } else { 0.0 },
                        stats: acc.dist.summary(),
                        negative: acc.negative,
                    }
                })
                .collect()
        };
        let arrivals = self.arrivals.iter().take_while(|d| d.count() > 0).map(Dist::summary).collect();
        JoinBreakdown {
            command: command.to_owned(),
            requests: self.requests,
            complete: self.complete,
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
            arrivals,
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
        let client = format!(
            r#"{{"id":"a","command":"/echo","scheduledMs":{},"sentMs":{},"ackStatus":200,"ackMs":{},"responsesMs":[{},{}]}}"#,
            T0,
            T0 + 1.0,
            T0 + 4.0,
            T0 + 13.0,
            T0 + 21.0
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
        assert_eq!(b.arrivals.iter().map(|a| a.p50).collect::<Vec<_>>(), [12.0, 20.0]);
        assert_eq!(s.by_command.len(), 1);
        assert_eq!(s.by_command[0].command, "/echo");
    }

    #[test]
    fn uses_the_final_attempt_and_shows_negative_remainders() {
        let mut j = joiner(&[r#"{"id":"r","command":"/deploy","sentMs":1764331200000,"responsesMs":[5]}"#]);
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
            r#"{"id":"lost","command":"/echo","sentMs":1764331200000,"ackMs":1764331200003,"responsesMs":[]}"#,
            r#"{"id":"origin","command":"/echo","sentMs":1764331200000,"responsesMs":[9]}"#,
            "",
        ]);
        feed_server(&mut j, r#"{"message":"Router performance metrics","correlationId":"stranger","duration":1}"#);
        feed_server(
            &mut j,
            r#"{"message":"Performance metrics","correlationId":"origin","totalE2eMs":5,"queueWaitMs":1}"#,
        );
        let s = j.finish();
        assert_eq!((s.client_records, s.invalid_records, s.server_only_lines), (2, 4, 1));
        assert_eq!((s.matched_router, s.matched_worker, s.complete, s.client_only), (0, 1, 0, 1));
        assert!(s.overall.segments.is_empty());
        assert_eq!(s.overall.client_ack.p50, 3.0);
    }

    #[test]
    fn reads_a_gzipped_requests_file() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.ndjson.gz");
        let mut e = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
        writeln!(e, r#"{{"id":"a","command":"/echo","sentMs":1764331200000,"responsesMs":[1764331200010]}}"#).unwrap();
        e.finish().unwrap();
        let s = Joiner::read(&path).unwrap().finish();
        assert_eq!(s.client_records, 1);
        assert_eq!(s.overall.arrivals[0].p50, 10.0);
    }
}
