//! What the page is sent: the dashboard's [`State`] and the JSON event made of it.
//!
//! Every event is complete (phase, totals, cards, charts, verdict) except for the points: an
//! event carries the points from index `points.from` on, and the page keeps the ones before
//! it. A browser that connects gets `from = 0`, the whole history; the once-a-second updates
//! resend only the points that may still change (the intervals still open, whose answers
//! may still come) and the ones closed since. The final event resends them all, now the
//! results file's own.
//!
//! The cards carry their value both as a number (`value`, exactly the JSON number of the
//! results file at the end) and as text formatted by the report's formatter, so the page
//! computes nothing.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatops_core::results::{LoadTestResults, ResolvedPhase, ThresholdResult, TimePoint};
use chatops_report::fmt::{count, ms_unit, rate, ratio_pct, raw};
use chatops_report::timeline::{self, Timeline};
use serde::Serialize;

use super::RunView;
use crate::RunResults;
use crate::record::{Live, Percentiles, Progress};

/// Where the run is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Served before the test started.
    #[default]
    Waiting,
    Progress,
    /// The results are in: the figures are the results file's.
    Final,
    /// The run failed; `error` says why.
    Error,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Waiting => "waiting",
            Stage::Progress => "progress",
            Stage::Final => "final",
            Stage::Error => "error",
        }
    }
}

/// The run's figures so far (or final).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Arrivals per second the schedule asks for now (at the end: over the whole run).
    pub target_rate: f64,
    /// Requests sent per second over the last second (at the end: over the whole run).
    pub achieved_rate: f64,
    pub requests: u64,
    pub errors: u64,
    /// Errors over requests (0..1).
    pub error_rate: f64,
    pub lost: u64,
    pub incomplete: u64,
    pub dropped: u64,
    pub in_flight: u64,
    pub responses: u64,
    pub ack: Percentiles,
    pub e2e: Percentiles,
}

/// One big number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Card {
    pub id: &'static str,
    pub label: &'static str,
    pub value: f64,
    pub text: String,
    /// Shown in red: an error, a lost answer, a dropped arrival.
    pub bad: bool,
    /// One of the latency cards (the second row).
    pub latency: bool,
}

/// The charts as SVG markup, `None` where there is nothing to draw yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Charts {
    pub rate: Option<String>,
    pub ack: Option<String>,
    pub e2e: Option<String>,
    pub server: Option<String>,
}

impl Charts {
    fn of(points: &[TimePoint], phases: &[ResolvedPhase]) -> Charts {
        let t = Timeline { points, phases, artillery: false };
        let html = |c: Option<chatops_report::svg::Chart>| c.map(|c| c.to_html());
        Charts {
            rate: html(timeline::rate_chart(&t)),
            ack: html(timeline::ack_chart(&t)),
            e2e: html(timeline::e2e_chart(&t)),
            server: html(timeline::server_chart(&t)),
        }
    }
}

/// A threshold as the page lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdRow {
    pub condition: String,
    pub limit: String,
    pub measured: String,
    pub passed: bool,
    pub strict: bool,
}

impl ThresholdRow {
    fn of(t: &ThresholdResult) -> ThresholdRow {
        ThresholdRow {
            condition: t.condition.clone(),
            limit: raw(t.limit),
            measured: if t.no_data { "no samples".into() } else { raw(t.measured) },
            passed: t.passed,
            strict: t.strict,
        }
    }
}

/// The verdict and where the results are.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub passed: bool,
    pub exit_code: u8,
    pub thresholds: Vec<ThresholdRow>,
    /// The results file as written (`--output`).
    pub results_path: String,
    /// The results file, served by the dashboard.
    pub results_url: &'static str,
    /// The HTML report of the results (without the bot's server side), served by the dashboard.
    pub report_url: &'static str,
    /// The command that summarises the bot's side of the run (its log) beside the results.
    pub analyze_command: String,
    /// The command that writes the report beside the results file (with the bot's side
    /// when the summary is there).
    pub report_command: String,
}

