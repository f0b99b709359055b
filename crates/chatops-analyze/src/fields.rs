//! What the line parser reads from one log line, whichever of its two paths (the fast
//! scanner in `scan`, the serde fallback in `line`) filled it: a leaf both depend on, so
//! neither depends on the other.

use std::borrow::Cow;

use crate::metric::Metric;

/// The fields of a line the analyzer reads, whichever parser filled them.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Fields<'a> {
    pub message: Option<Cow<'a, str>>,
    pub timestamp: Option<i64>,
    pub at_timestamp: Option<i64>,
    pub correlation_id: Option<Cow<'a, str>>,
    pub command: Option<Cow<'a, str>>,
    pub component: Option<Cow<'a, str>>,
    pub quadrant: Option<Cow<'a, str>>,
    pub error_type: Option<Cow<'a, str>>,
    pub status_code: Option<f64>,
    pub success: Option<bool>,
    pub attempt: Option<f64>,
    pub responses: Option<f64>,
    /// The timed fields by [`Metric::index`] (the router line's `duration` included).
    pub values: [Option<f64>; Metric::COUNT],
}

/// Epoch milliseconds (or seconds, for values below 1e11, i.e. before 1973 in milliseconds)
/// → unix nanoseconds.
pub(crate) fn epoch_to_ns(v: f64) -> Option<i64> {
    if !(0.0..=1e14).contains(&v) {
        return None;
    }
    let ms = if v < 1e11 { v * 1000.0 } else { v };
    // Whole milliseconds are multiplied as integers: an f64 cannot hold 1.7e18 ns exactly.
    let whole = ms.trunc();
    Some(whole as i64 * 1_000_000 + ((ms - whole) * 1e6).round() as i64)
}
