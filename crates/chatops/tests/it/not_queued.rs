//! "Not queued" must be true (issue 9, item 3): with the queue stalled past the ack budget,
//! every command answered 503 never runs and every command answered 200 runs exactly once,
//! on both engines, over real HTTP.
//!
//! On the old code both fail: the router dropped the enqueue future at its timeout, so the
//! SQLite writer still committed the job from its channel and a worker answered it; on
//! NATS the outer timeout (= the publish timeout) fired first, the tombstone was never
//! written, and the publish stored late ran after the broker resumed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chatops_testkit::NatsServer;

use crate::scale_out::spawn_nats_app;
use crate::support::*;

/// What the router answered one command.
#[derive(Debug)]
struct Answer {
    id: String,
    status: u16,
    /// The JSON body's `error` (the router's errorType) for a refusal.
    error: Option<String>,
}

async fn send_one(base: String, body: String, id: String) -> Answer {
    let resp = post_signed(&base, &sign(body), &id).await;
    let status = resp.status().as_u16();
    let error = if status == 200 {
        None
    } else {
        let json: serde_json::Value = resp.json().await.unwrap_or_default();
        json["error"].as_str().map(str::to_owned)
    };
    Answer { id, status, error }
}

/// Waits for every acked command's two answers, then a while longer, and checks: each 200
/// answered exactly twice (the echo's two posts), each 503 never attempted at all.
async fn assert_refused_never_run_and_acked_run_once(slack: &SlackReceiver, answers: &[Answer]) {
    let (acked, refused): (Vec<&Answer>, Vec<&Answer>) = answers.iter().partition(|a| a.status == 200);
    for a in &refused {
        assert_eq!(a.status, 503, "{a:?}");
    }
    let timed_out = refused.iter().filter(|a| a.error.as_deref() == Some("queue_timeout")).count();
    assert!(timed_out > 0, "the stall made some enqueues miss the ack budget: {answers:?}");
    assert!(!acked.is_empty(), "some commands were stored in time");
    for a in &acked {
        let posts = slack.wait_for(&a.id, 2, Duration::from_secs(60)).await;
        assert_eq!(posts.len(), 2, "{} was acknowledged and must be answered", a.id);
    }
    // Every acknowledged job ran; a refused one that had been stored anyway would have run
    // by now too. Give stragglers (retries, a redelivery) a few more seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ran: Vec<&str> = refused.iter().filter(|a| slack.attempts(&a.id) > 0).map(|a| a.id.as_str()).collect();
    assert!(ran.is_empty(), "commands answered 503 \"not queued\" ran anyway: {ran:?}");
    for a in &acked {
        assert_eq!(slack.attempts(&a.id), 2, "{} ran exactly once", a.id);
    }
    eprintln!("not_queued: {} acknowledged, {} refused ({timed_out} queue_timeout)", acked.len(), refused.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_not_queued_command_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    // Tighter than a group commit with fsync under a burst: some enqueues make it, some not.
    settings.ack_budget = Duration::from_millis(2);
    let app = spawn_app_with(settings).await;
    let slack = SlackReceiver::start().await;
    let mut answers = Vec::new();
    for round in 0..10 {
        let mut burst = tokio::task::JoinSet::new();
        for i in 0..100 {
            let id = format!("nq-sqlite-{round}-{i}");
            let body = slash("/echo", &id, &slack.url(&id)).to_form();
            burst.spawn(send_one(app.base.clone(), body, id));
        }
        answers.extend(burst.join_all().await);
        let acked = answers.iter().filter(|a| a.status == 200).count();
        let timed_out = answers.iter().filter(|a| a.error.as_deref() == Some("queue_timeout")).count();
        if acked > 0 && timed_out > 0 {
            break;
        }
    }
    assert_refused_never_run_and_acked_run_once(&slack, &answers).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_not_queued_command_never_runs_when_the_broker_stalls() {
    let nats = NatsServer::start();
    let (app, _dir) = spawn_nats_app(&nats, |s| s.ack_budget = Duration::from_millis(500)).await;
    let slack = SlackReceiver::start().await;
    let mut requests = tokio::task::JoinSet::new();
    let started = Instant::now();
    let (mut paused, mut resumed) = (false, false);
    let mut i = 0;
    // Commands every 40 ms for 4 s; the broker is stopped (SIGSTOP) from 1.2 s to 2.7 s.
    while started.elapsed() < Duration::from_secs(4) {
        let elapsed = started.elapsed();
        if elapsed >= Duration::from_millis(1200) && !paused {
            nats.pause();
            paused = true;
        }
        if elapsed >= Duration::from_millis(2700) && !resumed {
            nats.resume();
            resumed = true;
        }
        let id = format!("nq-nats-{i}");
        i += 1;
        let body = slash("/echo", &id, &slack.url(&id)).to_form();
        requests.spawn(send_one(app.base.clone(), body, id));
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let answers = requests.join_all().await;
    let by_status = answers.iter().fold(HashMap::<u16, usize>::new(), |mut m, a| {
        *m.entry(a.status).or_default() += 1;
        m
    });
    eprintln!("nats not_queued: {by_status:?}");
    assert_refused_never_run_and_acked_run_once(&slack, &answers).await;
    app.stop().await;
}
