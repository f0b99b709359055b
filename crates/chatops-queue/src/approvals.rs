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

/// One approver's click. Its `Debug` leaves out the `response_url`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
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

impl std::fmt::Debug for Vote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vote")
            .field("user_id", &self.user_id)
            .field("approve", &self.approve)
            .field("at_ms", &self.at_ms)
            .field("response_url", &self.response_url.as_ref().map(|_| "[redacted]"))
            .finish()
    }
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

    /// The inverse of [`ApprovalState::as_str`].
    pub fn parse(s: &str) -> Option<ApprovalState> {
        [ApprovalState::Pending, ApprovalState::Approved, ApprovalState::Denied, ApprovalState::Expired]
            .into_iter()
            .find(|state| state.as_str() == s)
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
    /// The request was already approved or denied; nothing changed.
    Closed(ApprovalRecord),
    /// The vote came after `expires_ms`, or the request had already expired (by a sweep or
    /// an earlier late vote): the request is now, or already was, expired. Nothing runs.
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
    /// Stores the request durably, bounded by `deadline` like [`crate::Queue::enqueue`].
    /// Idempotent on the job's idempotency key. The id must pass [`is_valid_id`].
    ///
    /// [`QueueError::NotStoredInTime`] means not stored: no vote can approve it, no sweep
    /// reports it, and the same Slack request sent again is stored afresh rather than
    /// answered `Duplicate`. (SQLite removes a commit nobody could be told of before its
    /// writer does anything else, though `get_approval` on the reader may glimpse it; NATS
    /// may keep a record that arrived late, marked by a tombstone, until it expires, and
    /// the pending gauge counts it until then.)
    async fn request_approval(
        &self,
        request: &PendingApproval,
        deadline: tokio::time::Instant,
    ) -> Result<ApprovalRequested, QueueError>;

    /// Records a vote atomically: see [`VoteOutcome`]. `vote.at_ms` is the clock the expiry
    /// is checked against. A deny ends the request at once. An id that is not a valid
    /// approval id (see [`is_valid_id`]; e.g. a forged button value) is `NotFound`.
    ///
    /// The checks run in this order: not found, already expired (→ `Expired`), approved or
    /// denied (→ `Closed`), late (→ `Expired`, stored), already voted, then the vote.
    ///
    /// An error means the vote may not have been recorded; on SQLite it certainly was not
    /// (a full queue refuses the deciding vote with [`QueueError::Full`], nothing changed).
    /// On NATS the deciding vote and the job's publish are two steps: when the publish fails
    /// after the decision was stored, `vote` returns the error, a later vote sees `Closed`,
    /// and the next [`ApprovalStore::sweep_approvals`] enqueues the job.
    async fn vote(&self, id: &str, vote: &Vote) -> Result<VoteOutcome, QueueError>;

    /// Expires every pending request whose `expires_ms` is before `now_ms`, and finishes the
    /// enqueue of approved requests whose job may not have reached the queue. The owning
    /// process calls it periodically (and once at startup, so expiry holds across restarts).
    async fn sweep_approvals(&self, now_ms: i64) -> Result<Swept, QueueError>;

    /// The record, as stored; `None` for an unknown (or invalid) id.
    async fn get_approval(&self, id: &str) -> Result<Option<ApprovalRecord>, QueueError>;

    /// Requests still pending (for the gauge), including ones past their expiry that no
    /// sweep has expired yet.
    async fn pending_approvals(&self) -> Result<u64, QueueError>;
}

/// Whether `id` can be an approval id: 1 to [`MAX_ID_LEN`] ASCII letters, digits, `-` or
/// `_` (what a hex id is, and what a NATS subject token and a KV key may hold). Every
/// engine answers an invalid id in `vote`/`get_approval` as unknown and refuses to store
/// one, so a hostile button value never reaches a query or a subject.
pub fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// How long an engine keeps a request after it was decided or expired, unless its settings
/// say otherwise: a week, so a click on an old approval message is answered `Closed` (or
/// `Expired`), not `NotFound`. On NATS it also bounds a *pending* request's life (the
/// bucket's `max_age` counts from the last write): approval timeouts must stay well below
/// it.
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// The longest approval id an engine accepts.
pub const MAX_ID_LEN: usize = 128;

