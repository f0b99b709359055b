//! Nothing acknowledged is lost: the real binary is killed with SIGKILL, or stopped with
//! SIGTERM under load, and restarted on the same data directory.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::*;

const SLOW_CONFIG: &str = r#"
[workers.long-read]
concurrency = 4

[[commands]]
name = "/slow"
quadrant = "long-read"
timeout = "30s"
description = "test: 1.5 s of work, one answer at the start"
handler = "simulate"
work = "1500ms"
answers = 1
"#;

fn completed_ids(lines: &[serde_json::Value]) -> HashSet<String> {
    lines
        .iter()
        .filter(|l| l["message"] == "Performance metrics" && l["outcome"] == "completed")
        .map(|l| l["correlationId"].as_str().unwrap().to_owned())
        .collect()
}

async fn wait_until_completed(bot: &BotProcess, ids: &[String], timeout: Duration) -> HashSet<String> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let done = completed_ids(&bot.log_lines());
        if ids.iter().all(|id| done.contains(id)) || std::time::Instant::now() > deadline {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_commands_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config_file(dir.path(), SLOW_CONFIG);
    let data = dir.path().join("data");
    let log = dir.path().join("bot.log");
    let slack = SlackReceiver::start().await;
    let env = [("CHATOPS_CONFIG", config.to_str().unwrap())];

    let mut bot = BotProcess::start(&data, &log, &env);
    let mut acked = Vec::new();
    for i in 0..40 {
        let id = format!("crash-{i}");
        let body = slash("/slow", &i.to_string(), &slack.url(&id)).to_form();
        let resp = post_signed(&bot.base, &sign(body), &id).await;
        assert_eq!(resp.status(), 200);
        acked.push(id);
    }
    // Four jobs run for 1.5 s each; at least 36 are still waiting when the process dies.
    bot.kill9();
    let done_before = completed_ids(&bot.log_lines());
    assert!(done_before.len() < 10, "the kill came before most jobs ran ({} done)", done_before.len());

    let bot = BotProcess::start(&data, &log, &env);
    let done = wait_until_completed(&bot, &acked, Duration::from_secs(90)).await;
    let missing: Vec<_> = acked.iter().filter(|id| !done.contains(*id)).collect();
    assert!(missing.is_empty(), "acked but never completed after restart: {missing:?}");
    for id in &acked {
        assert!(!slack.posts(id).is_empty(), "{id} was answered");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config_file(dir.path(), SLOW_CONFIG);
    let data = dir.path().join("data");
    let log = dir.path().join("bot.log");
    let slack = SlackReceiver::start().await;
    let env = [("CHATOPS_CONFIG", config.to_str().unwrap())];
    let mut bot = BotProcess::start(&data, &log, &env);

    // A steady stream of quick and slow commands; SIGTERM arrives in the middle of it.
    let base = bot.base.clone();
    let sender = {
        let slack = slack.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..200 {
                let (command, id) =
                    if i % 5 == 0 { ("/slow", format!("term-slow-{i}")) } else { ("/echo", format!("term-{i}")) };
                let body = slash(command, "x", &slack.url(&id)).to_form();
                let sent = http()
                    .post(format!("{base}/slack/commands"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("x-slack-request-timestamp", sign(body.clone()).timestamp)
                    .header("x-slack-signature", sign(body.clone()).signature)
                    .header("x-request-id", &id)
                    .body(body)
                    .send()
                    .await;
                if matches!(&sent, Ok(r) if r.status() == 200) {
                    acked.push(id);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    bot.sigterm();
    let status = bot.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "graceful exit, got {status:?}");
    let acked = sender.await.unwrap();
    assert!(acked.len() >= 10, "some commands were acked before the shutdown ({})", acked.len());
    assert!(acked.len() < 200, "commands after the shutdown were refused, not acked");

    let bot = BotProcess::start(&data, &log, &env);
    let done = wait_until_completed(&bot, &acked, Duration::from_secs(90)).await;
    let missing: Vec<_> = acked.iter().filter(|id| !done.contains(*id)).collect();
    assert!(missing.is_empty(), "acked but never completed: {missing:?}");
    let released = bot.log_lines().iter().filter(|l| l["message"] == "worker pool stopped").count();
    assert!(released >= 4, "the first run stopped its pools cleanly");
}
