//! Failures of what lies behind `response_url` and of handlers: retries with backoff,
//! the dead-letter queue after the last attempt, and redrive.

use std::time::Duration;

use chatops_queue::Redrive;
use chatops_service::spec::HandlerSpec;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_a_few_times_still_gets_its_answers() {
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    // One post try + one client retry per attempt: the first attempt fails both tries,
    // the second attempt fails once more, then succeeds.
    slack.fail_first(3);
    assert_eq!(app.send(&slack, "/echo", "flaky", "flaky").await.status(), 200);
    let posts = slack.wait_for("flaky", 2, Duration::from_secs(30)).await;
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].body["text"], "sync flaky");
    assert_eq!(slack.attempts("flaky"), 5, "2 failed tries, 1 more failure, then 2 successful posts");
    let lines = wait_for_log("flaky", "Performance metrics", 2).await;
    assert_eq!(lines.len(), 2, "one line per attempt: {lines:?}");
    assert_eq!(lines[0]["success"], false);
    assert_eq!(lines[0]["errorType"], "ResponseUrlUnavailable");
    assert_eq!(lines[0]["outcome"], "retrying");
    assert_eq!(lines[1]["success"], true);
    assert_eq!(lines[1]["attempt"], 2);
    assert_eq!(app.queue.stats().await.unwrap().dead_letters, 0);
    // Every line about this command carries its correlation id, warnings included.
    let warnings: Vec<_> =
        log_lines_for("flaky").into_iter().filter(|l| l["message"] == "response_url post failed").collect();
    assert_eq!(warnings.len(), 3, "three failed tries were logged");
    assert!(warnings.iter().all(|w| w["span"]["correlation_id"] == "flaky"), "{warnings:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_always_fails_sends_the_job_to_the_dlq_and_redrive_delivers_it() {
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    slack.fail_first(usize::MAX);
    assert_eq!(app.send(&slack, "/echo", "doomed", "doomed").await.status(), 200);
    let lines = wait_for_log("doomed", "Performance metrics", 3).await;
    assert_eq!(lines.len(), 3, "three attempts (the default max_attempts)");
    assert_eq!(lines[2]["outcome"], "dead_lettered");
    let dead = loop {
        let dead = app.queue.dlq_list(10).await.unwrap();
        if !dead.is_empty() {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].last_error.contains("response_url kept failing"), "{}", dead[0].last_error);
    assert_eq!(dead[0].job.correlation_id.as_str(), "doomed");

    slack.fail_first(0);
    assert_eq!(app.queue.dlq_redrive(Redrive::One(dead[0].id.clone())).await.unwrap(), 1);
    let posts = slack.wait_for("doomed", 2, Duration::from_secs(30)).await;
    assert_eq!(posts.len(), 2, "redriven job answered");
    assert!(app.queue.dlq_list(10).await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_times_out_is_retried_then_reported_to_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    for c in settings.commands.iter_mut().filter(|c| c.name == "/analyze") {
        c.handler = HandlerSpec::new("simulate").param("work", "5s").param("answers", 2);
        c.timeout = Duration::from_millis(300);
        c.max_attempts = 2;
    }
    let app = spawn_app_with(settings).await;
    let slack = SlackReceiver::start().await;
    app.send(&slack, "/analyze", "db", "slow").await;
    let lines = wait_for_log("slow", "Performance metrics", 2).await;
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["errorType"] == "Timeout"), "{lines:?}");
    assert_eq!(lines[1]["outcome"], "dead_lettered");
    // Each attempt posted its "started" message; then the failure notice arrives.
    let posts = slack.wait_for("slow", 3, Duration::from_secs(20)).await;
    let last = posts.last().unwrap().body["text"].as_str().unwrap();
    assert!(last.contains("/analyze failed") && last.contains("timed out") && last.contains("slow"), "{last}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_write_command_is_not_run_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    for c in settings.commands.iter_mut().filter(|c| c.name == "/deploy") {
        c.handler = HandlerSpec::new("simulate").param("work", "5s").param("answers", 2);
        c.timeout = Duration::from_millis(300);
    }
    let app = spawn_app_with(settings).await;
    let slack = SlackReceiver::start().await;
    app.send(&slack, "/deploy", "web", "deploy-timeout").await;
    let lines = wait_for_log("deploy-timeout", "Performance metrics", 1).await;
    assert_eq!(lines[0]["outcome"], "dead_lettered", "a write that may have had its effect is not repeated");
    app.stop().await;
}
