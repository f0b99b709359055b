//! The streaming aggregator: feeds on lines one at a time and keeps only bounded state
//! (distributions per figure and group, capped key sets, at most 1000 time bins), then
//! produces the [`MetricsSummary`](crate::summary::MetricsSummary) parts. Memory does not
//! grow with the number of lines. Grouping state lives in `groups`, the E2E breakdown in
//! `breakdown`, time bins in `bins`.

use std::collections::{BTreeMap, HashMap};

use chatops_core::Segment as SegmentKind;

use crate::dist::{Dist, FixedSum, Precision, round_us};
use crate::join::Joiner;
use crate::line::{LineKind, LineParser, RouterLine, WorkerLine};
use crate::metric::Metric;
mod bins;
mod breakdown;
mod groups;

use crate::summary::{
    BinPoint, E2eBreakdown, Group, Groups, LineCounts, RouterTotals, Segment, StageStats, TimeBins, WorkerTotals,
};
use bins::*;
use breakdown::*;
use groups::*;

/// Distinct keys kept per grouping dimension (and per error-type table); further keys are
/// counted under [`OTHER_KEY`], so hostile logs with random command names stay bounded.
pub const MAX_KEYS: usize = 200;
pub use crate::summary::OTHER_KEY;
/// Longest key kept; longer keys are cut at a character boundary.
const MAX_KEY_LEN: usize = 120;
/// Most time bins; the bin width doubles until the data fits.
pub const MAX_BINS: i64 = 1000;

/// Lines are kept when their timestamp lies in `[start, end]` (unix ns; open when `None`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowNs {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl WindowNs {
    fn is_open(&self) -> bool {
        self.start.is_none() && self.end.is_none()
    }
}

/// The aggregator's state.
#[derive(Debug)]
pub struct Aggregator {
    parser: LineParser,
    window: WindowNs,
    pub(crate) lines: LineCounts,
    router: RouterAcc,
    worker: WorkerAcc,
    combos: Combos,
    bins: Option<Bins>,
    join: Option<Joiner>,
    first_ns: Option<i64>,
    last_ns: Option<i64>,
}

const DIM_COMPONENT: usize = 0;
const DIM_COMMAND: usize = 1;
const DIM_QUADRANT: usize = 2;
const DIM_STATUS: usize = 3;
const DIM_OUTCOME: usize = 4;

impl Aggregator {
    /// `bin_ns`: time-bin width in nanoseconds (`--bin`), if any.
    pub fn new(window: WindowNs, bin_ns: Option<i64>, join: Option<Joiner>) -> Self {
        Aggregator {
            parser: LineParser::new(),
            window,
            lines: LineCounts::default(),
            router: RouterAcc::default(),
            worker: WorkerAcc::default(),
            combos: Combos::default(),
            bins: bin_ns.filter(|&w| w > 0).map(Bins::new),
            join,
            first_ns: None,
            last_ns: None,
        }
    }

    /// Feeds one line (without its newline).
    pub fn feed(&mut self, line: &[u8]) {
        self.lines.total += 1;
        match self.parser.parse(line) {
            LineKind::NotJson => self.lines.not_json += 1,
            LineKind::NotMetric => self.lines.not_metric += 1,
            LineKind::Malformed => self.lines.malformed += 1,
            LineKind::Router(r) => {
                if self.keep(r.ts_ns) {
                    self.add_router(&r);
                }
            }
            LineKind::Worker(w) => {
                if self.keep(w.ts_ns) {
                    self.add_worker(&w);
                }
            }
        }
    }