/// The files served once the run is over.
#[derive(Debug, Clone)]
pub struct Files {
    /// The results file's bytes.
    pub results_json: Bytes,
    /// Its file name, for the download.
    pub results_name: String,
    pub report_html: Bytes,
}

/// The dashboard's figures; events are made of it.
#[derive(Debug, Default)]
pub struct State {
    seq: u64,
    stage: Stage,
    profile: String,
    target: String,
    phases: Vec<ResolvedPhase>,
    duration_ms: u64,
    interval_ms: u64,
    elapsed_ms: u64,
    phase: String,
    points: Vec<TimePoint>,
    /// Points before this index no longer change (until the final event replaces all).
    n_final: usize,
    totals: Totals,
    cards: Vec<Card>,
    charts: Charts,
    verdict: Option<Verdict>,
    error: Option<String>,
    notes: Vec<String>,
    files: Option<Files>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    kind: Stage,
    seq: u64,
    profile: &'a str,
    target: &'a str,
    elapsed_ms: u64,
    duration_ms: u64,
    interval_ms: u64,
    phase: &'a str,
    phases: &'a [ResolvedPhase],
    totals: &'a Totals,
    cards: &'a [Card],
    points: Points<'a>,
    charts: &'a Charts,
    verdict: Option<&'a Verdict>,
    error: Option<&'a str>,
    notes: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Points<'a> {
    /// Index of the first item: the page keeps its points before it and replaces the rest.
    from: usize,
    /// Points before this index are final.
    n_final: usize,
    items: &'a [TimePoint],
}

impl State {
    pub fn n_final(&self) -> usize {
        self.n_final
    }

    pub fn files(&self) -> Option<&Files> {
        self.files.as_ref()
    }

    /// The SSE frame of the state, with the points from `from` on.
    pub fn frame(&self, from: usize) -> Bytes {
        let from = from.min(self.points.len());
        let event = Event {
            kind: self.stage,
            seq: self.seq,
            profile: &self.profile,
            target: &self.target,
            elapsed_ms: self.elapsed_ms,
            duration_ms: self.duration_ms,
            interval_ms: self.interval_ms,
            phase: &self.phase,
            phases: &self.phases,
            totals: &self.totals,
            cards: &self.cards,
            points: Points { from, n_final: self.n_final, items: &self.points[from..] },
            charts: &self.charts,
            verdict: self.verdict.as_ref(),
            error: self.error.as_deref(),
            notes: &self.notes,
        };
        let json = serde_json::to_string(&event).expect("an update always serializes");
        // JSON text has no raw newline, so one `data:` line carries it.
        Bytes::from(format!("id: {}\nevent: {}\ndata: {json}\n\n", self.seq, self.stage.as_str()))
    }

    /// The run starts. Returns the index the next frame's points start at.
    pub fn begin(&mut self, run: &RunView) -> usize {
        self.seq += 1;
        self.stage = Stage::Progress;
        self.profile = run.profile.clone();
        self.target = run.target.clone();
        self.phases = crate::schedule::resolve(&run.phases);
        self.duration_ms = run.phases.iter().map(|p| p.duration).sum::<Duration>().as_millis() as u64;
        self.interval_ms = run.interval.as_millis() as u64;
        self.phase = run.phases.first().map(|p| p.name.clone()).unwrap_or_default();
        self.points.clear();
        self.n_final = 0;
        self.cards = cards(&self.totals, false);
        0
    }

    /// A second has passed. Returns the index the next frame's points start at.
    pub fn progress(&mut self, sample: Sample) -> usize {
        if matches!(self.stage, Stage::Final | Stage::Error) {
            return self.points.len();
        }
        let from = self.n_final;
        self.seq += 1;
        self.stage = Stage::Progress;
        self.elapsed_ms = sample.elapsed.as_millis() as u64;
        self.phase = sample.phase;
        self.n_final = sample.n_final;
        self.points = sample.points;
        self.cards = cards(&sample.totals, false);
        self.totals = sample.totals;
        self.charts = sample.charts;
        from.min(self.n_final)
    }

