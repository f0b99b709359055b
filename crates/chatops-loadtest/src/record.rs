//! The recorder: one task that owns every histogram and counter of a run, fed by events
//! from the workers and the scheduler (`Done`, `Dropped`) and the response receiver
//! (`Response`, `Unmatched`).
//!
//! One owner means no locks on the hot path: senders only push a small event on a channel.
//! Per-request state lives in a ring indexed by request sequence number, 32 bytes a slot,
//! for as long as the request may still get answers (its *response window*); then the slot
//! is finalized: E2E latencies recorded, counted lost if no answer came or incomplete if
//! fewer came than it expects (`expectAnswers`), written to the `--record-requests` file. Memory therefore stays bounded by rate × window (about
//! 48 MB at 50,000 requests/s with the default 30 s window), whatever
//! the test length. Time-series intervals are summarised and dropped the same way, and
//! histograms use HDR (3 significant digits for totals, 2 for the 1 s/10 s series).
//! A live view ([`Recorder::with_progress`], the dashboard) is sent a [`Progress`] at most
//! once a second from the same maintenance tick; all it adds per event is one histogram
//! record for a request's first answer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chatops_core::results::{Breakdown, Counters, Summaries, TimePoint, TimeSeries};
use chatops_core::stats::{LatencySummary, MAX_TRACKED_US, new_histogram};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::inspect::{ExpectKind, Findings};

/// Most distinct commands (or scenarios) broken down; the rest are grouped as `(other)`.
pub const MAX_BREAKDOWN_KEYS: usize = 64;
const OTHER: &str = "(other)";

/// Why a request failed: it got no HTTP answer (the first six), or its answer failed the
/// step's checks (a strict `capture` found nothing, an `expect` did not hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Timeout,
    Connect,
    Io,
    BodyTooLarge,
    BadRequest,
    /// The TLS handshake failed (certificate refused, not TLS, closed mid-handshake).
    Tls,
    CaptureFailed,
    ExpectFailed,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Io => "io",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::CaptureFailed => "capture_failed",
            ErrorKind::ExpectFailed => "expect_failed",
            ErrorKind::Tls => "tls",
        }
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(c: u8) -> Option<ErrorKind> {
        [
            ErrorKind::Timeout,
            ErrorKind::Connect,
            ErrorKind::Io,
            ErrorKind::BodyTooLarge,
            ErrorKind::BadRequest,
            ErrorKind::Tls,
            ErrorKind::CaptureFailed,
            ErrorKind::ExpectFailed,
        ]
        .get(usize::from(c).checked_sub(1)?)
        .copied()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    Error(ErrorKind),
}

/// The command of a finished request: an index into the plan's static names, or a name
/// decoded from a templated body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdRef {
    Known(u16),
    Name(Box<str>),
}

/// A request that finished (answered or failed). Times are ns from the test start.
#[derive(Debug, Clone)]
pub struct Done {
    pub seq: u64,
    pub sched_ns: u64,
    pub sent_ns: u64,
    pub done_ns: u64,
    pub outcome: Outcome,
    pub cmd: CmdRef,
    pub scen: u16,
    /// Posts expected at the receiver (`expectAnswers`); 0 when the request has no
    /// `response_url` pointing at the receiver.
    pub expected_answers: u8,
    /// What the step's `capture`/`expect` found in the HTTP answer.
    pub findings: Findings,
}

#[derive(Debug)]
pub enum Event {
    Done(Done),
    /// An arrival the in-flight cap refused.
    Dropped {
        sched_ns: u64,
    },
    /// A post at the receiver for request `seq`.
    Response {
        seq: u64,
        at_ns: u64,
    },
    /// A post at the receiver that named no request of this run.
    Unmatched,
}

/// Counters the console reads while the test runs.
#[derive(Debug, Default)]
pub struct Live {
    pub sent: AtomicU64,
    pub errors: AtomicU64,
    pub dropped: AtomicU64,
    pub responses: AtomicU64,
    pub lost: AtomicU64,
    pub incomplete: AtomicU64,
    pub in_flight: AtomicU64,
    /// Acknowledged requests that expect answers and do not have all of them yet.
    pub awaiting_answers: AtomicU64,
    /// ns from start of the latest receiver post.
    pub last_response_ns: AtomicU64,
    pub ack_p99_us: AtomicU64,
    pub e2e_p99_us: AtomicU64,
}

/// What the recorder publishes for a live view ([`crate::dashboard`]) about once a second:
/// the intervals closed so far, the open ones as they stand, and latency over the run so
/// far. Built from the recorder's own accumulators when it does its periodic maintenance,
/// never per event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Closed intervals, in order: the very points the results will hold (their target rate
    /// is filled in from the schedule afterwards, as for the results).
    pub closed: Vec<TimePoint>,
    /// Intervals that have ended but are still open (answers may still come), as they stand:
    /// provisional, and replaced by the closed point once the interval closes.
    pub open: Vec<TimePoint>,
    /// Ack over every answered request so far (ms).
    pub ack: Percentiles,
    /// Scheduled send → first answer over the answers that have arrived so far (ms). The
    /// run's totals count a request only once its response window closes; this counts it
    /// when its first answer lands, so it moves while the test runs.
    pub e2e: Percentiles,
}

/// Three percentiles of a latency, in ms (0 without samples).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        let q = |q: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1000.0 };
        Percentiles { p50: q(0.5), p95: q(0.95), p99: q(0.99) }
    }
}

/// The recorder's side of a live view: the channel, and what only a live view needs.
struct ProgressFeed {
    tx: watch::Sender<Progress>,
    /// First answers as they arrive (see [`Progress::e2e`]).
    first: Histogram<u64>,
    /// Closed points already published.
    n_closed: usize,
    published_at: Option<Instant>,
}

/// How often [`Progress`] is published.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub start: Instant,
    pub start_epoch_ms: i64,
    pub run_tag: String,
    pub commands: Vec<String>,
    pub scenarios: Vec<String>,
    pub interval: Duration,
    /// How long after its scheduled time a request may still get answers.
    pub response_window: Duration,
    pub http_timeout: Duration,
}

