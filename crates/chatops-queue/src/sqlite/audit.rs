//! The audit trail on this engine (see [`crate::audit`]): the `audit` table, one row per
//! record id holding the record as JSON, with the filtered fields (`received_ms`,
//! `user_id`, `command`) as indexed columns. Writes go through the writer thread (batched
//! with everything else, fsynced under `durability = full`); lists read on the reader
//! connection; the maintenance pass prunes records received before the retention.
//!
//! A row whose JSON does not parse is skipped by lists with a warning naming its id only.

use async_trait::async_trait;
use rusqlite::{Connection, params, params_from_iter, types::Value};

use super::SqliteQueue;
use super::writer::Op;
use crate::QueueError;
use crate::audit::{AuditFilter, AuditLog, AuditRecord};

/// Most records one maintenance pass deletes (see `approvals::PRUNE_BATCH`).
const PRUNE_BATCH: i64 = 1000;

/// A record as the writer stores it.
pub(crate) struct AuditRow {
    id: String,
    received_ms: i64,
    recorded_ms: i64,
    user_id: String,
    command: String,
    json: Vec<u8>,
}

#[cfg(test)]
impl AuditRow {
    pub(super) fn for_test(id: &str) -> AuditRow {
        AuditRow {
            id: id.into(),
            received_ms: 0,
            recorded_ms: 0,
            user_id: String::new(),
            command: String::new(),
            json: b"{}".to_vec(),
        }
    }
}

pub(super) fn upsert(conn: &Connection, row: &AuditRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO audit (id, received_ms, recorded_ms, user_id, command, json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![row.id, row.received_ms, row.recorded_ms, row.user_id, row.command, row.json])
    .map(drop)
}

/// Deletes records received before `before_ms` (at most [`PRUNE_BATCH`] per call).
pub(super) fn prune(conn: &Connection, before_ms: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE received_ms < ?1 LIMIT ?2)")?
        .execute(params![before_ms, PRUNE_BATCH])
}

/// The matching rows' ids and JSON, newest first, at most `filter.limit`.
fn select(conn: &Connection, filter: &AuditFilter) -> rusqlite::Result<Vec<(String, Vec<u8>)>> {
    // Only the narrowing predicates are written, so each filter can use its index.
    let mut sql = String::from("SELECT id, json FROM audit WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    if let Some(since) = filter.since_ms {
        sql.push_str(" AND received_ms >= ?");
        args.push(since.into());
    }
    if let Some(user) = &filter.user_id {
        sql.push_str(" AND user_id = ?");
        args.push(user.clone().into());
    }
    if let Some(command) = &filter.command {
        sql.push_str(" AND command = ?");
        args.push(command.clone().into());
    }
    sql.push_str(" ORDER BY received_ms DESC, id DESC LIMIT ?");
    // A negative LIMIT is no limit in SQLite.
    args.push(filter.limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)).into());
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

impl AuditRow {
    /// The row of a record, checked.
    pub(super) fn of(record: &AuditRecord) -> Result<AuditRow, QueueError> {
        crate::audit::check_id(&record.id)?;
        Ok(AuditRow {
            id: record.id.clone(),
            received_ms: record.received_ms,
            recorded_ms: record.recorded_ms,
            user_id: record.user_id.clone(),
            command: record.command.clone(),
            json: serde_json::to_vec(record).map_err(QueueError::corrupt)?,
        })
    }
}

#[async_trait]
impl AuditLog for SqliteQueue {
    async fn audit_write(&self, record: &AuditRecord) -> Result<(), QueueError> {
        let row = AuditRow::of(record)?;
        self.call(|reply| Op::AuditWrite { row, reply }).await
    }

    async fn audit_list(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, QueueError> {
        let query = filter.clone();
        let rows = self.read(move |conn| select(conn, &query)).await?;
        let mut records: Vec<AuditRecord> = rows
            .into_iter()
            .filter_map(|(id, json)| match serde_json::from_slice::<AuditRecord>(&json) {
                Ok(record) => Some(record),
                Err(e) => {
                    let e = QueueError::unreadable("audit record", &e);
                    tracing::warn!(audit_id = %id, error.message = %e, "skipping an unreadable audit record");
                    None
                }
            })
            .collect();
        records.reverse();
        Ok(records)
    }
}