    /// The results are in. Returns 0: every point is resent, now the results file's.
    pub fn finish(&mut self, f: Finished) -> usize {
        self.seq += 1;
        self.stage = Stage::Final;
        let r = &f.results;
        self.profile = r.test.profile.clone();
        self.target = r.test.target.clone();
        self.phases = r.phases.clone();
        self.elapsed_ms = u64::try_from(r.test.duration_ms).unwrap_or(0);
        self.phase = "done".into();
        self.points = r.time_series.points.clone();
        self.n_final = self.points.len();
        self.interval_ms = r.time_series.interval_ms;
        self.duration_ms = r.phases.iter().map(|p| p.duration_ms).sum();
        self.totals = final_totals(r, self.duration_ms);
        self.cards = cards(&self.totals, true);
        self.charts = Charts::of(&self.points, &self.phases);
        self.notes = r.test.notes.clone();
        self.verdict = Some(f.verdict);
        self.files = Some(f.files);
        0
    }

    /// The run failed.
    pub fn fail(&mut self, message: String) -> usize {
        self.seq += 1;
        self.stage = Stage::Error;
        self.phase = "failed".into();
        self.error = Some(message);
        self.n_final
    }
}

/// The figures of the whole run, from the results: what the results file says.
fn final_totals(r: &LoadTestResults, planned_ms: u64) -> Totals {
    let c = &r.counters;
    let planned_secs = planned_ms as f64 / 1000.0;
    let per_planned_sec = |n: u64| if planned_secs > 0.0 { n as f64 / planned_secs } else { 0.0 };
    let pick = |s: &chatops_core::stats::LatencySummary| Percentiles { p50: s.p50, p95: s.p95, p99: s.p99 };
    Totals {
        target_rate: per_planned_sec(c.scheduled),
        achieved_rate: per_planned_sec(c.requests),
        requests: c.requests,
        errors: c.n_errors(),
        error_rate: c.error_rate(),
        lost: c.lost,
        incomplete: c.incomplete,
        dropped: c.dropped,
        in_flight: 0,
        responses: c.responses,
        ack: pick(&r.summaries.ack),
        e2e: pick(&r.summaries.first_response),
    }
}

fn cards(t: &Totals, whole_run: bool) -> Vec<Card> {
    let n = |id, label, v: u64, bad: bool| Card { id, label, value: v as f64, text: count(v), bad, latency: false };
    let lat = |id, label, v: f64| Card { id, label, value: v, text: ms_unit(v), bad: false, latency: true };
    let (target_label, achieved_label) =
        if whole_run { ("target rate (mean)", "achieved rate (mean)") } else { ("target rate", "achieved rate") };
    vec![
        Card {
            id: "target-rate",
            label: target_label,
            value: t.target_rate,
            text: rate(t.target_rate),
            bad: false,
            latency: false,
        },
        Card {
            id: "achieved-rate",
            label: achieved_label,
            value: t.achieved_rate,
            text: rate(t.achieved_rate),
            bad: false,
            latency: false,
        },
        n("requests", "requests", t.requests, false),
        n("errors", "errors", t.errors, t.errors > 0),
        Card {
            id: "error-rate",
            label: "error rate",
            value: t.error_rate,
            text: ratio_pct(t.error_rate),
            bad: t.errors > 0,
            latency: false,
        },
        n("lost", "lost (no answer)", t.lost, t.lost > 0),
        n("incomplete", "incomplete", t.incomplete, t.incomplete > 0),
        n("dropped", "dropped (not sent)", t.dropped, t.dropped > 0),
        n("in-flight", "in flight", t.in_flight, false),
        n("responses", "answers received", t.responses, false),
        lat("ack-p50", "ack p50", t.ack.p50),
        lat("ack-p95", "ack p95", t.ack.p95),
        lat("ack-p99", "ack p99", t.ack.p99),
        lat("e2e-p50", "E2E p50", t.e2e.p50),
        lat("e2e-p95", "E2E p95", t.e2e.p95),
        lat("e2e-p99", "E2E p99", t.e2e.p99),
    ]
}

