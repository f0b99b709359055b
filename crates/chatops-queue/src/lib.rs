//! The durable job queue: one logical queue per quadrant, at-least-once delivery with leases,
//! retries with backoff decided by the caller, a dead-letter queue (DLQ) and a durable
//! done-record so that a job that already completed is never run again.
//!
//! Everything outside this crate sees only the [`Queue`] trait and [`QueueError`]; only this
//! crate knows about SQLite (the embedded default, [`sqlite::SqliteQueue`]) or NATS
//! JetStream (the scale-out engine, [`nats::NatsQueue`]).
//!
//! The life of a job:
//!
//! ```text
//! enqueue ──▶ ready ──dequeue──▶ leased ──complete──▶ (done-record)
//!               ▲                  │ │ │
//!               │                  │ │ └─mark_effect_started──▶ (effect-started record, kept)
//!               └──fail(retry_in)──┘ └──fail(None) / attempts exhausted──▶ DLQ ──redrive──▶ ready
//!                  lease expiry,                                                (record cleared)
//!                  release, crash
//! ```
//!
//! # Effects that must not start twice
//!
//! Delivery is at-least-once, which is harmless for reads but not for a command whose
//! handler starts something outside the bot (a deploy script, a GitHub dispatch). Right
//! before it starts such an effect, the worker calls [`Queue::mark_effect_started`], which
//! returns only once the record is durable (like an enqueue). The record stays with the job
//! across every redelivery (a retry, an expired lease, a release, a crashed process) and
//! into the DLQ, and every later [`Delivery`] carries it in [`Delivery::effect_started`],
//! read in the same step as the done-record, before any handler runs. A worker that sees
//! it knows an earlier attempt may have started the effect and must not start it again by
//! surprise (it tells the user the outcome is unknown and completes the job, unless the
//! command opted into re-running).
//!
//! A redrive clears the record: moving a dead letter back is an operator's explicit
//! decision to run the command again (typically after a failed deploy, whose effect had of
//! course started). [`DeadLetter::effect_started`] shows the operator the record first.

use std::time::Duration;

use async_trait::async_trait;
use chatops_core::{Job, Quadrant};

pub mod approvals;
pub mod audit;
pub mod engine;
pub mod nats;
pub mod sqlite;

/// What `enqueue` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored durably at this instant (unix ns).
    Stored { enqueued_ns: u64 },
    /// A job with the same idempotency key exists (waiting, running, done or dead-lettered):
    /// nothing new was stored.
    Duplicate,
}

/// A job handed to a worker. The worker must end it with `complete`, `fail` or `release`;
/// if it does none (crash), the lease expires and the job is delivered again.
#[derive(Debug)]
pub struct Delivery {
    pub job: Job,
    /// 1 for the first delivery.
    pub attempt: u32,
    /// When the job became durable (unix ns), for the queue-wait measurement.
    pub enqueued_ns: u64,
    /// When this delivery left the queue (unix ns).
    pub dequeued_ns: u64,
    /// Set when an attempt of this job (an earlier one, or this attempt number again after a
    /// SQLite `release`) recorded with [`Queue::mark_effect_started`] that it started its
    /// external effect. Read from the durable record at dequeue, before any handler runs.
    pub effect_started: Option<EffectStarted>,
    pub(crate) receipt: Receipt,
}

/// The durable record that an attempt of a job started its external effect (see the crate
/// docs). The latest mark wins: an attempt that marks again replaces an earlier attempt's
/// record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectStarted {
    /// The [`Delivery::attempt`] that recorded it; 0 if the record was unreadable (it still
    /// counts as started).
    pub attempt: u32,
    /// When it was recorded (unix ms).
    pub at_ms: i64,
}

/// Engine-specific proof of a lease.
#[derive(Debug)]
pub(crate) enum Receipt {
    Sqlite { row_id: i64, attempt: u32 },
    Nats(Box<async_nats::jetstream::Message>),
}

/// What `fail` did with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Will be delivered again after the delay.
    Retrying,
    /// Moved to the dead-letter queue.
    DeadLettered,
}

/// Depth of one quadrant's queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuadrantStats {
    /// Waiting to be delivered (including retries waiting for their backoff).
    pub ready: u64,
    /// Delivered to a worker and not yet ended.
    pub in_flight: u64,
}

/// A snapshot of the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Indexed like [`Quadrant::ALL`].
    pub quadrants: [QuadrantStats; 4],
    pub dead_letters: u64,
}

impl QueueStats {
    pub fn quadrant(&self, q: Quadrant) -> QuadrantStats {
        self.quadrants[q.index()]
    }
}

/// A job in the dead-letter queue.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Engine-specific id used by `redrive`.
    pub id: String,
    pub job: Job,
    pub attempts: u32,
    pub last_error: String,
    /// When it was dead-lettered (unix ms).
    pub failed_at_ms: i64,
    /// An attempt had started the command's external effect: a redrive runs the command
    /// again (it clears the record), so the operator should know.
    pub effect_started: Option<EffectStarted>,
}

/// Which dead letters to redrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redrive {
    One(String),
    All,
}