    /// Folds another aggregator's state into this one, so that inputs can be aggregated on
    /// several threads. The other side must have no join (joins run on one thread).
    pub fn merge(&mut self, other: Aggregator) {
        debug_assert!(other.join.is_none(), "joins are not merged");
        let (a, b) = (&mut self.lines, &other.lines);
        a.total += b.total;
        a.router += b.router;
        a.worker += b.worker;
        a.not_json += b.not_json;
        a.not_metric += b.not_metric;
        a.malformed += b.malformed;
        a.oversized += b.oversized;
        a.outside_window += b.outside_window;
        a.no_timestamp += b.no_timestamp;
        a.read_errors += b.read_errors;

        self.router.requests += other.router.requests;
        self.router.errors += other.router.errors;
        self.router.by_status.merge(other.router.by_status);
        self.router.errors_by_status.merge(other.router.errors_by_status);
        self.router.errors_by_type.merge(other.router.errors_by_type);
        self.worker.attempts += other.worker.attempts;
        self.worker.failures += other.worker.failures;
        self.worker.retries += other.worker.retries;
        self.worker.errors_by_type.merge(other.worker.errors_by_type);

        self.combos.merge(other.combos);
        match (&mut self.bins, other.bins) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, Some(theirs)) => self.bins = Some(theirs),
            _ => {}
        }
        self.first_ns = [self.first_ns, other.first_ns].into_iter().flatten().min();
        self.last_ns = [self.last_ns, other.last_ns].into_iter().flatten().max();
    }

    /// True when some key table overflowed (more than [`MAX_KEYS`] keys in a dimension or an
    /// error table, or `MAX_COMBOS` combinations): which keys were kept then depends on the
    /// order lines came in, so aggregators that saw parts of a log may not merge into what one
    /// aggregator that saw it all would hold. (A log that names a key `(other)` itself also
    /// counts as overflowed: a false alarm costs a re-read, never a wrong result.)
    pub fn hit_caps(&self) -> bool {
        self.combos.accs.len() >= MAX_COMBOS
            || self.combos.dims.iter().any(|d| d.index.contains_key(OTHER_KEY))
            || [
                &self.router.by_status,
                &self.router.errors_by_status,
                &self.router.errors_by_type,
                &self.worker.errors_by_type,
            ]
            .iter()
            .any(|c| c.0.contains_key(OTHER_KEY))
    }

    /// Counts lines skipped by the reader for being too long.
    pub fn add_oversized(&mut self, n: u64) {
        self.lines.oversized += n;
    }

    pub fn add_read_error(&mut self) {
        self.lines.read_errors += 1;
    }

    fn keep(&mut self, ts_ns: Option<i64>) -> bool {
        let Some(ts) = ts_ns else {
            if self.window.is_open() {
                return true;
            }
            self.lines.no_timestamp += 1;
            return false;
        };
        if self.window.start.is_some_and(|s| ts < s) || self.window.end.is_some_and(|e| ts > e) {
            self.lines.outside_window += 1;
            return false;
        }
        self.first_ns = Some(self.first_ns.map_or(ts, |f| f.min(ts)));
        self.last_ns = Some(self.last_ns.map_or(ts, |l| l.max(ts)));
        true
    }

    fn add_router(&mut self, r: &RouterLine<'_>) {
        self.lines.router += 1;
        let mut status_buf = [0u8; 3];
        let status = status_str(r.status_code, &mut status_buf);
        let error_type = r.error_type.as_deref().unwrap_or("unknown");
        self.router.requests += 1;
        count(&mut self.router.by_status, status);
        if !r.success {
            self.router.errors += 1;
            count(&mut self.router.errors_by_status, status);
            count(&mut self.router.errors_by_type, error_type);
        }
        let outcome = outcome_key(r.success, r.error_type.as_deref());

        let c = &mut self.combos;
        let ids = [
            NONE,
            c.dims[DIM_COMMAND].id(r.command.as_deref().unwrap_or("(none)")),
            r.quadrant.as_deref().map_or(NONE, |q| c.dims[DIM_QUADRANT].id(q)),
            c.dims[DIM_STATUS].id(status),
            c.dims[DIM_OUTCOME].id(outcome),
        ];
        c.combo(ids).add_router(r);

        if let (Some(bins), Some(ts)) = (&mut self.bins, r.ts_ns) {
            let b = bins.bin(ts);
            b.router_lines += 1;
            b.router_errors += u64::from(!r.success);
            b.router.record(r.duration_ms);
        }
        if let (Some(join), Some(id)) = (&mut self.join, r.correlation_id.as_deref()) {
            join.add_router(id, r);
        }
    }

    fn add_worker(&mut self, w: &WorkerLine<'_>) {
        self.lines.worker += 1;
        self.worker.attempts += 1;
        self.worker.retries += u64::from(w.attempt > 1);
        if !w.success {
            self.worker.failures += 1;
            count(&mut self.worker.errors_by_type, w.error_type.as_deref().unwrap_or("unknown"));
        }
        let outcome = outcome_key(w.success, w.error_type.as_deref());
        let segments = e2e_segments(w);

        let c = &mut self.combos;
        let ids = [
            w.component.as_deref().map_or(NONE, |x| c.dims[DIM_COMPONENT].id(x)),
            c.dims[DIM_COMMAND].id(w.command.as_deref().unwrap_or("(none)")),
            w.quadrant.as_deref().map_or(NONE, |q| c.dims[DIM_QUADRANT].id(q)),
            NONE,
            c.dims[DIM_OUTCOME].id(outcome),
        ];
        c.combo(ids).add_worker(w, segments.as_ref());

        if let (Some(bins), Some(ts)) = (&mut self.bins, w.ts_ns) {
            let b = bins.bin(ts);
            b.worker_lines += 1;
            b.worker_failures += u64::from(!w.success);
            if let Some(v) = w.get(Metric::QueueWait) {
                b.queue_wait.record(v);
            }
            if let Some(v) = w.get(Metric::TotalE2e) {
                b.e2e.record(v);
            }
        }
        if let (Some(join), Some(id)) = (&mut self.join, w.correlation_id.as_deref()) {
            join.add_worker(id, w);
        }
    }

    /// The summary parts: line counts, totals, stages, breakdown, groups, bins, the join, and
    /// the first/last kept timestamps (epoch ms).
    pub fn finish(self) -> Aggregated {
        let mut router = RouterTotals {
            requests: self.router.requests,
            errors: self.router.errors,
            error_rate: ratio(self.router.errors, self.router.requests),
            by_status: self.router.by_status.into_map(),
            errors_by_status: self.router.errors_by_status.into_map(),
            errors_by_type: self.router.errors_by_type.into_map(),
        };
        router.error_rate = round_rate(router.error_rate);
        let worker = WorkerTotals {
            attempts: self.worker.attempts,
            failures: self.worker.failures,
            failure_rate: round_rate(ratio(self.worker.failures, self.worker.attempts)),
            retries: self.worker.retries,
            errors_by_type: self.worker.errors_by_type.into_map(),
        };
        let (all, [component, command, quadrant, status, outcome]) = self.combos.finish();
        Aggregated {
            lines: self.lines,
            router,
            worker,
            stages: all.stage_stats(),
            e2e_breakdown: all.breakdown.finish().unwrap_or_default(),
            groups: Groups {
                by_component: component,
                by_command: command,
                by_quadrant: quadrant,
                by_status: status,
                by_outcome: outcome,
            },
            bins: self.bins.map(Bins::finish),
            join: self.join,
            first_ms: self.first_ns.map(|n| n.div_euclid(1_000_000)),
            last_ms: self.last_ns.map(|n| n.div_euclid(1_000_000)),
        }
    }
}

