//! The writer thread: the only code that changes the SQLite file of a running bot.
//!
//! It takes every operation waiting in its channel (up to a batch limit), runs them in one
//! `BEGIN IMMEDIATE` transaction and replies only after `COMMIT` returned. If anything in
//! the batch fails, the whole transaction is rolled back and every caller gets the error:
//! nothing is acknowledged that is not stored.
//!
//! Only a batch that stores new work or something a caller is told is durable (an enqueue,
//! a redrive, an effect-started record, an approval request, a vote, a sweep's expiries)
//! is fsynced under `durability = full`: that is what the router's acknowledgement,
//! `mark_effect_started` and `vote` promise. Batches of leases, completions, retries and
//! audit records commit with `synchronous=NORMAL` (written to the WAL, fsynced by the next
//! full commit or checkpoint): a power loss may undo them, which only means a job runs
//! again, as at-least-once delivery allows. An audit record is written with the completion
//! of its job (`Op::Complete` carries it: one transaction) or before it, and the WAL keeps
//! their order, so a power loss that undoes the record undoes the completion too, and the
//! job's next attempt writes the record again (an effect that had started is then recorded
//! as interrupted): no fsync per completed command for the trail, and still no command
//! that ran without its record.
//!
//! A worker pool's claim that finds nothing waits here (`Op::Claim` with `wait`): the next
//! batch that stores work for its quadrant leases it before its COMMIT, so when workers are
//! idle a command costs one commit to store and lease and one to audit and complete.

use std::collections::HashMap;
use std::sync::Arc;

use chatops_core::{Quadrant, time::now_unix_ns};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{Notify, mpsc, oneshot};

use super::{Durability, SqliteSettings, approvals, audit};
use crate::approvals::{ApprovalRecord, ApprovalRequested, VoteEffect, VoteOutcome};
use crate::{EffectStarted, Enqueued, FailOutcome, QuadrantStats, QueueError, QueueStats};

type Reply<T> = oneshot::Sender<Result<T, QueueError>>;

/// A row handed out by a claim, decoded by the async side.
pub(crate) struct Claimed {
    pub row_id: i64,
    pub attempt: u32,
    pub enqueued_ns: u64,
    pub effect_started: Option<EffectStarted>,
    pub payload: Vec<u8>,
}

pub(crate) enum Op {
    Enqueue {
        job_id: String,
        key: String,
        quadrant: Quadrant,
        max_attempts: u32,
        payload: Vec<u8>,
        /// The caller stops waiting then: an enqueue not applied by this instant is skipped.
        deadline: std::time::Instant,
        reply: Reply<Enqueued>,
    },
    /// Leases up to `max` ready jobs for `lease_ms` from when they are leased. With `wait`,
    /// a claim that finds nothing is parked: the next batch that makes jobs of the quadrant
    /// ready leases them for it before its COMMIT.
    Claim {
        quadrant: Quadrant,
        max: usize,
        lease_ms: i64,
        wait: bool,
        reply: Reply<Vec<Claimed>>,
    },
    Extend {
        row_id: i64,
        attempt: u32,
        lease_until_ms: i64,
        reply: Reply<()>,
    },
    /// Ends a job: its done-record, and its audit record first when it comes along (one
    /// transaction for both).
    Complete {
        row_id: i64,
        key: String,
        job_id: String,
        audit: Option<Box<audit::AuditRow>>,
        reply: Reply<()>,
    },
    Fail {
        row_id: i64,
        attempt: u32,
        error: String,
        retry_at_ms: Option<i64>,
        reply: Reply<FailOutcome>,
    },
    Release {
        row_id: i64,
        attempt: u32,
        reply: Reply<()>,
    },
    /// Records that attempt `attempt` started its effect (durable: fsynced like an enqueue).
    MarkEffect {
        row_id: i64,
        attempt: u32,
        at_ms: i64,
        reply: Reply<()>,
    },
    Redrive {
        id: Option<i64>,
        reply: Reply<u64>,
    },
    Purge {
        reply: Reply<u64>,
    },
    Ping {
        reply: Reply<()>,
    },
    /// Stores a pending approval request (bounded by `deadline` like `Enqueue`).
    RequestApproval {
        id: String,
        key: String,
        expires_ms: i64,
        /// The `PendingApproval` as JSON.
        request: Vec<u8>,
        deadline: std::time::Instant,
        reply: Reply<ApprovalRequested>,
    },
    /// Records a vote; the deciding approval inserts the job in the same transaction.
    Vote {
        id: String,
        vote: crate::approvals::Vote,
        reply: Reply<VoteOutcome>,
    },
    /// Expires pending requests due before `now_ms`; answers the ones it expired.
    SweepApprovals {
        now_ms: i64,
        reply: Reply<Vec<ApprovalRecord>>,
    },
    /// Stores or replaces an audit record.
    AuditWrite {
        row: audit::AuditRow,
        reply: Reply<()>,
    },
    /// Periodic: reclaim expired leases, prune old done-records, decided approvals and
    /// audit records, resync depth counters.
    Maintain,
}

/// A vote's result, held until the transaction commits.
enum Voted {
    Outcome(VoteOutcome),
    /// The deciding approval; `row` is the job's row, `None` when the queue already had the
    /// key (a duplicate).
    Approved {
        record: ApprovalRecord,
        row: Option<i64>,
    },
}

/// A row committed in this batch whose caller could no longer be told so.
enum Untold {
    Job(i64),
    Approval(String),
}

