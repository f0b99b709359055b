//! The latency distribution every statistic of the analyzer is computed from: exact while a
//! group is small, an HDR histogram once it grows, so memory stays bounded whatever the size
//! of the logs.
//!
//! Precision, as documented for users:
//! - count, min, max and mean are always exact (to the microsecond the log lines carry); the
//!   sum behind the mean is kept in integer nanoseconds ([`FixedSum`]), so it does not depend
//!   on the order values were added in and a distribution merged from several threads' parts
//!   equals one recorded on a single thread, to the bit;
//! - percentiles are exact (nearest rank) while a distribution holds at most
//!   [`EXACT_SAMPLES`] values; beyond that they come from an HDR histogram recorded in
//!   microseconds with [`Precision::Fine`] = 3 significant digits (≤ 0.1 % relative error,
//!   1 µs resolution below 2.048 ms) or, for time bins, [`Precision::Coarse`] = 2 digits
//!   (≤ 1 %). Histogram percentiles are clamped to the exact min and max.
//! - negative values (clock skew between machines) count as 0 ms, as `chatops_core::stats` does.

use chatops_core::stats::{LatencySummary, MAX_TRACKED_US};
use hdrhistogram::Histogram;

/// Values kept verbatim before a distribution switches to a histogram. 1024 values cost
/// 8 KiB, less than the histogram they stand in for.
pub const EXACT_SAMPLES: usize = 1024;

/// Significant digits of the histogram a distribution switches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// 3 significant digits: per-stage and per-group statistics.
    Fine,
    /// 2 significant digits: time bins, of which there can be a thousand.
    Coarse,
}

impl Precision {
    fn sigfig(self) -> u8 {
        match self {
            Precision::Fine => 3,
            Precision::Coarse => 2,
        }
    }
}

/// A distribution of millisecond values.
#[derive(Debug, Clone)]
pub struct Dist {
    precision: Precision,
    count: u64,
    sum: FixedSum,
    min: f64,
    max: f64,
    exact: Vec<f64>,
    hist: Option<Histogram<u32>>,
}

impl Dist {
    pub fn new(precision: Precision) -> Self {
        Dist { precision, count: 0, sum: FixedSum::ZERO, min: f64::INFINITY, max: 0.0, exact: Vec::new(), hist: None }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the recorded values (after negatives were clamped to 0).
    pub fn sum(&self) -> f64 {
        self.sum.ms()
    }

    /// Records one value in milliseconds. Non-finite values are ignored: the parser never
    /// produces them, and a NaN must not poison the sum.
    pub fn record(&mut self, ms: f64) {
        if !ms.is_finite() {
            return;
        }
        let ms = ms.max(0.0);
        self.count += 1;
        self.sum.add(ms);
        self.min = self.min.min(ms);
        self.max = self.max.max(ms);
        match &mut self.hist {
            Some(h) => record_us(h, ms),
            None if self.exact.len() < EXACT_SAMPLES => self.exact.push(ms),
            None => {
                let mut h = new_hist(self.precision);
                for v in self.exact.drain(..) {
                    record_us(&mut h, v);
                }
                record_us(&mut h, ms);
                self.exact = Vec::new();
                self.hist = Some(h);
            }
        }
    }

    /// Adds every value of `other` (used when time bins are widened).
    pub fn merge(&mut self, other: &Dist) {
        if other.count == 0 {
            return;
        }
        match &other.hist {
            None => {
                // Re-recording keeps the exact path exact for as long as it can be.
                for &v in &other.exact {
                    self.record(v);
                }
            }
            Some(oh) => {
                let mut h = self.hist.take().unwrap_or_else(|| new_hist(self.precision));
                for v in self.exact.drain(..) {
                    record_us(&mut h, v);
                }
                self.exact = Vec::new();
                // Both histograms auto-resize, so `add` cannot fail on range.
                let _ = h.add(oh);
                self.hist = Some(h);
                self.count += other.count;
                self.sum.merge(other.sum);
                self.min = self.min.min(other.min);
                self.max = self.max.max(other.max);
            }
        }
    }

    /// Percentile by nearest rank: the smallest recorded value with at least `q × count`
    /// values at or below it (HDR histograms use the same definition).
    fn quantile(&self, sorted: &[f64], q: f64) -> f64 {
        match &self.hist {
            None => {
                if sorted.is_empty() {
                    return 0.0;
                }
                let rank = (q * sorted.len() as f64).ceil() as usize;
                sorted[rank.clamp(1, sorted.len()) - 1]
            }
            Some(h) => (h.value_at_quantile(q) as f64 / 1000.0).clamp(self.min, self.max),
        }
    }

    /// The statistics reports show, in milliseconds rounded to the microsecond.
    pub fn summary(&self) -> LatencySummary {
        if self.count == 0 {
            return LatencySummary::default();
        }
        let mut sorted = Vec::new();
        if self.hist.is_none() {
            sorted.extend_from_slice(&self.exact);
            sorted.sort_by(f64::total_cmp);
        }
        let q = |p: f64| round_us(self.quantile(&sorted, p));
        LatencySummary {
            count: self.count,
            min: round_us(self.min),
            mean: round_us(self.sum.ms() / self.count as f64),
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            max: round_us(self.max),
        }
    }
}

/// A sum of millisecond values kept in integer nanoseconds. Float addition is not
/// associative, so float sums of the same values added in another order (as when each thread
/// sums its part of a log) differ in the last bits, and a mean at a rounding edge then differs
/// by a microsecond; integer addition does not. Nanoseconds keep every digit a log line
/// carries (they carry microseconds); an i128 cannot overflow for any realistic log, and
/// saturates rather than wraps for a hostile one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedSum(i128);

impl FixedSum {
    pub const ZERO: FixedSum = FixedSum(0);