pub(crate) fn invalid_id_error(id: &str) -> QueueError {
    // The id's length only: it is the caller's bug, and the value may be anything.
    QueueError::Corrupt(crate::Cause::message(format!(
        "an approval id must be 1 to {MAX_ID_LEN} letters, digits, - or _ (got {} bytes)",
        id.len()
    )))
}

/// What a vote does to a record: decided by one function for every engine, so the
/// engines differ only in how they make the change atomic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VoteEffect {
    /// Nothing to store.
    AlreadyVoted,
    Closed,
    AlreadyExpired,
    /// The record changed and must be stored.
    Expired,
    Denied,
    Counted,
    /// The record changed, and its job must be enqueued in the same step.
    Approved,
}

impl VoteEffect {
    pub(crate) fn changes_record(self) -> bool {
        !matches!(self, VoteEffect::AlreadyVoted | VoteEffect::Closed | VoteEffect::AlreadyExpired)
    }

    /// The outcome to report, for every effect but `Approved` (which needs the enqueue's
    /// answer).
    pub(crate) fn outcome(self, record: ApprovalRecord) -> VoteOutcome {
        match self {
            VoteEffect::AlreadyVoted => VoteOutcome::AlreadyVoted(record),
            VoteEffect::Closed => VoteOutcome::Closed(record),
            VoteEffect::AlreadyExpired | VoteEffect::Expired => VoteOutcome::Expired(record),
            VoteEffect::Denied => VoteOutcome::Denied(record),
            VoteEffect::Counted => VoteOutcome::Counted(record),
            VoteEffect::Approved => unreachable!("an approval's outcome carries its enqueue"),
        }
    }
}

/// Applies `vote` to `record` (in memory) in the documented order of checks.
pub(crate) fn apply_vote(record: &mut ApprovalRecord, vote: &Vote) -> VoteEffect {
    match record.state {
        ApprovalState::Expired => return VoteEffect::AlreadyExpired,
        ApprovalState::Approved | ApprovalState::Denied => return VoteEffect::Closed,
        ApprovalState::Pending => {}
    }
    if vote.at_ms > record.request.expires_ms {
        record.state = ApprovalState::Expired;
        record.decided_ms = Some(vote.at_ms);
        return VoteEffect::Expired;
    }
    if record.votes.iter().any(|v| v.user_id == vote.user_id) {
        return VoteEffect::AlreadyVoted;
    }
    record.votes.push(vote.clone());
    if !vote.approve {
        record.state = ApprovalState::Denied;
        record.decided_ms = Some(vote.at_ms);
        return VoteEffect::Denied;
    }
    let approvals = record.votes.iter().filter(|v| v.approve).count();
    if approvals >= record.request.required.max(1) as usize {
        record.state = ApprovalState::Approved;
        record.decided_ms = Some(vote.at_ms);
        return VoteEffect::Approved;
    }
    VoteEffect::Counted
}

/// Expires a pending record at `now_ms` (a sweep).
pub(crate) fn expire(record: &mut ApprovalRecord, now_ms: i64) {
    record.state = ApprovalState::Expired;
    record.decided_ms = Some(now_ms);
}

/// The job an approved record enqueues, stamped with its approval: a function of the
/// record and `approved_ns` only, so a repair after a crash enqueues the same job.
pub(crate) fn approved_job(record: &ApprovalRecord, approved_ns: u64) -> Job {
    let mut job = record.request.job.clone();
    let message_url = record.votes.iter().rev().find(|v| v.approve).and_then(|v| v.response_url.clone());
    job.approval = Some(chatops_core::Approval {
        requested_ns: job.enqueue_started_ns,
        approved_ns,
        approvers: record.approvers(),
        message_url,
    });
    job.enqueue_started_ns = approved_ns;
    job
}

#[cfg(test)]
mod tests {
    use chatops_core::{CorrelationId, Quadrant, SlashCommand};

