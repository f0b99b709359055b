//! The E2E breakdown: each worker line's `totalE2eMs` split into
//! [`Segment`](chatops_core::Segment)s, and their means. The approval wait is a segment only
//! of breakdowns where some line carried `approvalWaitMs`; elsewhere it would be a row of
//! zeros that every command without approvals shows.

use super::*;

const N: usize = SegmentKind::BREAKDOWN.len();

/// One worker line's E2E time split into [`SegmentKind::BREAKDOWN`], plus the total.
#[derive(Debug, Clone, Copy)]
pub(super) struct LineSegments {
    pub(super) parts: [f64; N],
    pub(super) total: f64,
    /// The line carried `approvalWaitMs`.
    pub(super) approval: bool,
}

pub(super) fn e2e_segments(w: &WorkerLine<'_>) -> Option<LineSegments> {
    let total = w.get(Metric::TotalE2e)?;
    let v = |m| w.get(m).unwrap_or(0.0);
    let handler_total = w.get(Metric::Handler).or(w.get(Metric::WorkerDuration)).unwrap_or(0.0);
    let (sync, asyn) = (v(Metric::SyncResponse), v(Metric::AsyncResponse));
    let (router, enqueue, queue_wait) = (v(Metric::Router), v(Metric::Enqueue), v(Metric::QueueWait));
    let approval = w.get(Metric::ApprovalWait);
    let approval_wait = approval.unwrap_or(0.0);
    let other = total - (router + approval_wait + enqueue + queue_wait + handler_total);
    Some(LineSegments {
        // In `SegmentKind::BREAKDOWN` order.
        parts: [router, approval_wait, enqueue, queue_wait, handler_total - sync - asyn, sync, asyn, other],
        total,
        approval: approval.is_some(),
    })
}

#[derive(Debug, Default)]
pub(super) struct BreakdownAcc {
    pub(super) lines: u64,
    /// Lines that carried `approvalWaitMs`.
    pub(super) approval_lines: u64,
    /// Integer sums, so that merged parts equal a single-threaded run exactly.
    pub(super) sums: [FixedSum; N],
    pub(super) total: FixedSum,
}

impl BreakdownAcc {
    pub(super) fn add(&mut self, s: &LineSegments) {
        self.lines += 1;
        self.approval_lines += u64::from(s.approval);
        for (sum, part) in self.sums.iter_mut().zip(s.parts) {
            sum.add(part);
        }
        self.total.add(s.total);
    }

    pub(super) fn merge(&mut self, o: &BreakdownAcc) {
        self.lines += o.lines;
        self.approval_lines += o.approval_lines;
        self.total.merge(o.total);
        for (a, b) in self.sums.iter_mut().zip(o.sums) {
            a.merge(b);
        }
    }

    pub(super) fn finish(&self) -> Option<E2eBreakdown> {
        if self.lines == 0 {
            return None;
        }
        let n = self.lines as f64;
        let total_mean = self.total.ms() / n;
        let segments = SegmentKind::BREAKDOWN
            .into_iter()
            .zip(self.sums)
            .filter(|&(kind, _)| kind != SegmentKind::ApprovalWait || self.approval_lines > 0)
            .map(|(kind, sum)| (kind, sum.ms()))
            .map(|(kind, sum)| Segment {
                name: kind,
                label: kind.label().to_owned(),
                mean_ms: round_us(sum / n),
                share_pct: if total_mean > 0.0 { (sum / n / total_mean * 1e4).round() / 100.0 } else { 0.0 },
            })
            .collect();
        Some(E2eBreakdown { lines: self.lines, total_mean_ms: round_us(total_mean), segments })
    }
}