/// What went wrong underneath a [`QueueError`]: what the queue was doing and, when another
/// error caused it, that error itself (not flattened into text), for callers that inspect
/// or downcast it.
///
/// Its `Display` is the whole story (`opening /data/queue.db: disk I/O error`) because the
/// bot logs errors with `%e`; for the same reason [`QueueError`] does not also report the
/// cause as its `source()` (a chain printer would repeat the text). Reach the underlying
/// error with [`QueueError::cause`] and [`std::error::Error::source`] on the cause.
#[derive(Debug)]
pub struct Cause {
    context: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Cause {
    /// A failure caused by `source` while doing `context` (e.g. `opening /data/queue.db`).
    pub fn new(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { context: context.into(), source: Some(source.into()) }
    }

    /// A failure with no underlying error (e.g. `not connected to NATS`).
    pub fn message(context: impl Into<String>) -> Self {
        Self { context: context.into(), source: None }
    }

    /// What the queue was doing, without the underlying error's text.
    pub fn context(&self) -> &str {
        &self.context
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(source) if self.context.is_empty() => write!(f, "{source}"),
            Some(source) => write!(f, "{}: {source}", self.context),
            None => f.write_str(&self.context),
        }
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<String> for Cause {
    fn from(context: String) -> Self {
        Self::message(context)
    }
}

impl From<&str> for Cause {
    fn from(context: &str) -> Self {
        Self::message(context)
    }
}

/// Queue failures. Callers branch on [`QueueError::kind`].
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue for {quadrant} is full ({depth} jobs waiting)")]
    Full { quadrant: Quadrant, depth: u64 },
    #[error("queue is unavailable: {0}")]
    Unavailable(Cause),
    #[error("queue is shut down")]
    Closed,
    #[error("dead letter {0} not found")]
    NotFound(String),
    /// The delivery's lease is no longer this caller's (it expired and the job was handed
    /// out again, or it ended): the caller must not act on the job any more.
    #[error("the lease on {0} is no longer held")]
    LeaseLost(String),
    #[error("stored job is corrupt: {0}")]
    Corrupt(Cause),
    #[error("queue storage failed: {0}")]
    Storage(Cause),
    /// The enqueue's deadline passed first. Contract: the job was not stored and will never
    /// run (an engine that cannot undo a store it started must make sure of that, e.g. with
    /// a tombstone done-record), so the caller may tell the user "not queued".
    #[error("the queue did not store the job before its deadline; it will not run")]
    NotStoredInTime,
}

/// How a caller should react to a [`QueueError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueErrorKind {
    /// Try again later (the router answers 503 with Retry-After).
    Transient,
    /// Retrying the same call will not help.
    Permanent,
}

impl QueueError {
    /// The queue is unreachable or cannot be opened because of `source`.
    pub fn unavailable(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        QueueError::Unavailable(Cause::new(context, source))
    }

    /// Storage failed because of `source`.
    pub fn storage(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        QueueError::Storage(Cause::new(context, source))
    }

    /// A stored job could not be (de)serialized.
    pub fn corrupt(source: serde_json::Error) -> Self {
        // The serializer's message says what is wrong; there is no context to add.
        QueueError::Corrupt(Cause::new(String::new(), source))
    }

    /// A stored record (an approval request, an audit record) could not be parsed. Unlike
    /// [`QueueError::corrupt`] it keeps only where the JSON broke, never the parser's
    /// message, which can quote the record's strings (a `response_url` is a bearer token).
    pub(crate) fn unreadable(what: &str, e: &serde_json::Error) -> Self {
        QueueError::Corrupt(Cause::message(format!(
            "unreadable {what} ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        )))
    }

    /// What went wrong underneath, with the underlying error when there is one.
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            QueueError::Unavailable(c) | QueueError::Corrupt(c) | QueueError::Storage(c) => Some(c),
            _ => None,
        }
    }

    pub fn kind(&self) -> QueueErrorKind {
        match self {
            QueueError::Full { .. }
            | QueueError::Unavailable(_)
            | QueueError::Storage(_)
            | QueueError::Closed
            | QueueError::NotStoredInTime => QueueErrorKind::Transient,
            QueueError::NotFound(_) | QueueError::LeaseLost(_) | QueueError::Corrupt(_) => QueueErrorKind::Permanent,
        }
    }
}

/// A durable job queue with one logical queue per quadrant.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Stores the job durably; returns only once it would survive a crash (subject to the
    /// engine's durability setting). Idempotent on `job.idempotency_key`.
    ///
    /// `deadline` bounds the whole call, and the engine enforces it rather than the caller
    /// (a caller that dropped the future could not know whether the job was stored): it
    /// returns by about the deadline with `Stored`/`Duplicate` (the job will run),
    /// [`QueueError::NotStoredInTime`] (it was not stored and will never run), or another
    /// error (it was not stored: each engine refuses or undoes the job before answering).
    /// A job whose deadline already passed is refused without being stored.
    async fn enqueue(&self, job: &Job, deadline: tokio::time::Instant) -> Result<Enqueued, QueueError>;

