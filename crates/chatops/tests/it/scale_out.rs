//! The NATS JetStream engine end to end, against a real `nats-server` per test: a router
//! process and worker processes, a worker killed mid-job, the broker killed under load,
//! duplicates, and the dead-letter queue.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chatops_queue::engine::EngineSettings;
use chatops_testkit::NatsServer;

use crate::support::*;

fn nats_engine(server: &NatsServer) -> EngineSettings {
    EngineSettings::from_url(&server.url(), Default::default()).unwrap()
}

/// An in-process bot on the broker, with the test settings adjusted by `tune`.
async fn spawn_nats_app(
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
