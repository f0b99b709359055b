//! The audit trail on this engine (see [`crate::audit`]).

use async_trait::async_trait;

use super::SqliteQueue;
use crate::QueueError;
use crate::audit::{AuditFilter, AuditLog, AuditRecord};

#[async_trait]
impl AuditLog for SqliteQueue {
    async fn audit_write(&self, _record: &AuditRecord) -> Result<(), QueueError> {
        Ok(())
    }

    async fn audit_list(&self, _filter: &AuditFilter) -> Result<Vec<AuditRecord>, QueueError> {
        Ok(Vec::new())
    }
}
