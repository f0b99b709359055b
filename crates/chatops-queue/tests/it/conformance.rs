//! Behaviour every engine must have. Each test body is written once as a function taking
//! the queue; `conformance!` runs it per engine.

use std::sync::Arc;
use std::time::Duration;

use chatops_core::{CorrelationId, Job, Quadrant, SlashCommand};
use chatops_queue::{Delivery, Enqueued, FailOutcome, Queue, QueueError, QueueErrorKind, Redrive};

pub(crate) fn job(key: &str, quadrant: Quadrant) -> Job {
    Job {
        job_id: format!("job-{key}"),
        correlation_id: CorrelationId::generate(),
        idempotency_key: key.to_owned(),
        quadrant,
        command: SlashCommand {
            command: "/echo".into(),
            text: key.into(),
            response_url: "https://hooks.slack.com/commands/T1/2/secret".into(),
            ..Default::default()
        },
        max_attempts: 3,
        router_received_ns: 1,
        enqueue_started_ns: 2,
        traceparent: None,
        redrives: 0,
        args: Default::default(),
        approval: None,
    }
}

/// A deadline no healthy engine misses: for tests about something else.
pub(crate) fn soon() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(20)
}

const LEASE: Duration = Duration::from_secs(30);

/// A caller whose deadline passed was told "not queued": the job must not be stored.
pub(crate) async fn an_expired_deadline_stores_nothing(q: Arc<dyn Queue>) {
    let expired = tokio::time::Instant::now() - Duration::from_millis(1);
    let refused = q.enqueue(&job("late", Quadrant::ShortRead), expired).await;
    assert!(matches!(refused, Err(QueueError::NotStoredInTime)), "{refused:?}");
    assert_eq!(refused.unwrap_err().kind(), QueueErrorKind::Transient);
    let stats = q.stats().await.unwrap().quadrant(Quadrant::ShortRead);
    assert_eq!(stats.ready + stats.in_flight, 0, "nothing stored");
    assert!(q.dequeue(Quadrant::ShortRead, 10, LEASE).await.unwrap().is_empty());
    // Not a duplicate either: the same request, retried in time, is stored.
    assert!(matches!(q.enqueue(&job("late", Quadrant::ShortRead), soon()).await.unwrap(), Enqueued::Stored { .. }));
}

pub(crate) async fn delivers_an_enqueued_job_once(q: Arc<dyn Queue>) {
    let stored = q.enqueue(&job("a", Quadrant::ShortRead), soon()).await.unwrap();
    let Enqueued::Stored { enqueued_ns } = stored else { panic!("expected Stored, got {stored:?}") };
    assert!(enqueued_ns > 0);
    assert_eq!(q.stats().await.unwrap().quadrant(Quadrant::ShortRead).ready, 1);

    let got = q.dequeue(Quadrant::ShortRead, 10, LEASE).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job.idempotency_key, "a");
    assert_eq!(got[0].job.command.text, "a");
    assert_eq!(got[0].attempt, 1);
    assert!(got[0].dequeued_ns >= got[0].enqueued_ns);
    assert_eq!(q.stats().await.unwrap().quadrant(Quadrant::ShortRead).in_flight, 1);
    assert!(q.dequeue(Quadrant::ShortRead, 10, LEASE).await.unwrap().is_empty(), "leased job is not handed out twice");

    q.complete(&got[0]).await.unwrap();
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.quadrant(Quadrant::ShortRead).ready + stats.quadrant(Quadrant::ShortRead).in_flight, 0);
}

pub(crate) async fn keeps_quadrants_apart(q: Arc<dyn Queue>) {
    q.enqueue(&job("lw", Quadrant::LongWrite), soon()).await.unwrap();
    assert!(q.dequeue(Quadrant::ShortRead, 10, LEASE).await.unwrap().is_empty());
    let got = q.dequeue(Quadrant::LongWrite, 10, LEASE).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job.quadrant, Quadrant::LongWrite);
}

pub(crate) async fn same_request_twice_yields_one_job(q: Arc<dyn Queue>) {
    assert!(matches!(q.enqueue(&job("dup", Quadrant::ShortRead), soon()).await.unwrap(), Enqueued::Stored { .. }));
    assert_eq!(q.enqueue(&job("dup", Quadrant::ShortRead), soon()).await.unwrap(), Enqueued::Duplicate);
    let got = q.dequeue(Quadrant::ShortRead, 10, LEASE).await.unwrap();
    assert_eq!(got.len(), 1);
    q.complete(&got[0]).await.unwrap();
    // After completion the done-record still refuses the duplicate.
    assert_eq!(q.enqueue(&job("dup", Quadrant::ShortRead), soon()).await.unwrap(), Enqueued::Duplicate);
    assert!(q.dequeue(Quadrant::ShortRead, 10, LEASE).await.unwrap().is_empty());
}

