//! The embedded engine: a single SQLite file in WAL mode, owned by one process.
//!
//! All writes go through one writer thread (`writer`) that batches whatever arrived while
//! the previous transaction was committing into the next transaction (group commit), so the
//! throughput is not one fsync per request. Reads (stats, DLQ listing) use a second
//! connection. The owning process holds an exclusive lock on `<db>.lock`; this is what makes
//! it safe to hand every leased job back to the queue at startup (its previous owner is
//! dead). Admin commands (`chatops dlq ...`) open the file without the lock and without
//! that recovery step.

mod approvals;
mod audit;
mod private_files;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chatops_core::{Job, Quadrant, time::now_unix_ns};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::audit::{AuditLog, AuditRecord};
use crate::{DeadLetter, Delivery, Enqueued, FailOutcome, Queue, QueueError, QueueStats, Receipt, Redrive};
use writer::{Claimed, Op, Writer};

/// How hard a commit works to survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL` for every commit that stores new work: an acknowledged command
    /// survives power loss. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: the WAL is fsynced only at checkpoints; survives a process
    /// crash (SIGKILL) but a power loss may lose the last commits.
    Normal,
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Durability::Full),
            "normal" => Ok(Durability::Normal),
            other => Err(format!("unknown durability `{other}` (expected full or normal)")),
        }
    }
}

/// Whether this handle owns the file (a running bot) or only administers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Takes the exclusive lock and recovers leases left by a crashed owner.
    Owner,
    /// No lock, no recovery: for `chatops dlq` while a bot may be running.
    Admin,
}

#[derive(Debug, Clone)]
pub struct SqliteSettings {
    pub path: PathBuf,
    pub durability: Durability,
    /// Enqueue answers `Full` beyond this many jobs in one quadrant.
    pub max_depth: u64,
    /// How long done-records are kept (they block re-runs and duplicate deliveries).
    pub done_retention: Duration,
    /// How long approval requests are kept after they were decided or expired (a click on
    /// an old approval message is then `Closed` rather than unknown).
    pub approval_retention: Duration,
    /// How long audit records are kept, counted from when the command was received.
    pub audit_retention: Duration,
    /// How often expired leases are reclaimed and old done-records, decided approvals and
    /// audit records pruned.
    pub maintenance_interval: Duration,
}

impl SqliteSettings {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteSettings {
            path: path.into(),
            durability: Durability::Full,
            max_depth: 100_000,
            done_retention: Duration::from_secs(24 * 3600),
            approval_retention: crate::approvals::DEFAULT_RETENTION,
            audit_retention: crate::audit::DEFAULT_RETENTION,
            maintenance_interval: Duration::from_secs(1),
        }
    }
}

/// Most operations one transaction takes; more wait for the next one.
const MAX_BATCH: usize = 1024;
/// Operations that may wait for the writer before callers feel back-pressure.
const CHANNEL_CAPACITY: usize = 16 * 1024;

/// The embedded SQLite queue. Cheap to clone-by-`Arc`; the writer thread stops when the last
/// handle is dropped.
pub struct SqliteQueue {
    ops: mpsc::Sender<Op>,
    reader: Arc<Mutex<Connection>>,
    ready: Arc<[Notify; 4]>,
    path: PathBuf,
    _lock: Option<File>,
    maintenance: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for SqliteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteQueue").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Drop for SqliteQueue {
    fn drop(&mut self) {
        if let Some(task) = self.maintenance.take() {
            task.abort();
        }
    }
}

/// The writer drops a reply only when the transaction failed part-way through it.
fn transaction_failed() -> QueueError {
    QueueError::Storage("queue transaction failed; nothing in it was stored".into())
}