/// The achieved rate over the last update.
#[derive(Debug)]
pub struct RateMeter {
    sent: u64,
    at: Instant,
}

impl RateMeter {
    pub fn new(live: &Live) -> RateMeter {
        RateMeter { sent: live.sent.load(Ordering::Relaxed), at: Instant::now() }
    }

    fn per_second(&mut self, sent: u64) -> f64 {
        let dt = self.at.elapsed().as_secs_f64().max(1e-3);
        let r = sent.saturating_sub(self.sent) as f64 / dt;
        (self.sent, self.at) = (sent, Instant::now());
        r
    }
}

/// One second's look at the run, taken outside the dashboard's lock (the charts are drawn
/// here).
#[derive(Debug)]
pub struct Sample {
    elapsed: Duration,
    phase: String,
    points: Vec<TimePoint>,
    n_final: usize,
    totals: Totals,
    charts: Charts,
}

impl Sample {
    /// Reads the counters and the recorder's last [`Progress`]; `target_rates` are the
    /// schedule's per interval (empty until computed).
    pub fn take(
        run: &RunView,
        progress: Progress,
        rates: &mut RateMeter,
        target_rates: &[f64],
        phases: &[ResolvedPhase],
    ) -> Sample {
        let elapsed = run.start.elapsed();
        let total: Duration = run.phases.iter().map(|p| p.duration).sum();
        let phase = if elapsed >= total {
            "draining".to_owned()
        } else {
            run.phases.get(crate::schedule::phase_at(&run.phases, elapsed)).map(|p| p.name.clone()).unwrap_or_default()
        };
        let live = &run.live;
        let sent = live.sent.load(Ordering::Relaxed);
        let errors = live.errors.load(Ordering::Relaxed);
        let totals = Totals {
            target_rate: crate::schedule::rate_at(&run.phases, elapsed),
            achieved_rate: rates.per_second(sent),
            requests: sent,
            errors,
            error_rate: if sent == 0 { 0.0 } else { errors as f64 / sent as f64 },
            lost: live.lost.load(Ordering::Relaxed),
            incomplete: live.incomplete.load(Ordering::Relaxed),
            dropped: live.dropped.load(Ordering::Relaxed),
            in_flight: live.in_flight.load(Ordering::Relaxed),
            responses: live.responses.load(Ordering::Relaxed),
            ack: progress.ack,
            e2e: progress.e2e,
        };
        let interval_ms = (run.interval.as_millis() as u64).max(1);
        let n_final = progress.closed.len();
        let mut points = progress.closed;
        points.extend(progress.open);
        for p in &mut points {
            let idx = usize::try_from(p.offset_ms / interval_ms).unwrap_or(usize::MAX);
            p.target_rate = target_rates.get(idx).copied().unwrap_or(0.0);
        }
        // The gauges join their intervals as the results file will have them (the later
        // scrape if an interval has two).
        if let Some(server) = &run.server {
            let interval_ns = interval_ms * 1_000_000;
            for (offset_ns, gauges) in server.borrow().iter() {
                if let Some(p) = points.get_mut(usize::try_from(offset_ns / interval_ns).unwrap_or(usize::MAX)) {
                    p.server = Some(gauges.clone());
                }
            }
        }
        let charts = Charts::of(&points, phases);
        Sample { elapsed, phase, n_final, points, totals, charts }
    }
}

/// What the run's end tells the dashboard.
#[derive(Debug)]
pub struct Finished {
    results: LoadTestResults,
    verdict: Verdict,
    files: Files,
}

