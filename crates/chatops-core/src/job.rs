//! The job: what the router stores durably and a worker runs. It carries the slash command,
//! its correlation id, its idempotency key and the wall-clock stamps of the stages before
//! the queue, so that a worker in another process can report the whole E2E breakdown.

use serde::{Deserialize, Serialize};

use crate::{CorrelationId, Quadrant, SlashCommand};

/// A unit of work, serialised into the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Unique, time-ordered id of this job (UUIDv7), distinct from the correlation id,
    /// which a client may choose.
    pub job_id: String,
    pub correlation_id: CorrelationId,
    /// Same Slack request (timestamp + signature) → same key → one job.
    pub idempotency_key: String,
    pub quadrant: Quadrant,
    pub command: SlashCommand,
    /// Deliveries before the job goes to the dead-letter queue.
    pub max_attempts: u32,
    /// When the router received the HTTP request (unix ns).
    pub router_received_ns: u64,
    /// When the router asked the queue to store the job (unix ns).
    pub enqueue_started_ns: u64,
    /// W3C trace context of the router span, when tracing is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Times the job was redriven from the dead-letter queue.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redrives: u32,
    /// The command's typed arguments, checked by the router (empty for a command that
    /// declares none).
    #[serde(default, skip_serializing_if = "crate::args::Args::is_empty")]
    pub args: crate::args::Args,
    /// Set on a job that waited for approvals before it was enqueued (see [`Approval`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// How a job that needed approvals got them: when its request was stored as pending, when
/// the last approval it needed came in (the job's `enqueue_started_ns` is then reset to
/// that moment, so `enqueueMs` stays the durable write and the human's wait is its own
/// stage, `approvalWaitMs`), and who approved.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// When the router asked the store to keep the request as pending (unix ns).
    pub requested_ns: u64,
    /// When the approval that completed the quorum was recorded (unix ns).
    pub approved_ns: u64,
    /// The approvers' Slack user ids, in the order they approved.
    pub approvers: Vec<String>,
    /// The `response_url` of the click that completed the approvals (a bearer token, like
    /// the command's own): the worker replaces the approval message with the result there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_url: Option<String>,
}

impl std::fmt::Debug for Approval {
    /// Leaves out `message_url` (a bearer token).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approval")
            .field("requested_ns", &self.requested_ns)
            .field("approved_ns", &self.approved_ns)
            .field("approvers", &self.approvers)
            .finish_non_exhaustive()
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Job {
    /// A new unique, time-ordered job id (UUIDv7).
    pub fn new_id() -> String {
        uuid::Uuid::now_v7().to_string()
    }

    /// The idempotency key of a verified Slack request: its timestamp and MAC, which
    /// together identify one delivery of one body (a retransmission of the same request has
    /// both). Built from the decoded MAC bytes, not the header text, so re-sending a captured
    /// request with the signature's hex digits in another case is the same request.
    pub fn idempotency_key_for(verified: &crate::slack::signature::Verified) -> String {
        format!("{}.{}", verified.timestamp, hex::encode(verified.tag))
    }
}

/// Where a job's time went, as wall-clock stamps (unix ns). Filled in as the job moves;
/// turned into the log contract's numbers by [`StageTimings::from_stamps`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobStamps {
    pub router_received_ns: u64,
    /// For a job that waited for approvals: (stored as pending, approved), as in its
    /// [`Approval`]. Its `enqueue_started_ns` is then the approval.
    pub approval: Option<(u64, u64)>,
    pub enqueue_started_ns: u64,
    /// When the queue made the job durable.
    pub enqueued_ns: u64,
    /// When a worker received the job.
    pub dequeued_ns: u64,
    pub handler_started_ns: u64,
    pub handler_finished_ns: u64,
    /// Each post to `response_url`: (start, end).
    pub responses: Vec<(u64, u64)>,
    /// When the worker finished with the job (after the handler and acknowledgement).
    pub done_ns: u64,
}

/// The per-attempt numbers of the worker's "Performance metrics" line, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageTimings {
    /// Router receive → job done.
    pub total_e2e_ms: f64,
    /// Dequeue → job done.
    pub worker_duration_ms: f64,
    /// Durably enqueued → dequeued (measured, not derived).
    pub queue_wait_ms: f64,
    /// Router receive → start of the durable enqueue, or, for a job that waited for
    /// approvals, → its request stored as pending.
    pub router_ms: f64,
    /// Stored as pending → approved, for a job that waited for approvals.
    pub approval_wait_ms: Option<f64>,
    /// Start of the durable enqueue → durable.
    pub enqueue_ms: f64,
    /// Handler start → handler end.
    pub handler_ms: f64,
    /// First response post's duration, if any.
    pub sync_response_ms: Option<f64>,
    /// Last response post's duration, if there were two or more.
    pub async_response_ms: Option<f64>,
    /// Router receive → first response delivered.
    pub first_response_e2e_ms: Option<f64>,
    /// Router receive → last response delivered.
    pub last_response_e2e_ms: Option<f64>,
}

impl StageTimings {
    /// The figure of the worker's metric line that `metric` names; `None` for the router
    /// line's `duration`, for a response figure with no such response, and for the approval
    /// wait of a job that needed no approval.
    pub fn get(&self, metric: crate::Metric) -> Option<f64> {
        use crate::Metric as M;
        match metric {
            M::RouterDuration => None,
            M::TotalE2e => Some(self.total_e2e_ms),
            M::WorkerDuration => Some(self.worker_duration_ms),
            M::ApprovalWait => self.approval_wait_ms,
            M::QueueWait => Some(self.queue_wait_ms),
            M::SyncResponse => self.sync_response_ms,
            M::AsyncResponse => self.async_response_ms,
            M::Router => Some(self.router_ms),
            M::Enqueue => Some(self.enqueue_ms),
            M::Handler => Some(self.handler_ms),
            M::FirstResponseE2e => self.first_response_e2e_ms,
            M::LastResponseE2e => self.last_response_e2e_ms,
        }
    }