pub(crate) async fn failed_job_is_retried_after_its_delay(q: Arc<dyn Queue>) {
    q.enqueue(&job("retry", Quadrant::ShortWrite), soon()).await.unwrap();
    let first = q.dequeue(Quadrant::ShortWrite, 1, LEASE).await.unwrap().pop().unwrap();
    let failed_at = std::time::Instant::now();
    let outcome = q.fail(&first, "receiver said 500", Some(Duration::from_millis(300))).await.unwrap();
    assert_eq!(outcome, FailOutcome::Retrying);
    let second = loop {
        q.wait_for_jobs(Quadrant::ShortWrite, Duration::from_millis(100)).await;
        if let Some(d) = q.dequeue(Quadrant::ShortWrite, 1, LEASE).await.unwrap().pop() {
            break d;
        }
    };
    assert!(failed_at.elapsed() >= Duration::from_millis(250), "not before the delay ({:?})", failed_at.elapsed());
    assert_eq!(second.attempt, 2);
    q.complete(&second).await.unwrap();
}

pub(crate) async fn dead_letters_can_be_listed_redriven_and_purged(q: Arc<dyn Queue>) {
    for key in ["d1", "d2", "d3"] {
        q.enqueue(&job(key, Quadrant::LongRead), soon()).await.unwrap();
    }
    for d in q.dequeue(Quadrant::LongRead, 10, LEASE).await.unwrap() {
        assert_eq!(q.fail(&d, "handler exploded", None).await.unwrap(), FailOutcome::DeadLettered);
    }
    let dead = q.dlq_list(100).await.unwrap();
    assert_eq!(dead.len(), 3);
    assert_eq!(dead[0].last_error, "handler exploded");
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(q.stats().await.unwrap().dead_letters, 3);
    // A dead-lettered request delivered again is still a duplicate.
    assert_eq!(q.enqueue(&job("d1", Quadrant::LongRead), soon()).await.unwrap(), Enqueued::Duplicate);

    assert_eq!(q.dlq_redrive(Redrive::One(dead[0].id.clone())).await.unwrap(), 1);
    let again = q.dequeue(Quadrant::LongRead, 10, LEASE).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 1, "redrive starts a fresh attempt count");
    assert_eq!(again[0].job.redrives, 1, "the job knows it was redriven");
    q.complete(&again[0]).await.unwrap();

    assert!(q.dlq_redrive(Redrive::One("no-such-id".into())).await.is_err());
    assert_eq!(q.dlq_purge().await.unwrap(), 2);
    assert!(q.dlq_list(100).await.unwrap().is_empty());
}

pub(crate) async fn redrive_all_returns_every_dead_letter(q: Arc<dyn Queue>) {
    for key in ["r1", "r2"] {
        q.enqueue(&job(key, Quadrant::ShortRead), soon()).await.unwrap();
    }
    for d in q.dequeue(Quadrant::ShortRead, 10, LEASE).await.unwrap() {
        q.fail(&d, "boom", None).await.unwrap();
    }
    assert_eq!(q.dlq_redrive(Redrive::All).await.unwrap(), 2);
    assert_eq!(q.dequeue(Quadrant::ShortRead, 10, LEASE).await.unwrap().len(), 2);
}

/// Released at shutdown: back at once. (SQLite does not count the attempt; JetStream
/// counts every delivery, see `sqlite_only` and the NATS docs.)
pub(crate) async fn released_job_comes_back_at_once(q: Arc<dyn Queue>) {
    q.enqueue(&job("rel", Quadrant::LongWrite), soon()).await.unwrap();
    let d = q.dequeue(Quadrant::LongWrite, 1, LEASE).await.unwrap().pop().unwrap();
    q.release(&d).await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(d) = q.dequeue(Quadrant::LongWrite, 1, LEASE).await.unwrap().pop() {
                break d;
            }
            q.wait_for_jobs(Quadrant::LongWrite, Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("released job is delivered again without waiting for a lease");
    assert_eq!(again.job.idempotency_key, "rel");
    assert!(again.attempt <= 2);
}

pub(crate) async fn expired_lease_is_delivered_again(q: Arc<dyn Queue>) {
    q.enqueue(&job("lease", Quadrant::ShortRead), soon()).await.unwrap();
    let first = q.dequeue(Quadrant::ShortRead, 1, Duration::from_millis(200)).await.unwrap().pop().unwrap();
    // The worker "dies": no complete, no fail. The job must come back.
    let second = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            q.wait_for_jobs(Quadrant::ShortRead, Duration::from_millis(100)).await;
            if let Some(d) = q.dequeue(Quadrant::ShortRead, 1, LEASE).await.unwrap().pop() {
                break d;
            }
        }
    })
    .await
    .expect("job redelivered after its lease expired");
    assert_eq!(second.attempt, first.attempt + 1);
    q.complete(&second).await.unwrap();
}

