//! Typed arguments through the real router: a command declares its arguments in a config
//! file; each text of a table either reaches the handler as checked values or is answered
//! at once with what was wrong and the usage, and then nothing is queued.

use std::time::Duration;

use chatops::{App, SlackMessage};
use serde_json::Value;

use crate::support::*;

const CONFIG: &str = r#"
[[commands]]
name = "/ship"
description = "Ship a service"
args = [
  { name = "service", pattern = "[a-z0-9-]{1,40}" },
  { name = "env", kind = "choice", choices = ["staging", "production"] },
  { name = "replicas", kind = "integer", min = 1, max = 20, default = "2" },
  { name = "note", kind = "rest", optional = true },
]
"#;

/// An app whose `/ship` answers with the arguments it was given, as JSON.
async fn start(dir: &std::path::Path) -> TestApp {
    let path = dir.join("ship.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let app = App::builder()
        .command("/ship", |ctx| async move {
            let args = serde_json::to_string(ctx.args()).expect("args serialize");
            ctx.respond(SlackMessage::ephemeral(args)).await
        })
        .build();
    let settings = app.load_settings(Some(&path), test_overrides(dir)).unwrap();
    spawn_app_of(&app, tuned_for_tests(settings)).await
}

async fn queued(app: &TestApp) -> u64 {
    let stats = app.queue.stats().await.unwrap();
    chatops_core::Quadrant::ALL.iter().map(|&q| stats.quadrant(q).ready + stats.quadrant(q).in_flight).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_are_checked_at_the_router_and_reach_the_handler_typed() {
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path()).await;
    let slack = SlackReceiver::start().await;
    let accepted: &[(&str, Value)] = &[
        ("web production", serde_json::json!({"service": "web", "env": "production", "replicas": "2"})),
        ("api staging 5", serde_json::json!({"service": "api", "env": "staging", "replicas": "5"})),
        (
            "api staging 3 \"roll back\" now",
            serde_json::json!({"service": "api", "env": "staging", "replicas": "3", "note": "\"roll back\" now"}),
        ),
        (
            "“web” ‘staging’ 1 $(reboot); rm -rf / &amp;&amp; `id`",
            serde_json::json!({"service": "web", "env": "staging", "replicas": "1", "note": "$(reboot); rm -rf / && `id`"}),
        ),
    ];
    for (i, (text, want)) in accepted.iter().enumerate() {
        let id = format!("args-ok-{i}");
        let ack: Value = app.send(&slack, "/ship", text, &id).await.json().await.unwrap();
        assert!(ack["text"].as_str().unwrap().starts_with("Processing"), "{text:?}: {ack}");
        let posts = slack.wait_for(&id, 1, Duration::from_secs(20)).await;
        let got: Value = serde_json::from_str(posts[0].body["text"].as_str().unwrap()).unwrap();
        assert_eq!(&got, want, "{text:?}");
    }
    let refused: &[(&str, &str)] = &[
        ("", "missing `service`"),
        ("web", "missing `env`"),
        ("web prod", "`env` must be one of staging, production, not `prod`"),
        ("Web staging", "`Web` is not a valid `service`"),
        ("\"web; rm -rf /\" staging", "is not a valid `service`"),
        ("web staging 50", "between 1 and 20"),
        ("web staging many", "whole number"),
        ("\"web staging", "a quote is not closed"),
    ];
    // The accepted jobs finish their bookkeeping; then the queue must stay empty.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while queued(&app).await > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (i, (text, problem)) in refused.iter().enumerate() {
        let id = format!("args-bad-{i}");
        let resp = app.send(&slack, "/ship", text, &id).await;
        assert_eq!(resp.status(), 200, "Slack shows non-200 answers as a generic error");
        let ack: Value = resp.json().await.unwrap();
        let shown = ack["text"].as_str().unwrap();
        assert!(shown.contains("*not* run") && shown.contains(problem), "{text:?}: {shown}");
        assert!(shown.contains("Usage: `/ship <service> <env: staging|production> [replicas] [note...]`"), "{shown}");
        assert_eq!(queued(&app).await, 0, "{text:?}: nothing queued");
        let line = wait_for_log(&id, "Router performance metrics", 1).await;
        assert_eq!((&line[0]["errorType"], &line[0]["success"]), (&"invalid_arguments".into(), &false.into()));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(slack.posts("args-bad-0").is_empty(), "a refused command never runs");
    // /help shows the usage built from the declaration.
    app.send(&slack, "/help", "", "args-help").await;
    let help = slack.wait_for("args-help", 1, Duration::from_secs(20)).await;
    assert!(help[0].body["text"].as_str().unwrap().contains("/ship <service> <env: staging|production>"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_argument_declaration_is_a_startup_error_naming_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[commands]]\nname = \"/x\"\nquadrant = \"short-read\"\nhandler = \"echo\"\nargs = [{ name = \"env\", kind = \"choice\" }]\n").unwrap();
    let err = App::default().load_settings(Some(&path), test_overrides(dir.path())).unwrap_err().to_string();
    assert!(err.contains("commands[/x].args") && err.contains("choices"), "{err}");
}
