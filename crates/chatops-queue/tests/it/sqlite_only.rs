//! Behaviour specific to the embedded engine: the file survives the process, one owner at
//! a time, the depth limit, the done-record check against a real file.

use std::time::Duration;

use chatops_core::Quadrant;
use chatops_queue::sqlite::{Durability, OpenMode, SqliteQueue, SqliteSettings};
use chatops_queue::{Enqueued, Queue, QueueError, QueueErrorKind};

use crate::conformance::{job, soon};

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn jobs_survive_reopening_and_leases_are_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    {
        let q = SqliteQueue::open(SqliteSettings::new(&path), OpenMode::Owner).unwrap();
        q.enqueue(&job("waiting", Quadrant::ShortRead), soon()).await.unwrap();
        q.enqueue(&job("running", Quadrant::ShortRead), soon()).await.unwrap();
        let d = q.dequeue(Quadrant::ShortRead, 1, LEASE).await.unwrap();
        assert_eq!(d.len(), 1);
        // Dropped without complete: as if the process died mid-job.
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let q = SqliteQueue::open(SqliteSettings::new(&path), OpenMode::Owner).unwrap();
    let got = q.dequeue(Quadrant::ShortRead, 10, LEASE).await.unwrap();
    let mut keys: Vec<_> = got.iter().map(|d| d.job.idempotency_key.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["running", "waiting"], "a lease of a dead owner is handed back at once");
}

#[tokio::test]
async fn a_second_owner_is_refused_while_the_first_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let _first = SqliteQueue::open(SqliteSettings::new(&path), OpenMode::Owner).unwrap();
    let err = SqliteQueue::open(SqliteSettings::new(&path), OpenMode::Owner).unwrap_err();
    assert!(err.to_string().contains("in use by another chatops process"), "{err}");
    // An admin handle (chatops dlq) may open it at the same time.
    let admin = SqliteQueue::open(SqliteSettings::new(&path), OpenMode::Admin).unwrap();
    assert!(admin.dlq_list(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn enqueue_beyond_max_depth_is_refused_as_transient() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = SqliteSettings::new(dir.path().join("queue.db"));
    settings.max_depth = 2;
    let q = SqliteQueue::open(settings, OpenMode::Owner).unwrap();
    q.enqueue(&job("1", Quadrant::ShortRead), soon()).await.unwrap();
    q.enqueue(&job("2", Quadrant::ShortRead), soon()).await.unwrap();
    let err = q.enqueue(&job("3", Quadrant::ShortRead), soon()).await.unwrap_err();
    assert!(matches!(err, QueueError::Full { depth: 2, .. }), "{err}");
    assert_eq!(err.kind(), QueueErrorKind::Transient);
    // Other quadrants have their own limit.
    assert!(matches!(q.enqueue(&job("4", Quadrant::LongRead), soon()).await.unwrap(), Enqueued::Stored { .. }));
}

#[tokio::test]
async fn job_with_a_done_record_is_not_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let q = SqliteQueue::open(SqliteSettings::new(&path), OpenMode::Owner).unwrap();
    q.enqueue(&job("finished-elsewhere", Quadrant::ShortRead), soon()).await.unwrap();
    // As if an earlier delivery completed but its acknowledgement was lost.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    // Completed just now: a record from 1970 would be purged by the maintenance pass that
    // runs at open, and when that pass came after this insert the job was handed out.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    conn.execute("INSERT INTO done (idem_key, job_id, completed_ms) VALUES ('finished-elsewhere', 'x', ?1)", [now_ms])
        .unwrap();
    assert!(q.dequeue(Quadrant::ShortRead, 10, LEASE).await.unwrap().is_empty());
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.quadrant(Quadrant::ShortRead).ready + stats.quadrant(Quadrant::ShortRead).in_flight, 0);
}

#[tokio::test]
async fn corrupt_payload_goes_to_the_dead_letter_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let q = SqliteQueue::open(SqliteSettings::new(&path), OpenMode::Owner).unwrap();
    q.enqueue(&job("corrupt", Quadrant::ShortRead), soon()).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute("UPDATE jobs SET payload = x'7b6e6f74206a736f6e'", []).unwrap();
    assert!(q.dequeue(Quadrant::ShortRead, 10, LEASE).await.unwrap().is_empty());
    assert_eq!(q.stats().await.unwrap().dead_letters, 1);
}