pub(crate) async fn extended_lease_is_kept(q: Arc<dyn Queue>) {
    q.enqueue(&job("ext", Quadrant::LongRead), soon()).await.unwrap();
    let d = q.dequeue(Quadrant::LongRead, 1, Duration::from_millis(300)).await.unwrap().pop().unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        q.extend_lease(&d, Duration::from_millis(300)).await.unwrap();
    }
    assert!(q.dequeue(Quadrant::LongRead, 1, LEASE).await.unwrap().is_empty(), "still leased after 600 ms");
    q.complete(&d).await.unwrap();
}

pub(crate) async fn concurrent_enqueues_are_all_stored(q: Arc<dyn Queue>) {
    let mut tasks = Vec::new();
    for i in 0..500 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move { q.enqueue(&job(&format!("c{i}"), Quadrant::ShortRead), soon()).await }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap().unwrap(), Enqueued::Stored { .. }));
    }
    let mut seen = std::collections::HashSet::new();
    loop {
        let batch = q.dequeue(Quadrant::ShortRead, 64, LEASE).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for d in &batch {
            assert!(seen.insert(d.job.idempotency_key.clone()), "delivered twice: {}", d.job.idempotency_key);
            q.complete(d).await.unwrap();
        }
    }
    assert_eq!(seen.len(), 500);
}

pub(crate) async fn wait_for_jobs_wakes_on_enqueue(q: Arc<dyn Queue>) {
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            q.wait_for_jobs(Quadrant::ShortWrite, Duration::from_secs(20)).await;
            start.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    q.enqueue(&job("wake", Quadrant::ShortWrite), soon()).await.unwrap();
    let waited = waiter.await.unwrap();
    assert!(waited < Duration::from_secs(10), "woken by the enqueue, not by the 20 s timeout ({waited:?})");
}