fn storage(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> QueueError {
    // The engine's own message says what failed; there is no context to add.
    QueueError::storage(String::new(), e)
}

/// The page cache of each connection, in KiB (SQLite's default is 2 MiB).
const CACHE_KIB: i64 = 64 * 1024;

pub(crate) fn open_connection(path: &Path, durability: Durability) -> Result<Connection, QueueError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| QueueError::unavailable(format!("opening {}", path.display()), e))?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(storage)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(storage)?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync).map_err(storage)?;
    // The done, audit and idempotency indexes take keys in random order, so each command
    // touches pages all over the file. With SQLite's default 2 MiB cache most of those were
    // evicted and fetched again in every transaction (a tenth of the writer's CPU in the page
    // cache, more in page faults). The cache only grows as far as pages are used.
    conn.pragma_update(None, "cache_size", -CACHE_KIB).map_err(storage)?;
    // Every statement the writer runs stays prepared; re-parsing SQL was a tenth of its CPU.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteQueue {
    /// Opens (creating if needed) the queue file. Must be called inside a tokio runtime.
    pub fn open(settings: SqliteSettings, mode: OpenMode) -> Result<SqliteQueue, QueueError> {
        if let Some(dir) = settings.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_files::ensure_private_dir(dir)?;
        }
        // Before SQLite creates anything: it gives the WAL and SHM files the db file's mode.
        private_files::ensure_private_file(&settings.path)?;
        for suffix in ["-wal", "-shm"] {
            private_files::tighten(&private_files::sibling(&settings.path, suffix))?;
        }
        let lock = match mode {
            OpenMode::Owner => Some(lock_exclusively(&settings.path)?),
            OpenMode::Admin => None,
        };
        let conn = open_connection(&settings.path, settings.durability)?;
        writer::create_schema(&conn).map_err(storage)?;
        if mode == OpenMode::Owner {
            let n = writer::recover_leases(&conn).map_err(storage)?;
            if n > 0 {
                tracing::info!(jobs = n, "returned jobs leased by a previous run to the queue");
            }
        }
        let reader = open_connection(&settings.path, settings.durability)?;
        let ready: Arc<[Notify; 4]> = Arc::new(std::array::from_fn(|_| Notify::new()));
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let writer = Writer::new(conn, &settings, ready.clone()).map_err(storage)?;
        std::thread::Builder::new()
            .name("chatops-sqlite-writer".into())
            .spawn(move || writer.run(rx, MAX_BATCH))
            .map_err(|e| QueueError::unavailable("starting writer thread", e))?;
        let maintenance = (mode == OpenMode::Owner).then(|| {
            let ops = tx.clone();
            let every = settings.maintenance_interval;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if ops.send(Op::Maintain).await.is_err() {
                        break;
                    }
                }
            })
        });
        Ok(SqliteQueue {
            ops: tx,
            reader: Arc::new(Mutex::new(reader)),
            ready,
            path: settings.path,
            _lock: lock,
            maintenance,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T, QueueError>>) -> Op) -> Result<T, QueueError> {
        let (tx, rx) = oneshot::channel();
        self.ops.send(make(tx)).await.map_err(|_| QueueError::Closed)?;
        rx.await.map_err(|_| transaction_failed())?
    }

    /// [`SqliteQueue::call`] for an operation that stores something under a deadline
    /// (an enqueue, an approval request): it answers by the deadline, and
    /// [`QueueError::NotStoredInTime`] then means not stored. The operation must carry the
    /// deadline to the writer, which skips it when it comes too late and undoes its commit
    /// when nobody could be told (see `Writer::run_batch`).
    async fn call_by<T>(
        &self,
        deadline: tokio::time::Instant,
        make: impl FnOnce(oneshot::Sender<Result<T, QueueError>>) -> Op,
    ) -> Result<T, QueueError> {
        if tokio::time::Instant::now() >= deadline {
            return Err(QueueError::NotStoredInTime);
        }
        let (reply, mut rx) = oneshot::channel();
        // A send that cannot get into the channel in time never reaches the writer.
        match tokio::time::timeout_at(deadline, self.ops.send(make(reply))).await {
            Err(_) => return Err(QueueError::NotStoredInTime),
            Ok(Err(_)) => return Err(QueueError::Closed),
            Ok(Ok(())) => {}
        }
        tokio::select! {
            biased;
            answer = &mut rx => answer.unwrap_or_else(|_| Err(transaction_failed())),
            () = tokio::time::sleep_until(deadline) => {
                // After `close` the writer can no longer deliver a reply: either it already
                // did (it is stored, and we say so), or it will find the receiver closed
                // and skip the operation, or undo it if it was committing it just now.
                rx.close();
                match rx.try_recv() {
                    Ok(answer) => answer,
                    Err(_) => Err(QueueError::NotStoredInTime),
                }
            }
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, QueueError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&conn).map_err(storage)
        })
        .await
        .map_err(|e| QueueError::storage("reader task failed", e))?
    }
}

