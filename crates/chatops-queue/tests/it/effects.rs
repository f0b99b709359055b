//! Effect-started records across real crashes, an old queue file, an old NATS deployment,
//! and what one `mark_effect_started` costs on each engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatops_core::Quadrant;
use chatops_queue::nats::{ConsumerSettings, NatsQueue, NatsSettings};
use chatops_queue::sqlite::{OpenMode, SqliteQueue, SqliteSettings};
use chatops_queue::{Queue, QueueError, QueueErrorKind};
use chatops_testkit::NatsServer;

use crate::conformance::{job, next, soon};

const LEASE: Duration = Duration::from_secs(30);

/// The process dies (kill -9) after marking and before finishing: the handle is dropped
/// with the job leased; the next owner's `recover_leases` hands it back with the record.
#[tokio::test]
async fn sqlite_a_crash_after_marking_redelivers_with_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let marked_attempt = {
        let q = SqliteQueue::open(SqliteSettings::new(&path), OpenMode::Owner).unwrap();
        q.enqueue(&job("deploy", Quadrant::LongWrite), soon()).await.unwrap();
        q.enqueue(&job("untouched", Quadrant::LongWrite), soon()).await.unwrap();
        let d = q.dequeue(Quadrant::LongWrite, 1, LEASE).await.unwrap().pop().unwrap();
        assert_eq!(d.job.idempotency_key, "deploy");
        q.mark_effect_started(&d).await.unwrap();
        d.attempt
    };
    // The writer thread ends once its channel closes; give it a moment to release the file.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let q = SqliteQueue::open(SqliteSettings::new(&path), OpenMode::Owner).unwrap();
    let got = q.dequeue(Quadrant::LongWrite, 10, LEASE).await.unwrap();
    assert_eq!(got.len(), 2, "the leased job is back at once, next to the waiting one");
    let deploy = got.iter().find(|d| d.job.idempotency_key == "deploy").unwrap();
    assert_eq!(deploy.attempt, 2);
    assert_eq!(deploy.effect_started.map(|r| r.attempt), Some(marked_attempt));
    let untouched = got.iter().find(|d| d.job.idempotency_key == "untouched").unwrap();
    assert_eq!(untouched.effect_started, None);
}

/// A worker whose lease expired (the job went to another attempt) must not start the
/// effect: SQLite refuses the mark.
#[tokio::test]
async fn sqlite_a_mark_after_the_lease_was_lost_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = SqliteSettings::new(dir.path().join("queue.db"));
    settings.maintenance_interval = Duration::from_millis(50);
    let q: Arc<dyn Queue> = Arc::new(SqliteQueue::open(settings, OpenMode::Owner).unwrap());
    q.enqueue(&job("slow", Quadrant::LongWrite), soon()).await.unwrap();
    let stale = q.dequeue(Quadrant::LongWrite, 1, Duration::from_millis(100)).await.unwrap().pop().unwrap();
    let current = next(&q, Quadrant::LongWrite).await;
    assert_eq!(current.attempt, 2);
    let refused = q.mark_effect_started(&stale).await.unwrap_err();
    assert!(matches!(refused, QueueError::LeaseLost(_)), "{refused}");
    assert_eq!(refused.kind(), QueueErrorKind::Permanent);
    q.mark_effect_started(&current).await.unwrap();
    q.fail(&current, "retry", Some(Duration::ZERO)).await.unwrap();
    assert_eq!(next(&q, Quadrant::LongWrite).await.effect_started.map(|r| r.attempt), Some(2));
}

/// The schema of the release before effect records (copied from it): such a file opens,
/// its waiting job is delivered without a record, and it can be marked.
const OLD_SCHEMA: &str = "
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY, job_id TEXT NOT NULL, idem_key TEXT NOT NULL UNIQUE,
    quadrant INTEGER NOT NULL, state INTEGER NOT NULL, due_at_ms INTEGER NOT NULL,
    lease_until_ms INTEGER, attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL,
    last_error TEXT, enqueued_ns INTEGER NOT NULL, payload BLOB NOT NULL
);
CREATE INDEX jobs_ready ON jobs (quadrant, state, due_at_ms, id);
CREATE TABLE done (idem_key TEXT PRIMARY KEY, job_id TEXT NOT NULL, completed_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX done_age ON done (completed_ms);
CREATE TABLE dlq (
    id INTEGER PRIMARY KEY, job_id TEXT NOT NULL, idem_key TEXT NOT NULL, quadrant INTEGER NOT NULL,
    attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL, last_error TEXT NOT NULL,
    failed_at_ms INTEGER NOT NULL, payload BLOB NOT NULL
);
CREATE INDEX dlq_key ON dlq (idem_key);
";

#[tokio::test]
async fn sqlite_a_queue_file_of_the_previous_release_opens_and_takes_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(OLD_SCHEMA).unwrap();
        let payload = serde_json::to_vec(&job("old-waiting", Quadrant::LongWrite)).unwrap();
        conn.execute(
            "INSERT INTO jobs (job_id, idem_key, quadrant, state, due_at_ms, attempts, max_attempts, enqueued_ns, payload)
             VALUES ('job-old-waiting', 'old-waiting', 3, 0, 0, 0, 3, 1, ?1)",
            [&payload],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO dlq (job_id, idem_key, quadrant, attempts, max_attempts, last_error, failed_at_ms, payload)
             VALUES ('job-old-dead', 'old-dead', 3, 3, 3, 'boom', 0, ?1)",
            [&serde_json::to_vec(&job("old-dead", Quadrant::LongWrite)).unwrap()],
        )
        .unwrap();
    }
    // An admin handle first (`chatops dlq list` after an upgrade), then the owner.
    let admin = SqliteQueue::open(SqliteSettings::new(&path), OpenMode::Admin).unwrap();
    let letters = admin.dlq_list(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].effect_started, None);
    drop(admin);
    let q: Arc<dyn Queue> = Arc::new(SqliteQueue::open(SqliteSettings::new(&path), OpenMode::Owner).unwrap());
    let d = q.dequeue(Quadrant::LongWrite, 10, LEASE).await.unwrap().pop().expect("the old job is delivered");
    assert_eq!(d.job.idempotency_key, "old-waiting");
    assert_eq!(d.effect_started, None);
    q.mark_effect_started(&d).await.unwrap();
    q.release(&d).await.unwrap();
    assert_eq!(next(&q, Quadrant::LongWrite).await.effect_started.map(|r| r.attempt), Some(1));
    // Opening it again changes nothing (the columns exist now).
    drop(q);
    tokio::time::sleep(Duration::from_millis(100)).await;
    SqliteQueue::open(SqliteSettings::new(&path), OpenMode::Owner).unwrap();
}

