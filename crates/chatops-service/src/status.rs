//! The E2E latency of the last five minutes, for `/check-status`: an in-process rolling
//! window of HDR histograms that the workers record into and handlers read through
//! [`crate::handler::BotView`].

use std::sync::Mutex;

use chatops_core::stats::{LatencySummary, new_histogram, record_ms};
use hdrhistogram::Histogram;

/// Minutes kept in the rolling window.
pub const WINDOW_MINUTES: u64 = 5;

/// E2E latencies of recent jobs, bucketed by minute. Memory is fixed: five histograms.
pub struct E2eWindow {
    slots: Mutex<Vec<(u64, Histogram<u64>)>>,
}

impl std::fmt::Debug for E2eWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2eWindow").finish_non_exhaustive()
    }
}

impl Default for E2eWindow {
    fn default() -> Self {
        E2eWindow { slots: Mutex::new((0..WINDOW_MINUTES).map(|_| (u64::MAX, new_histogram())).collect()) }
    }
}

impl E2eWindow {
    /// Records one job's E2E time at `now_unix_secs`.
    pub fn record(&self, now_unix_secs: u64, e2e_ms: f64) {
        let minute = now_unix_secs / 60;
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut slots[(minute % WINDOW_MINUTES) as usize];
        if slot.0 != minute {
            slot.0 = minute;
            slot.1.reset();
        }
        record_ms(&mut slot.1, e2e_ms);
    }

    /// The merged summary of the minutes within the window ending at `now_unix_secs`.
    pub fn summary(&self, now_unix_secs: u64) -> LatencySummary {
        let minute = now_unix_secs / 60;
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut merged = new_histogram();
        for (m, h) in slots.iter() {
            if *m != u64::MAX && *m + WINDOW_MINUTES > minute && *m <= minute {
                merged.add(h).expect("histograms share bounds");
            }
        }
        LatencySummary::from_histogram(&merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_forgets_minutes_older_than_five() {
        let w = E2eWindow::default();
        w.record(0, 100.0);
        w.record(60, 10.0);
        assert_eq!(w.summary(60).count, 2);
        // Six minutes later only the second minute is... also gone; record a fresh one.
        w.record(6 * 60, 1.0);
        let s = w.summary(6 * 60);
        assert_eq!(s.count, 1, "{s:?}");
        assert!(s.max < 2.0);
    }

    #[test]
    fn slot_reuse_resets_old_counts() {
        let w = E2eWindow::default();
        w.record(0, 5.0);
        w.record(5 * 60, 7.0); // same slot index, a new minute
        assert_eq!(w.summary(5 * 60).count, 1);
    }
}
