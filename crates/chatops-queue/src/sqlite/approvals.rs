//! Pending approvals on this engine (see [`crate::approvals`]).

use async_trait::async_trait;

use super::SqliteQueue;
use crate::QueueError;
use crate::approvals::{ApprovalRecord, ApprovalRequested, ApprovalStore, PendingApproval, Swept, Vote, VoteOutcome};

fn not_yet() -> QueueError {
    QueueError::Unavailable("approvals are not implemented on this engine yet".into())
}

#[async_trait]
impl ApprovalStore for SqliteQueue {
    async fn request_approval(
        &self,
        _request: &PendingApproval,
        _deadline: tokio::time::Instant,
    ) -> Result<ApprovalRequested, QueueError> {
        Err(not_yet())
    }

    async fn vote(&self, _id: &str, _vote: &Vote) -> Result<VoteOutcome, QueueError> {
        Err(not_yet())
    }

    async fn sweep_approvals(&self, _now_ms: i64) -> Result<Swept, QueueError> {
        Ok(Swept::default())
    }

    async fn get_approval(&self, _id: &str) -> Result<Option<ApprovalRecord>, QueueError> {
        Err(not_yet())
    }

    async fn pending_approvals(&self) -> Result<u64, QueueError> {
        Ok(0)
    }
}