fn nats_settings(server: &NatsServer) -> NatsSettings {
    let mut s = NatsSettings::new(vec![server.url()]);
    s.consumers = [ConsumerSettings { ack_wait: Duration::from_secs(1), max_deliver: 5 }; 4];
    s
}

/// The worker process dies after marking: its connection is gone, nothing was acked. A
/// new process connects and, after AckWait, gets the job with the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_crash_after_marking_redelivers_with_the_record() {
    let server = NatsServer::start();
    let settings = nats_settings(&server);
    let marked_attempt = {
        let q = NatsQueue::connect(&settings).await.unwrap();
        q.enqueue(&job("deploy", Quadrant::LongWrite), soon()).await.unwrap();
        let d = q.dequeue(Quadrant::LongWrite, 1, LEASE).await.unwrap().pop().unwrap();
        q.mark_effect_started(&d).await.unwrap();
        d.attempt
        // The delivery and the queue handle (its connections) are dropped here, unacked.
    };
    let q: Arc<dyn Queue> = Arc::new(NatsQueue::connect(&settings).await.unwrap());
    let again = next(&q, Quadrant::LongWrite).await;
    assert_eq!(again.job.idempotency_key, "deploy");
    assert_eq!(again.attempt, marked_attempt + 1);
    assert_eq!(again.effect_started.map(|r| r.attempt), Some(marked_attempt));
    q.complete(&again).await.unwrap();
}

/// A deployment set up by the previous release has a done stream without the `started`
/// subjects: connecting (setup) adds them, and marking works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_done_stream_of_the_previous_release_is_updated() {
    let server = NatsServer::start();
    let settings = nats_settings(&server);
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "CHATOPS_DONE".into(),
        subjects: vec!["chatops.done.>".into()],
        max_messages_per_subject: 1,
        max_age: settings.done_retention,
        ..Default::default()
    })
    .await
    .unwrap();
    let q: Arc<dyn Queue> = Arc::new(NatsQueue::connect(&settings).await.unwrap());
    q.enqueue(&job("upgraded", Quadrant::LongWrite), soon()).await.unwrap();
    let d = next(&q, Quadrant::LongWrite).await;
    q.mark_effect_started(&d).await.expect("the done stream now takes effect records");
    q.release(&d).await.unwrap();
    assert_eq!(next(&q, Quadrant::LongWrite).await.effect_started.map(|r| r.attempt), Some(1));
}

/// One mark per write-command attempt must be cheap: the latency of sequential marks,
/// next to an enqueue's (the other durable write of a command), on each engine. Printed for
/// the report; the bound only catches a mark that waits on something it should not.
async fn measure(engine: &str, q: Arc<dyn Queue>) {
    const N: usize = 50;
    let mut enqueue = Vec::with_capacity(N);
    for i in 0..N {
        let started = Instant::now();
        q.enqueue(&job(&format!("m{i}"), Quadrant::LongWrite), soon()).await.unwrap();
        enqueue.push(started.elapsed());
    }
    let deliveries = q.dequeue(Quadrant::LongWrite, N, LEASE).await.unwrap();
    assert!(!deliveries.is_empty());
    let mut marks = Vec::with_capacity(N);
    for i in 0..N {
        let started = Instant::now();
        q.mark_effect_started(&deliveries[i % deliveries.len()]).await.unwrap();
        marks.push(started.elapsed());
    }
    enqueue.sort();
    marks.sort();
    let pct = |v: &[Duration], p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
    eprintln!(
        "{engine}: mark_effect_started p50 {:?} p90 {:?} max {:?}; enqueue p50 {:?} p90 {:?} ({N} sequential calls each)",
        pct(&marks, 50),
        pct(&marks, 90),
        marks[N - 1],
        pct(&enqueue, 50),
        pct(&enqueue, 90),
    );
    assert!(pct(&marks, 50) < Duration::from_secs(1), "a mark takes {:?}", pct(&marks, 50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_latency_on_sqlite_with_full_durability() {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(SqliteSettings::new(dir.path().join("queue.db")), OpenMode::Owner).unwrap();
    measure("sqlite (durability = full)", Arc::new(q)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_latency_on_nats() {
    let server = NatsServer::start();
    let q = NatsQueue::connect(&nats_settings(&server)).await.unwrap();
    measure("nats", Arc::new(q)).await;
}