impl Finished {
    pub fn of(run: &RunResults) -> Finished {
        let path = run.path.display().to_string();
        let verdict = Verdict {
            passed: run.passed(),
            exit_code: run.exit_code(),
            thresholds: run.results.thresholds.iter().map(ThresholdRow::of).collect(),
            results_path: path.clone(),
            results_url: "results.json",
            report_url: "report.html",
            analyze_command: format!("chatops analyze --from-results {}", shell_word(&path)),
            report_command: format!("chatops report {}", shell_word(&path)),
        };
        let files = Files {
            // The same bytes as the file (`RunResults::write`).
            results_json: Bytes::from(format!("{}\n", run.to_json())),
            results_name: run
                .path
                .file_name()
                .map_or_else(|| "results.json".to_owned(), |n| n.to_string_lossy().into_owned()),
            report_html: Bytes::from(chatops_report::render_html(&run.results, None, None)),
        };
        Finished { results: run.results.clone(), verdict, files }
    }
}

/// `s` as one word for a POSIX shell: as is when it is plain, else single-quoted.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain { s.to_owned() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_one_shell_word() {
        assert_eq!(shell_word("results/test-1.json"), "results/test-1.json");
        assert_eq!(shell_word("my results/it's.json"), r"'my results/it'\''s.json'");
        assert_eq!(shell_word(""), "''");
    }

    fn point(offset_ms: u64) -> TimePoint {
        TimePoint { offset_ms, requests: 1, ..Default::default() }
    }

    #[test]
    fn frames_resend_only_the_points_that_may_change() {
        let s = State {
            points: (0..5).map(|i| point(i * 1000)).collect(),
            n_final: 3,
            seq: 7,
            stage: Stage::Progress,
            ..Default::default()
        };
        let frame = String::from_utf8(s.frame(3).to_vec()).unwrap();
        let mut lines = frame.lines();
        assert_eq!(lines.next(), Some("id: 7"));
        assert_eq!(lines.next(), Some("event: progress"));
        let data: serde_json::Value =
            serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
        assert!(frame.ends_with("\n\n"));
        assert_eq!(data["points"]["from"], 3);
        assert_eq!(data["points"]["nFinal"], 3);
        let offsets: Vec<u64> =
            data["points"]["items"].as_array().unwrap().iter().map(|p| p["offsetMs"].as_u64().unwrap()).collect();
        assert_eq!(offsets, [3000, 4000]);
        let all = String::from_utf8(s.frame(99).to_vec()).unwrap();
        assert!(all.contains(r#""from":5"#), "a from past the end is clamped: {all}");
    }

    #[test]
    fn the_server_chart_appears_once_a_point_carries_the_bots_gauges() {
        let phases = [ResolvedPhase {
            name: "steady".into(),
            start_offset_ms: 0,
            duration_ms: 2000,
            arrival_rate: 1.0,
            ramp_to: 1.0,
            planned_requests: 2,
        }];
        let mut points = vec![point(0), point(1000)];
        let without = Charts::of(&points, &phases);
        assert!(without.rate.is_some() && without.ack.is_some() && without.e2e.is_some());
        assert!(without.server.is_none());
        points[1].server =
            Some(chatops_core::results::ServerGauges { queue_depth: 4.0, jobs_in_flight: 2.0, dlq_size: 0.0 });
        let server = Charts::of(&points, &phases).server.unwrap();
        assert!(server.contains("chart-server-gauges") && server.contains("queue depth 4"), "{server}");
    }

    #[test]
    fn a_failed_run_keeps_its_figures_and_says_why() {
        let mut s = State { points: vec![point(0)], n_final: 1, ..Default::default() };
        let from = s.fail("target 127.0.0.1:9 refused".into());
        assert_eq!(from, 1);
        let frame = String::from_utf8(s.frame(from).to_vec()).unwrap();
        assert!(frame.contains("event: error") && frame.contains("127.0.0.1:9 refused"), "{frame}");
    }
}