#[tokio::test]
async fn normal_durability_opens_and_stores() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = SqliteSettings::new(dir.path().join("queue.db"));
    settings.durability = Durability::Normal;
    let q = SqliteQueue::open(settings, OpenMode::Owner).unwrap();
    assert!(matches!(q.enqueue(&job("n", Quadrant::ShortRead), soon()).await.unwrap(), Enqueued::Stored { .. }));
    q.ping().await.unwrap();
}

#[tokio::test]
async fn released_job_does_not_use_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(SqliteSettings::new(dir.path().join("queue.db")), OpenMode::Owner).unwrap();
    q.enqueue(&job("rel", Quadrant::LongWrite), soon()).await.unwrap();
    let d = q.dequeue(Quadrant::LongWrite, 1, LEASE).await.unwrap().pop().unwrap();
    q.release(&d).await.unwrap();
    let again = q.dequeue(Quadrant::LongWrite, 1, LEASE).await.unwrap().pop().unwrap();
    assert_eq!(again.attempt, 1);
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The files hold response_urls (bearer tokens): only the bot's user may read them.
#[tokio::test]
async fn a_fresh_data_directory_and_its_files_are_private() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let db = data.join("queue.db");
    let q = SqliteQueue::open(SqliteSettings::new(&db), OpenMode::Owner).unwrap();
    q.enqueue(&job("private", Quadrant::ShortRead), soon()).await.unwrap();
    assert_eq!(mode(&data), 0o700, "data directory");
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        assert!(path.exists(), "{} exists", path.display());
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}

/// A dead letter whose command is older than Slack's 30 minutes loses its response_url at
/// the next maintenance pass; a younger one keeps it; a scrubbed one can still be redriven.
#[tokio::test]
async fn expired_response_urls_are_scrubbed_from_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let now_ns = chatops_core::time::now_unix_ns();
    let mut old = job("old", Quadrant::ShortRead);
    old.router_received_ns = now_ns - Duration::from_secs(31 * 60).as_nanos() as u64;
    let mut fresh = job("fresh", Quadrant::ShortRead);
    fresh.router_received_ns = now_ns - Duration::from_secs(29 * 60).as_nanos() as u64;
    let mut settings = SqliteSettings::new(&path);
    settings.maintenance_interval = Duration::from_millis(50);
    {
        let q = SqliteQueue::open(settings.clone(), OpenMode::Owner).unwrap();
        q.enqueue(&old, soon()).await.unwrap();
        q.enqueue(&fresh, soon()).await.unwrap();
        for d in q.dequeue(Quadrant::ShortRead, 10, LEASE).await.unwrap() {
            q.fail(&d, "boom", None).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A restart's first maintenance pass scrubs (later ones every 30 s).
    let q = SqliteQueue::open(settings, OpenMode::Owner).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let letters = loop {
        let letters = q.dlq_list(10).await.unwrap();
        let scrubbed = letters.iter().any(|l| l.job.command.response_url.is_empty());
        if scrubbed || std::time::Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let by_key = |k: &str| letters.iter().find(|l| l.job.idempotency_key == k).unwrap().clone();
    let (old_letter, fresh_letter) = (by_key("old"), by_key("fresh"));
    assert_eq!(old_letter.job.command.response_url, "", "older than 30 min: scrubbed");
    assert_eq!(old_letter.job.command.text, "old", "the rest of the job is kept");
    assert_eq!(old_letter.job.correlation_id, old.correlation_id);
    assert_eq!(old_letter.last_error, "boom");
    assert_eq!(fresh_letter.job.command.response_url, fresh.command.response_url, "still usable: kept");

    assert_eq!(q.dlq_redrive(chatops_queue::Redrive::One(old_letter.id.clone())).await.unwrap(), 1);
    let again = q.dequeue(Quadrant::ShortRead, 10, LEASE).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].job.idempotency_key, "old");
    assert_eq!(again[0].job.command.response_url, "", "redriven without a response_url");
}
