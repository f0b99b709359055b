//! The audit trail on each engine: a record round-trips whole, a second write replaces it,
//! the filters narrow and order as documented, retention removes old records, and hostile
//! ids and damaged rows break nothing.

use std::time::Duration;

use chatops_queue::audit::{AuditFilter, AuditRecord, AuditVote};

use crate::approvals::now_ms;
use crate::fixture::{Engine, Kind, Tuning};

fn record(id: &str, received_ms: i64, user: &str, command: &str) -> AuditRecord {
    AuditRecord {
        id: id.into(),
        received_ms,
        recorded_ms: received_ms + 1_500,
        team_id: "T1".into(),
        enterprise_id: None,
        channel_id: "C1".into(),
        user_id: user.into(),
        user_name: format!("name-of-{user}"),
        command: command.into(),
        args: vec![("env".into(), "prod".into()), ("token".into(), "[redacted]".into())],
        correlation_id: format!("corr-{id}"),
        decision: "allowed".into(),
        refused_by: None,
        approvals: vec![AuditVote { user_id: "U9".into(), approve: true, at_ms: received_ms + 1_000 }],
        outcome: "completed".into(),
        error: None,
        duration_ms: Some(1_234.5),
        attempts: 1,
    }
}

fn ids(records: &[AuditRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

async fn a_record_round_trips_whole(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let t = now_ms() - 60_000;
    let mut refused = record("k2", t + 20, "U2", "/deploy");
    refused.decision = "refused".into();
    refused.refused_by = Some("channels".into());
    refused.outcome = "refused".into();
    refused.approvals.clear();
    refused.duration_ms = None;
    refused.attempts = 0;
    refused.enterprise_id = Some("E1".into());
    let written = [record("k3", t + 30, "U1", "/status"), refused, record("k1", t + 10, "U1", "/deploy")];
    for r in &written {
        opened.audit.audit_write(r).await.unwrap();
    }
    let listed = opened.audit.audit_list(&AuditFilter::default()).await.unwrap();
    assert_eq!(ids(&listed), ["k1", "k2", "k3"], "oldest first by receivedMs");
    for r in &written {
        assert_eq!(listed.iter().find(|l| l.id == r.id), Some(r), "{} round-trips whole", r.id);
    }
    // Durable: a restart still lists them.
    let opened = engine.reopen(opened).await;
    assert_eq!(ids(&opened.audit.audit_list(&AuditFilter::default()).await.unwrap()), ["k1", "k2", "k3"]);
}

async fn writing_a_record_again_replaces_it(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let t = now_ms();
    let mut first = record("k-replace", t, "U1", "/deploy");
    first.outcome = "interrupted".into();
    first.error = Some("the worker stopped".into());
    opened.audit.audit_write(&first).await.unwrap();
    opened.audit.audit_write(&record("k-other", t + 1, "U1", "/deploy")).await.unwrap();
    let mut last = record("k-replace", t, "U1", "/deploy");
    last.attempts = 2;
    opened.audit.audit_write(&last).await.unwrap();
    let listed = opened.audit.audit_list(&AuditFilter::default()).await.unwrap();
    assert_eq!(ids(&listed), ["k-replace", "k-other"]);
    assert_eq!(listed[0], last, "one record per id, the last one written");
}

async fn filters_narrow_and_the_limit_keeps_the_most_recent(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let t = now_ms() - 10 * 60_000;
    let rows = [
        ("a", 0, "U1", "/deploy"),
        ("b", 1_000, "U2", "/deploy"),
        ("c", 2_000, "U1", "/status"),
        ("d", 3_000, "U1", "/deploy"),
        ("e", 4_000, "U2", "/status"),
        ("f", 5_000, "U1", "/deploy"),
    ];
    // Written newest first: the order of writes is not the order of a listing.
    for (id, offset, user, command) in rows.iter().rev() {
        opened.audit.audit_write(&record(id, t + offset, user, command)).await.unwrap();
    }
    let list = |filter: AuditFilter| {
        let audit = opened.audit.clone();
        async move { audit.audit_list(&filter).await.unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>() }
    };
    assert_eq!(list(AuditFilter { since_ms: Some(t + 3_000), ..Default::default() }).await, ["d", "e", "f"]);
    assert_eq!(list(AuditFilter { user_id: Some("U2".into()), ..Default::default() }).await, ["b", "e"]);
    assert_eq!(list(AuditFilter { command: Some("/status".into()), ..Default::default() }).await, ["c", "e"]);
    assert_eq!(list(AuditFilter { limit: Some(2), ..Default::default() }).await, ["e", "f"], "the 2 most recent");
    assert_eq!(
        list(AuditFilter {
            since_ms: Some(t + 500),
            user_id: Some("U1".into()),
            command: Some("/deploy".into()),
            limit: Some(1),
        })
        .await,
        ["f"]
    );
    assert_eq!(
        list(AuditFilter { user_id: Some("U1".into()), command: Some("/deploy".into()), ..Default::default() }).await,
        ["a", "d", "f"]
    );
    assert!(list(AuditFilter { limit: Some(0), ..Default::default() }).await.is_empty());
    assert!(list(AuditFilter { since_ms: Some(now_ms() + 60_000), ..Default::default() }).await.is_empty());
    assert!(list(AuditFilter { user_id: Some("U1' OR '1'='1".into()), ..Default::default() }).await.is_empty());
    assert!(list(AuditFilter { command: Some("%".into()), ..Default::default() }).await.is_empty());
}

async fn records_older_than_the_retention_are_removed(kind: Kind) {
    let retention = Duration::from_secs(2);
    let engine = Engine::start_with(kind, Tuning { audit_retention: Some(retention), ..Default::default() });
    let opened = engine.open().await;
    opened.audit.audit_write(&record("old", now_ms() - 3_600_000, "U1", "/deploy")).await.unwrap();
    let gone = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let listed = opened.audit.audit_list(&AuditFilter::default()).await.unwrap();
            if listed.iter().all(|r| r.id != "old") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "a record past the retention is pruned");
    opened.audit.audit_write(&record("new", now_ms(), "U1", "/deploy")).await.unwrap();
    assert_eq!(ids(&opened.audit.audit_list(&AuditFilter::default()).await.unwrap()), ["new"]);
}

async fn hostile_ids_and_large_records_round_trip(kind: Kind) {
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let t = now_ms();
    let long_id = "x".repeat(chatops_queue::audit::MAX_ID_LEN);
    let odd_ids = ["a.b.c", "*", ">", "with space", "ünïcödé", "$KV.X.y", "../../etc", long_id.as_str()];
    for (i, id) in odd_ids.iter().enumerate() {
        opened.audit.audit_write(&record(id, t + i as i64, "U1", "/deploy")).await.unwrap();
    }
    let mut large = record("large", t + 100, "U1", "/deploy");
    large.args = vec![("text".into(), "y".repeat(200_000))];
    opened.audit.audit_write(&large).await.unwrap();
    let listed = opened.audit.audit_list(&AuditFilter::default()).await.unwrap();
    let mut want: Vec<&str> = odd_ids.to_vec();
    want.push("large");
    assert_eq!(ids(&listed), want);
    assert_eq!(listed.last(), Some(&large));
    for id in [String::new(), "z".repeat(chatops_queue::audit::MAX_ID_LEN + 1)] {
        let refused = opened.audit.audit_write(&record(&id, t, "U1", "/deploy")).await.unwrap_err();
        assert!(refused.to_string().contains("audit record id"), "{refused}");
    }
}

/// The worker's way of ending a job: the record and the completion in one step. Both are
/// stored; and when the record is refused, the job is not completed either.
async fn completing_with_the_audit_record_stores_both(kind: Kind) {
    use chatops_core::Quadrant;
    use chatops_queue::Enqueued;
    let engine = Engine::start(kind);
    let opened = engine.open().await;
    let lease = Duration::from_secs(30);
    let q = &opened.queue;
    q.enqueue(&crate::conformance::job("ran-1", Quadrant::ShortRead), crate::conformance::soon()).await.unwrap();
    let d = q.dequeue(Quadrant::ShortRead, 1, lease).await.unwrap().pop().unwrap();
    let r = record("ran-1", now_ms(), "U1", "/echo");
    q.complete_audited(&d, &r, &*opened.audit).await.unwrap();
    assert_eq!(opened.audit.audit_list(&AuditFilter::default()).await.unwrap(), [r]);
    let again = q.enqueue(&crate::conformance::job("ran-1", Quadrant::ShortRead), crate::conformance::soon()).await;
    assert!(matches!(again, Ok(Enqueued::Duplicate)), "completed: {again:?}");

    q.enqueue(&crate::conformance::job("ran-2", Quadrant::ShortRead), crate::conformance::soon()).await.unwrap();
    let d = q.dequeue(Quadrant::ShortRead, 1, lease).await.unwrap().pop().unwrap();
    let refused = record("", now_ms(), "U1", "/echo");
    q.complete_audited(&d, &refused, &*opened.audit).await.unwrap_err();
    assert_eq!(opened.audit.audit_list(&AuditFilter::default()).await.unwrap().len(), 1);
    q.release(&d).await.unwrap();
    let d = crate::conformance::next(q, Quadrant::ShortRead).await;
    assert_eq!(d.job.idempotency_key, "ran-2", "not completed with a refused record");
}

crate::on_each_engine!(
    completing_with_the_audit_record_stores_both,
    a_record_round_trips_whole,
    writing_a_record_again_replaces_it,
    filters_narrow_and_the_limit_keeps_the_most_recent,
    records_older_than_the_retention_are_removed,
    hostile_ids_and_large_records_round_trip,
);

/// A row whose JSON was damaged on disk is skipped, and the others are still listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_corrupt_audit_row_is_skipped() {
    let engine = Engine::start(Kind::Sqlite);
    let opened = engine.open().await;
    let t = now_ms();
    for (i, id) in ["k1", "k2", "k3"].into_iter().enumerate() {
        opened.audit.audit_write(&record(id, t + i as i64, "U1", "/deploy")).await.unwrap();
    }
    let conn = rusqlite::Connection::open(engine.sqlite_path().unwrap()).unwrap();
    conn.execute("UPDATE audit SET json = CAST('{\"id\": 1' AS BLOB) WHERE id = 'k2'", []).unwrap();
    let listed = opened.audit.audit_list(&AuditFilter::default()).await.unwrap();
    assert_eq!(ids(&listed), ["k1", "k3"]);
    let limited = opened.audit.audit_list(&AuditFilter { limit: Some(1), ..Default::default() }).await.unwrap();
    assert_eq!(ids(&limited), ["k3"]);
}

/// A message on the audit stream that is not a record (written by hand, or by a broken
/// writer) is skipped too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_corrupt_audit_message_is_skipped() {
    let engine = Engine::start(Kind::Nats);
    let opened = engine.open().await;
    let t = now_ms();
    opened.audit.audit_write(&record("k1", t, "U1", "/deploy")).await.unwrap();
    let client = async_nats::connect(engine.nats_url().unwrap()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.publish("chatops.audit.ff", "{\"response_url\": \"https://hooks.slack.com/leak\"".into())
        .await
        .unwrap()
        .await
        .unwrap();
    opened.audit.audit_write(&record("k3", t + 2, "U1", "/deploy")).await.unwrap();
    assert_eq!(ids(&opened.audit.audit_list(&AuditFilter::default()).await.unwrap()), ["k1", "k3"]);
}