/// What the recorder hands back when the run is over.
#[derive(Debug)]
pub struct RecorderOutput {
    pub counters: Counters,
    pub summaries: Summaries,
    pub by_command: BTreeMap<String, Breakdown>,
    pub by_scenario: BTreeMap<String, Breakdown>,
    /// Intervals without the target rate, which the caller fills from the schedule.
    pub time_series: TimeSeries,
    pub record_error: Option<std::io::Error>,
}

/// Sent to end the recording: the planned test length, to bound the time series.
#[derive(Debug)]
pub struct Finish {
    pub test_duration: Duration,
    pub reply: oneshot::Sender<RecorderOutput>,
}

/// Status codes counted in a flat array (anything above 999 is clamped there).
const STATUS_SLOTS: usize = 1000;
const DONE: u8 = 1;
const EXPECTS: u8 = 2;
/// The expected number of answers (0..=7) sits in bits 2..=4 of `flags`.
const EXPECTED_SHIFT: u8 = 2;
const EXPECTED_MASK: u8 = 0b111;
const NONE32: u32 = u32::MAX;

/// Per-request state while answers may still come. Response arrivals are stored in 10 µs
/// units from the test start (u32 covers 11 h) because they may come before the `Done`
/// event that tells the scheduled time.
#[derive(Debug, Clone, Copy)]
struct Slot {
    sched_us: u64,
    sent_delta_us: u32,
    ack_delta_us: u32,
    first_10us: u32,
    last_10us: u32,
    n_resp: u16,
    status: u16,
    err: u8,
    flags: u8,
    cmd: u8,
    scen: u8,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            sched_us: 0,
            sent_delta_us: 0,
            ack_delta_us: 0,
            first_10us: NONE32,
            last_10us: 0,
            n_resp: 0,
            status: 0,
            err: 0,
            flags: 0,
            cmd: 0,
            scen: 0,
        }
    }
}

impl Slot {
    fn acked_ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn expected(&self) -> u16 {
        u16::from((self.flags >> EXPECTED_SHIFT) & EXPECTED_MASK)
    }

    /// Acknowledged, and the bot owes it answers: the requests lost and incomplete count.
    fn owed_answers(&self) -> bool {
        self.flags & (DONE | EXPECTS) == DONE | EXPECTS && self.acked_ok()
    }
}

/// Slots per ring chunk (512 KiB).
const CHUNK: usize = 16 * 1024;

/// Per-request slots indexed by sequence number, in fixed-size chunks: the front is
/// finalized and freed chunk by chunk, the back grows a chunk at a time. Unlike a VecDeque,
/// which doubles its buffer, memory stays at the live slots plus one chunk.
#[derive(Default)]
struct Ring {
    chunks: VecDeque<Box<[Slot]>>,
    /// Sequence number of the first slot of the first chunk.
    chunk_base: u64,
    /// Offset of the front slot in the first chunk.
    head: usize,
    /// One past the highest sequence number stored.
    end: u64,
}

impl Ring {
    fn front_seq(&self) -> u64 {
        self.chunk_base + self.head as u64
    }

    fn len(&self) -> u64 {
        self.end.saturating_sub(self.front_seq())
    }

    fn get_mut(&mut self, seq: u64) -> Option<&mut Slot> {
        if seq < self.front_seq() {
            return None;
        }
        let idx = usize::try_from(seq - self.chunk_base).ok()?;
        let (chunk, offset) = (idx / CHUNK, idx % CHUNK);
        while self.chunks.len() <= chunk {
            self.chunks.push_back(vec![Slot::default(); CHUNK].into_boxed_slice());
        }
        self.end = self.end.max(seq + 1);
        Some(&mut self.chunks[chunk][offset])
    }

    fn front(&self) -> Option<&Slot> {
        (self.len() > 0).then(|| &self.chunks[0][self.head])
    }

    fn pop_front(&mut self) -> Option<(u64, Slot)> {
        if self.len() == 0 {
            return None;
        }
        let seq = self.front_seq();
        let slot = self.chunks[0][self.head];
        self.head += 1;
        if self.head == CHUNK {
            self.chunks.pop_front();
            self.chunk_base += CHUNK as u64;
            self.head = 0;
        }
        Some((seq, slot))
    }
}

fn precise_hist() -> Histogram<u64> {
    new_histogram()
}

fn coarse_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 2).expect("static histogram bounds are valid")
}

fn rec_us(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.clamp(1, MAX_TRACKED_US));
}

#[derive(Debug)]
struct BreakdownAcc {
    requests: u64,
    errors: u64,
    lost: u64,
    incomplete: u64,
    responses: u64,
    ack: Histogram<u64>,
    first: Histogram<u64>,
    last: Histogram<u64>,
    all: Histogram<u64>,
}

impl BreakdownAcc {
    fn new() -> Self {
        BreakdownAcc {
            requests: 0,
            errors: 0,
            lost: 0,
            incomplete: 0,
            responses: 0,
            ack: precise_hist(),
            first: precise_hist(),
            last: precise_hist(),
            all: precise_hist(),
        }
    }

    fn summary(&self) -> Breakdown {
        Breakdown {
            requests: self.requests,
            errors: self.errors,
            lost: self.lost,
            incomplete: self.incomplete,
            responses: self.responses,
            ack: LatencySummary::from_histogram(&self.ack),
            first_response: LatencySummary::from_histogram(&self.first),
            last_response: LatencySummary::from_histogram(&self.last),
            all_answers: LatencySummary::from_histogram(&self.all),
        }
    }
}

#[derive(Debug)]
struct IntervalAcc {
    sent: u64,
    errors: u64,
    dropped: u64,
    ack: Histogram<u64>,
    e2e: Histogram<u64>,
    /// First answers as they arrive, for a live view's provisional point; only kept when
    /// one is attached.
    e2e_so_far: Option<Histogram<u64>>,
}

impl IntervalAcc {
    fn new(live_view: bool) -> Self {
        IntervalAcc {
            sent: 0,
            errors: 0,
            dropped: 0,
            ack: coarse_hist(),
            e2e: coarse_hist(),
            e2e_so_far: live_view.then(coarse_hist),
        }
    }