/// What [`Aggregator::finish`] returns.
#[derive(Debug)]
pub struct Aggregated {
    pub lines: LineCounts,
    pub router: RouterTotals,
    pub worker: WorkerTotals,
    pub stages: Vec<StageStats>,
    pub e2e_breakdown: E2eBreakdown,
    pub groups: Groups,
    pub bins: Option<TimeBins>,
    pub join: Option<Joiner>,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// Rates are shown to 1e-6, enough for a million requests and free of float noise.
fn round_rate(r: f64) -> f64 {
    (r * 1e6).round() / 1e6
}

fn outcome_key(success: bool, error_type: Option<&str>) -> &str {
    if success { "success" } else { error_type.unwrap_or("error") }
}

fn status_str(code: Option<u16>, buf: &mut [u8; 3]) -> &str {
    match code {
        Some(c @ 100..=999) => {
            buf[0] = b'0' + (c / 100) as u8;
            buf[1] = b'0' + (c / 10 % 10) as u8;
            buf[2] = b'0' + (c % 10) as u8;
            std::str::from_utf8(buf).expect("ascii digits")
        }
        _ => "unknown",
    }
}

fn cut_key(key: &str) -> &str {
    if key.len() <= MAX_KEY_LEN {
        return key;
    }
    let mut end = MAX_KEY_LEN;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router_line(ts: &str, cmd: &str, status: u16, duration: f64) -> String {
        format!(
            r#"{{"timestamp":"{ts}","message":"Router performance metrics","command":"{cmd}","statusCode":{status},"duration":{duration},"success":{}}}"#,
            status < 400
        )
    }

    fn feed_all(agg: &mut Aggregator, lines: &[String]) {
        for l in lines {
            agg.feed(l.as_bytes());
        }
    }

    #[test]
    fn window_bounds_are_inclusive_and_counted() {
        let ns = |s| chatops_core::time::parse_rfc3339_ns(s).unwrap();
        let window = WindowNs { start: Some(ns("2026-01-01T00:00:01Z")), end: Some(ns("2026-01-01T00:00:02Z")) };
        let mut agg = Aggregator::new(window, None, None);
        feed_all(
            &mut agg,
            &[
                router_line("2026-01-01T00:00:00.999Z", "/a", 200, 1.0),
                router_line("2026-01-01T00:00:01Z", "/a", 200, 2.0),
                router_line("2026-01-01T00:00:02Z", "/a", 200, 3.0),
                router_line("2026-01-01T00:00:02.001Z", "/a", 200, 4.0),
                r#"{"message":"Router performance metrics","duration":5}"#.to_owned(),
            ],
        );
        let out = agg.finish();
        assert_eq!((out.lines.router, out.lines.outside_window, out.lines.no_timestamp), (2, 2, 1));
        assert_eq!(out.stages[0].stats.mean, 2.5);
        assert_eq!(out.first_ms, Some(ns("2026-01-01T00:00:01Z") / 1_000_000));
    }

    #[test]
    fn caps_the_number_of_groups_per_dimension() {
        let mut agg = Aggregator::new(WindowNs::default(), None, None);
        let lines: Vec<String> =
            (0..MAX_KEYS + 50).map(|i| router_line("2026-01-01T00:00:00Z", &format!("/c{i}"), 200, 1.0)).collect();
        feed_all(&mut agg, &lines);
        feed_all(&mut agg, &[router_line("2026-01-01T00:00:00Z", "/c0", 200, 1.0)]);
        let out = agg.finish();
        assert_eq!(out.groups.by_command.len(), MAX_KEYS + 1);
        let other = out.groups.by_command.iter().find(|g| g.key == OTHER_KEY).unwrap();
        assert_eq!(other.router_lines, 50);
        let c0 = out.groups.by_command.iter().find(|g| g.key == "/c0").unwrap();
        assert_eq!(c0.router_lines, 2, "known keys keep counting after the cap");
    }

    #[test]
    fn caps_the_number_of_key_combinations_without_losing_a_line() {
        let mut agg = Aggregator::new(WindowNs::default(), None, None);
        for i in 0..10_000 {
            agg.feed(format!(r#"{{"message":"Router performance metrics","command":"/c{}","statusCode":500,"errorType":"E{}","duration":1}}"#, i % 100, i / 100).as_bytes());
        }
        assert!(agg.combos.accs.len() <= MAX_COMBOS + 32, "{}", agg.combos.accs.len());
        let out = agg.finish();
        for groups in [&out.groups.by_command, &out.groups.by_outcome, &out.groups.by_status] {
            assert_eq!(groups.iter().map(|g| g.router_lines).sum::<u64>(), 10_000);
        }
        assert!(out.groups.by_command.iter().any(|g| g.key == OTHER_KEY));
        assert_eq!(out.router.errors_by_type.values().sum::<u64>(), 10_000);
    }

    #[test]
    fn cuts_overlong_keys_at_a_character_boundary() {
        let long = "é".repeat(200);
        assert!(cut_key(&long).len() <= MAX_KEY_LEN && cut_key(&long).chars().all(|c| c == 'é'));
    }

    #[test]
    fn widens_bins_so_that_at_most_a_thousand_exist_and_keeps_every_count() {
        let mut agg = Aggregator::new(WindowNs::default(), Some(1_000_000_000), None);
        // 5000 seconds of one line per second: 1 s bins would be 5000.
        for s in 0..5000i64 {
            let ts = chatops_core::time::format_rfc3339_ms(1_700_000_000_000 + s * 1000);
            agg.feed(router_line(&ts, "/a", 200, 1.0).as_bytes());
        }
        let bins = agg.finish().bins.unwrap();
        assert!(bins.points.len() as i64 <= MAX_BINS, "{}", bins.points.len());
        assert_eq!(bins.width_ms, 8000);
        assert_eq!(bins.requested_width_ms, 1000);
        assert_eq!(bins.points.iter().map(|p| p.router_lines).sum::<u64>(), 5000);
        assert!(bins.points.windows(2).all(|w| w[1].start_ms - w[0].start_ms == 8000));
    }

    #[test]
    fn fills_empty_bins_between_data() {
        let mut agg = Aggregator::new(WindowNs::default(), Some(10_000_000_000), None);
        feed_all(
            &mut agg,
            &[router_line("2026-01-01T00:00:05Z", "/a", 200, 1.0), router_line("2026-01-01T00:00:35Z", "/a", 500, 3.0)],
        );
        let bins = agg.finish().bins.unwrap();
        let counts: Vec<(u64, u64)> = bins.points.iter().map(|p| (p.router_lines, p.router_errors)).collect();
        assert_eq!(counts, [(1, 0), (0, 0), (0, 0), (1, 1)]);
        assert_eq!(bins.points[0].start_ms % 10_000, 0);
    }

    #[test]
    fn a_stray_line_far_away_widens_bins_instead_of_exhausting_memory() {
        let mut agg = Aggregator::new(WindowNs::default(), Some(1_000_000), None);
        feed_all(
            &mut agg,
            &[router_line("1971-01-01T00:00:00Z", "/a", 200, 1.0), router_line("2026-01-01T00:00:00Z", "/a", 200, 1.0)],
        );
        let bins = agg.finish().bins.unwrap();
        assert!(bins.points.len() as i64 <= MAX_BINS);
        assert_eq!(bins.points.iter().map(|p| p.router_lines).sum::<u64>(), 2);
    }

    #[test]
    fn merging_aggregators_equals_aggregating_everything_in_one() {
        let lines: Vec<String> = (0..3000)
            .map(|i| {
                let ts = chatops_core::time::format_rfc3339_ms(1_700_000_000_000 + i * 700);
                if i % 3 == 0 {
                    format!(r#"{{"timestamp":"{ts}","message":"Performance metrics","command":"/c{}","component":"sr-worker","totalE2eMs":{},"success":{}}}"#, i % 7, i % 97, i % 11 != 0)
                } else {
                    router_line(&ts, &format!("/c{}", i % 7), if i % 13 == 0 { 503 } else { 200 }, (i % 89) as f64)
                }
            })
            .collect();
        let one = {
            let mut agg = Aggregator::new(WindowNs::default(), Some(1_000_000_000), None);
            feed_all(&mut agg, &lines);
            agg.add_oversized(2);
            agg.finish()
        };
        let merged = {
            let mut parts: Vec<Aggregator> =
                (0..3).map(|_| Aggregator::new(WindowNs::default(), Some(1_000_000_000), None)).collect();
            for (i, l) in lines.iter().enumerate() {
                parts[i % 3].feed(l.as_bytes());
            }
            parts[1].add_oversized(2);
            let mut it = parts.into_iter();
            let mut first = it.next().unwrap();
            for p in it {
                first.merge(p);
            }
            first.finish()
        };
        assert_eq!(merged.lines, one.lines);
        assert_eq!(merged.router, one.router);
        assert_eq!(merged.worker, one.worker);
        assert_eq!(merged.groups.by_command.len(), 7);
        assert_eq!(merged.bins.as_ref().unwrap().width_ms, one.bins.as_ref().unwrap().width_ms);
        assert_eq!(merged.bins.as_ref().unwrap().points.len(), one.bins.as_ref().unwrap().points.len());
        assert_eq!((merged.first_ms, merged.last_ms), (one.first_ms, one.last_ms));
        for (m, o) in merged.stages.iter().zip(&one.stages) {
            let (m, o) = (&m.stats, &o.stats);
            assert_eq!((m.count, m.min, m.max), (o.count, o.min, o.max));
            assert!((m.mean - o.mean).abs() < 1e-3 && (m.p99 - o.p99).abs() <= o.p99 * 0.001 + 0.001, "{m:?} vs {o:?}");
        }
    }

    #[test]
    fn breakdown_segments_sum_to_the_mean_total() {
        let mut agg = Aggregator::new(WindowNs::default(), None, None);
        agg.feed(br#"{"message":"Performance metrics","totalE2eMs":10,"routerMs":1,"enqueueMs":2,"queueWaitMs":3,"handlerMs":3.5,"syncResponseMs":1,"asyncResponseMs":0.5,"workerDurationMs":3.8}"#);
        agg.feed(br#"{"message":"Performance metrics","totalE2eMs":20,"queueWaitMs":5,"workerDurationMs":15}"#);
        let b = agg.finish().e2e_breakdown;
        assert_eq!(b.lines, 2);
        assert_eq!(b.total_mean_ms, 15.0);
        let means: Vec<(&str, f64)> = b.segments.iter().map(|s| (s.name.as_str(), s.mean_ms)).collect();
        assert_eq!(
            means,
            [
                ("router", 0.5),
                ("enqueue", 1.0),
                ("queue_wait", 4.0),
                ("handler", 8.5),
                ("sync_response", 0.5),
                ("async_response", 0.25),
                ("other", 0.25)
            ]
        );
        let share: f64 = b.segments.iter().map(|s| s.share_pct).sum();
        assert!((share - 100.0).abs() < 0.05, "{share}");
    }

    #[test]
    fn the_approval_wait_is_a_segment_only_where_a_job_waited_for_one() {
        let mut agg = Aggregator::new(WindowNs::default(), None, None);
        // Waited 9000 ms for a human; router 1, enqueue 2, queue wait 3, worker 5: total 9011.
        agg.feed(br#"{"message":"Performance metrics","command":"/deploy","totalE2eMs":9011,"routerMs":1,"approvalWaitMs":9000,"enqueueMs":2,"queueWaitMs":3,"handlerMs":4,"workerDurationMs":5}"#);
        agg.feed(br#"{"message":"Performance metrics","command":"/echo","totalE2eMs":11,"routerMs":1,"enqueueMs":2,"queueWaitMs":3,"handlerMs":4,"workerDurationMs":5}"#);
        let out = agg.finish();
        let b = &out.e2e_breakdown;
        assert_eq!(b.total_mean_ms, 4511.0);
        let means: Vec<(&str, f64)> = b.segments.iter().map(|s| (s.name.as_str(), s.mean_ms)).collect();
        assert_eq!(
            means,
            [
                ("router", 1.0),
                ("approval_wait", 4500.0),
                ("enqueue", 2.0),
                ("queue_wait", 3.0),
                ("handler", 4.0),
                ("sync_response", 0.0),
                ("async_response", 0.0),
                ("other", 1.0)
            ],
            "the human's wait is neither router nor queue time"
        );
        assert_eq!(b.segments.iter().map(|s| s.mean_ms).sum::<f64>(), b.total_mean_ms);
        let names = |key: &str| -> Vec<&str> {
            let g = out.groups.by_command.iter().find(|g| g.key == key).unwrap();
            g.e2e_breakdown.as_ref().unwrap().segments.iter().map(|s| s.name.as_str()).collect()
        };
        assert!(names("/deploy").contains(&"approval_wait"));
        assert!(!names("/echo").contains(&"approval_wait"), "no zero row for a command without approvals");
        let stage = out.stages.iter().find(|s| s.metric == Metric::ApprovalWait).unwrap();
        assert_eq!((stage.stats.count, stage.stats.max, stage.label.as_str()), (1, 9000.0, "approval wait"));
    }

    #[test]
    fn merged_aggregators_keep_the_approval_segment() {
        let lines = [
            r#"{"message":"Performance metrics","totalE2eMs":110,"routerMs":1,"approvalWaitMs":100,"queueWaitMs":4,"workerDurationMs":5}"#,
            r#"{"message":"Performance metrics","totalE2eMs":10,"routerMs":1,"queueWaitMs":4,"workerDurationMs":5}"#,
        ];
        let mut parts: Vec<Aggregator> = (0..2).map(|_| Aggregator::new(WindowNs::default(), None, None)).collect();
        for (p, l) in parts.iter_mut().zip(lines) {
            p.feed(l.as_bytes());
        }
        let mut it = parts.into_iter().rev();
        let mut merged = it.next().unwrap();
        merged.merge(it.next().unwrap());
        let b = merged.finish().e2e_breakdown;
        let wait = b.segments.iter().find(|s| s.name == SegmentKind::ApprovalWait).unwrap();
        assert_eq!((b.lines, wait.mean_ms), (2, 50.0));
    }
}