/// An operation's result, held until the transaction commits.
enum Done {
    Enqueue(Reply<Enqueued>, Result<Option<i64>, QueueError>),
    Claim(Reply<Vec<Claimed>>, Vec<Claimed>),
    Unit(Reply<()>, Result<(), QueueError>),
    Fail(Reply<FailOutcome>, FailOutcome),
    Count(Reply<u64>, u64),
    /// The answer, and the id that was stored (to undo if nobody hears it).
    Requested(Reply<ApprovalRequested>, Result<ApprovalRequested, QueueError>, String),
    /// Boxed: a record is large, and most operations of a batch are not votes.
    Voted(Reply<VoteOutcome>, Box<Result<Voted, QueueError>>),
    Swept(Reply<Vec<ApprovalRecord>>, Vec<ApprovalRecord>),
    Nothing,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id             INTEGER PRIMARY KEY,
    job_id         TEXT NOT NULL,
    idem_key       TEXT NOT NULL UNIQUE,
    quadrant       INTEGER NOT NULL,
    state          INTEGER NOT NULL,          -- 0 ready, 1 leased
    due_at_ms      INTEGER NOT NULL,
    lease_until_ms INTEGER,
    attempts       INTEGER NOT NULL,
    max_attempts   INTEGER NOT NULL,
    last_error     TEXT,
    enqueued_ns    INTEGER NOT NULL,
    payload        BLOB NOT NULL,
    effect_attempt INTEGER,                   -- set by mark_effect_started; kept until redrive
    effect_at_ms   INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (quadrant, state, due_at_ms, id);
CREATE TABLE IF NOT EXISTS done (
    idem_key     TEXT PRIMARY KEY,
    job_id       TEXT NOT NULL,
    completed_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS done_age ON done (completed_ms);
CREATE TABLE IF NOT EXISTS dlq (
    id           INTEGER PRIMARY KEY,
    job_id       TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    quadrant     INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    last_error   TEXT NOT NULL,
    failed_at_ms INTEGER NOT NULL,
    payload      BLOB NOT NULL,
    effect_attempt INTEGER,
    effect_at_ms   INTEGER
);
CREATE INDEX IF NOT EXISTS dlq_key ON dlq (idem_key);
CREATE TABLE IF NOT EXISTS approvals (
    id         TEXT PRIMARY KEY,
    idem_key   TEXT NOT NULL UNIQUE,
    state      TEXT NOT NULL,              -- pending, approved, denied, expired
    expires_ms INTEGER NOT NULL,
    decided_ms INTEGER,
    request    BLOB NOT NULL,              -- the PendingApproval as JSON, written once
    votes      TEXT NOT NULL DEFAULT '[]'  -- the votes as a JSON array, in order
);
CREATE INDEX IF NOT EXISTS approvals_due ON approvals (state, expires_ms);
CREATE INDEX IF NOT EXISTS approvals_decided ON approvals (decided_ms) WHERE decided_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS audit (
    id          TEXT PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    recorded_ms INTEGER NOT NULL,
    user_id     TEXT NOT NULL,
    command     TEXT NOT NULL,
    json        BLOB NOT NULL              -- the AuditRecord as JSON
);
CREATE INDEX IF NOT EXISTS audit_received ON audit (received_ms);
CREATE INDEX IF NOT EXISTS audit_user ON audit (user_id, received_ms);
CREATE INDEX IF NOT EXISTS audit_command ON audit (command, received_ms);
";

const READY: i64 = 0;
const LEASED: i64 = 1;

/// The claim statement of each quadrant (index = quadrant index), with the constants
/// written into the SQL; see `Writer::claim` for why.
static CLAIM_SQL: std::sync::LazyLock<[String; 4]> = std::sync::LazyLock::new(|| {
    std::array::from_fn(|qi| {
        format!(
            "SELECT id, attempts, enqueued_ns, idem_key, payload, effect_attempt, effect_at_ms FROM jobs
             WHERE quadrant = {qi} AND state = {READY} AND due_at_ms <= (?1 + 0)
             ORDER BY due_at_ms, id LIMIT (?2 + 0)"
        )
    })
});

/// Columns added after the first release, per table: a `queue.db` written by an older
/// version gets them at open, so it keeps working (rows from then have no record).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("jobs", "effect_attempt", "INTEGER"),
    ("jobs", "effect_at_ms", "INTEGER"),
    ("dlq", "effect_attempt", "INTEGER"),
    ("dlq", "effect_at_ms", "INTEGER"),
];

pub(crate) fn create_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    let missing = || -> rusqlite::Result<Vec<(&str, &str, &str)>> {
        let mut out = Vec::new();
        for &(table, column, kind) in ADDED_COLUMNS {
            let present: bool = conn
                .prepare("SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)")?
                .query_row([table, column], |r| r.get(0))?;
            if !present {
                out.push((table, column, kind));
            }
        }
        Ok(out)
    };
    // The common case (an up-to-date file) takes no write lock.
    if missing()?.is_empty() {
        return Ok(());
    }
    // Checked again and added in one write transaction, so an owner and an admin process
    // opening an old file at the same time cannot both add a column (the second would fail).
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let migrated = (|| {
        for (table, column, kind) in missing()? {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
            tracing::info!(table, column, "added a column to a queue file written by an older version");
        }
        conn.execute_batch("COMMIT")
    })();
    if migrated.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    migrated
}

/// A record from its two nullable columns.
fn effect_from(attempt: Option<i64>, at_ms: Option<i64>) -> Option<EffectStarted> {
    attempt.map(|a| EffectStarted { attempt: u32::try_from(a).unwrap_or(0), at_ms: at_ms.unwrap_or(0) })
}

/// Hands every leased job back to the queue. Only the lock owner may do this: a lease held
/// by a live process would otherwise be stolen.
pub(crate) fn recover_leases(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute("UPDATE jobs SET state = ?1, lease_until_ms = NULL WHERE state = ?2", params![READY, LEASED])
}

fn now_ms() -> i64 {
    (now_unix_ns() / 1_000_000) as i64
}

fn quadrant_from(i: i64) -> Option<Quadrant> {
    Quadrant::ALL.get(usize::try_from(i).ok()?).copied()
}

pub(crate) fn read_stats(conn: &Connection) -> rusqlite::Result<QueueStats> {
    let mut stats = QueueStats::default();
    let mut stmt = conn.prepare_cached("SELECT quadrant, state, count(*) FROM jobs GROUP BY quadrant, state")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let Some(q) = quadrant_from(row.get(0)?) else { continue };
        let n: i64 = row.get(2)?;
        let slot: &mut QuadrantStats = &mut stats.quadrants[q.index()];
        if row.get::<_, i64>(1)? == LEASED {
            slot.in_flight += n as u64;
        } else {
            slot.ready += n as u64;
        }
    }
    stats.dead_letters = conn.query_row("SELECT count(*) FROM dlq", [], |r| r.get::<_, i64>(0))? as u64;
    Ok(stats)
}

pub(crate) type DeadLetterRow = (i64, Vec<u8>, u32, String, i64, Option<EffectStarted>);

