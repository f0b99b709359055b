//! Pending approvals on this engine (see [`crate::approvals`]): the `approvals` table,
//! written only by the writer thread. A request is one row: its `PendingApproval` as JSON
//! (written once), its votes as a JSON array, and its state and expiry as columns for the
//! sweep and the gauge. A vote is read, decided and written in one writer transaction, and
//! the deciding approval inserts the job into `jobs` in that same transaction, so it is
//! enqueued exactly once by construction (and fsynced under `durability = full`).
//!
//! A row whose JSON does not parse answers `vote` and `get_approval` with
//! [`QueueError::Corrupt`]; a sweep expires it like any other without reporting it.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteQueue;
use super::writer::Op;
use crate::approvals::{
    ApprovalRecord, ApprovalRequested, ApprovalState, ApprovalStore, PendingApproval, Swept, Vote, VoteOutcome,
    invalid_id_error, is_valid_id,
};
use crate::{Cause, QueueError};

/// Most decided requests one maintenance pass deletes: a large backlog (a retention just
/// shortened) is worked off over several passes instead of stalling the writer.
const PRUNE_BATCH: i64 = 1000;

/// Stores a new request, or finds the one with the same idempotency key.
pub(super) fn insert(
    conn: &Connection,
    id: &str,
    key: &str,
    expires_ms: i64,
    request: &[u8],
) -> rusqlite::Result<Result<ApprovalRequested, QueueError>> {
    let n = conn
        .prepare_cached(
            "INSERT INTO approvals (id, idem_key, state, expires_ms, request) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![id, key, ApprovalState::Pending.as_str(), expires_ms, request])?;
    if n == 1 {
        return Ok(Ok(ApprovalRequested::Stored));
    }
    let existing: Option<String> = conn
        .prepare_cached("SELECT id FROM approvals WHERE idem_key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    Ok(match existing {
        Some(id) => Ok(ApprovalRequested::Duplicate { id }),
        // The id, not the key, collided: 128 random bits do not, so the caller reused one.
        None => Err(QueueError::Storage(Cause::message("an approval with this id but another request exists"))),
    })
}

/// The record with this id: `None` if there is none, an error inside if it is corrupt.
pub(super) fn load(conn: &Connection, id: &str) -> rusqlite::Result<Option<Result<ApprovalRecord, QueueError>>> {
    let row: Option<(Vec<u8>, String, String, Option<i64>)> = conn
        .prepare_cached("SELECT request, votes, state, decided_ms FROM approvals WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    Ok(row.map(|(request, votes, state, decided_ms)| decode(&request, &votes, &state, decided_ms)))
}

fn decode(request: &[u8], votes: &str, state: &str, decided_ms: Option<i64>) -> Result<ApprovalRecord, QueueError> {
    let request: PendingApproval =
        serde_json::from_slice(request).map_err(|e| QueueError::unreadable("approval request", &e))?;
    let votes: Vec<Vote> = serde_json::from_str(votes).map_err(|e| QueueError::unreadable("approval votes", &e))?;
    let state = ApprovalState::parse(state)
        .ok_or_else(|| QueueError::Corrupt(Cause::message(format!("unknown approval state `{state:.16}`"))))?;
    Ok(ApprovalRecord { request, votes, state, decided_ms })
}

/// Writes what a vote changed (votes, state, decision time).
pub(super) fn store_decision(conn: &Connection, record: &ApprovalRecord) -> rusqlite::Result<()> {
    // Votes are plain strings and integers: serialising them cannot fail.
    let votes = serde_json::to_string(&record.votes).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached("UPDATE approvals SET state = ?2, decided_ms = ?3, votes = ?4 WHERE id = ?1")?
        .execute(params![record.request.id, record.state.as_str(), record.decided_ms, votes])?;
    Ok(())
}

/// Expires every pending request due before `now_ms` and returns them. One statement in
/// the writer: a request is expired, and reported, by exactly one sweep.
pub(super) fn expire_due(conn: &Connection, now_ms: i64) -> rusqlite::Result<Vec<ApprovalRecord>> {
    type Row = (String, Vec<u8>, String, String, Option<i64>);
    let rows: Vec<Row> = {
        let mut stmt = conn.prepare_cached(
            "UPDATE approvals SET state = ?1, decided_ms = ?2 WHERE state = ?3 AND expires_ms < ?2
             RETURNING id, request, votes, state, decided_ms",
        )?;
        let rows = stmt
            .query_map(params![ApprovalState::Expired.as_str(), now_ms, ApprovalState::Pending.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut expired = Vec::with_capacity(rows.len());
    for (id, request, votes, state, decided_ms) in rows {
        match decode(&request, &votes, &state, decided_ms) {
            Ok(record) => expired.push(record),
            // Expired all the same (it can never be approved); nobody can be told.
            Err(e) => tracing::warn!(approval_id = %id, error.message = %e, "expired an unreadable approval request"),
        }
    }
    expired.sort_by_key(|r| (r.request.expires_ms, r.request.created_ms));
    Ok(expired)
}

/// Removes a request (one stored after its caller's deadline).
pub(super) fn delete(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM approvals WHERE id = ?1")?.execute([id]).map(drop)
}

/// Deletes requests decided before `before_ms` (at most [`PRUNE_BATCH`] per call).
pub(super) fn prune(conn: &Connection, before_ms: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM approvals WHERE id IN
           (SELECT id FROM approvals WHERE decided_ms < ?1 AND state <> ?2 LIMIT ?3)",
    )?
    .execute(params![before_ms, ApprovalState::Pending.as_str(), PRUNE_BATCH])
}

fn count_pending(conn: &Connection) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT count(*) FROM approvals WHERE state = ?1")?
        .query_row([ApprovalState::Pending.as_str()], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

#[async_trait]
impl ApprovalStore for SqliteQueue {
    async fn request_approval(
        &self,
        request: &PendingApproval,
        deadline: tokio::time::Instant,
    ) -> Result<ApprovalRequested, QueueError> {
        if !is_valid_id(&request.id) {
            return Err(invalid_id_error(&request.id));
        }
        let payload = serde_json::to_vec(request).map_err(QueueError::corrupt)?;
        let (id, key, expires_ms) = (request.id.clone(), request.job.idempotency_key.clone(), request.expires_ms);
        let std_deadline = deadline.into_std();
        self.call_by(deadline, |reply| Op::RequestApproval {
            id,
            key,
            expires_ms,
            request: payload,
            deadline: std_deadline,
            reply,
        })
        .await
    }

    async fn vote(&self, id: &str, vote: &Vote) -> Result<VoteOutcome, QueueError> {
        let (id, vote) = (id.to_owned(), vote.clone());
        self.call(|reply| Op::Vote { id, vote, reply }).await
    }

    async fn sweep_approvals(&self, now_ms: i64) -> Result<Swept, QueueError> {
        // Approved and enqueued are one transaction here: there is nothing to repair.
        let expired = self.call(|reply| Op::SweepApprovals { now_ms, reply }).await?;
        Ok(Swept { expired, enqueued: 0 })
    }

    async fn get_approval(&self, id: &str) -> Result<Option<ApprovalRecord>, QueueError> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        let id = id.to_owned();
        self.read(move |conn| load(conn, &id)).await?.transpose()
    }

    async fn pending_approvals(&self) -> Result<u64, QueueError> {
        self.read(count_pending).await
    }
}
