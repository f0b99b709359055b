//! Arrival times: a pure function of the phases, independent of how the target answers
//! (that is what makes the load generator an *open* model).
//!
//! A rate phase with rate r(t) = from + (to − from)·t/D has cumulative arrivals
//! N(t) = from·t + (to − from)·t²/(2D); the k-th arrival is at the t where N(t) = k, for
//! every k with t < D. A constant rate is the special case from = to (arrivals every 1/r),
//! and a ramp comes out linear. `arrivalCount` spreads its n arrivals evenly (k·D/n), and a
//! pause has none. The schedule is an iterator, so a long test never holds its arrivals in
//! memory.

use std::time::Duration;

use chatops_core::results::ResolvedPhase;

use crate::profile::{Load, Phase};

/// One planned arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Nanoseconds from the test start.
    pub offset_ns: u64,
    pub phase_idx: usize,
}

/// The arrival offsets of every phase, in order.
pub fn arrivals(phases: &[Phase]) -> Arrivals<'_> {
    Arrivals { phases, phase_idx: 0, phase_start_ns: 0, k: 0 }
}

#[derive(Debug, Clone)]
pub struct Arrivals<'a> {
    phases: &'a [Phase],
    phase_idx: usize,
    phase_start_ns: u64,
    k: u64,
}

impl Iterator for Arrivals<'_> {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        loop {
            let phase = self.phases.get(self.phase_idx)?;
            if let Some(t) = arrival_time(phase, self.k) {
                self.k += 1;
                let offset_ns = self.phase_start_ns + (t * 1e9) as u64;
                return Some(Arrival { offset_ns, phase_idx: self.phase_idx });
            }
            self.phase_start_ns += phase.duration.as_nanos() as u64;
            self.phase_idx += 1;
            self.k = 0;
        }
    }
}

/// Seconds from the phase start of its k-th arrival, or None past its end.
fn arrival_time(phase: &Phase, k: u64) -> Option<f64> {
    let d = phase.duration.as_secs_f64();
    let kf = k as f64;
    let t = match phase.load {
        Load::Pause => return None,
        Load::Count(n) => {
            if k >= n {
                return None;
            }
            kf * d / n as f64
        }
        Load::Rate { from, to } => {
            if k == 0 {
                if from <= 0.0 && to <= 0.0 {
                    return None;
                }
                // With a ramp from 0 the first arrival is due once N(t) reaches... 0, at t = 0.
                0.0
            } else {
                let a = (to - from) / (2.0 * d);
                let b = from;
                let disc = (b * b + 4.0 * a * kf).max(0.0);
                let denom = b + disc.sqrt();
                if denom <= 0.0 {
                    return None;
                }
                // 2k / (b + sqrt(b² + 4ak)) is the root of a·t² + b·t − k = 0 that stays
                // exact when a is 0 (constant rate) or tiny.
                2.0 * kf / denom
            }
        }
    };
    (t < d - 1e-9).then_some(t)
}

/// Arrivals a phase plans (walks the phase; cheap, used once per run and in tests).
pub fn planned_count(phase: &Phase) -> u64 {
    match phase.load {
        Load::Pause => 0,
        Load::Count(n) => n,
        Load::Rate { .. } => {
            // The count is about (from + to)/2·D; confirm the edge by evaluating the
            // schedule near it rather than trusting float rounding.
            let (from, to) = match phase.load {
                Load::Rate { from, to } => (from, to),
                _ => unreachable!(),
            };
            let estimate = ((from + to) / 2.0 * phase.duration.as_secs_f64()).floor() as u64;
            let mut k = estimate.saturating_sub(2);
            while arrival_time(phase, k).is_some() {
                k += 1;
            }
            while k > 0 && arrival_time(phase, k - 1).is_none() {
                k -= 1;
            }
            k
        }
    }
}

/// The phases as written into the results, with their start offsets and planned arrivals.
pub fn resolve(phases: &[Phase]) -> Vec<ResolvedPhase> {
    let mut start = Duration::ZERO;
    phases
        .iter()
        .map(|p| {
            let (arrival_rate, ramp_to) = match p.load {
                Load::Rate { from, to } => (from, to),
                Load::Count(n) => {
                    let r = n as f64 / p.duration.as_secs_f64();
                    (r, r)
                }
                Load::Pause => (0.0, 0.0),
            };
            let r = ResolvedPhase {
                name: p.name.clone(),
                start_offset_ms: start.as_millis() as u64,
                duration_ms: p.duration.as_millis() as u64,
                arrival_rate,
                ramp_to,
                planned_requests: planned_count(p),
            };
            start += p.duration;
            r
        })
        .collect()
}

/// The target arrival rate at `t` from the test start (for the live line and time series).
pub fn rate_at(phases: &[Phase], t: Duration) -> f64 {
    let mut start = Duration::ZERO;
    for p in phases {
        if t < start + p.duration {
            let x = (t - start).as_secs_f64() / p.duration.as_secs_f64();
            return match p.load {
                Load::Rate { from, to } => from + (to - from) * x,
                Load::Count(n) => n as f64 / p.duration.as_secs_f64(),
                Load::Pause => 0.0,
            };
        }
        start += p.duration;
    }
    0.0
}

