//! The NATS JetStream engine end to end, against a real `nats-server` per test: a router
//! process and worker processes, a worker killed mid-job, the broker killed under load,
//! duplicates, and the dead-letter queue.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chatops_queue::engine::EngineSettings;
use chatops_testkit::NatsServer;

use crate::support::*;

pub(crate) fn nats_engine(server: &NatsServer) -> EngineSettings {
    EngineSettings::from_url(&server.url(), Default::default()).unwrap()
}

/// An in-process bot on the broker, with the test settings adjusted by `tune`.
pub(crate) async fn spawn_nats_app(
    nats: &NatsServer,
    tune: impl FnOnce(&mut chatops_service::Settings),
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    settings.queue.engine = nats_engine(nats);
    tune(&mut settings);
    (spawn_app_with(settings).await, dir)
}

fn performance_lines(bots: &[&BotProcess]) -> Vec<serde_json::Value> {
    bots.iter().flat_map(|b| b.log_lines()).filter(|l| l["message"] == "Performance metrics").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_and_two_workers_answer_every_command_once() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let slack = SlackReceiver::start().await;
    let queue = nats.url();
    let config = test_config_file(dir.path(), "");
    let env = [("CHATOPS_CONFIG", config.to_str().unwrap())];
    let router = BotProcess::spawn(
        &["router", "--listen", "127.0.0.1:0", "--queue", &queue],
        &dir.path().join("router.log"),
        &env,
    );
    let worker_a = BotProcess::spawn(&["worker", "--queue", &queue], &dir.path().join("worker-a.log"), &env);
    let worker_b = BotProcess::spawn(
        &["worker", "--queue", &queue, "--quadrant", "short-read,long-read"],
        &dir.path().join("worker-b.log"),
        &env,
    );
    let ids: Vec<String> = (0..40).map(|i| format!("scale-{i}")).collect();
    for id in &ids {
        let body = slash("/echo", id, &slack.url(id)).to_form();
        let resp = post_signed(&router.base, &sign(body), id).await;
        assert_eq!(resp.status(), 200, "{id}");
    }
    for id in &ids {
        let posts = slack.wait_for(id, 2, Duration::from_secs(30)).await;
        assert_eq!(posts.len(), 2, "{id} answered twice (sync, async)");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lines = performance_lines(&[&worker_a, &worker_b]);
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for l in &lines {
        *per_id.entry(l["correlationId"].as_str().unwrap().to_owned()).or_default() += 1;
        assert_eq!(l["success"], true);
        // Stamps come from one machine's clock here, so the measured wait is never negative.
        assert!(l["queueWaitMs"].as_f64().unwrap() >= 0.0, "{l}");
    }
    for id in &ids {
        assert_eq!(per_id.get(id), Some(&1), "{id} ran exactly once at a handler");
        assert_eq!(slack.posts(id).len(), 2, "{id}: no duplicate answers");
    }
    let router_lines = router.log_lines();
    assert_eq!(router_lines.iter().filter(|l| l["message"] == "Router performance metrics").count(), 40);
}

const SLOW_CONFIG: &str = r#"
[workers.long-read]
concurrency = 2
lease = "2s"

[[commands]]
name = "/slow"
quadrant = "long-read"
timeout = "30s"
handler = "simulate"
work = "4s"
answers = 2
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_has_its_job_redelivered_after_ack_wait() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = test_config_file(dir.path(), SLOW_CONFIG);
    let env = [("CHATOPS_CONFIG", config.to_str().unwrap())];
    let slack = SlackReceiver::start().await;
    let queue = nats.url();
    let router =
        BotProcess::spawn(&["router", "--listen", "127.0.0.1:0", "--queue", &queue], &dir.path().join("r.log"), &env);
    let mut doomed = BotProcess::spawn(&["worker", "--queue", &queue], &dir.path().join("doomed.log"), &env);
    let body = slash("/slow", "db", &slack.url("slow-1")).to_form();
    assert_eq!(post_signed(&router.base, &sign(body), "slow-1").await.status(), 200);
    // The first worker posts "started", then dies in the middle of the 4 s of work.
    let started = slack.wait_for("slow-1", 1, Duration::from_secs(20)).await;
    assert_eq!(started.len(), 1);
    doomed.kill9();
    let killed_at = Instant::now();
    let survivor = BotProcess::spawn(&["worker", "--queue", &queue], &dir.path().join("survivor.log"), &env);
    let lines = {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let lines = performance_lines(&[&survivor]);
            if !lines.is_empty() || Instant::now() > deadline {
                break lines;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(lines.len(), 1, "the survivor ran the job");
    assert_eq!(lines[0]["correlationId"], "slow-1");
    assert_eq!(lines[0]["attempt"], 2, "second delivery");
    assert_eq!(lines[0]["outcome"], "completed");
    assert!(killed_at.elapsed() >= Duration::from_secs(1), "redelivered after AckWait, not at once");
    let posts = slack.posts("slow-1");
    assert!(posts.last().unwrap().body["text"].as_str().unwrap().contains("done"), "{:?}", posts.last());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_dying_under_load_loses_no_acknowledged_command() {
    let mut nats = NatsServer::start();
    let (app, _dir) = spawn_nats_app(&nats, |s| s.ack_budget = Duration::from_millis(1500)).await;
    let slack = SlackReceiver::start().await;

    let mut acked = Vec::new();
    let mut refused = 0;
    let started = Instant::now();
    let (mut i, mut killed, mut restarted) = (0, false, false);
    while started.elapsed() < Duration::from_secs(8) {
        let elapsed = started.elapsed();
        if elapsed >= Duration::from_secs(2) && !killed {
            nats.kill();
            killed = true;
        }
        if elapsed >= Duration::from_secs(5) && !restarted {
            nats.restart();
            restarted = true;
        }
        let id = format!("storm-{i}");
        i += 1;
        let sent = Instant::now();
        let resp = app.send(&slack, "/echo", &id, &id).await;
        let took = sent.elapsed();
        match resp.status().as_u16() {
            200 => acked.push(id),
            503 => {
                refused += 1;
                assert!(took < Duration::from_secs(3), "a refusal within Slack's 3 s budget, took {took:?}");
                let body: serde_json::Value = resp.json().await.unwrap();
                assert!(body["text"].as_str().unwrap().contains("*not* queued"));
            }
            other => panic!("unexpected status {other}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused > 0, "commands sent while the broker was down were refused");
    assert!(acked.len() > 20, "commands before and after were acknowledged ({})", acked.len());
    for id in &acked {
        let posts = slack.wait_for(id, 2, Duration::from_secs(60)).await;
        assert_eq!(posts.len(), 2, "{id} was acknowledged and must be answered");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_slack_request_is_one_job_on_nats() {
    let nats = NatsServer::start();
    let (app, _dir) = spawn_nats_app(&nats, |_| {}).await;
    let slack = SlackReceiver::start().await;
    let req = sign(slash("/echo", "once", &slack.url("nats-dup")).to_form());
    assert_eq!(app.post(&req, "nats-dup-a").await.status(), 200);
    let second = app.post(&req, "nats-dup-b").await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["x-chatops-duplicate"], "true");
    slack.wait_for("nats-dup", 2, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(slack.posts("nats-dup").len(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_always_failing_job_lands_in_the_nats_dlq_and_redrive_answers_it() {
    let nats = NatsServer::start();
    let (app, _dir) = spawn_nats_app(&nats, |_| {}).await;
    let slack = SlackReceiver::start().await;
    slack.fail_first(usize::MAX);
    app.send(&slack, "/echo", "doomed", "nats-doomed").await;
    let lines = wait_for_log("nats-doomed", "Performance metrics", 3).await;
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["outcome"], "dead_lettered");

    let url = nats.url();
    let cli = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_chatops")).args(args).output().unwrap()
        })
    };
    let listed = cli(vec!["dlq".into(), "list".into(), "--json".into(), "--queue".into(), url.clone()]).await.unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let text = String::from_utf8(listed.stdout).unwrap();
    let entry: serde_json::Value = serde_json::from_str(text.lines().next().expect("one dead letter")).unwrap();
    assert_eq!(entry["correlationId"], "nats-doomed");
    assert_eq!(entry["attempts"], 3);

    slack.fail_first(0);
    let out = cli(vec!["dlq".into(), "redrive".into(), "--all".into(), "--queue".into(), url]).await.unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("Redrove 1 job"));
    let posts = slack.wait_for("nats-doomed", 2, Duration::from_secs(30)).await;
    assert_eq!(posts.len(), 2, "the redriven job was answered");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_the_broker() {
    let mut nats = NatsServer::start();
    let (app, _dir) = spawn_nats_app(&nats, |_| {}).await;
    let ready = || async { http().get(format!("{}/readyz", app.base)).send().await.unwrap().status().as_u16() };
    assert_eq!(ready().await, 200);
    nats.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready().await != 503 {
        assert!(Instant::now() < deadline, "readyz turns 503 when the broker is gone");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nats.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready().await != 200 {
        assert!(Instant::now() < deadline, "readyz recovers after the broker restarts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_with_the_signature_in_another_case_is_one_job_on_nats() {
    let nats = NatsServer::start();
    let (app, _dir) = spawn_nats_app(&nats, |_| {}).await;
    let slack = SlackReceiver::start().await;
    crate::ingress::assert_signature_case_variants_are_one_job(&app, &slack, "nats-case-replay").await;
    app.stop().await;
}

/// A short-write command that outlives the short quadrants' 5 s lease, so the test also
/// shows that in-progress acks (every lease/3) keep a running job leased.
const CRASH_CONFIG: &str = r#"
[[commands]]
name = "/rollout"
quadrant = "short-write"
timeout = "30s"
handler = "simulate"
work = "6s"
answers = 2
"#;

/// Issue 9, item 9: a job in flight when its worker died comes back within the short
/// quadrants' default lease (5 s; it was 30 s, which fails the bound below).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_job_of_a_killed_worker_is_answered_by_another_within_the_lease() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = test_config_file(dir.path(), CRASH_CONFIG);
    let env = [("CHATOPS_CONFIG", config.to_str().unwrap())];
    let slack = SlackReceiver::start().await;
    let queue = nats.url();
    let router =
        BotProcess::spawn(&["router", "--listen", "127.0.0.1:0", "--queue", &queue], &dir.path().join("r.log"), &env);
    let mut doomed = BotProcess::spawn(&["worker", "--queue", &queue], &dir.path().join("doomed.log"), &env);
    let body = slash("/rollout", "web", &slack.url("crash-1")).to_form();
    assert_eq!(post_signed(&router.base, &sign(body), "crash-1").await.status(), 200);
    let started = slack.wait_for("crash-1", 1, Duration::from_secs(20)).await;
    assert_eq!(started.len(), 1, "the first worker started the job");
    // The second worker is up before the first dies, as in a real deployment.
    let survivor = BotProcess::spawn(&["worker", "--queue", &queue], &dir.path().join("survivor.log"), &env);
    tokio::time::sleep(Duration::from_millis(500)).await;
    doomed.kill9();
    let killed_at = Instant::now();
    // Its second "started" post is the survivor's: the job is answered again.
    let posts = slack.wait_for("crash-1", 2, Duration::from_secs(60)).await;
    let answered_after = posts.get(1).map(|p| p.at.duration_since(killed_at));
    eprintln!("crash recovery: answered {answered_after:?} after kill -9 (lease 5 s)");
    let answered_after = answered_after.expect("the survivor answered");
    // Lease 5 s + poll + a loaded 2-core machine; the old 30 s lease is far outside.
    assert!(answered_after < Duration::from_secs(5 + 8), "answered within the lease: {answered_after:?}");
    let posts = slack.wait_for("crash-1", 3, Duration::from_secs(30)).await;
    assert_eq!(posts.len(), 3, "started (doomed), started + done (survivor)");
    assert!(posts[2].body["text"].as_str().unwrap().contains("done"), "{:?}", posts[2]);
    let lines = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = performance_lines(&[&survivor]);
            if !lines.is_empty() || Instant::now() > deadline {
                break lines;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(lines.len(), 1, "the survivor ran it once, its 6 s outliving the 5 s lease: {lines:?}");
    assert_eq!(lines[0]["attempt"], 2);
    assert_eq!(lines[0]["outcome"], "completed");
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const STALL_CONFIG: &str = r#"
[workers.short-read]
concurrency = 1

[[commands]]
name = "/stall"
quadrant = "short-read"
timeout = "300s"
handler = "simulate"
work = "120s"
answers = 2
"#;

/// Jobs queued for the test, each with a ~1 KiB text like a verbose command.
const BACKLOG: usize = 50_000;

/// Issue 9, item 4: a worker whose pool is busy holds no copies of the backlog. It used to
/// subscribe to the jobs subjects for wake-ups, and its client buffered every published job
/// (up to 65,536 per quadrant: +147 MiB RSS for this backlog when measured); now wake-ups are empty
/// messages on their own connection with a 16-message buffer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_nats_worker_does_not_buffer_the_backlog() {
    use chatops_queue::Queue;
    use chatops_queue::nats::{NatsQueue, NatsSettings};

    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = test_config_file(dir.path(), STALL_CONFIG);
    let env = [("CHATOPS_CONFIG", config.to_str().unwrap())];
    let slack = SlackReceiver::start().await;
    let worker = BotProcess::spawn(
        &["worker", "--queue", &nats.url(), "--quadrant", "short-read"],
        &dir.path().join("worker.log"),
        &env,
    );
    // The worker created the streams and consumers; the test only publishes.
    let queue = std::sync::Arc::new(NatsQueue::connect_existing(&NatsSettings::new(vec![nats.url()])).await.unwrap());
    let job = |command: &str, key: String, text: String| chatops_core::Job {
        job_id: format!("job-{key}"),
        correlation_id: chatops_core::CorrelationId::generate(),
        idempotency_key: key.clone(),
        quadrant: chatops_core::Quadrant::ShortRead,
        command: slash(command, &text, &slack.url(&key)),
        max_attempts: 3,
        router_received_ns: chatops_core::time::now_unix_ns(),
        enqueue_started_ns: chatops_core::time::now_unix_ns(),
        traceparent: None,
        redrives: 0,
        args: Default::default(),
        approval: None,
    };
    let soon = || tokio::time::Instant::now() + Duration::from_secs(20);
    // An idle pool first waits for wake-ups (that is when it subscribes), as any worker
    // that ever ran out of work did.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    queue.enqueue(&job("/stall", "stall".into(), "hold".into()), soon()).await.unwrap();
    assert_eq!(slack.wait_for("stall", 1, Duration::from_secs(20)).await.len(), 1, "the only slot is busy");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_kib = vm_rss_kib(worker.child.id());

    let text = "x".repeat(1024);
    let started = Instant::now();
    let mut stored = 0;
    for chunk in 0..BACKLOG / 500 {
        let mut batch = tokio::task::JoinSet::new();
        for i in 0..500 {
            let (queue, j) = (queue.clone(), job("/echo", format!("backlog-{chunk}-{i}"), text.clone()));
            batch.spawn(async move { queue.enqueue(&j, tokio::time::Instant::now() + Duration::from_secs(20)).await });
        }
        stored += batch.join_all().await.into_iter().filter(|r| r.is_ok()).count();
    }
    assert_eq!(stored, BACKLOG);
    // Let the worker's client read whatever the server sends it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_kib = vm_rss_kib(worker.child.id());
    let waiting = queue.stats().await.unwrap().quadrant(chatops_core::Quadrant::ShortRead).ready;
    eprintln!(
        "stalled worker: VmRSS {before_kib} KiB before, {after_kib} KiB after {BACKLOG} jobs ({waiting} waiting), enqueued in {:?}",
        started.elapsed()
    );
    assert!(waiting >= BACKLOG as u64 - 1, "the backlog is queued, not taken: {waiting}");
    // The jobs alone are over 60 MiB; the bound leaves room for allocator noise.
    let grown_kib = after_kib.saturating_sub(before_kib);
    assert!(grown_kib < 16 * 1024, "the stalled worker grew by {grown_kib} KiB");
}