    use super::*;

    fn record(required: u32) -> ApprovalRecord {
        let job = Job {
            job_id: "j".into(),
            correlation_id: CorrelationId::generate(),
            idempotency_key: "k".into(),
            quadrant: Quadrant::LongWrite,
            command: SlashCommand::default(),
            max_attempts: 1,
            router_received_ns: 10,
            enqueue_started_ns: 20,
            traceparent: None,
            redrives: 0,
            args: Default::default(),
            approval: None,
        };
        ApprovalRecord {
            request: PendingApproval { id: "a1".into(), job, required, created_ms: 0, expires_ms: 1_000 },
            votes: Vec::new(),
            state: ApprovalState::Pending,
            decided_ms: None,
        }
    }

    fn vote(user: &str, approve: bool, at_ms: i64) -> Vote {
        Vote { user_id: user.into(), approve, at_ms, response_url: Some(format!("https://hooks.example/{user}")) }
    }

    #[test]
    fn checks_run_in_the_documented_order() {
        let mut r = record(2);
        assert_eq!(apply_vote(&mut r, &vote("U1", true, 100)), VoteEffect::Counted);
        // Late beats already-voted; a late vote is not recorded.
        let mut late = r.clone();
        assert_eq!(apply_vote(&mut late, &vote("U1", true, 1_001)), VoteEffect::Expired);
        assert_eq!((late.state, late.decided_ms, late.votes.len()), (ApprovalState::Expired, Some(1_001), 1));
        assert_eq!(apply_vote(&mut late, &vote("U2", true, 10)), VoteEffect::AlreadyExpired);
        assert_eq!(apply_vote(&mut r, &vote("U1", false, 200)), VoteEffect::AlreadyVoted, "no change of mind");
        assert_eq!(apply_vote(&mut r, &vote("U2", true, 1_000)), VoteEffect::Approved, "at the expiry still counts");
        assert_eq!((r.state, r.decided_ms), (ApprovalState::Approved, Some(1_000)));
        assert_eq!(apply_vote(&mut r, &vote("U3", false, 300)), VoteEffect::Closed);
        assert_eq!(r.votes.len(), 2);
    }

    #[test]
    fn a_deny_ends_the_request_and_zero_required_means_one() {
        let mut r = record(3);
        assert_eq!(apply_vote(&mut r, &vote("U1", false, 5)), VoteEffect::Denied);
        assert_eq!(apply_vote(&mut r, &vote("U2", true, 6)), VoteEffect::Closed);
        let mut zero = record(0);
        assert_eq!(apply_vote(&mut zero, &vote("U1", true, 5)), VoteEffect::Approved);
    }

    #[test]
    fn the_approved_job_carries_its_approval_and_a_reset_enqueue_start() {
        let mut r = record(2);
        apply_vote(&mut r, &vote("U1", true, 1));
        apply_vote(&mut r, &vote("U2", true, 2));
        let job = approved_job(&r, 99);
        let approval = job.approval.expect("set");
        assert_eq!((approval.requested_ns, approval.approved_ns, job.enqueue_started_ns), (20, 99, 99));
        assert_eq!(approval.approvers, ["U1", "U2"]);
        assert_eq!(approval.message_url.as_deref(), Some("https://hooks.example/U2"), "the deciding click's");
        assert_eq!(job.idempotency_key, "k", "the original request's key: the queue dedupes it");
    }

    #[test]
    fn ids_are_tokens() {
        assert!(is_valid_id("0123456789abcdef0123456789abcdef"));
        assert!(is_valid_id("A-b_9"));
        for bad in ["", "a.b", "*", ">", "a b", "ü", &"a".repeat(MAX_ID_LEN + 1)] {
            assert!(!is_valid_id(bad), "{bad:.10}");
        }
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in [ApprovalState::Pending, ApprovalState::Approved, ApprovalState::Denied, ApprovalState::Expired] {
            assert_eq!(ApprovalState::parse(state.as_str()), Some(state));
        }
        assert_eq!(ApprovalState::parse("PENDING"), None);
    }
}
