//! Commands waiting for a human: requests stored as *pending approval*, outside the work
//! queue, until enough approvers approve (the job is then enqueued, exactly once, in the
//! same durable step as the deciding vote), one denies, or the request expires.
//!
//! The store knows nothing of who may approve: the caller checks that (is an approver, is
//! not the requester) before it calls [`ApprovalStore::vote`]. The store guarantees what
//! only it can: a vote is counted once per user, a request is decided once, a decided or
//! expired request never changes again, and the job of an approved request reaches the
//! queue once however many approvers click at once, however often one double-clicks, and
//! whichever process crashes when.
//!
//! ```text
//! request_approval ──▶ pending ──vote(approve) × required──▶ approved ──(job enqueued)
//!                         │ │
//!                         │ └──vote(deny)──▶ denied
//!                         └──expires_ms passes (sweep, or a vote that comes late)──▶ expired
//! ```

use async_trait::async_trait;
use chatops_core::Job;
use serde::{Deserialize, Serialize};

use crate::{Enqueued, QueueError};

/// A request as the router stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// Opaque and unguessable (128 random bits, hex): it travels in the buttons' values, so
    /// it must not be derivable from anything a channel member sees.
    pub id: String,
    /// What runs once approved. Its idempotency key (the Slack request's) makes a replayed
    /// request find this approval instead of opening a second one.
    pub job: Job,
    /// Approvals needed (at least 1).
    pub required: u32,
    /// When it was stored (unix ms).
    pub created_ms: i64,
    /// After this (unix ms) it can no longer be approved.
    pub expires_ms: i64,
}

/// One approver's click.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub user_id: String,
    pub approve: bool,
    /// unix ms
    pub at_ms: i64,
    /// The click's `response_url` (a bearer token: never log it). The deciding approval's is
    /// copied into the enqueued job's [`chatops_core::Approval::message_url`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
        }
    }
}

/// A request with its votes and state, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub request: PendingApproval,
    /// In the order they were recorded.
    pub votes: Vec<Vote>,
    pub state: ApprovalState,
    /// When it left `Pending` (unix ms).
    pub decided_ms: Option<i64>,
}

impl ApprovalRecord {
    /// Users who approved, in order.
    pub fn approvers(&self) -> Vec<String> {
        self.votes.iter().filter(|v| v.approve).map(|v| v.user_id.clone()).collect()
    }
}

/// What `request_approval` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalRequested {
    /// Stored durably.
    Stored,
    /// A request for the same Slack request (idempotency key) exists: nothing new was
    /// stored; this is its id.
    Duplicate { id: String },
}

/// What a vote did.
#[derive(Debug, Clone, PartialEq)]
pub enum VoteOutcome {
    /// Counted; the request still needs more approvals.
    Counted(ApprovalRecord),
    /// This vote completed the approvals: the request is approved and its job was handed to
    /// the queue in the same durable step (`enqueued` says how the queue took it; the job
    /// carries [`chatops_core::Approval`] and a reset `enqueue_started_ns`).
    Approved { record: ApprovalRecord, enqueued: Enqueued },
    /// This vote denied the request: nothing will run.
    Denied(ApprovalRecord),
    /// The user already voted on this request; nothing changed.
    AlreadyVoted(ApprovalRecord),
    /// The request was already decided (approved, denied or expired); nothing changed.
    Closed(ApprovalRecord),
    /// The vote came after `expires_ms`: the request is now (or already was) expired.
    Expired(ApprovalRecord),
    /// No request has this id.
    NotFound,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Swept {
    /// Requests that expired in this sweep (each is reported by exactly one sweep), so the
    /// caller can tell their users.
    pub expired: Vec<ApprovalRecord>,
    /// Approved requests whose job had not reached the queue (a crash between the deciding
    /// vote and the enqueue, on engines where those are two steps) and was enqueued now.
    pub enqueued: u64,
}

/// Durable pending approvals; implemented by every engine, with the queue's durability.
#[async_trait]
pub trait ApprovalStore: Send + Sync + 'static {
    /// Stores the request durably, bounded by `deadline` like [`crate::Queue::enqueue`]
    /// (`NotStoredInTime` means it was not stored). Idempotent on the job's idempotency key.
    async fn request_approval(
        &self,
        request: &PendingApproval,
        deadline: tokio::time::Instant,
    ) -> Result<ApprovalRequested, QueueError>;

    /// Records a vote atomically: see [`VoteOutcome`]. `vote.at_ms` is the clock the expiry
    /// is checked against. A deny ends the request at once.
    async fn vote(&self, id: &str, vote: &Vote) -> Result<VoteOutcome, QueueError>;

    /// Expires every pending request whose `expires_ms` is before `now_ms`, and finishes the
    /// enqueue of approved requests whose job may not have reached the queue. The owning
    /// process calls it periodically (and once at startup, so expiry holds across restarts).
    async fn sweep_approvals(&self, now_ms: i64) -> Result<Swept, QueueError>;

    async fn get_approval(&self, id: &str) -> Result<Option<ApprovalRecord>, QueueError>;

    /// Requests still pending (for the gauge).
    async fn pending_approvals(&self) -> Result<u64, QueueError>;
}