impl SqliteQueue {
    /// Claimed rows as deliveries; a row whose payload cannot be read is dead-lettered.
    async fn deliveries(&self, claimed: Vec<Claimed>) -> Result<Vec<Delivery>, QueueError> {
        let dequeued_ns = now_unix_ns();
        let mut out = Vec::with_capacity(claimed.len());
        for c in claimed {
            let delivery_receipt = Receipt::Sqlite { row_id: c.row_id, attempt: c.attempt };
            match decode(&c.payload) {
                Ok(job) => out.push(Delivery {
                    job,
                    attempt: c.attempt,
                    enqueued_ns: c.enqueued_ns,
                    dequeued_ns,
                    effect_started: c.effect_started,
                    receipt: delivery_receipt,
                }),
                Err(e) => {
                    // A row we cannot read can never succeed: park it in the DLQ for a human.
                    tracing::error!(row_id = c.row_id, error.message = %e, "dead-lettering a corrupt job");
                    let (row_id, attempt) = (c.row_id, c.attempt);
                    let error = e.to_string();
                    self.call(|reply| Op::Fail { row_id, attempt, error, retry_at_ms: None, reply }).await?;
                }
            }
        }
        Ok(out)
    }
}

/// Takes an exclusive advisory lock on `<db>.lock`, failing fast if another process has it.
fn lock_exclusively(db: &Path) -> Result<File, QueueError> {
    use std::os::unix::fs::OpenOptionsExt;
    let lock_path = private_files::sibling(db, ".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(private_files::FILE_MODE)
        .open(&lock_path)
        .map_err(|e| QueueError::unavailable(format!("opening {}", lock_path.display()), e))?;
    private_files::tighten(&lock_path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(QueueError::Unavailable(
            format!("{} is in use by another chatops process (lock {} is held)", db.display(), lock_path.display())
                .into(),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(QueueError::unavailable(format!("locking {}", db.display()), e)),
    }
}

fn now_ms() -> i64 {
    (now_unix_ns() / 1_000_000) as i64
}

fn receipt(d: &Delivery) -> (i64, u32) {
    match d.receipt {
        Receipt::Sqlite { row_id, attempt } => (row_id, attempt),
        Receipt::Nats(_) => unreachable!("a SQLite queue only hands out SQLite deliveries"),
    }
}

fn decode(payload: &[u8]) -> Result<Job, QueueError> {
    serde_json::from_slice(payload).map_err(QueueError::corrupt)
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn enqueue(&self, job: &Job, deadline: tokio::time::Instant) -> Result<Enqueued, QueueError> {
        if tokio::time::Instant::now() >= deadline {
            return Err(QueueError::NotStoredInTime);
        }
        let payload = serde_json::to_vec(job).map_err(QueueError::corrupt)?;
        let job_id = job.job_id.clone();
        let key = job.idempotency_key.clone();
        let quadrant = job.quadrant;
        let max_attempts = job.max_attempts;
        let std_deadline = deadline.into_std();
        self.call_by(deadline, |reply| Op::Enqueue {
            job_id,
            key,
            quadrant,
            max_attempts,
            payload,
            deadline: std_deadline,
            reply,
        })
        .await
    }

    async fn dequeue(&self, quadrant: Quadrant, max: usize, lease: Duration) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let lease_ms = lease.as_millis() as i64;
        let claimed = self.call(|reply| Op::Claim { quadrant, max, lease_ms, wait: false, reply }).await?;
        self.deliveries(claimed).await
    }

    async fn dequeue_waiting(
        &self,
        quadrant: Quadrant,
        max: usize,
        lease: Duration,
        timeout: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let lease_ms = lease.as_millis() as i64;
        let (reply, mut rx) = oneshot::channel();
        self.ops
            .send(Op::Claim { quadrant, max, lease_ms, wait: true, reply })
            .await
            .map_err(|_| QueueError::Closed)?;
        let claimed = match tokio::time::timeout(timeout, &mut rx).await {
            Ok(answer) => answer.unwrap_or_else(|_| Err(transaction_failed()))?,
            Err(_) => {
                // After `close` the writer can no longer hand us jobs: either it already did
                // (take them), or it finds the claim closed and leases nothing, or it puts
                // back what it had leased for us.
                rx.close();
                match rx.try_recv() {
                    Ok(answer) => answer?,
                    Err(_) => return Ok(Vec::new()),
                }
            }
        };
        self.deliveries(claimed).await
    }

    async fn wait_for_jobs(&self, quadrant: Quadrant, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.ready[quadrant.index()].notified()).await;
    }

    async fn extend_lease(&self, delivery: &Delivery, lease: Duration) -> Result<(), QueueError> {
        let (row_id, attempt) = receipt(delivery);
        let lease_until_ms = now_ms() + lease.as_millis() as i64;
        self.call(|reply| Op::Extend { row_id, attempt, lease_until_ms, reply }).await
    }

    async fn complete(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let (row_id, _) = receipt(delivery);
        let key = delivery.job.idempotency_key.clone();
        let job_id = delivery.job.job_id.clone();
        self.call(|reply| Op::Complete { row_id, key, job_id, audit: None, reply }).await
    }

    async fn complete_audited(
        &self,
        delivery: &Delivery,
        record: &AuditRecord,
        audit: &dyn AuditLog,
    ) -> Result<(), QueueError> {
        if !std::ptr::addr_eq(audit as *const dyn AuditLog, self as *const Self) {
            // Another store keeps the trail: one after the other, as by default.
            audit.audit_write(record).await?;
            return self.complete(delivery).await;
        }
        // This queue is the audit log too (one file): both go into one transaction.
        let (row_id, _) = receipt(delivery);
        let key = delivery.job.idempotency_key.clone();
        let job_id = delivery.job.job_id.clone();
        let audit = Some(Box::new(audit::AuditRow::of(record)?));
        self.call(|reply| Op::Complete { row_id, key, job_id, audit, reply }).await
    }

    async fn fail(
        &self,
        delivery: &Delivery,
        error: &str,
        retry_in: Option<Duration>,
    ) -> Result<FailOutcome, QueueError> {
        let (row_id, attempt) = receipt(delivery);
        let retry_at_ms = retry_in.map(|d| now_ms() + d.as_millis() as i64);
        let error = error.to_owned();
        self.call(|reply| Op::Fail { row_id, attempt, error, retry_at_ms, reply }).await
    }

    async fn release(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let (row_id, attempt) = receipt(delivery);
        self.call(|reply| Op::Release { row_id, attempt, reply }).await
    }

    async fn mark_effect_started(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let (row_id, attempt) = receipt(delivery);
        let at_ms = now_ms();
        self.call(|reply| Op::MarkEffect { row_id, attempt, at_ms, reply }).await
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        self.read(writer::read_stats).await
    }

    async fn ping(&self) -> Result<(), QueueError> {
        self.call(|reply| Op::Ping { reply }).await
    }

    async fn dlq_list(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let rows = self.read(move |conn| writer::read_dead_letters(conn, limit)).await?;
        rows.into_iter()
            .map(|(id, payload, attempts, last_error, failed_at_ms, effect_started)| {
                Ok(DeadLetter {
                    id: id.to_string(),
                    job: decode(&payload)?,
                    attempts,
                    last_error,
                    failed_at_ms,
                    effect_started,
                })
            })
            .collect()
    }

    async fn dlq_redrive(&self, which: Redrive) -> Result<u64, QueueError> {
        let id = match which {
            Redrive::All => None,
            Redrive::One(id) => Some(id.parse::<i64>().map_err(|_| QueueError::NotFound(id.clone()))?),
        };
        let n = self.call(|reply| Op::Redrive { id, reply }).await?;
        if let (Some(id), 0) = (id, n) {
            return Err(QueueError::NotFound(id.to_string()));
        }
        Ok(n)
    }

    async fn dlq_purge(&self) -> Result<u64, QueueError> {
        self.call(|reply| Op::Purge { reply }).await
    }
}