    /// Leases up to `max` ready jobs of the quadrant for `lease`. Jobs that already have a
    /// done-record are completed silently and never returned. Returns at once (possibly
    /// empty); use [`Queue::wait_for_jobs`] to sleep until there may be work.
    async fn dequeue(&self, quadrant: Quadrant, max: usize, lease: Duration) -> Result<Vec<Delivery>, QueueError>;

    /// Waits until jobs may be ready in the quadrant, or `timeout` passes.
    async fn wait_for_jobs(&self, quadrant: Quadrant, timeout: Duration);

    /// [`Queue::dequeue`], but when nothing is ready it waits up to `timeout` for work and
    /// leases what arrives; empty when the wait ended without any. The worker pools' one
    /// way of taking work. The default is `dequeue`, `wait_for_jobs`, `dequeue`; the SQLite
    /// engine parks the claim in its writer instead, which leases a new job in the very
    /// transaction that stores it (one commit fewer per command when workers are idle).
    /// A caller that stops waiting loses nothing: work leased for it after it left is
    /// released.
    async fn dequeue_waiting(
        &self,
        quadrant: Quadrant,
        max: usize,
        lease: Duration,
        timeout: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let ready = self.dequeue(quadrant, max, lease).await?;
        if !ready.is_empty() {
            return Ok(ready);
        }
        self.wait_for_jobs(quadrant, timeout).await;
        self.dequeue(quadrant, max, lease).await
    }

    /// Keeps a long job leased for `lease` from now.
    async fn extend_lease(&self, delivery: &Delivery, lease: Duration) -> Result<(), QueueError>;

    /// Ends the job successfully and writes its done-record.
    async fn complete(&self, delivery: &Delivery) -> Result<(), QueueError>;

    /// [`Queue::complete`] with the job's audit record stored first, in one durable step
    /// where the engine can: the SQLite engine writes both in one transaction; the default
    /// is `audit.audit_write(record)`, then `complete`. After an error nothing may be taken
    /// as stored: the caller writes the record and completes on their own (both are
    /// idempotent).
    async fn complete_audited(
        &self,
        delivery: &Delivery,
        record: &audit::AuditRecord,
        audit: &dyn audit::AuditLog,
    ) -> Result<(), QueueError> {
        audit.audit_write(record).await?;
        self.complete(delivery).await
    }

    /// Ends the attempt with an error: retried after `retry_in`, or dead-lettered when
    /// `retry_in` is `None`.
    async fn fail(
        &self,
        delivery: &Delivery,
        error: &str,
        retry_in: Option<Duration>,
    ) -> Result<FailOutcome, QueueError>;

    /// Records durably that this delivery's attempt is about to start the job's external
    /// effect; call it right before starting it, and do not start it if this fails. Returns
    /// only once the record would survive a crash under the engine's durability setting
    /// (SQLite: committed and, with `durability = full`, fsynced like an enqueue; NATS:
    /// acknowledged by JetStream). Every later delivery of the job carries it in
    /// [`Delivery::effect_started`], until a redrive. Marking again is harmless (the
    /// record then names the latest marking attempt).
    ///
    /// SQLite refuses with [`QueueError::LeaseLost`] when the lease has already passed to
    /// another attempt. JetStream cannot tell, so a worker whose lease expired may still
    /// mark; the record then only makes the redelivery more careful.
    async fn mark_effect_started(&self, delivery: &Delivery) -> Result<(), QueueError>;

    /// Gives the job back without counting the attempt (graceful shutdown).
    async fn release(&self, delivery: &Delivery) -> Result<(), QueueError>;

    async fn stats(&self) -> Result<QueueStats, QueueError>;

    /// Checks that the queue can take work (for `/readyz`).
    async fn ping(&self) -> Result<(), QueueError>;

    async fn dlq_list(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError>;

    /// Moves dead letters back to their queue with a fresh attempt count; returns how many.
    async fn dlq_redrive(&self, which: Redrive) -> Result<u64, QueueError>;

    /// Deletes every dead letter; returns how many.
    async fn dlq_purge(&self) -> Result<u64, QueueError>;
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn an_error_keeps_its_source_and_its_text() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
        let e = QueueError::unavailable("opening /data/queue.db", io);
        assert_eq!(e.to_string(), "queue is unavailable: opening /data/queue.db: permission denied");
        assert_eq!(e.kind(), QueueErrorKind::Transient);
        let cause = e.cause().expect("a cause");
        assert_eq!(cause.context(), "opening /data/queue.db");
        let source = cause.source().and_then(|s| s.downcast_ref::<std::io::Error>()).expect("the io::Error itself");
        assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied);

        let json = serde_json::from_slice::<Job>(b"{").expect_err("not a job");
        let e = QueueError::corrupt(json);
        assert!(e.to_string().starts_with("stored job is corrupt: EOF"), "{e}");
        assert!(e.cause().and_then(|c| c.source()).is_some_and(|s| s.is::<serde_json::Error>()));
        assert_eq!(e.kind(), QueueErrorKind::Permanent);

        let plain = QueueError::Storage("queue transaction failed".into());
        assert_eq!(plain.to_string(), "queue storage failed: queue transaction failed");
        assert!(plain.cause().is_some_and(|c| c.source().is_none()));
    }
}