    /// The interval as a time-series point, its E2E from `e2e`.
    fn point(&self, offset_ms: u64, interval: Duration, e2e: &Histogram<u64>) -> TimePoint {
        let (ack, e2e) = (Percentiles::of(&self.ack), Percentiles::of(e2e));
        TimePoint {
            offset_ms,
            target_rate: 0.0,
            achieved_rate: self.sent as f64 / interval.as_secs_f64(),
            requests: self.sent,
            errors: self.errors,
            dropped: self.dropped,
            ack_p50: ack.p50,
            ack_p95: ack.p95,
            ack_p99: ack.p99,
            e2e_p50: e2e.p50,
            e2e_p95: e2e.p95,
            e2e_p99: e2e.p99,
            server: None,
        }
    }
}

/// One line of `--record-requests`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestRecord<'a> {
    id: String,
    scenario: &'a str,
    command: &'a str,
    /// Unix epoch milliseconds.
    scheduled_ms: f64,
    sent_ms: f64,
    ack_status: Option<u16>,
    error: Option<&'static str>,
    /// Scheduled → HTTP answer.
    ack_ms: f64,
    /// Sent → HTTP answer.
    service_ms: f64,
    responses: u16,
    /// Posts the request expects (`expectAnswers`; 0: none, no receiver URL in it).
    expected_answers: u16,
    /// Scheduled → first / last post at the receiver.
    first_response_ms: Option<f64>,
    last_response_ms: Option<f64>,
}

pub struct Recorder {
    cfg: RecorderConfig,
    live: Arc<Live>,
    counters: Counters,
    ack: Histogram<u64>,
    service: Histogram<u64>,
    send_lag: Histogram<u64>,
    first: Histogram<u64>,
    last: Histogram<u64>,
    /// Scheduled → last post, of the commands that got every expected answer.
    all: Histogram<u64>,
    ring: Ring,
    intervals: VecDeque<IntervalAcc>,
    base_interval: u64,
    points: Vec<TimePoint>,
    commands: Vec<(String, BreakdownAcc)>,
    command_idx: HashMap<String, u8>,
    scenarios: Vec<(String, BreakdownAcc)>,
    record: Option<Box<dyn Write + Send>>,
    record_error: Option<std::io::Error>,
    status_counts: Vec<u64>,
    error_counts: [u64; 9],
    /// Failed expectations by [`ExpectKind`].
    expect_counts: [u64; ExpectKind::ALL.len()],
    /// The unfinished ring front and since when it has blocked the ring (µs from start).
    front_wait: Option<(u64, u64)>,
    progress: Option<ProgressFeed>,
}

impl Recorder {
    pub fn new(cfg: RecorderConfig, live: Arc<Live>, record: Option<Box<dyn Write + Send>>) -> Self {
        let mut r = Recorder {
            live,
            counters: Counters::default(),
            ack: precise_hist(),
            service: precise_hist(),
            send_lag: precise_hist(),
            first: precise_hist(),
            last: precise_hist(),
            all: precise_hist(),
            ring: Ring::default(),
            intervals: VecDeque::new(),
            base_interval: 0,
            points: Vec::new(),
            commands: Vec::new(),
            command_idx: HashMap::new(),
            scenarios: Vec::new(),
            record,
            record_error: None,
            front_wait: None,
            progress: None,
            status_counts: vec![0; STATUS_SLOTS],
            error_counts: [0; 9],
            expect_counts: [0; ExpectKind::ALL.len()],
            cfg,
        };
        for name in r.cfg.commands.clone() {
            r.intern_command(&name);
        }
        let mut names: Vec<String> = r.cfg.scenarios.iter().take(MAX_BREAKDOWN_KEYS).cloned().collect();
        if r.cfg.scenarios.len() > MAX_BREAKDOWN_KEYS {
            names.push(OTHER.into());
        }
        r.scenarios = names.into_iter().map(|n| (n, BreakdownAcc::new())).collect();
        r
    }

    /// Publishes [`Progress`] on `tx` about once a second while the run lasts.
    pub fn with_progress(mut self, tx: watch::Sender<Progress>) -> Self {
        self.progress = Some(ProgressFeed { tx, first: precise_hist(), n_closed: 0, published_at: None });
        self
    }