/// The target rate of each of `n_intervals` time-series intervals: the arrivals planned in
/// it over its length (arrivals past the last interval count in the last). Walks the whole
/// schedule, so a caller on an async runtime should run it on a blocking thread.
pub fn target_rates(phases: &[Phase], interval: Duration, n_intervals: usize) -> Vec<f64> {
    if n_intervals == 0 {
        return Vec::new();
    }
    let mut counts = vec![0u64; n_intervals];
    let interval_ns = (interval.as_nanos() as u64).max(1);
    for a in arrivals(phases) {
        let idx = usize::try_from(a.offset_ns / interval_ns).unwrap_or(usize::MAX).min(n_intervals - 1);
        counts[idx] += 1;
    }
    counts.into_iter().map(|n| n as f64 / interval.as_secs_f64()).collect()
}

/// Which phase `t` falls in (the last one after the end).
pub fn phase_at(phases: &[Phase], t: Duration) -> usize {
    let mut start = Duration::ZERO;
    for (i, p) in phases.iter().enumerate() {
        start += p.duration;
        if t < start {
            return i;
        }
    }
    phases.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(load: Load, secs: f64) -> Phase {
        Phase { name: "p".into(), duration: Duration::from_secs_f64(secs), load, max_in_flight: None }
    }

    fn offsets_s(phases: &[Phase]) -> Vec<f64> {
        arrivals(phases).map(|a| a.offset_ns as f64 / 1e9).collect()
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let phases = [phase(Load::Rate { from: 4.0, to: 4.0 }, 2.0)];
        let got = offsets_s(&phases);
        assert_eq!(got.len(), 8);
        for (i, t) in got.iter().enumerate() {
            assert!((t - i as f64 * 0.25).abs() < 1e-6, "{got:?}");
        }
        assert_eq!(planned_count(&phases[0]), 8);
    }

    #[test]
    fn ten_second_constant_phase_plans_exactly_its_rate() {
        let phases = [phase(Load::Rate { from: 1000.0, to: 1000.0 }, 10.0)];
        assert_eq!(arrivals(&phases).count(), 10_000);
        assert_eq!(planned_count(&phases[0]), 10_000);
    }

    #[test]
    fn fractional_rates_round_up_inside_the_phase() {
        let phases = [phase(Load::Rate { from: 0.5, to: 0.5 }, 5.0)];
        assert_eq!(offsets_s(&phases), [0.0, 2.0, 4.0]);
    }

    #[test]
    fn ramp_is_linear() {
        // 10 → 110 per second over 10 s: 600 arrivals, and the count in each second grows
        // by 10 per second.
        let phases = [phase(Load::Rate { from: 10.0, to: 110.0 }, 10.0)];
        let got = offsets_s(&phases);
        assert!((got.len() as i64 - 600).abs() <= 1, "{}", got.len());
        let mut per_sec = [0u32; 10];
        for t in &got {
            per_sec[*t as usize] += 1;
        }
        for (s, n) in per_sec.iter().enumerate() {
            let expected = 10.0 + 10.0 * (s as f64 + 0.5);
            assert!((*n as f64 - expected).abs() <= 1.0, "second {s}: {n} vs {expected}: {per_sec:?}");
        }
        assert!(got.windows(2).all(|w| w[0] < w[1]), "monotonic");
    }

    #[test]
    fn ramp_down_and_ramp_from_zero() {
        let down = [phase(Load::Rate { from: 20.0, to: 0.0 }, 10.0)];
        assert!((arrivals(&down).count() as i64 - 100).abs() <= 1);
        let up = [phase(Load::Rate { from: 0.0, to: 20.0 }, 10.0)];
        let got = offsets_s(&up);
        assert!((got.len() as i64 - 100).abs() <= 1);
        assert_eq!(got[0], 0.0);
        // Sparse early, dense late.
        assert!(got.iter().filter(|t| **t < 5.0).count() < got.iter().filter(|t| **t >= 5.0).count() / 2);
    }

    #[test]
    fn arrival_count_spreads_evenly_and_pause_adds_time_only() {
        let phases = [phase(Load::Count(4), 2.0), phase(Load::Pause, 3.0), phase(Load::Count(1), 1.0)];
        assert_eq!(offsets_s(&phases), [0.0, 0.5, 1.0, 1.5, 5.0]);
        let phases_idx: Vec<_> = arrivals(&phases).map(|a| a.phase_idx).collect();
        assert_eq!(phases_idx, [0, 0, 0, 0, 2]);
    }

    #[test]
    fn zero_rate_phase_is_empty() {
        let phases = [phase(Load::Rate { from: 0.0, to: 0.0 }, 3.0), phase(Load::Count(0), 1.0)];
        assert_eq!(arrivals(&phases).count(), 0);
    }

    #[test]
    fn resolve_reports_offsets_and_planned_counts() {
        let phases = [phase(Load::Rate { from: 3.0, to: 6.0 }, 10.0), phase(Load::Rate { from: 2.0, to: 2.0 }, 20.0)];
        let r = resolve(&phases);
        assert_eq!(r[1].start_offset_ms, 10_000);
        assert_eq!(r[0].planned_requests as usize, arrivals(&phases[..1]).count());
        assert_eq!(r[1].planned_requests, 40);
        assert_eq!(rate_at(&phases, Duration::from_secs(5)), 4.5);
        assert_eq!(phase_at(&phases, Duration::from_secs(12)), 1);
    }

    #[test]
    fn builtin_minimal_plans_its_documented_count() {
        let p = crate::profile::Profile::load("minimal", &std::collections::HashMap::<String, String>::new()).unwrap();
        // 5·1 + 25·2 + 10·(3+6)/2 + 20·2
        assert_eq!(arrivals(&p.phases).count(), 140);
    }
}