    /// Adds a finite value in milliseconds (negative values are allowed: the E2E breakdown's
    /// `other` segment can be negative).
    #[inline]
    pub fn add(&mut self, ms: f64) {
        let ns = ms * 1e6;
        // Rounds half away from zero. The common case converts through i64, a single
        // instruction (f64 → i128 and `round` are library calls); ±9e18 ns is 285 years.
        let ns = if ns.abs() < 9.0e18 { i128::from((ns + 0.5f64.copysign(ns)) as i64) } else { ns as i128 };
        self.0 = self.0.saturating_add(ns);
    }

    pub fn merge(&mut self, other: FixedSum) {
        self.0 = self.0.saturating_add(other.0);
    }

    /// The sum in milliseconds.
    pub fn ms(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

fn new_hist(precision: Precision) -> Histogram<u32> {
    // Auto-resizing from a tiny range: a histogram only costs memory up to the largest value
    // it has seen, not up to the one-hour ceiling. u32 counts halve the memory (and the cache
    // misses on the hot path); a bucket saturates at 4 billion values rather than wrapping.
    let mut h = Histogram::new_with_bounds(1, 2, precision.sigfig()).expect("static histogram bounds are valid");
    h.auto(true);
    h
}

fn record_us(h: &mut Histogram<u32>, ms: f64) {
    // `ms` is finite and non-negative here, so adding 0.5 and truncating rounds.
    let us = ((ms * 1000.0 + 0.5) as u64).min(MAX_TRACKED_US);
    // `record` grows an auto-resizing histogram; `saturating_record` would clamp to its
    // current range instead.
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

/// Rounds milliseconds to the microsecond, which is what log lines carry, so that reports do
/// not show float noise such as `50.50000000001`.
pub fn round_us(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist_of(values: impl IntoIterator<Item = f64>) -> Dist {
        let mut d = Dist::new(Precision::Fine);
        for v in values {
            d.record(v);
        }
        d
    }

    #[test]
    fn small_distributions_give_exact_nearest_rank_percentiles() {
        let s = dist_of((1..=100).rev().map(f64::from)).summary();
        assert_eq!((s.count, s.min, s.max, s.mean), (100, 1.0, 100.0, 50.5));
        assert_eq!((s.p50, s.p90, s.p95, s.p99, s.p999), (50.0, 90.0, 95.0, 99.0, 100.0));
    }

    #[test]
    fn a_single_value_is_every_percentile() {
        let s = dist_of([7.25]).summary();
        assert_eq!((s.min, s.p50, s.p99, s.max, s.mean), (7.25, 7.25, 7.25, 7.25, 7.25));
    }

    #[test]
    fn large_distributions_stay_within_histogram_precision() {
        // 10 000 values 0.01 ms .. 100 ms: far past the exact limit.
        let d = dist_of((1..=10_000).map(|i| f64::from(i) / 100.0));
        assert!(d.hist.is_some() && d.exact.is_empty());
        let s = d.summary();
        assert_eq!(s.count, 10_000);
        assert_eq!((s.min, s.max), (0.01, 100.0));
        assert!((s.mean - 50.005).abs() < 1e-9, "{s:?}");
        for (got, want) in [(s.p50, 50.0), (s.p95, 95.0), (s.p99, 99.0)] {
            assert!((got - want).abs() <= want * 0.001 + 0.001, "{got} vs {want}");
        }
    }

    #[test]
    fn coarse_precision_is_within_one_percent() {
        let mut d = Dist::new(Precision::Coarse);
        for i in 1..=5000 {
            d.record(f64::from(i));
        }
        let s = d.summary();
        assert!((s.p50 - 2500.0).abs() <= 25.0, "{s:?}");
        assert_eq!(s.max, 5000.0);
    }

    #[test]
    fn negative_and_non_finite_values_do_not_poison_the_statistics() {
        let s = dist_of([-3.0, f64::NAN, f64::INFINITY, 2.0]).summary();
        assert_eq!((s.count, s.min, s.max, s.mean), (2, 0.0, 2.0, 1.0));
    }

    #[test]
    fn huge_values_are_clamped_not_dropped() {
        let d = dist_of((0..2000).map(|_| 1e15));
        assert_eq!(d.summary().count, 2000);
        assert_eq!(d.summary().max, 1e15);
        assert_eq!(d.summary().p50, 1e15, "percentiles are clamped to the exact range");
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        for (a_n, b_n) in [(10, 20), (10, 3000), (3000, 10), (3000, 3000)] {
            let mut a = dist_of((0..a_n).map(f64::from));
            let b = dist_of((0..b_n).map(|i| f64::from(i) + 0.5));
            a.merge(&b);
            let all = dist_of((0..a_n).map(f64::from).chain((0..b_n).map(|i| f64::from(i) + 0.5)));
            let (m, w) = (a.summary(), all.summary());
            assert_eq!((m.count, m.min, m.max, m.mean), (w.count, w.min, w.max, w.mean), "{a_n}+{b_n}");
            assert!((m.p50 - w.p50).abs() <= w.p50 * 0.001 + 0.001, "{a_n}+{b_n}: {m:?} vs {w:?}");
        }
    }

    #[test]
    fn empty_distribution_is_all_zero() {
        assert_eq!(Dist::new(Precision::Fine).summary(), LatencySummary::default());
    }
}