    /// The stages are consecutive, so router + approval wait + enqueue + queue wait +
    /// worker is the E2E total (up to rounding): the human's wait is its own stage, not
    /// hidden in the router's.
    pub fn from_stamps(s: &JobStamps) -> Self {
        use crate::time::{ms_between, round_ms};
        let ms = |a, b| round_ms(ms_between(a, b));
        let first = s.responses.first();
        let last = s.responses.last().filter(|_| s.responses.len() > 1);
        let router_done_ns = s.approval.map_or(s.enqueue_started_ns, |(requested, _)| requested);
        StageTimings {
            total_e2e_ms: ms(s.router_received_ns, s.done_ns),
            worker_duration_ms: ms(s.dequeued_ns, s.done_ns),
            queue_wait_ms: ms(s.enqueued_ns, s.dequeued_ns),
            router_ms: ms(s.router_received_ns, router_done_ns),
            approval_wait_ms: s.approval.map(|(requested, approved)| ms(requested, approved)),
            enqueue_ms: ms(s.enqueue_started_ns, s.enqueued_ns),
            handler_ms: ms(s.handler_started_ns, s.handler_finished_ns),
            sync_response_ms: first.map(|&(a, b)| ms(a, b)),
            async_response_ms: last.map(|&(a, b)| ms(a, b)),
            first_response_e2e_ms: s.responses.first().map(|&(_, b)| ms(s.router_received_ns, b)),
            last_response_e2e_ms: s.responses.last().map(|&(_, b)| ms(s.router_received_ns, b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_come_from_stamps_not_from_differences_of_totals() {
        const MS: u64 = 1_000_000;
        let s = JobStamps {
            router_received_ns: 1000 * MS,
            approval: None,
            enqueue_started_ns: 1001 * MS,
            enqueued_ns: 1003 * MS,
            dequeued_ns: 1010 * MS,
            handler_started_ns: 1011 * MS,
            responses: vec![(1011 * MS, 1012 * MS), (1013 * MS, 1016 * MS)],
            handler_finished_ns: 1016 * MS,
            done_ns: 1017 * MS,
        };
        let t = StageTimings::from_stamps(&s);
        assert_eq!(t.total_e2e_ms, 17.0);
        assert_eq!(t.router_ms, 1.0);
        assert_eq!(t.enqueue_ms, 2.0);
        assert_eq!(t.queue_wait_ms, 7.0);
        assert_eq!(t.worker_duration_ms, 7.0);
        assert_eq!(t.handler_ms, 5.0);
        assert_eq!(t.sync_response_ms, Some(1.0));
        assert_eq!(t.async_response_ms, Some(3.0));
        assert_eq!(t.first_response_e2e_ms, Some(12.0));
        assert_eq!(t.last_response_e2e_ms, Some(16.0));
        assert!(t.total_e2e_ms >= t.router_ms + t.enqueue_ms + t.queue_wait_ms + t.worker_duration_ms);
        assert_eq!(t.approval_wait_ms, None);
        assert_eq!(t.get(crate::Metric::ApprovalWait), None, "no approvalWaitMs on the line");
    }

    #[test]
    fn the_human_wait_of_an_approved_job_is_its_own_stage_not_the_routers() {
        const MS: u64 = 1_000_000;
        // Received at 1000, stored as pending at 1002, approved 90 s later; the approval
        // flow resets `enqueue_started_ns` to the approval.
        let (requested, approved) = (1002 * MS, 91_002 * MS);
        let s = JobStamps {
            router_received_ns: 1000 * MS,
            approval: Some((requested, approved)),
            enqueue_started_ns: approved,
            enqueued_ns: approved + 3 * MS,
            dequeued_ns: approved + 10 * MS,
            handler_started_ns: approved + 11 * MS,
            responses: vec![(approved + 11 * MS, approved + 12 * MS)],
            handler_finished_ns: approved + 12 * MS,
            done_ns: approved + 13 * MS,
        };
        let t = StageTimings::from_stamps(&s);
        assert_eq!(t.router_ms, 2.0, "the router's own work, not the wait");
        assert_eq!(t.approval_wait_ms, Some(90_000.0));
        assert_eq!(t.get(crate::Metric::ApprovalWait), Some(90_000.0));
        assert_eq!(t.enqueue_ms, 3.0, "the durable write after the approval");
        assert_eq!(t.queue_wait_ms, 7.0);
        assert_eq!(t.worker_duration_ms, 3.0);
        assert_eq!(t.total_e2e_ms, 90_015.0);
        let stages = t.router_ms + 90_000.0 + t.enqueue_ms + t.queue_wait_ms + t.worker_duration_ms;
        assert_eq!(stages, t.total_e2e_ms, "consecutive stages add up to the total");
        assert_eq!(t.first_response_e2e_ms, Some(90_014.0), "what the user saw includes the wait");
    }

    #[test]
    fn single_response_has_no_async_time() {
        let s = JobStamps { responses: vec![(1, 2)], ..Default::default() };
        let t = StageTimings::from_stamps(&s);
        assert!(t.sync_response_ms.is_some());
        assert_eq!(t.async_response_ms, None);
    }

    #[test]
    fn idempotency_key_is_timestamp_and_lowercase_mac() {
        let verified = crate::slack::signature::Verified { timestamp: 1531420618, tag: [0xAB; 32] };
        assert_eq!(Job::idempotency_key_for(&verified), format!("1531420618.{}", "ab".repeat(32)));
    }
}
