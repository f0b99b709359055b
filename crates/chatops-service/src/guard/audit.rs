//! Writing the audit trail: what each command's record holds, and when it is written.
//!
//! A worker writes the record of a command that ran before it acknowledges the job to the
//! queue, so a command that ran always has its record (a crash in between runs the job
//! again or marks it interrupted, and the second write replaces the first). Refusals,
//! denials and expiries are written off the request path: the ack never waits for them.
//! A write that keeps failing is logged with the whole record as JSON, so even then the
//! record exists in the log.

use std::sync::Arc;
use std::time::Duration;

use chatops_core::slack::SlashCommand;
use chatops_core::{CorrelationId, Job};
use chatops_queue::approvals::ApprovalRecord;
use chatops_queue::audit::{AuditLog, AuditRecord, AuditVote};

use super::settings::{AuditScope, AuditSettings};
use crate::spec::CommandSpec;

/// Tries per record before it goes to the log instead.
const WRITE_TRIES: u32 = 3;

/// The bot's side of the audit trail.
#[derive(Clone)]
pub struct AuditTrail {
    log: Arc<dyn AuditLog>,
    settings: AuditSettings,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrail").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// How a command that a worker ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RanOutcome {
    Completed,
    Failed,
    TimedOut,
    Interrupted,
}

impl RanOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RanOutcome::Completed => "completed",
            RanOutcome::Failed => "failed",
            RanOutcome::TimedOut => "timed_out",
            RanOutcome::Interrupted => "interrupted",
        }
    }
}

impl AuditTrail {
    pub fn new(log: Arc<dyn AuditLog>, settings: AuditSettings) -> Self {
        AuditTrail { log, settings }
    }

    fn records(&self, spec: Option<&CommandSpec>, always: bool) -> bool {
        match self.settings.record {
            AuditScope::All => true,
            AuditScope::Write => always || spec.is_some_and(|s| s.quadrant.is_write()),
            AuditScope::None => false,
        }
    }

    /// The store the records go to (for [`chatops_queue::Queue::complete_audited`]).
    pub fn log(&self) -> &dyn AuditLog {
        &*self.log
    }

    /// The record of a command a worker ran to its end, stamped now; `None` when the
    /// settings keep no record of this command. The worker stores it with the completion
    /// ([`chatops_queue::Queue::complete_audited`]) or on its own ([`AuditTrail::write`]).
    pub fn ran_record(
        &self,
        job: &Job,
        spec: Option<&CommandSpec>,
        outcome: RanOutcome,
        error: Option<String>,
        duration_ms: f64,
        attempts: u32,
    ) -> Option<AuditRecord> {
        if !self.records(spec, false) {
            return None;
        }
        let mut record = base_record(&job.idempotency_key, &job.command, &job.correlation_id, job.router_received_ns);
        record.args = args_of(job, spec);
        record.outcome = outcome.as_str().to_owned();
        record.error = error;
        record.duration_ms = Some(duration_ms);
        record.attempts = attempts;
        if let Some(a) = &job.approval {
            let at_ms = (a.approved_ns / 1_000_000) as i64;
            record.approvals =
                a.approvers.iter().map(|u| AuditVote { user_id: u.clone(), approve: true, at_ms }).collect();
        }
        record.recorded_ms = chatops_core::time::now_unix_ms();
        Some(record)
    }

    /// The record of a command refused at the router; written in the background.
    pub fn refused(
        &self,
        key: String,
        cmd: &SlashCommand,
        spec: &CommandSpec,
        correlation_id: &CorrelationId,
        received_ns: u64,
        rule: &str,
    ) {
        if !self.records(Some(spec), true) {
            return;
        }
        let mut record = base_record(&key, cmd, correlation_id, received_ns);
        record.args = match spec.args.parse(&cmd.text) {
            Ok(args) => redacted_args(&args, spec),
            Err(_) if spec.args.is_empty() => vec![("text".to_owned(), cmd.text.clone())],
            Err(_) => Vec::new(),
        };
        record.decision = "refused".to_owned();
        record.refused_by = Some(rule.to_owned());
        record.outcome = "refused".to_owned();
        let trail = self.clone();
        tokio::spawn(async move { trail.write(record).await });
    }

    /// The record of an approval request that was denied or expired (nothing ran).
    pub async fn closed_unrun(&self, approval: &ApprovalRecord, spec: Option<&CommandSpec>, outcome: &str) {
        if !self.records(spec, true) {
            return;
        }
        let job = &approval.request.job;
        let mut record = base_record(&job.idempotency_key, &job.command, &job.correlation_id, job.router_received_ns);
        record.args = args_of(job, spec);
        record.approvals = approval
            .votes
            .iter()
            .map(|v| AuditVote { user_id: v.user_id.clone(), approve: v.approve, at_ms: v.at_ms })
            .collect();
        record.outcome = outcome.to_owned();
        self.write(record).await;
    }

    /// Stores a record, trying a few times; the last failure puts the record into the log.
    pub async fn write(&self, mut record: AuditRecord) {
        for attempt in 1..=WRITE_TRIES {
            record.recorded_ms = chatops_core::time::now_unix_ms();
            match self.log.audit_write(&record).await {
                Ok(()) => return,
                Err(e) if attempt < WRITE_TRIES => {
                    tracing::warn!(error.message = %e, attempt, "audit write failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(e) => {
                    let json = serde_json::to_string(&record).unwrap_or_default();
                    tracing::error!(error.message = %e, audit.record = %json, "audit write failed; the record is in this line");
                }
            }
        }
    }
}

fn base_record(key: &str, cmd: &SlashCommand, correlation_id: &CorrelationId, received_ns: u64) -> AuditRecord {
    AuditRecord {
        id: key.to_owned(),
        received_ms: (received_ns / 1_000_000) as i64,
        recorded_ms: 0,
        team_id: cmd.team_id.clone(),
        enterprise_id: cmd.enterprise_id.clone(),
        channel_id: cmd.channel_id.clone(),
        user_id: cmd.user_id.clone(),
        user_name: cmd.user_name.clone(),
        command: cmd.command.clone(),
        args: Vec::new(),
        correlation_id: correlation_id.as_str().to_owned(),
        decision: "allowed".to_owned(),
        refused_by: None,
        approvals: Vec::new(),
        outcome: String::new(),
        error: None,
        duration_ms: None,
        attempts: 0,
    }
}

/// The parsed arguments with secret values redacted; the text for a command that declares
/// none (it has no secrets to know of).
fn args_of(job: &Job, spec: Option<&CommandSpec>) -> Vec<(String, String)> {
    match spec {
        Some(spec) if !spec.args.is_empty() => redacted_args(&job.args, spec),
        _ if job.args.is_empty() => vec![("text".to_owned(), job.command.text.clone())],
        // Declared arguments but the command is gone from the registry: names only.
        _ => job.args.0.keys().map(|k| (k.clone(), "[redacted]".to_owned())).collect(),
    }
}

fn redacted_args(args: &chatops_core::args::Args, spec: &CommandSpec) -> Vec<(String, String)> {
    args.redacted(&spec.args).0.into_iter().collect()
}
