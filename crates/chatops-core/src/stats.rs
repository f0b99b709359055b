//! Latency summaries: the fixed set of statistics every report shows, computed from an HDR
//! histogram recorded in microseconds.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency an HDR histogram here can hold: one hour in microseconds. Larger values
/// are clamped, not dropped, so a count is never lost.
pub const MAX_TRACKED_US: u64 = 3_600_000_000;

/// A new histogram for microsecond latencies: 1 µs .. 1 h with 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3).expect("static histogram bounds are valid")
}

/// Records a latency given in milliseconds (negative values, from clock skew, count as 0).
pub fn record_ms(h: &mut Histogram<u64>, ms: f64) {
    let us = (ms * 1000.0).round();
    let us = if us.is_finite() && us > 0.0 { us as u64 } else { 0 };
    h.saturating_record(us.clamp(1, MAX_TRACKED_US));
}

/// count, min, mean, p50, p90, p95, p99, p99.9, max, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl LatencySummary {
    /// Summarises a microsecond histogram. An empty histogram gives all zeros.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            min: ms(h.min()),
            mean: (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }

    /// Looks a statistic up by the name used in thresholds and reports
    /// (`min`, `mean`/`avg`, `median`/`p50`, `p90`, `p95`, `p99`, `p999`, `max`, `count`).
    pub fn get(&self, stat: &str) -> Option<f64> {
        Some(match stat {
            "count" => self.count as f64,
            "min" => self.min,
            "mean" | "avg" => self.mean,
            "median" | "p50" => self.p50,
            "p90" => self.p90,
            "p95" => self.p95,
            "p99" => self.p99,
            "p999" => self.p999,
            "max" => self.max,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_known_values() {
        let mut h = new_histogram();
        for ms in 1..=100 {
            record_ms(&mut h, ms as f64);
        }
        let s = LatencySummary::from_histogram(&h);
        assert_eq!(s.count, 100);
        assert_eq!(s.min, 1.0);
        assert!((s.p50 - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p99 - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max - 100.0).abs() < 0.1, "{s:?}");
        assert!((s.mean - 50.5).abs() < 0.1, "{s:?}");
    }

    #[test]
    fn clamps_rather_than_drops() {
        let mut h = new_histogram();
        record_ms(&mut h, -5.0);
        record_ms(&mut h, f64::NAN);
        record_ms(&mut h, 1e12);
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn empty_histogram_is_all_zero() {
        assert_eq!(LatencySummary::from_histogram(&new_histogram()), LatencySummary::default());
    }
}