pub(crate) fn read_dead_letters(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<DeadLetterRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, payload, attempts, last_error, failed_at_ms, effect_attempt, effect_at_ms
         FROM dlq ORDER BY id LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, effect_from(r.get(5)?, r.get(6)?)))
    })?;
    rows.collect()
}

pub(crate) struct Writer {
    conn: Connection,
    /// `durability = full`: batches that store new work are fsynced.
    full_sync: bool,
    /// The connection's current `synchronous` setting is FULL.
    synced_now: bool,
    max_depth: u64,
    done_retention_ms: i64,
    approval_retention_ms: i64,
    audit_retention_ms: i64,
    ready: Arc<[Notify; 4]>,
    /// Jobs (ready + leased) per quadrant, for the `Full` check without a COUNT per enqueue.
    depth: [u64; 4],
    /// Commit instant of rows enqueued by this process, so queue wait starts when the job
    /// became durable, not when its INSERT ran. Rows from before a restart fall back to
    /// their insert stamp.
    committed_ns: HashMap<i64, u64>,
    /// When dead letters were last scrubbed of expired `response_url`s.
    last_scrub: Option<std::time::Instant>,
    /// Claims waiting for work, per quadrant, oldest first.
    parked: [Vec<ParkedClaim>; 4],
}

/// A worker pool's claim that found nothing and waits (see `Op::Claim`). The pool stops
/// waiting by dropping its receiver; such claims are pruned, never served.
struct ParkedClaim {
    max: usize,
    lease_ms: i64,
    reply: Reply<Vec<Claimed>>,
}

/// Slack accepts posts to a `response_url` for this long after the command: afterwards the
/// URL is useless to us and only a secret to leak.
pub(crate) const RESPONSE_URL_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// How often the maintenance pass scrubs dead letters (a scan of the DLQ; expiry is
/// measured in minutes, so once in a while is enough).
const SCRUB_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Blanks the `response_url` of dead letters whose command is older than its lifetime; the
/// rest of the job stays for the operator. Returns how many were scrubbed.
pub(crate) fn scrub_expired_response_urls(conn: &Connection, now_ns: u64) -> rusqlite::Result<usize> {
    let cutoff_ns = now_ns.saturating_sub(RESPONSE_URL_LIFETIME.as_nanos() as u64) as i64;
    // Payloads are JSON text in a BLOB column; the casts keep SQLite from reading it as JSONB.
    // A corrupt payload (dead-lettered because it is not JSON) is skipped: CASE evaluates
    // lazily, and a JSON function on it would fail the writer's whole batch.
    conn.prepare_cached(
        "UPDATE dlq SET payload = CAST(json_set(CAST(payload AS TEXT), '$.command.response_url', '') AS BLOB)
         WHERE CASE WHEN json_valid(CAST(payload AS TEXT)) THEN
                 json_extract(CAST(payload AS TEXT), '$.router_received_ns') < ?1
                 AND coalesce(json_extract(CAST(payload AS TEXT), '$.command.response_url'), '') <> ''
               ELSE 0 END",
    )?
    .execute([cutoff_ns])
}

impl Writer {
    pub(super) fn new(conn: Connection, settings: &SqliteSettings, ready: Arc<[Notify; 4]>) -> rusqlite::Result<Self> {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let mut w = Writer {
            conn,
            full_sync: settings.durability == Durability::Full,
            synced_now: settings.durability == Durability::Full,
            max_depth: settings.max_depth,
            done_retention_ms: ms(settings.done_retention),
            approval_retention_ms: ms(settings.approval_retention),
            audit_retention_ms: ms(settings.audit_retention),
            ready,
            depth: [0; 4],
            committed_ns: HashMap::new(),
            last_scrub: None,
            parked: Default::default(),
        };
        w.resync_depth()?;
        Ok(w)
    }

