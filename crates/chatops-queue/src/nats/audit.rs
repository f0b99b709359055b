//! The audit trail on this engine (see [`crate::audit`]): the stream `<P>_AUDIT`, one
//! subject per record id (`<p>.audit.<hex of the id>`) holding one message, so writing a
//! record again replaces it. Limits retention with `max_age` = the audit retention: a
//! record is kept that long after its (last) write.
//!
//! A listing reads the stream once with an ephemeral consumer, from the first message
//! written at or after `since_ms` when the filter has one (a record is written after the
//! command was received, so none it wants comes earlier), filters and orders by
//! `receivedMs` here. A message that does not parse is skipped with a warning naming its
//! stream sequence only.

use async_nats::jetstream::consumer::DeliverPolicy;
use async_trait::async_trait;

use super::NatsQueue;
use super::scan::{Scan, scan};
use super::unavailable;
use crate::QueueError;
use crate::audit::{AuditFilter, AuditLog, AuditRecord, check_id, keep_most_recent};

#[async_trait]
impl AuditLog for NatsQueue {
    async fn audit_write(&self, record: &AuditRecord) -> Result<(), QueueError> {
        check_id(&record.id)?;
        self.audit_stream().await?;
        let payload = serde_json::to_vec(record).map_err(QueueError::corrupt)?;
        self.js
            .publish(self.names.audit_subject(&record.id), payload.into())
            .await
            .map_err(|e| unavailable("writing an audit record", e))?
            .await
            .map_err(|e| unavailable("storing an audit record", e))?;
        Ok(())
    }

    async fn audit_list(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, QueueError> {
        let stream = self.audit_stream().await?;
        let deliver_policy = match filter.since_ms {
            Some(since_ms) => {
                let start_time = async_nats::datetime::from_nanos(i128::from(since_ms.max(0)) * 1_000_000)
                    .map_err(|e| unavailable("converting the start time", e))?;
                DeliverPolicy::ByStartTime { start_time }
            }
            None => DeliverPolicy::All,
        };
        let mut records = Vec::new();
        scan(
            stream,
            Scan { filter_subject: format!("{}.audit.*", self.names.subject_root), deliver_policy, headers_only: false },
            |message| match serde_json::from_slice::<AuditRecord>(&message.payload) {
                Ok(record) if filter.matches(&record) => {
                    records.push(record);
                    // Bounded by the limit, not by the stream: trimmed as it grows.
                    if let Some(limit) = filter.limit
                        && records.len() >= limit.saturating_mul(2).max(1024)
                    {
                        keep_most_recent(&mut records, limit);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let e = QueueError::unreadable("audit record", &e);
                    let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                    tracing::warn!(stream_sequence = sequence, error.message = %e, "skipping an unreadable audit record");
                }
            },
        )
        .await?;
        keep_most_recent(&mut records, filter.limit.unwrap_or(usize::MAX));
        Ok(records)
    }
}