/// A pool waiting for work gets a job stored during its wait, and an empty answer (not an
/// error, not a hang) when nothing comes.
pub(crate) async fn dequeue_waiting_takes_a_job_stored_during_the_wait(q: Arc<dyn Queue>) {
    let idle = q.dequeue_waiting(Quadrant::ShortRead, 4, LEASE, Duration::from_millis(100)).await.unwrap();
    assert!(idle.is_empty());
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            let got = q.dequeue_waiting(Quadrant::ShortRead, 4, LEASE, Duration::from_secs(20)).await.unwrap();
            (got, start.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    q.enqueue(&job("waited-for", Quadrant::ShortRead), soon()).await.unwrap();
    let (got, waited) = waiter.await.unwrap();
    assert!(waited < Duration::from_secs(10), "answered by the enqueue, not by the 20 s timeout ({waited:?})");
    let keys: Vec<_> = got.iter().map(|d| d.job.idempotency_key.as_str()).collect();
    assert_eq!(keys, ["waited-for"]);
    assert_eq!(got[0].attempt, 1);
    q.complete(&got[0]).await.unwrap();
    assert!(q.dequeue(Quadrant::ShortRead, 4, LEASE).await.unwrap().is_empty(), "completed means gone");
}

/// Pools that stopped waiting hold nothing: a job stored after their waits ended goes to
/// the next caller, on its first attempt, and to no one twice.
pub(crate) async fn an_abandoned_wait_keeps_no_job(q: Arc<dyn Queue>) {
    for _ in 0..3 {
        let q2 = q.clone();
        let abandoned =
            tokio::spawn(
                async move { q2.dequeue_waiting(Quadrant::LongRead, 4, LEASE, Duration::from_secs(20)).await },
            );
        tokio::time::sleep(Duration::from_millis(30)).await;
        abandoned.abort();
        let _ = abandoned.await;
    }
    for _ in 0..3 {
        assert!(q.dequeue_waiting(Quadrant::LongRead, 4, LEASE, Duration::from_millis(20)).await.unwrap().is_empty());
    }
    q.enqueue(&job("after-the-waits", Quadrant::LongRead), soon()).await.unwrap();
    let got = next(&q, Quadrant::LongRead).await;
    assert_eq!(got.job.idempotency_key, "after-the-waits");
    assert_eq!(got.attempt, 1, "no attempt was used by a wait that had ended");
    q.complete(&got).await.unwrap();
}

fn now_ms() -> i64 {
    (chatops_core::time::now_unix_ns() / 1_000_000) as i64
}

/// Marks the delivery's effect as started and returns the window (unix ms) the record's
/// time must fall in.
async fn mark(q: &Arc<dyn Queue>, d: &Delivery) -> std::ops::RangeInclusive<i64> {
    let before = now_ms();
    q.mark_effect_started(d).await.unwrap();
    before..=now_ms()
}

/// Dequeues one job of the quadrant, waiting for it (a retry's delay, a lease's expiry).
pub(crate) async fn next(q: &Arc<dyn Queue>, quadrant: Quadrant) -> Delivery {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(d) = q.dequeue(quadrant, 1, LEASE).await.unwrap().pop() {
                break d;
            }
            q.wait_for_jobs(quadrant, Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("a job is delivered within 30 s")
}

/// The record follows the job through a retry, names the marking attempt, survives marking
/// twice, and stops at completion; another job never sees it.
pub(crate) async fn an_effect_record_is_carried_by_every_later_delivery(q: Arc<dyn Queue>) {
    q.enqueue(&job("fx", Quadrant::LongWrite), soon()).await.unwrap();
    q.enqueue(&job("fx-other", Quadrant::LongWrite), soon()).await.unwrap();
    let mut first = q.dequeue(Quadrant::LongWrite, 2, LEASE).await.unwrap();
    assert_eq!(first.len(), 2);
    let other = first.pop().unwrap();
    let first = first.pop().unwrap();
    assert_eq!((first.job.idempotency_key.as_str(), other.job.idempotency_key.as_str()), ("fx", "fx-other"));
    assert_eq!(first.effect_started, None, "a first delivery has no record");
    assert_eq!(other.effect_started, None);

    let window = mark(&q, &first).await;
    q.fail(&first, "interrupted", Some(Duration::from_millis(50))).await.unwrap();
    q.fail(&other, "interrupted", Some(Duration::from_millis(50))).await.unwrap();
    let (mut second, mut other_again) = (None, None);
    while second.is_none() || other_again.is_none() {
        let d = next(&q, Quadrant::LongWrite).await;
        if d.job.idempotency_key == "fx" { second = Some(d) } else { other_again = Some(d) }
    }
    let (second, other_again) = (second.unwrap(), other_again.unwrap());
    assert_eq!(second.attempt, 2);
    let record = second.effect_started.expect("the retry carries the record of attempt 1");
    assert_eq!(record.attempt, 1);
    assert!(window.contains(&record.at_ms), "recorded at {} ms, marked within {window:?}", record.at_ms);
    assert_eq!(other_again.effect_started, None, "a job that never marked is unaffected");

    // The worker opted into re-running: marking twice in attempt 2 is harmless.
    mark(&q, &second).await;
    mark(&q, &second).await;
    q.fail(&second, "interrupted again", Some(Duration::from_millis(50))).await.unwrap();
    let third = next(&q, Quadrant::LongWrite).await;
    assert_eq!(third.job.idempotency_key, "fx");
    assert_eq!(third.effect_started.map(|r| r.attempt), Some(2), "the latest marking attempt");
    q.complete(&third).await.unwrap();
    q.complete(&other_again).await.unwrap();

    // Completed stays completed: the record does not bring the job back.
    assert_eq!(q.enqueue(&job("fx", Quadrant::LongWrite), soon()).await.unwrap(), Enqueued::Duplicate);
    assert!(q.dequeue(Quadrant::LongWrite, 10, LEASE).await.unwrap().is_empty());
    let fresh = job("fx-fresh", Quadrant::LongWrite);
    q.enqueue(&fresh, soon()).await.unwrap();
    assert_eq!(next(&q, Quadrant::LongWrite).await.effect_started, None, "a fresh key has no record");
}

/// The worker "dies" after marking: no complete, no fail. The lease expires and the
/// redelivery carries the record.
pub(crate) async fn an_effect_record_survives_an_expired_lease(q: Arc<dyn Queue>) {
    q.enqueue(&job("fx-lease", Quadrant::LongWrite), soon()).await.unwrap();
    let first = q.dequeue(Quadrant::LongWrite, 1, Duration::from_millis(200)).await.unwrap().pop().unwrap();
    let window = mark(&q, &first).await;
    let second = next(&q, Quadrant::LongWrite).await;
    assert_eq!(second.attempt, first.attempt + 1);
    let record = second.effect_started.expect("the redelivery after the lease expired carries the record");
    assert_eq!(record.attempt, first.attempt);
    assert!(window.contains(&record.at_ms));
    q.complete(&second).await.unwrap();
}

/// Released at shutdown while the effect ran: the next delivery must not start it again.
pub(crate) async fn an_effect_record_survives_a_release(q: Arc<dyn Queue>) {
    q.enqueue(&job("fx-rel", Quadrant::LongWrite), soon()).await.unwrap();
    let first = next(&q, Quadrant::LongWrite).await;
    mark(&q, &first).await;
    q.release(&first).await.unwrap();
    let again = next(&q, Quadrant::LongWrite).await;
    assert_eq!(again.effect_started.map(|r| r.attempt), Some(first.attempt));
    q.complete(&again).await.unwrap();
}

/// A dead letter shows the operator the record; a redrive (an explicit decision to run the
/// command again) clears it.
pub(crate) async fn a_dead_letter_keeps_the_record_and_a_redrive_clears_it(q: Arc<dyn Queue>) {
    q.enqueue(&job("fx-dead", Quadrant::LongWrite), soon()).await.unwrap();
    q.enqueue(&job("fx-dead-clean", Quadrant::LongWrite), soon()).await.unwrap();
    let delivered = q.dequeue(Quadrant::LongWrite, 2, LEASE).await.unwrap();
    assert_eq!(delivered.len(), 2);
    let window = mark(&q, &delivered[0]).await;
    for d in &delivered {
        assert_eq!(q.fail(d, "deploy script exited 1", None).await.unwrap(), FailOutcome::DeadLettered);
    }
    let letters = q.dlq_list(10).await.unwrap();
    let letter = |key: &str| letters.iter().find(|l| l.job.idempotency_key == key).unwrap().clone();
    let marked = letter("fx-dead").effect_started.expect("the dead letter keeps the record");
    assert_eq!(marked.attempt, 1);
    assert!(window.contains(&marked.at_ms));
    assert_eq!(letter("fx-dead-clean").effect_started, None);

    assert_eq!(q.dlq_redrive(Redrive::All).await.unwrap(), 2);
    for _ in 0..2 {
        let d = next(&q, Quadrant::LongWrite).await;
        assert_eq!(d.attempt, 1);
        assert_eq!(d.effect_started, None, "{}: a redrive runs the command again", d.job.idempotency_key);
        q.complete(&d).await.unwrap();
    }
}

/// Runs each listed test body against each engine constructor.
#[macro_export]
macro_rules! conformance {
    ($engine:ident, $make:expr) => {
        mod $engine {
            use super::*;
            $crate::conformance!(@tests $make;
                delivers_an_enqueued_job_once,
                keeps_quadrants_apart,
                same_request_twice_yields_one_job,
                failed_job_is_retried_after_its_delay,
                dead_letters_can_be_listed_redriven_and_purged,
                redrive_all_returns_every_dead_letter,
                released_job_comes_back_at_once,
                expired_lease_is_delivered_again,
                extended_lease_is_kept,
                concurrent_enqueues_are_all_stored,
                wait_for_jobs_wakes_on_enqueue,
                dequeue_waiting_takes_a_job_stored_during_the_wait,
                an_abandoned_wait_keeps_no_job,
                an_expired_deadline_stores_nothing,
                an_effect_record_is_carried_by_every_later_delivery,
                an_effect_record_survives_an_expired_lease,
                an_effect_record_survives_a_release,
                a_dead_letter_keeps_the_record_and_a_redrive_clears_it,
            );
        }
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (queue, _guard) = $make().await;
                $crate::conformance::$name(queue).await;
            }
        )*
    };
}

mod engines {
    use super::*;
    use chatops_queue::nats::{ConsumerSettings, NatsQueue, NatsSettings};
    use chatops_queue::sqlite::{OpenMode, SqliteQueue, SqliteSettings};
    use chatops_testkit::NatsServer;

    async fn sqlite() -> (Arc<dyn Queue>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = SqliteSettings::new(dir.path().join("queue.db"));
        settings.maintenance_interval = Duration::from_millis(50);
        let q = SqliteQueue::open(settings, OpenMode::Owner).unwrap();
        (Arc::new(q), dir)
    }

    crate::conformance!(sqlite, sqlite);

    /// A broker of its own per test: JetStream state never leaks between tests.
    async fn nats() -> (Arc<dyn Queue>, NatsServer) {
        let server = NatsServer::start();
        let mut settings = NatsSettings::new(vec![server.url()]);
        settings.consumers = [ConsumerSettings { ack_wait: Duration::from_secs(1), max_deliver: 5 }; 4];
        let q = NatsQueue::connect(&settings).await.unwrap();
        (Arc::new(q), server)
    }

    crate::conformance!(nats, nats);
}