    fn resync_depth(&mut self) -> rusqlite::Result<()> {
        let stats = read_stats(&self.conn)?;
        for (slot, q) in self.depth.iter_mut().zip(stats.quadrants) {
            *slot = q.ready + q.in_flight;
        }
        Ok(())
    }

    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Op>, max_batch: usize) {
        let mut batch = Vec::with_capacity(max_batch);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.run_batch(&mut batch);
        }
    }

    /// Sets `synchronous` for the next transaction: FULL only when it stores new work.
    fn choose_sync(&mut self, batch: &[Op]) -> rusqlite::Result<()> {
        let want_full = self.full_sync
            && batch.iter().any(|op| {
                matches!(
                    op,
                    Op::Enqueue { .. }
                        | Op::Redrive { .. }
                        | Op::MarkEffect { .. }
                        | Op::RequestApproval { .. }
                        | Op::Vote { .. }
                        | Op::SweepApprovals { .. }
                )
            });
        if want_full != self.synced_now {
            self.conn.pragma_update(None, "synchronous", if want_full { "FULL" } else { "NORMAL" })?;
            self.synced_now = want_full;
        }
        Ok(())
    }

    fn run_batch(&mut self, batch: &mut Vec<Op>) {
        let depth_before = self.depth;
        let mut woken = [false; 4];
        let mut results = Vec::with_capacity(batch.len());
        let outcome = (|| -> rusqlite::Result<()> {
            self.choose_sync(batch)?;
            self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            for op in batch.drain(..) {
                results.push(self.apply(op, &mut woken)?);
            }
            self.serve_parked(&woken, &mut results)?;
            self.conn.prepare_cached("COMMIT")?.execute([]).map(drop)
        })();
        if let Err(e) = outcome {
            // Roll back and fail everyone; also the ops that were not reached yet.
            let _ = self.conn.execute_batch("ROLLBACK");
            self.depth = depth_before;
            let message = e.to_string();
            tracing::error!(error.message = %message, "queue transaction failed; nothing in it was stored");
            for done in results {
                fail_done(done, &message);
            }
            for op in batch.drain(..) {
                fail_op(op, &message);
            }
            return;
        }
        let committed = now_unix_ns();
        // Enqueues (and approval requests, which have deadlines too) are answered first: a
        // row whose caller can no longer be told it was stored must not be handed to a
        // worker by a claim of this same batch either.
        let mut untold = Vec::new();
        let mut unreceived = Vec::new();
        let mut others = Vec::with_capacity(results.len());
        for done in results {
            match done {
                Done::Enqueue(reply, Ok(Some(row_id))) => {
                    self.committed_ns.insert(row_id, committed);
                    if reply.send(Ok(Enqueued::Stored { enqueued_ns: committed })).is_err() {
                        // The caller gave up at its deadline and told the user "not queued".
                        untold.push(Untold::Job(row_id));
                    }
                }
                Done::Enqueue(reply, Ok(None)) => {
                    let _ = reply.send(Ok(Enqueued::Duplicate));
                }
                Done::Enqueue(reply, Err(e)) => {
                    let _ = reply.send(Err(e));
                }
                Done::Requested(reply, answer, id) => {
                    let stored = matches!(answer, Ok(ApprovalRequested::Stored));
                    if reply.send(answer).is_err() && stored {
                        untold.push(Untold::Approval(id));
                    }
                }
                other => others.push(other),
            }
        }
        for done in others {
            match done {
                Done::Enqueue(..) | Done::Requested(..) => unreachable!("answered above"),
                Done::Claim(reply, mut claimed) => {
                    claimed.retain(|c| !untold.iter().any(|u| matches!(u, Untold::Job(row) if *row == c.row_id)));
                    if let Err(Ok(unheard)) = reply.send(Ok(claimed)) {
                        // The pool stopped waiting (a parked claim's timeout, shutdown): what
                        // was leased for it goes back, without using an attempt.
                        unreceived.extend(unheard.into_iter().map(|c| (c.row_id, c.attempt)));
                    }
                }
                Done::Voted(reply, voted) => {
                    let answer = (*voted).map(|voted| match voted {
                        Voted::Outcome(outcome) => outcome,
                        Voted::Approved { record, row } => {
                            let enqueued = match row {
                                Some(row_id) => {
                                    self.committed_ns.insert(row_id, committed);
                                    Enqueued::Stored { enqueued_ns: committed }
                                }
                                None => Enqueued::Duplicate,
                            };
                            VoteOutcome::Approved { record, enqueued }
                        }
                    });
                    // A voter that stopped listening changes nothing: its vote stands, and
                    // its next click is told so.
                    let _ = reply.send(answer);
                }
                Done::Swept(reply, expired) => {
                    let _ = reply.send(Ok(expired));
                }
                Done::Unit(reply, r) => {
                    let _ = reply.send(r);
                }
                Done::Fail(reply, outcome) => {
                    let _ = reply.send(Ok(outcome));
                }
                Done::Count(reply, n) => {
                    let _ = reply.send(Ok(n));
                }
                Done::Nothing => {}
            }
        }
        if !untold.is_empty() {
            self.undo_untold(&untold);
        }
        if !unreceived.is_empty() {
            self.release_unreceived(&unreceived, &mut woken);
        }
        for (i, woke) in woken.into_iter().enumerate() {
            if woke {
                self.ready[i].notify_one();
            }
        }
    }

    /// Leases jobs for parked claims of the quadrants this batch made work ready in, inside
    /// the batch's transaction: a job stored while a pool waits is leased in the commit that
    /// stores it. Claims whose pools stopped waiting are dropped first.
    fn serve_parked(&mut self, woken: &[bool; 4], results: &mut Vec<Done>) -> rusqlite::Result<()> {
        for (qi, &woke) in woken.iter().enumerate() {
            if !woke || self.parked[qi].is_empty() {
                continue;
            }
            self.parked[qi].retain(|p| !p.reply.is_closed());
            while let Some(p) = self.parked[qi].first() {
                let claimed = self.claim(qi, p.max, now_ms() + p.lease_ms)?;
                if claimed.is_empty() {
                    break;
                }
                let p = self.parked[qi].remove(0);
                results.push(Done::Claim(p.reply, claimed));
            }
        }
        Ok(())
    }

    /// Puts back rows leased for callers that were gone when the answer came (as
    /// `Op::Release`: the attempt is not used), and wakes their quadrants.
    fn release_unreceived(&mut self, rows: &[(i64, u32)], woken: &mut [bool; 4]) {
        let outcome = (|| -> rusqlite::Result<()> {
            self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            for &(row_id, attempt) in rows {
                self.release(row_id, attempt, woken)?;
            }
            self.conn.prepare_cached("COMMIT")?.execute([]).map(drop)
        })();
        if let Err(e) = outcome {
            let _ = self.conn.execute_batch("ROLLBACK");
            // Not lost: their leases expire and the jobs run again.
            tracing::warn!(rows = rows.len(), error.message = %e, "could not release jobs leased for a caller that left");
        }
    }

    /// Deletes rows committed in this batch whose callers could no longer be told they were
    /// stored (jobs, approval requests). It runs before any worker is woken and on the only
    /// thread that claims or votes, so nothing can see these rows in between.
    fn undo_untold(&mut self, rows: &[Untold]) {
        let outcome = (|| -> rusqlite::Result<()> {
            self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            for row in rows {
                match row {
                    Untold::Job(row_id) => self.delete_job(*row_id)?,
                    Untold::Approval(id) => approvals::delete(&self.conn, id)?,
                }
            }
            self.conn.prepare_cached("COMMIT")?.execute([]).map(drop)
        })();
        match outcome {
            Ok(()) => tracing::info!(rows = rows.len(), "removed rows stored after their callers' deadline"),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                // The counters may now be off by these rows; the next maintenance pass
                // resyncs them from the table.
                tracing::error!(
                    rows = rows.len(),
                    error.message = %e,
                    "could not remove rows stored after their callers' deadline; they will run (or wait for approval) although the user was told they were not queued"
                );
            }
        }
    }

    fn apply(&mut self, op: Op, woken: &mut [bool; 4]) -> rusqlite::Result<Done> {
        Ok(match op {
            Op::Enqueue { job_id, key, quadrant, max_attempts, payload, deadline, reply } => {
                // Nobody would hear that it was stored: storing it would run a job the user
                // was told was not queued.
                if too_late(&reply, deadline) {
                    return Ok(Done::Enqueue(reply, Err(QueueError::NotStoredInTime)));
                }
                let qi = quadrant.index();
                if self.depth[qi] >= self.max_depth {
                    let depth = self.depth[qi];
                    return Ok(Done::Enqueue(reply, Err(QueueError::Full { quadrant, depth })));
                }
                let row = self.insert_job(&job_id, &key, qi, max_attempts, &payload)?;
                if row.is_some() {
                    self.depth[qi] += 1;
                    woken[qi] = true;
                }
                Done::Enqueue(reply, Ok(row))
            }
            Op::Claim { quadrant, max, lease_ms, wait, reply } => {
                let qi = quadrant.index();
                let claimed = self.claim(qi, max, now_ms() + lease_ms)?;
                if claimed.is_empty() && wait {
                    self.parked[qi].retain(|p| !p.reply.is_closed());
                    self.parked[qi].push(ParkedClaim { max, lease_ms, reply });
                    Done::Nothing
                } else {
                    Done::Claim(reply, claimed)
                }
            }
            Op::Extend { row_id, attempt, lease_until_ms, reply } => {
                let n = self
                    .conn
                    .prepare_cached(
                        "UPDATE jobs SET lease_until_ms = ?1 WHERE id = ?2 AND attempts = ?3 AND state = ?4",
                    )?
                    .execute(params![lease_until_ms, row_id, attempt, LEASED])?;
                let r = if n == 1 { Ok(()) } else { Err(QueueError::NotFound(format!("lease on job row {row_id}"))) };
                Done::Unit(reply, r)
            }
            Op::Complete { row_id, key, job_id, audit, reply } => {
                if let Some(row) = audit {
                    audit::upsert(&self.conn, &row)?;
                }
                self.conn
                    .prepare_cached("INSERT OR IGNORE INTO done (idem_key, job_id, completed_ms) VALUES (?1, ?2, ?3)")?
                    .execute(params![key, job_id, now_ms()])?;
                self.delete_job(row_id)?;
                Done::Unit(reply, Ok(()))
            }
            Op::Fail { row_id, attempt, error, retry_at_ms, reply } => {
                let outcome = match retry_at_ms {
                    Some(at) => {
                        self.conn
                            .prepare_cached(
                                "UPDATE jobs SET state = ?1, due_at_ms = ?2, lease_until_ms = NULL, last_error = ?3
                                 WHERE id = ?4 AND attempts = ?5",
                            )?
                            .execute(params![READY, at, error, row_id, attempt])?;
                        FailOutcome::Retrying
                    }
                    None => {
                        self.dead_letter(row_id, &error)?;
                        FailOutcome::DeadLettered
                    }
                };
                Done::Fail(reply, outcome)
            }
            Op::Release { row_id, attempt, reply } => {
                self.release(row_id, attempt, woken)?;
                Done::Unit(reply, Ok(()))
            }
            Op::MarkEffect { row_id, attempt, at_ms, reply } => {
                // Only the attempt that holds the lease may mark: a worker whose lease
                // expired must not start the effect while another attempt runs the job.
                let n = self
                    .conn
                    .prepare_cached(
                        "UPDATE jobs SET effect_attempt = ?1, effect_at_ms = ?2
                         WHERE id = ?3 AND attempts = ?1 AND state = ?4",
                    )?
                    .execute(params![attempt, at_ms, row_id, LEASED])?;
                let r = if n == 1 { Ok(()) } else { Err(QueueError::LeaseLost(format!("job row {row_id}"))) };
                Done::Unit(reply, r)
            }
            Op::Redrive { id, reply } => Done::Count(reply, self.redrive(id, woken)?),
            Op::Purge { reply } => Done::Count(reply, self.conn.execute("DELETE FROM dlq", [])? as u64),
            Op::Ping { reply } => {
                self.conn.query_row("SELECT 1", [], |_| Ok(()))?;
                Done::Unit(reply, Ok(()))
            }
            Op::RequestApproval { id, key, expires_ms, request, deadline, reply } => {
                // As for an enqueue: a request nobody hears about must not wait for approvers.
                if too_late(&reply, deadline) {
                    return Ok(Done::Requested(reply, Err(QueueError::NotStoredInTime), id));
                }
                let answer = approvals::insert(&self.conn, &id, &key, expires_ms, &request)?;
                Done::Requested(reply, answer, id)
            }
            Op::Vote { id, vote, reply } => {
                let voted = self.vote(&id, &vote, woken)?;
                Done::Voted(reply, Box::new(voted))
            }
            Op::SweepApprovals { now_ms, reply } => Done::Swept(reply, approvals::expire_due(&self.conn, now_ms)?),
            Op::AuditWrite { row, reply } => {
                audit::upsert(&self.conn, &row)?;
                Done::Unit(reply, Ok(()))
            }
            Op::Maintain => {
                self.maintain(woken)?;
                Done::Nothing
            }
        })
    }

    /// One vote, read and written in this transaction; the deciding approval inserts the
    /// job here too, so it is enqueued exactly once by construction. Errors that concern
    /// only this vote (a corrupt record, a full queue) are its answer; a SQLite error
    /// fails the batch.
    fn vote(
        &mut self,
        id: &str,
        vote: &crate::approvals::Vote,
        woken: &mut [bool; 4],
    ) -> rusqlite::Result<Result<Voted, QueueError>> {
        if !crate::approvals::is_valid_id(id) {
            return Ok(Ok(Voted::Outcome(VoteOutcome::NotFound)));
        }
        let mut record = match approvals::load(&self.conn, id)? {
            None => return Ok(Ok(Voted::Outcome(VoteOutcome::NotFound))),
            Some(Err(e)) => return Ok(Err(e)),
            Some(Ok(record)) => record,
        };
        let effect = crate::approvals::apply_vote(&mut record, vote);
        if !effect.changes_record() {
            return Ok(Ok(Voted::Outcome(effect.outcome(record))));
        }
        if effect != VoteEffect::Approved {
            approvals::store_decision(&self.conn, &record)?;
            return Ok(Ok(Voted::Outcome(effect.outcome(record))));
        }
        let job = crate::approvals::approved_job(&record, now_unix_ns());
        let qi = job.quadrant.index();
        if self.depth[qi] >= self.max_depth {
            // Nothing is stored: the approver may click again once the queue drains.
            return Ok(Err(QueueError::Full { quadrant: job.quadrant, depth: self.depth[qi] }));
        }
        let payload = match serde_json::to_vec(&job) {
            Ok(payload) => payload,
            Err(e) => return Ok(Err(QueueError::corrupt(e))),
        };
        approvals::store_decision(&self.conn, &record)?;
        let row = self.insert_job(&job.job_id, &job.idempotency_key, qi, job.max_attempts, &payload)?;
        if row.is_some() {
            self.depth[qi] += 1;
            woken[qi] = true;
        }
        Ok(Ok(Voted::Approved { record, row }))
    }

    fn insert_job(
        &mut self,
        job_id: &str,
        key: &str,
        qi: usize,
        max_attempts: u32,
        payload: &[u8],
    ) -> rusqlite::Result<Option<i64>> {
        // One statement: a key that is waiting, running, done or dead-lettered is a duplicate.
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO jobs (job_id, idem_key, quadrant, state, due_at_ms, attempts, max_attempts, enqueued_ns, payload)
                 SELECT ?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8
                 WHERE NOT EXISTS (SELECT 1 FROM done WHERE idem_key = ?2)
                   AND NOT EXISTS (SELECT 1 FROM dlq WHERE idem_key = ?2)
                 ON CONFLICT (idem_key) DO NOTHING",
            )?
            .execute(params![job_id, key, qi as i64, READY, now_ms(), max_attempts, now_unix_ns() as i64, payload])?;
        Ok((n == 1).then(|| self.conn.last_insert_rowid()))
    }

    fn claim(&mut self, qi: usize, max: usize, lease_until_ms: i64) -> rusqlite::Result<Vec<Claimed>> {
        type Row = (i64, u32, i64, String, Vec<u8>, Option<i64>, Option<i64>);
        let rows: Vec<Row> = {
            // Only the values that change are bound, and they sit in expressions: this SQLite
            // build has STAT4, which re-prepares a statement whenever a parameter it could
            // plan with (an indexed equality or range, a LIMIT) is rebound. The claim runs
            // for every batch of jobs, and re-parsing it was a tenth of the writer's CPU.
            //
            // A SELECT, then an UPDATE per row, in the writer's transaction: as atomic as one
            // `UPDATE … WHERE id IN (SELECT …) RETURNING`, without the two temporary b-trees
            // SQLite builds for the IN list and the RETURNING rows (each with a fresh page
            // cache: with page faults, a fifth of the writer's CPU).
            let mut stmt = self.conn.prepare_cached(&CLAIM_SQL[qi])?;
            let rows = stmt.query_map(params![now_ms(), max as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut claimed = Vec::with_capacity(rows.len());
        for (row_id, attempts_before, stored_ns, key, payload, effect_attempt, effect_at_ms) in rows {
            let attempt: u32 = attempts_before + 1;
            self.conn
                .prepare_cached("UPDATE jobs SET state = ?1, lease_until_ms = ?2, attempts = ?3 WHERE id = ?4")?
                .execute(params![LEASED, lease_until_ms, attempt, row_id])?;
            // The done-record is checked before any handler runs: a job that completed
            // (and was then redelivered) is finished here, silently.
            let done: bool = self
                .conn
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM done WHERE idem_key = ?1)")?
                .query_row([&key], |r| r.get(0))?;
            if done {
                self.delete_job(row_id)?;
                continue;
            }
            let enqueued_ns = self.committed_ns.remove(&row_id).unwrap_or(stored_ns as u64);
            let effect_started = effect_from(effect_attempt, effect_at_ms);
            claimed.push(Claimed { row_id, attempt, enqueued_ns, effect_started, payload });
        }
        Ok(claimed)
    }

    /// Makes a leased row ready again without using its attempt.
    fn release(&mut self, row_id: i64, attempt: u32, woken: &mut [bool; 4]) -> rusqlite::Result<()> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE jobs SET state = ?1, due_at_ms = ?2, lease_until_ms = NULL, attempts = max(attempts - 1, 0)
                 WHERE id = ?3 AND attempts = ?4 AND state = ?5",
            )?
            .execute(params![READY, now_ms(), row_id, attempt, LEASED])?;
        if n == 1 {
            self.wake_row(row_id, woken)?;
        }
        Ok(())
    }

    fn delete_job(&mut self, row_id: i64) -> rusqlite::Result<()> {
        // Read, then delete: `DELETE … RETURNING` buffers its row in a temporary b-tree.
        let q: Option<i64> = self
            .conn
            .prepare_cached("SELECT quadrant FROM jobs WHERE id = ?1")?
            .query_row([row_id], |r| r.get(0))
            .optional()?;
        if q.is_some() {
            self.conn.prepare_cached("DELETE FROM jobs WHERE id = ?1")?.execute([row_id])?;
        }
        if let Some(qi) = q.and_then(|q| usize::try_from(q).ok()).filter(|&q| q < 4) {
            self.depth[qi] = self.depth[qi].saturating_sub(1);
        }
        self.committed_ns.remove(&row_id);
        Ok(())
    }

    fn dead_letter(&mut self, row_id: i64, error: &str) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO dlq (job_id, idem_key, quadrant, attempts, max_attempts, last_error, failed_at_ms, payload,
                                  effect_attempt, effect_at_ms)
                 SELECT job_id, idem_key, quadrant, attempts, max_attempts, ?1, ?2, payload, effect_attempt, effect_at_ms
                 FROM jobs WHERE id = ?3",
            )?
            .execute(params![error, now_ms(), row_id])?;
        self.delete_job(row_id)
    }

    fn wake_row(&mut self, row_id: i64, woken: &mut [bool; 4]) -> rusqlite::Result<()> {
        let q: Option<i64> =
            self.conn.query_row("SELECT quadrant FROM jobs WHERE id = ?1", [row_id], |r| r.get(0)).optional()?;
        if let Some(qi) = q.and_then(|q| usize::try_from(q).ok()).filter(|&q| q < 4) {
            woken[qi] = true;
        }
        Ok(())
    }

    /// Moves dead letters back with a fresh attempt count and without their effect-started
    /// record: a redrive is the operator's decision to run the command again.
    fn redrive(&mut self, id: Option<i64>, woken: &mut [bool; 4]) -> rusqlite::Result<u64> {
        let (now, now_ns) = (now_ms(), now_unix_ns() as i64);
        let moved: Vec<(i64, i64)> = {
            let mut stmt = self.conn.prepare_cached(
                "INSERT INTO jobs (job_id, idem_key, quadrant, state, due_at_ms, attempts, max_attempts, enqueued_ns, payload)
                 SELECT job_id, idem_key, quadrant, ?1, ?2, 0, max_attempts, ?3,
                        CASE WHEN json_valid(CAST(payload AS TEXT)) THEN
                          CAST(json_set(CAST(payload AS TEXT), '$.redrives',
                                        coalesce(json_extract(CAST(payload AS TEXT), '$.redrives'), 0) + 1) AS BLOB)
                        ELSE payload END
                 FROM dlq
                 WHERE (?4 IS NULL OR id = ?4) ORDER BY id
                 ON CONFLICT (idem_key) DO NOTHING
                 RETURNING id, quadrant",
            )?;
            let rows = stmt.query_map(params![READY, now, now_ns, id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        self.conn.execute("DELETE FROM dlq WHERE (?1 IS NULL OR id = ?1)", params![id])?;
        for (_, qi) in &moved {
            if let Some(qi) = usize::try_from(*qi).ok().filter(|&q| q < 4) {
                self.depth[qi] += 1;
                woken[qi] = true;
            }
        }
        Ok(moved.len() as u64)
    }

    fn maintain(&mut self, woken: &mut [bool; 4]) -> rusqlite::Result<()> {
        let now = now_ms();
        // Expired leases whose attempts are used up go to the DLQ; the others become ready.
        let exhausted: Vec<i64> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id FROM jobs WHERE state = ?1 AND lease_until_ms < ?2 AND attempts >= max_attempts",
            )?;
            let rows = stmt.query_map(params![LEASED, now], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for row_id in exhausted {
            self.dead_letter(row_id, "lease expired: the worker did not finish the job in time")?;
        }
        let requeued: Vec<i64> = {
            let mut stmt = self.conn.prepare_cached(
                "UPDATE jobs SET state = ?1, lease_until_ms = NULL, due_at_ms = ?2,
                        last_error = 'lease expired: the worker did not finish the job in time'
                 WHERE state = ?3 AND lease_until_ms < ?2 RETURNING quadrant",
            )?;
            let rows = stmt.query_map(params![READY, now, LEASED], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for qi in requeued {
            if let Some(qi) = usize::try_from(qi).ok().filter(|&q| q < 4) {
                woken[qi] = true;
            }
        }
        // Retries whose backoff ended: wake their quadrant so they do not wait for a poll.
        let due: Vec<i64> = {
            let mut stmt =
                self.conn.prepare_cached("SELECT DISTINCT quadrant FROM jobs WHERE state = ?1 AND due_at_ms <= ?2")?;
            let rows = stmt.query_map(params![READY, now], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for qi in due {
            if let Some(qi) = usize::try_from(qi).ok().filter(|&q| q < 4) {
                woken[qi] = true;
            }
        }
        self.conn
            .prepare_cached("DELETE FROM done WHERE completed_ms < ?1")?
            .execute([now - self.done_retention_ms])?;
        approvals::prune(&self.conn, now.saturating_sub(self.approval_retention_ms))?;
        audit::prune(&self.conn, now.saturating_sub(self.audit_retention_ms))?;
        if self.last_scrub.is_none_or(|at| at.elapsed() >= SCRUB_EVERY) {
            let n = scrub_expired_response_urls(&self.conn, now_unix_ns())?;
            if n > 0 {
                tracing::info!(dead_letters = n, "removed expired response_urls from dead letters");
            }
            self.last_scrub = Some(std::time::Instant::now());
        }
        self.resync_depth()?;
        // Stamps of rows another process removed (dlq purge, redrive) would otherwise leak.
        if self.committed_ns.len() as u64 > self.depth.iter().sum::<u64>() {
            let live: std::collections::HashSet<i64> = {
                let mut stmt = self.conn.prepare_cached("SELECT id FROM jobs")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            self.committed_ns.retain(|id, _| live.contains(id));
        }
        Ok(())
    }
}

/// An operation with a deadline whose caller stopped waiting, or will have by now.
fn too_late<T>(reply: &Reply<T>, deadline: std::time::Instant) -> bool {
    reply.is_closed() || std::time::Instant::now() >= deadline
}

fn fail_done(done: Done, message: &str) {
    let err = || QueueError::Storage(message.into());
    match done {
        Done::Requested(r, ..) => drop(r.send(Err(err()))),
        Done::Voted(r, _) => drop(r.send(Err(err()))),
        Done::Swept(r, _) => drop(r.send(Err(err()))),
        Done::Enqueue(r, _) => drop(r.send(Err(err()))),
        Done::Claim(r, _) => drop(r.send(Err(err()))),
        Done::Unit(r, _) => drop(r.send(Err(err()))),
        Done::Fail(r, _) => drop(r.send(Err(err()))),
        Done::Count(r, _) => drop(r.send(Err(err()))),
        Done::Nothing => {}
    }
}

fn fail_op(op: Op, message: &str) {
    let err = || QueueError::Storage(message.into());
    match op {
        Op::Enqueue { reply, .. } => drop(reply.send(Err(err()))),
        Op::Claim { reply, .. } => drop(reply.send(Err(err()))),
        Op::Extend { reply, .. } | Op::Release { reply, .. } | Op::MarkEffect { reply, .. } | Op::Ping { reply } => {
            drop(reply.send(Err(err())))
        }
        Op::Complete { reply, .. } => drop(reply.send(Err(err()))),
        Op::Fail { reply, .. } => drop(reply.send(Err(err()))),
        Op::Redrive { reply, .. } | Op::Purge { reply } => drop(reply.send(Err(err()))),
        Op::RequestApproval { reply, .. } => drop(reply.send(Err(err()))),
        Op::Vote { reply, .. } => drop(reply.send(Err(err()))),
        Op::SweepApprovals { reply, .. } => drop(reply.send(Err(err()))),
        Op::AuditWrite { reply, .. } => drop(reply.send(Err(err()))),
        Op::Maintain => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synchronous(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
    }

    /// `mark_effect_started` promises a record as durable as an enqueue: under
    /// `durability = full` its batch commits with `synchronous=FULL` (2), while a batch of
    /// leases only does NORMAL (1).
    #[test]
    fn an_effect_record_is_fsynced_like_new_work() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_connection(&dir.path().join("queue.db"), Durability::Full).unwrap();
        create_schema(&conn).unwrap();
        let ready: Arc<[Notify; 4]> = Arc::new(std::array::from_fn(|_| Notify::new()));
        let mut settings = SqliteSettings::new(dir.path().join("queue.db"));
        settings.max_depth = 10;
        let mut writer = Writer::new(conn, &settings, ready).unwrap();
        let claim = || Op::Claim {
            quadrant: Quadrant::LongWrite,
            max: 1,
            lease_ms: 0,
            wait: false,
            reply: oneshot::channel().0,
        };
        writer.choose_sync(&[claim()]).unwrap();
        assert_eq!(synchronous(&writer.conn), 1, "leases alone are not fsynced");
        let mark = Op::MarkEffect { row_id: 1, attempt: 1, at_ms: 0, reply: oneshot::channel().0 };
        writer.choose_sync(&[claim(), mark]).unwrap();
        assert_eq!(synchronous(&writer.conn), 2, "a batch with an effect record is fsynced");
    }

    /// A vote, an approval request and a sweep are promised as durable as an enqueue: each
    /// makes its batch commit with `synchronous=FULL`. An audit record rides on the ordering
    /// of the WAL instead (see the module docs): its batch is not fsynced by itself.
    #[test]
    fn approvals_and_audit_records_are_fsynced_like_new_work() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_connection(&dir.path().join("queue.db"), Durability::Full).unwrap();
        create_schema(&conn).unwrap();
        let ready: Arc<[Notify; 4]> = Arc::new(std::array::from_fn(|_| Notify::new()));
        let mut writer = Writer::new(conn, &SqliteSettings::new(dir.path().join("queue.db")), ready).unwrap();
        let claim = || Op::Claim {
            quadrant: Quadrant::LongWrite,
            max: 1,
            lease_ms: 0,
            wait: false,
            reply: oneshot::channel().0,
        };
        let vote = crate::approvals::Vote { user_id: "U1".into(), approve: true, at_ms: 0, response_url: None };
        let durable_ops = [
            Op::Vote { id: "a".into(), vote, reply: oneshot::channel().0 },
            Op::RequestApproval {
                id: "a".into(),
                key: "k".into(),
                expires_ms: 0,
                request: Vec::new(),
                deadline: std::time::Instant::now(),
                reply: oneshot::channel().0,
            },
            Op::SweepApprovals { now_ms: 0, reply: oneshot::channel().0 },
        ];
        for op in durable_ops {
            writer.choose_sync(&[claim()]).unwrap();
            assert_eq!(synchronous(&writer.conn), 1);
            writer.choose_sync(&[claim(), op]).unwrap();
            assert_eq!(synchronous(&writer.conn), 2, "fsynced under durability = full");
        }
        writer.choose_sync(&[claim()]).unwrap();
        let audit = Op::AuditWrite { row: audit::AuditRow::for_test("r"), reply: oneshot::channel().0 };
        writer.choose_sync(&[claim(), audit]).unwrap();
        assert_eq!(synchronous(&writer.conn), 1, "an audit record is not fsynced by itself");
    }

    fn test_writer(dir: &std::path::Path) -> Writer {
        let conn = super::super::open_connection(&dir.join("queue.db"), Durability::Full).unwrap();
        create_schema(&conn).unwrap();
        let ready: Arc<[Notify; 4]> = Arc::new(std::array::from_fn(|_| Notify::new()));
        Writer::new(conn, &SqliteSettings::new(dir.join("queue.db")), ready).unwrap()
    }

    fn enqueue_op(key: &str) -> (Op, oneshot::Receiver<Result<Enqueued, QueueError>>) {
        let (reply, rx) = oneshot::channel();
        let op = Op::Enqueue {
            job_id: format!("job-{key}"),
            key: key.into(),
            quadrant: Quadrant::ShortRead,
            max_attempts: 3,
            payload: b"{}".to_vec(),
            deadline: std::time::Instant::now() + std::time::Duration::from_secs(60),
            reply,
        };
        (op, rx)
    }

    fn row_state(w: &Writer, key: &str) -> (i64, i64) {
        w.conn
            .query_row("SELECT state, attempts FROM jobs WHERE idem_key = ?1", [key], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
    }

    /// A parked claim is served in the batch that stores the job: one commit stores and
    /// leases it.
    #[test]
    fn a_parked_claim_leases_a_new_job_in_the_same_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = test_writer(dir.path());
        let (claim_reply, mut claimed) = oneshot::channel();
        let park =
            Op::Claim { quadrant: Quadrant::ShortRead, max: 4, lease_ms: 30_000, wait: true, reply: claim_reply };
        writer.run_batch(&mut vec![park]);
        assert!(claimed.try_recv().is_err(), "nothing to lease yet: the claim waits");
        let (enqueue, mut stored) = enqueue_op("k1");
        writer.run_batch(&mut vec![enqueue]);
        assert!(matches!(stored.try_recv(), Ok(Ok(Enqueued::Stored { .. }))));
        let rows = claimed.try_recv().expect("answered with the commit").unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(row_state(&writer, "k1"), (LEASED, 1));
    }

    /// Jobs leased for a caller that left before the answer (its wait timed out just then)
    /// are put back at once, without using an attempt.
    #[test]
    fn jobs_leased_for_a_caller_that_left_are_released() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = test_writer(dir.path());
        let (enqueue, _stored) = enqueue_op("k2");
        let (claim_reply, gone) = oneshot::channel();
        drop(gone);
        let claim =
            Op::Claim { quadrant: Quadrant::ShortRead, max: 4, lease_ms: 30_000, wait: false, reply: claim_reply };
        writer.run_batch(&mut vec![enqueue, claim]);
        assert_eq!(row_state(&writer, "k2"), (READY, 0));
    }

    /// A dead letter whose payload is not JSON (why it was dead-lettered) must not make the
    /// response_url scrub fail: the scrub runs in the writer's batch, and an error there fails
    /// every operation of the batch (seen as a flaky dequeue in CI).
    #[test]
    fn the_response_url_scrub_skips_a_corrupt_dead_letter() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_connection(&dir.path().join("queue.db"), Durability::Full).unwrap();
        create_schema(&conn).unwrap();
        conn.execute(
            "INSERT INTO dlq (job_id, idem_key, quadrant, attempts, max_attempts, last_error, failed_at_ms, payload)
             VALUES ('j', 'k', 0, 1, 3, 'corrupt', 0, x'7b6e6f74206a736f6e')",
            [],
        )
        .unwrap();
        assert_eq!(scrub_expired_response_urls(&conn, u64::MAX).unwrap(), 0);
    }
}