    /// Runs until `finish` arrives, then returns the output through it.
    ///
    /// Events are drained every few milliseconds with `try_recv` rather than awaited one by
    /// one: a receiver that is not parked in `recv` costs its senders no wakeup, which at
    /// tens of thousands of requests a second is most of the channel's cost. The latency of
    /// the recording does not matter; every event carries its own timestamps.
    pub async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>, finish: oneshot::Receiver<Finish>) {
        let mut drain = tokio::time::interval(Duration::from_millis(5));
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_maintenance = Instant::now();
        tokio::pin!(finish);
        loop {
            tokio::select! {
                biased;
                f = &mut finish => {
                    let Ok(f) = f else { return };
                    while let Ok(e) = events.try_recv() {
                        self.handle(e);
                    }
                    self.finish(f);
                    return;
                }
                _ = drain.tick() => {
                    while let Ok(e) = events.try_recv() {
                        self.handle(e);
                    }
                    if last_maintenance.elapsed() >= Duration::from_millis(200) {
                        self.maintain();
                        last_maintenance = Instant::now();
                    }
                }
            }
        }
    }

    fn now_ns(&self) -> u64 {
        self.cfg.start.elapsed().as_nanos() as u64
    }

    fn intern_command(&mut self, name: &str) -> u8 {
        if let Some(i) = self.command_idx.get(name) {
            return *i;
        }
        if self.commands.len() < MAX_BREAKDOWN_KEYS {
            let i = self.commands.len() as u8;
            self.commands.push((name.to_owned(), BreakdownAcc::new()));
            self.command_idx.insert(name.to_owned(), i);
            return i;
        }
        let i = self.commands.len() as u8;
        self.commands.push((OTHER.to_owned(), BreakdownAcc::new()));
        self.command_idx.insert(OTHER.to_owned(), i);
        // Every later unknown name lands in `(other)`.
        self.command_idx.insert(name.to_owned(), i);
        i
    }

    fn command_index(&mut self, cmd: &CmdRef) -> u8 {
        match cmd {
            // Static commands were interned first, in plan order: their index is their slot.
            CmdRef::Known(i) if usize::from(*i) < self.cfg.commands.len().min(MAX_BREAKDOWN_KEYS) => *i as u8,
            CmdRef::Known(_) => self.intern_command(OTHER),
            CmdRef::Name(n) => {
                if self.commands.len() > MAX_BREAKDOWN_KEYS && !self.command_idx.contains_key(&**n) {
                    return self.command_idx[OTHER];
                }
                self.intern_command(n)
            }
        }
    }

    fn slot(&mut self, seq: u64) -> Option<&mut Slot> {
        self.ring.get_mut(seq)
    }

    fn interval(&mut self, ns: u64) -> Option<&mut IntervalAcc> {
        let idx = ns / self.cfg.interval.as_nanos() as u64;
        let rel = usize::try_from(idx.checked_sub(self.base_interval)?).ok()?;
        if rel >= self.intervals.len() {
            let live_view = self.progress.is_some();
            self.intervals.resize_with(rel + 1, || IntervalAcc::new(live_view));
        }
        self.intervals.get_mut(rel)
    }

    fn handle(&mut self, e: Event) {
        match e {
            Event::Done(d) => self.on_done(d),
            Event::Dropped { sched_ns } => {
                self.counters.scheduled += 1;
                self.counters.dropped += 1;
                self.live.dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(i) = self.interval(sched_ns) {
                    i.dropped += 1;
                }
            }
            Event::Response { seq, at_ns } => self.on_response(seq, at_ns),
            Event::Unmatched => self.counters.unmatched_responses += 1,
        }
    }

    fn on_done(&mut self, d: Done) {
        let cmd = self.command_index(&d.cmd);
        let scen = usize::from(d.scen).min(self.scenarios.len().saturating_sub(1));
        let ack_us = d.done_ns.saturating_sub(d.sched_ns) / 1000;
        let service_us = d.done_ns.saturating_sub(d.sent_ns) / 1000;
        self.counters.scheduled += 1;
        self.counters.requests += 1;
        // Plain arrays on the hot path; the string-keyed maps are built once at the end.
        let (status, err, is_error) = match d.outcome {
            Outcome::Status(code) => {
                self.status_counts[usize::from(code).min(STATUS_SLOTS - 1)] += 1;
                // A request counts one error: its status when that is one, else a failed check.
                let status_error = !(200..400).contains(&code);
                let check = match d.findings {
                    _ if status_error => None,
                    Findings { capture_failed: true, .. } => Some(ErrorKind::CaptureFailed),
                    Findings { failed_expectations: 1.., .. } => Some(ErrorKind::ExpectFailed),
                    _ => None,
                };
                if let Some(kind) = check {
                    self.error_counts[usize::from(kind.code())] += 1;
                }
                (code, check.map_or(0, ErrorKind::code), status_error || check.is_some())
            }
            Outcome::Error(kind) => {
                self.error_counts[usize::from(kind.code())] += 1;
                (0, kind.code(), true)
            }
        };
        for kind in ExpectKind::in_mask(d.findings.failed_expectations) {
            self.expect_counts[kind as usize] += 1;
        }
        rec_us(&mut self.send_lag, d.sent_ns.saturating_sub(d.sched_ns) / 1000);
        self.live.sent.fetch_add(1, Ordering::Relaxed);
        if is_error {
            self.live.errors.fetch_add(1, Ordering::Relaxed);
        }
        // Only answered requests have an ack latency; a timeout is an error, not a latency.
        if matches!(d.outcome, Outcome::Status(_)) {
            rec_us(&mut self.ack, ack_us);
            rec_us(&mut self.service, service_us);
            rec_us(&mut self.commands[usize::from(cmd)].1.ack, ack_us);
            rec_us(&mut self.scenarios[scen].1.ack, ack_us);
        }
        {
            let c = &mut self.commands[usize::from(cmd)].1;
            c.requests += 1;
            c.errors += u64::from(is_error);
            let s = &mut self.scenarios[scen].1;
            s.requests += 1;
            s.errors += u64::from(is_error);
        }
        if let Some(i) = self.interval(d.sched_ns) {
            if matches!(d.outcome, Outcome::Status(_)) {
                rec_us(&mut i.ack, ack_us);
            }
            i.errors += u64::from(is_error);
        }
        if let Some(i) = self.interval(d.sent_ns) {
            i.sent += 1;
        }
        let live = Arc::clone(&self.live);
        let Some(slot) = self.slot(d.seq) else { return };
        slot.sched_us = d.sched_ns / 1000;
        slot.sent_delta_us = u32::try_from(d.sent_ns.saturating_sub(d.sched_ns) / 1000).unwrap_or(u32::MAX);
        slot.ack_delta_us = u32::try_from(ack_us).unwrap_or(u32::MAX);
        slot.status = status;
        slot.err = err;
        let expected = d.expected_answers.min(EXPECTED_MASK);
        slot.flags |= DONE | if expected > 0 { EXPECTS | (expected << EXPECTED_SHIFT) } else { 0 };
        slot.cmd = cmd;
        slot.scen = scen as u8;
        if slot.owed_answers() && slot.n_resp < slot.expected() {
            live.awaiting_answers.fetch_add(1, Ordering::Relaxed);
        }
        let answered_first = (slot.n_resp > 0).then_some((slot.sched_us, slot.first_10us));
        if let Some((sched_us, first_10us)) = answered_first {
            self.note_first_answer(sched_us, first_10us);
        }
    }

    fn on_response(&mut self, seq: u64, at_ns: u64) {
        if seq < self.ring.front_seq() {
            self.counters.late_responses += 1;
            return;
        }
        self.counters.responses += 1;
        self.live.responses.fetch_add(1, Ordering::Relaxed);
        self.live.last_response_ns.fetch_max(at_ns, Ordering::Relaxed);
        let live = Arc::clone(&self.live);
        let Some(slot) = self.slot(seq) else { return };
        let at = u32::try_from(at_ns / 10_000).unwrap_or(u32::MAX - 1);
        slot.n_resp = slot.n_resp.saturating_add(1);
        slot.first_10us = slot.first_10us.min(at);
        slot.last_10us = slot.last_10us.max(at);
        if slot.owed_answers() && slot.n_resp == slot.expected() {
            live.awaiting_answers.fetch_sub(1, Ordering::Relaxed);
        }
        // An answer before the ack is noted when the ack tells the scheduled time (on_done).
        let first_answer = (slot.n_resp == 1 && slot.flags & DONE != 0).then_some((slot.sched_us, slot.first_10us));
        if let Some((sched_us, first_10us)) = first_answer {
            self.note_first_answer(sched_us, first_10us);
        }
    }

    /// A live view's E2E: the first answer of a request, as it arrives.
    fn note_first_answer(&mut self, sched_us: u64, first_10us: u32) {
        if self.progress.is_none() {
            return;
        }
        let e2e_us = (u64::from(first_10us).saturating_sub(sched_us / 10)) * 10;
        if let Some(i) = self.interval(sched_us * 1000)
            && let Some(h) = i.e2e_so_far.as_mut()
        {
            rec_us(h, e2e_us);
        }
        if let Some(p) = self.progress.as_mut() {
            rec_us(&mut p.first, e2e_us);
        }
    }

    /// Publishes [`Progress`] when a second has passed since the last time (or `force`).
    fn publish_progress(&mut self, force: bool) {
        let Some(feed) = self.progress.as_ref() else { return };
        if !force && feed.published_at.is_some_and(|at| at.elapsed() < PROGRESS_EVERY) {
            return;
        }
        let interval = self.cfg.interval;
        let interval_ms = interval.as_millis() as u64;
        let ended = self.now_ns() / interval.as_nanos() as u64;
        // Only intervals that have ended: the current one would show as a dip in the rate.
        let open: Vec<TimePoint> = self
            .intervals
            .iter()
            .zip(self.base_interval..ended)
            .map(|(acc, idx)| acc.point(idx * interval_ms, interval, acc.e2e_so_far.as_ref().unwrap_or(&acc.e2e)))
            .collect();
        let ack = Percentiles::of(&self.ack);
        let feed = self.progress.as_mut().expect("checked above");
        let e2e = Percentiles::of(&feed.first);
        let closed = &self.points[feed.n_closed..];
        feed.tx.send_modify(|p| {
            p.closed.extend_from_slice(closed);
            p.open = open;
            p.ack = ack;
            p.e2e = e2e;
        });
        feed.n_closed = self.points.len();
        feed.published_at = Some(Instant::now());
    }

    /// Finalizes slots whose window has passed, closes old intervals, refreshes live p99s.
    fn maintain(&mut self) {
        let now_us = self.now_ns() / 1000;
        let window_us = self.cfg.response_window.as_micros() as u64;
        // A slot never completed by its request task is given up on well after its timeout.
        let stuck_us = window_us + self.cfg.http_timeout.as_micros() as u64 + 10_000_000;
        while let Some(front) = self.ring.front().copied() {
            let ready = if front.flags & DONE != 0 {
                front.flags & EXPECTS == 0 || now_us.saturating_sub(front.sched_us) > window_us
            } else {
                match self.front_wait {
                    Some((seq, since)) if seq == self.ring.front_seq() => now_us.saturating_sub(since) > stuck_us,
                    _ => {
                        self.front_wait = Some((self.ring.front_seq(), now_us));
                        false
                    }
                }
            };
            if !ready {
                break;
            }
            let (seq, slot) = self.ring.pop_front().expect("front exists");
            self.finalize(seq, slot);
        }
        let interval_ns = self.cfg.interval.as_nanos() as u64;
        let lag_ns = (self.cfg.response_window + self.cfg.http_timeout + Duration::from_secs(2)).as_nanos() as u64;
        let close_before = self.now_ns().saturating_sub(lag_ns) / interval_ns;
        while self.base_interval < close_before {
            self.close_front_interval();
        }
        let p99 = |h: &Histogram<u64>| if h.is_empty() { 0 } else { h.value_at_quantile(0.99) };
        self.live.ack_p99_us.store(p99(&self.ack), Ordering::Relaxed);
        self.live.e2e_p99_us.store(p99(&self.first), Ordering::Relaxed);
        self.publish_progress(false);
    }

    fn close_front_interval(&mut self) {
        let acc = self.intervals.pop_front().unwrap_or_else(|| IntervalAcc::new(false));
        let offset_ms = self.base_interval * self.cfg.interval.as_millis() as u64;
        self.points.push(acc.point(offset_ms, self.cfg.interval, &acc.e2e));
        self.base_interval += 1;
    }

    fn finalize(&mut self, seq: u64, slot: Slot) {
        let cmd = usize::from(slot.cmd).min(self.commands.len().saturating_sub(1));
        let scen = usize::from(slot.scen).min(self.scenarios.len().saturating_sub(1));
        let done = slot.flags & DONE != 0;
        if !done && slot.n_resp == 0 {
            return;
        }
        let sched_10us = slot.sched_us / 10;
        let e2e = |at: u32| (u64::from(at).saturating_sub(sched_10us)) * 10;
        let (first_us, last_us) = if slot.n_resp > 0 && done {
            (Some(e2e(slot.first_10us)), Some(e2e(slot.last_10us)))
        } else {
            (None, None)
        };
        // With more answers than expected, "all in" is the last of them: the slot keeps only
        // the first and the last arrival.
        let complete = slot.owed_answers() && slot.n_resp >= slot.expected();
        if let (Some(f), Some(l)) = (first_us, last_us) {
            rec_us(&mut self.first, f);
            rec_us(&mut self.last, l);
            if complete {
                rec_us(&mut self.all, l);
            }
            for acc in [&mut self.commands[cmd].1, &mut self.scenarios[scen].1] {
                rec_us(&mut acc.first, f);
                rec_us(&mut acc.last, l);
                if complete {
                    rec_us(&mut acc.all, l);
                }
                acc.responses += u64::from(slot.n_resp);
            }
            if let Some(i) = self.interval(slot.sched_us * 1000) {
                rec_us(&mut i.e2e, f);
            }
        }
        if slot.owed_answers() && !complete {
            let lost = slot.n_resp == 0;
            for acc in [&mut self.commands[cmd].1, &mut self.scenarios[scen].1] {
                *if lost { &mut acc.lost } else { &mut acc.incomplete } += 1;
            }
            if lost {
                self.counters.lost += 1;
                self.live.lost.fetch_add(1, Ordering::Relaxed);
            } else {
                self.counters.incomplete += 1;
                self.live.incomplete.fetch_add(1, Ordering::Relaxed);
            }
            self.live.awaiting_answers.fetch_sub(1, Ordering::Relaxed);
        }
        if self.record.is_some() && done {
            let start_ms = self.cfg.start_epoch_ms as f64;
            let ms = |us: u64| us as f64 / 1000.0;
            let rec = RequestRecord {
                id: format!("{}-{seq}", self.cfg.run_tag),
                scenario: &self.scenarios[scen].0,
                command: &self.commands[cmd].0,
                scheduled_ms: start_ms + ms(slot.sched_us),
                sent_ms: start_ms + ms(slot.sched_us + u64::from(slot.sent_delta_us)),
                ack_status: (slot.status != 0).then_some(slot.status),
                error: ErrorKind::from_code(slot.err).map(ErrorKind::as_str),
                ack_ms: ms(u64::from(slot.ack_delta_us)),
                service_ms: ms(u64::from(slot.ack_delta_us.saturating_sub(slot.sent_delta_us))),
                responses: slot.n_resp,
                expected_answers: slot.expected(),
                first_response_ms: first_us.map(ms),
                last_response_ms: last_us.map(ms),
            };
            let line = serde_json::to_vec(&rec).expect("a record always serializes");
            if let Some(w) = self.record.as_mut()
                && let Err(e) = w.write_all(&line).and_then(|()| w.write_all(b"\n"))
            {
                // Stop writing after the first failure (e.g. disk full) and report it once.
                self.record = None;
                self.record_error = Some(e);
            }
        }
    }

    fn fill_status_maps(&mut self) {
        for (code, n) in self.status_counts.iter().enumerate().filter(|(_, n)| **n > 0) {
            self.counters.acks.insert(code.to_string(), *n);
            let class = match code {
                200..=399 => continue,
                400..=499 => "status_4xx",
                _ => "status_5xx",
            };
            *self.counters.errors.entry(class.to_owned()).or_default() += n;
        }
        for (code, n) in self.error_counts.iter().enumerate().filter(|(_, n)| **n > 0) {
            if let Some(kind) = ErrorKind::from_code(code as u8) {
                self.counters.errors.insert(kind.as_str().to_owned(), *n);
            }
        }
        for (kind, n) in ExpectKind::ALL.iter().zip(self.expect_counts).filter(|(_, n)| *n > 0) {
            self.counters.failed_expectations.insert(kind.as_str().to_owned(), n);
        }
    }

    fn finish(mut self, f: Finish) {
        self.fill_status_maps();
        while let Some((seq, slot)) = self.ring.pop_front() {
            self.finalize(seq, slot);
        }
        let interval_ns = self.cfg.interval.as_nanos() as u64;
        let n_intervals = (f.test_duration.as_nanos() as u64).div_ceil(interval_ns).max(1);
        while self.base_interval < n_intervals {
            self.close_front_interval();
        }
        if let Some(w) = self.record.as_mut()
            && let Err(e) = w.flush()
        {
            self.record_error = Some(e);
        }
        let breakdown = |v: &[(String, BreakdownAcc)]| {
            v.iter().filter(|(_, a)| a.requests > 0).map(|(n, a)| (n.clone(), a.summary())).collect()
        };
        let out = RecorderOutput {
            summaries: Summaries {
                ack: LatencySummary::from_histogram(&self.ack),
                service_time: LatencySummary::from_histogram(&self.service),
                first_response: LatencySummary::from_histogram(&self.first),
                last_response: LatencySummary::from_histogram(&self.last),
                all_answers: LatencySummary::from_histogram(&self.all),
                send_lag: LatencySummary::from_histogram(&self.send_lag),
            },
            by_command: breakdown(&self.commands),
            by_scenario: breakdown(&self.scenarios),
            time_series: TimeSeries { interval_ms: self.cfg.interval.as_millis() as u64, points: self.points },
            counters: self.counters,
            record_error: self.record_error,
        };
        let _ = f.reply.send(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `--record-requests` file in memory.
    struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn cfg(window: Duration) -> RecorderConfig {
        RecorderConfig {
            start: Instant::now(),
            start_epoch_ms: 1_700_000_000_000,
            run_tag: "t".into(),
            commands: vec!["/echo".into()],
            scenarios: vec!["echo".into()],
            interval: Duration::from_secs(1),
            response_window: window,
            http_timeout: Duration::from_secs(1),
        }
    }

    fn done(seq: u64, sched_ms: u64, ack_ms: u64, outcome: Outcome) -> Event {
        Event::Done(Done {
            seq,
            sched_ns: sched_ms * 1_000_000,
            sent_ns: sched_ms * 1_000_000,
            done_ns: (sched_ms + ack_ms) * 1_000_000,
            outcome,
            cmd: CmdRef::Known(0),
            scen: 0,
            expected_answers: 1,
            findings: Findings::default(),
        })
    }

    async fn finish(rec: Recorder, events: Vec<Event>) -> RecorderOutput {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ftx, frx) = oneshot::channel();
        let task = tokio::spawn(rec.run(rx, frx));
        for e in events {
            tx.send(e).unwrap();
        }
        let (reply, out) = oneshot::channel();
        ftx.send(Finish { test_duration: Duration::from_secs(2), reply }).unwrap();
        task.await.unwrap();
        out.await.unwrap()
    }

    #[tokio::test]
    async fn responses_before_or_after_the_ack_give_the_same_e2e() {
        let rec = Recorder::new(cfg(Duration::from_secs(60)), Arc::default(), None);
        let out = finish(
            rec,
            vec![
                // Request 0: answer arrives after the ack.
                done(0, 100, 5, Outcome::Status(200)),
                Event::Response { seq: 0, at_ns: 150_000_000 },
                Event::Response { seq: 0, at_ns: 180_000_000 },
                // Request 1: answer arrives before the ack is recorded.
                Event::Response { seq: 1, at_ns: 250_000_000 },
                done(1, 200, 70, Outcome::Status(200)),
                // Request 2: acked, never answered.
                done(2, 300, 5, Outcome::Status(200)),
                // Request 3: failed; no answer expected of it, so not lost.
                done(3, 400, 1000, Outcome::Error(ErrorKind::Timeout)),
                Event::Response { seq: 99, at_ns: 1 },
                Event::Unmatched,
            ],
        )
        .await;
        let c = &out.counters;
        assert_eq!((c.requests, c.responses, c.lost), (4, 4, 1));
        assert_eq!(c.errors.get("timeout"), Some(&1));
        assert_eq!(c.unmatched_responses, 1);
        let f = out.summaries.first_response;
        assert_eq!(f.count, 2);
        assert!((f.min - 50.0).abs() < 0.1 && (f.max - 50.0).abs() < 0.1, "{f:?}");
        let l = out.summaries.last_response;
        assert!((l.max - 80.0).abs() < 0.1, "{l:?}");
        assert_eq!(out.summaries.ack.count, 3, "the timeout has no ack latency");
        assert_eq!(out.by_command["/echo"].lost, 1);
        assert_eq!(out.time_series.points.len(), 2);
        assert_eq!(out.time_series.points[0].requests, 4);
    }

    fn expecting(seq: u64, sched_ms: u64, status: u16, expected: u8) -> Event {
        let Event::Done(d) = done(seq, sched_ms, 5, Outcome::Status(status)) else { unreachable!() };
        Event::Done(Done { expected_answers: expected, ..d })
    }

    fn answer(seq: u64, at_ms: u64) -> Event {
        Event::Response { seq, at_ns: at_ms * 1_000_000 }
    }

    #[tokio::test]
    async fn answers_are_counted_against_what_each_command_expects() {
        let live = Arc::new(Live::default());
        let mut rec = Recorder::new(cfg(Duration::from_secs(60)), Arc::clone(&live), None);
        let events = vec![
            // 0: two expected, two came (one before the ack was recorded): complete.
            answer(0, 20),
            expecting(0, 10, 200, 2),
            answer(0, 40),
            // 1: two expected, one came: incomplete.
            expecting(1, 10, 200, 2),
            answer(1, 30),
            // 2: two expected, none came: lost, not incomplete.
            expecting(2, 10, 200, 2),
            // 3: two expected, three came: complete; all answers in at the last one.
            expecting(3, 10, 200, 2),
            answer(3, 20),
            answer(3, 30),
            answer(3, 90),
            // 4: one expected (the default), one came.
            expecting(4, 10, 200, 1),
            answer(4, 15),
            // 5: refused by the bot: owed nothing, neither lost nor incomplete.
            expecting(5, 10, 503, 2),
            // 6: no answer expected (no response_url at the receiver): never owed.
            expecting(6, 10, 200, 0),
            answer(6, 50),
        ];
        for e in events {
            rec.handle(e);
        }
        assert_eq!(live.awaiting_answers.load(Ordering::Relaxed), 2, "requests 1 and 2 still wait");
        let (reply, out) = oneshot::channel();
        rec.finish(Finish { test_duration: Duration::from_secs(1), reply });
        let out = out.await.unwrap();
        let c = &out.counters;
        assert_eq!((c.requests, c.responses, c.lost, c.incomplete), (7, 8, 1, 1));
        assert_eq!(live.awaiting_answers.load(Ordering::Relaxed), 0, "finalizing settles every wait");
        assert_eq!((live.lost.load(Ordering::Relaxed), live.incomplete.load(Ordering::Relaxed)), (1, 1));
        let all = out.summaries.all_answers;
        assert_eq!(all.count, 3, "requests 0, 3 and 4: {all:?}");
        assert!((all.min - 5.0).abs() < 0.1 && (all.max - 80.0).abs() < 0.1, "{all:?}");
        assert_eq!(out.summaries.first_response.count, 5, "the first answer is summarised as before");
        let echo = &out.by_command["/echo"];
        assert_eq!((echo.lost, echo.incomplete, echo.all_answers.count), (1, 1, 3));
        assert_eq!(out.by_scenario["echo"].incomplete, 1);
    }

    #[tokio::test]
    async fn a_live_view_gets_closed_intervals_as_the_results_hold_them_and_open_ones_as_they_stand() {
        let mut config = cfg(Duration::ZERO);
        // Five seconds into the run: with no response window and a 1 s timeout, intervals
        // before 2 s are closed, 2 s to 5 s have ended but are open, 5 s is the current one.
        config.start = Instant::now().checked_sub(Duration::from_secs(5)).unwrap();
        let (tx, rx) = watch::channel(Progress::default());
        let mut rec = Recorder::new(config, Arc::default(), None).with_progress(tx);
        for e in [
            done(0, 100, 5, Outcome::Status(200)),
            answer(0, 150),
            // Answered before its ack was recorded.
            answer(1, 3180),
            done(1, 3100, 20, Outcome::Status(200)),
            done(2, 5100, 1, Outcome::Status(200)),
        ] {
            rec.handle(e);
        }
        rec.maintain();
        let seen = rx.borrow().clone();
        assert_eq!(seen.closed.iter().map(|p| p.offset_ms).collect::<Vec<_>>(), [0, 1000]);
        assert_eq!(
            seen.open.iter().map(|p| p.offset_ms).collect::<Vec<_>>(),
            [2000, 3000, 4000],
            "not the current 5 s"
        );
        assert_eq!((seen.closed[0].requests, seen.closed[0].e2e_p50.round()), (1, 50.0));
        assert_eq!((seen.open[1].requests, seen.open[1].e2e_p50.round()), (1, 80.0), "E2E before the window closes");
        assert_eq!(seen.e2e.p99.round(), 80.0);
        assert_eq!(seen.ack.p99.round(), 20.0);

        let (reply, out) = oneshot::channel();
        rec.finish(Finish { test_duration: Duration::from_secs(6), reply });
        let points = out.await.unwrap().time_series.points;
        assert_eq!(points[..2], seen.closed[..], "published closed points are the results' points");
        assert_eq!(points[3], seen.open[1], "an open point converges to the results' point");
    }

    #[tokio::test]
    async fn without_a_live_view_intervals_keep_no_extra_histogram() {
        let mut rec = Recorder::new(cfg(Duration::from_secs(60)), Arc::default(), None);
        rec.handle(done(0, 100, 5, Outcome::Status(200)));
        rec.handle(answer(0, 150));
        assert!(rec.intervals.iter().all(|i| i.e2e_so_far.is_none()));
        rec.publish_progress(true);
    }

    #[tokio::test]
    async fn failed_checks_count_one_error_per_request_and_expectations_by_kind() {
        let checked = |seq: u64, status: u16, findings: Findings| {
            let Event::Done(d) = done(seq, 10, 5, Outcome::Status(status)) else { unreachable!() };
            Event::Done(Done { findings, expected_answers: 0, ..d })
        };
        let status_and_equals = ExpectKind::StatusCode.bit() | ExpectKind::Equals.bit();
        let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
        let rec = Recorder::new(cfg(Duration::from_secs(60)), Arc::default(), Some(Box::new(Shared(buf.clone()))));
        let out = finish(
            rec,
            vec![
                checked(0, 200, Findings { capture_failed: true, failed_expectations: 0 }),
                checked(1, 200, Findings { capture_failed: false, failed_expectations: status_and_equals }),
                // Already an error for its status: not counted twice.
                checked(2, 500, Findings { capture_failed: false, failed_expectations: ExpectKind::StatusCode.bit() }),
                checked(3, 200, Findings::default()),
            ],
        )
        .await;
        let c = &out.counters;
        assert_eq!(c.errors.get("capture_failed"), Some(&1));
        assert_eq!(c.errors.get("expect_failed"), Some(&1));
        assert_eq!(c.errors.get("status_5xx"), Some(&1));
        assert_eq!(c.n_errors(), 3);
        assert_eq!(c.failed_expectations.get("statusCode"), Some(&2));
        assert_eq!(c.failed_expectations.get("equals"), Some(&1));
        assert_eq!(c.failed_expectations.len(), 2);
        assert_eq!(out.summaries.ack.count, 4, "a failed check keeps the request's latency");
        assert_eq!(out.by_command["/echo"].errors, 3);
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let errors: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["error"].clone()).collect();
        assert_eq!(
            errors,
            [
                serde_json::json!("capture_failed"),
                "expect_failed".into(),
                serde_json::Value::Null,
                serde_json::Value::Null
            ]
        );
    }

    #[tokio::test]
    async fn status_codes_classify_errors() {
        let rec = Recorder::new(cfg(Duration::from_secs(60)), Arc::default(), None);
        let out = finish(
            rec,
            vec![
                done(0, 1, 1, Outcome::Status(200)),
                done(1, 1, 1, Outcome::Status(401)),
                done(2, 1, 1, Outcome::Status(503)),
            ],
        )
        .await;
        assert_eq!(out.counters.errors.get("status_4xx"), Some(&1));
        assert_eq!(out.counters.errors.get("status_5xx"), Some(&1));
        assert_eq!(out.counters.acks.get("401"), Some(&1));
        assert_eq!(out.counters.lost, 1, "only the acknowledged request is lost; refused ones are errors");
    }

    #[tokio::test]
    async fn templated_commands_beyond_the_cap_are_grouped() {
        let rec = Recorder::new(cfg(Duration::from_secs(60)), Arc::default(), None);
        let events = (0..200u64)
            .map(|i| {
                Event::Done(Done {
                    seq: i,
                    sched_ns: 0,
                    sent_ns: 0,
                    done_ns: 1_000_000,
                    outcome: Outcome::Status(200),
                    cmd: CmdRef::Name(format!("/c{i}").into()),
                    scen: 7,
                    expected_answers: 0,
                    findings: Findings::default(),
                })
            })
            .collect();
        let out = finish(rec, events).await;
        assert!(out.by_command.len() <= MAX_BREAKDOWN_KEYS + 1, "{}", out.by_command.len());
        assert_eq!(out.by_command.values().map(|b| b.requests).sum::<u64>(), 200);
        assert!(out.by_command.contains_key(OTHER));
        assert_eq!(out.by_scenario["echo"].requests, 200, "out-of-range scenario index is clamped");
    }

    #[tokio::test]
    async fn slots_leave_memory_once_their_window_passes() {
        let mut rec = Recorder::new(cfg(Duration::ZERO), Arc::default(), None);
        for seq in 0..10_000 {
            rec.handle(done(seq, 0, 1, Outcome::Status(200)));
        }
        assert_eq!(rec.ring.len(), 10_000);
        std::thread::sleep(Duration::from_millis(5));
        rec.maintain();
        assert_eq!(rec.ring.len(), 0);
        assert!(rec.ring.chunks.len() <= 1, "finalized chunks are freed");
        assert_eq!(rec.counters.lost, 10_000);
        rec.handle(Event::Response { seq: 5, at_ns: 1 });
        assert_eq!(rec.counters.late_responses, 1);
    }

    #[test]
    fn a_request_slot_takes_32_bytes() {
        // The memory bound in the module docs depends on it.
        assert_eq!(std::mem::size_of::<Slot>(), 32);
    }

    #[test]
    fn ring_spans_chunks_and_frees_them() {
        let mut ring = Ring::default();
        let n = (CHUNK * 3 + 5) as u64;
        for seq in (0..n).rev() {
            ring.get_mut(seq).unwrap().status = (seq % 600) as u16;
        }
        assert_eq!(ring.len(), n);
        for want in 0..n {
            let (seq, slot) = ring.pop_front().unwrap();
            assert_eq!((seq, slot.status), (want, (want % 600) as u16));
        }
        assert!(ring.pop_front().is_none());
        assert!(ring.chunks.len() <= 1);
        assert!(ring.get_mut(n - 1).is_none(), "finalized sequence numbers stay finalized");
        assert!(ring.get_mut(n).is_some());
    }

    #[tokio::test]
    async fn records_one_ndjson_line_per_request() {
        let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
        let rec = Recorder::new(cfg(Duration::from_secs(60)), Arc::default(), Some(Box::new(Shared(buf.clone()))));
        finish(
            rec,
            vec![
                done(0, 10, 2, Outcome::Status(200)),
                Event::Response { seq: 0, at_ns: 30_000_000 },
                done(1, 20, 2, Outcome::Error(ErrorKind::Connect)),
            ],
        )
        .await;
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["id"], "t-0");
        assert_eq!(lines[0]["command"], "/echo");
        assert_eq!(lines[0]["ackStatus"], 200);
        assert_eq!(lines[0]["firstResponseMs"], 20.0);
        assert_eq!(lines[0]["expectedAnswers"], 1);
        assert_eq!(lines[0]["scheduledMs"], 1_700_000_000_010.0);
        assert_eq!(lines[1]["error"], "connect");
        assert!(lines[1]["ackStatus"].is_null());
    }
}
