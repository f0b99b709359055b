//! The audit trail: one durable record per command, with the queue's durability, kept for
//! a configurable retention (SQLite: a table pruned by the maintenance pass; NATS: a
//! stream with limits retention and one message per record id).
//!
//! A record is written when the command's fate is known: refused at the router, denied or
//! expired while waiting for approval, or ended by a worker (completed, failed,
//! dead-lettered, interrupted). Writing again with the same [`AuditRecord::id`] replaces
//! the record (a job redelivered after a crash between its audit write and its completion
//! ends with one record, the last one), so writers may retry freely.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::QueueError;

/// How long audit records are kept unless the engine's settings say otherwise (the
/// config key `audit.retention`).
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

/// One command's record. The field names are the JSON Lines export's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// The record's key: the job's idempotency key (one Slack request, one record).
    pub id: String,
    /// When the router received the command (unix ms).
    pub received_ms: i64,
    /// When the record was written (unix ms).
    pub recorded_ms: i64,
    pub team_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise_id: Option<String>,
    pub channel_id: String,
    pub user_id: String,
    pub user_name: String,
    pub command: String,
    /// The arguments as parsed, values of arguments marked secret replaced by `[redacted]`;
    /// for a command that declares no arguments, its text (under the key `text`).
    pub args: Vec<(String, String)>,
    pub correlation_id: String,
    /// `allowed`, or `refused` with the rule in `refusedBy`.
    pub decision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_by: Option<String>,
    /// Votes on the command's approval request, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<AuditVote>,
    /// `completed`, `failed`, `dead_lettered`, `interrupted`, `refused`, `denied`, `expired`.
    pub outcome: String,
    /// What went wrong, for an outcome other than `completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Router receive → the end of the command, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// Attempts a worker made (0 when it never ran).
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditVote {
    pub user_id: String,
    pub approve: bool,
    pub at_ms: i64,
}

/// Which records to list. Every field narrows; the default lists everything kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Records received at or after this (unix ms).
    pub since_ms: Option<i64>,
    pub user_id: Option<String>,
    pub command: Option<String>,
    /// At most this many (the most recent ones); `None`: all.
    pub limit: Option<usize>,
}

impl AuditFilter {
    pub fn matches(&self, r: &AuditRecord) -> bool {
        self.since_ms.is_none_or(|s| r.received_ms >= s)
            && self.user_id.as_deref().is_none_or(|u| r.user_id == u)
            && self.command.as_deref().is_none_or(|c| r.command == c)
    }
}

/// The longest record id an engine stores (ids are idempotency keys, well below this).
pub const MAX_ID_LEN: usize = 1024;

/// Refuses an empty or oversized id (on NATS it becomes a subject token, hex-encoded).
pub(crate) fn check_id(id: &str) -> Result<(), QueueError> {
    if (1..=MAX_ID_LEN).contains(&id.len()) {
        return Ok(());
    }
    Err(QueueError::Corrupt(crate::Cause::message(format!(
        "an audit record id must be 1 to {MAX_ID_LEN} bytes (got {})",
        id.len()
    ))))
}

/// Orders `records` oldest first by `receivedMs` (then id) and keeps the last `limit`.
pub(crate) fn keep_most_recent(records: &mut Vec<AuditRecord>, limit: usize) {
    records.sort_by(|a, b| (a.received_ms, &a.id).cmp(&(b.received_ms, &b.id)));
    let excess = records.len().saturating_sub(limit);
    records.drain(..excess);
}

/// The durable audit trail; implemented by every engine.
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Stores (or replaces, by id) the record durably: it returns once the record would
    /// survive a crash of the process. SQLite does not fsync it by itself: a worker writes
    /// it before completing the job, the WAL keeps that order, so a power loss that undoes
    /// the record undoes the completion too and the next attempt writes it again. NATS:
    /// acknowledged by JetStream. An id must be 1 to
    /// [`MAX_ID_LEN`] bytes.
    ///
    /// Retention counts from the record's `receivedMs` on SQLite and from its last write
    /// on NATS (a stream's `max_age`); records are written when a command ends, so the two
    /// differ by a command's duration.
    async fn audit_write(&self, record: &AuditRecord) -> Result<(), QueueError>;

    /// Records matching the filter, oldest first by `receivedMs`.
    async fn audit_list(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, QueueError>;
}
