//! `examples/custom_command.rs` end to end: the example's own `app()` (the file is compiled
//! into this test, so it is the example's code, not a copy), its `/greet` parameter from a
//! real config file, a signed request in over HTTP, the answer at the local receiver that
//! plays Slack's `response_url`.

use std::time::Duration;

use crate::support::*;

#[path = "../../examples/custom_command.rs"]
#[allow(dead_code, unreachable_pub)] // its `main` is the example's entry point, not used here
mod example;

/// Starts the example's app with `config` (if any) as its `--config` file.
async fn start_example(dir: &std::path::Path, config: Option<&str>) -> TestApp {
    let file = config.map(|text| {
        let path = dir.join("greet.toml");
        std::fs::write(&path, text).unwrap();
        path
    });
    let app = example::app();
    let settings = app.load_settings(file.as_deref(), test_overrides(dir)).unwrap();
    spawn_app_of(&app, tuned_for_tests(settings)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_greets_with_the_greeting_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[[commands]]\nname = \"/greet\"\nparams = { greeting = \"Howdy\" }\n";
    let bot = start_example(dir.path(), Some(config)).await;
    let slack = SlackReceiver::start().await;
    let ack = bot.send(&slack, "/greet", "", "custom-greet-howdy").await;
    assert_eq!(ack.status(), 200);
    let posts = slack.wait_for("custom-greet-howdy", 1, Duration::from_secs(20)).await;
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body["text"], "Howdy, <@U0TEST>!");
    let line = wait_for_log("custom-greet-howdy", "Performance metrics", 1).await;
    assert_eq!((&line[0]["component"], &line[0]["success"]), (&"sr-worker".into(), &true.into()), "{line:?}");
    // Registered from code, listed like any command; the built-ins are still there.
    bot.send(&slack, "/help", "", "custom-greet-help").await;
    let help = slack.wait_for("custom-greet-help", 1, Duration::from_secs(20)).await;
    let text = help[0].body["text"].as_str().unwrap();
    assert!(text.contains("/greet") && text.contains("/deploy"), "{text}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_needs_no_config_entry_and_reports_a_bad_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let bot = start_example(dir.path(), None).await;
    let slack = SlackReceiver::start().await;
    bot.send(&slack, "/greet", "", "custom-greet-default").await;
    let posts = slack.wait_for("custom-greet-default", 1, Duration::from_secs(20)).await;
    assert_eq!(posts[0].body["text"], "Hello, <@U0TEST>!", "the serde default");
    bot.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let bot = start_example(dir.path(), Some("[[commands]]\nname = \"/greet\"\nparams = { greeting = 3 }\n")).await;
    bot.send(&slack, "/greet", "", "custom-greet-bad").await;
    let line = wait_for_log("custom-greet-bad", "Performance metrics", 1).await;
    assert_eq!(line[0]["errorType"], "BadParameters", "{line:?}");
    assert_eq!(line[0]["outcome"], "dead_lettered", "a bad parameter is not retried");
    let notice = slack.wait_for("custom-greet-bad", 1, Duration::from_secs(20)).await;
    let text = notice[0].body["text"].as_str().unwrap();
    assert!(text.contains("bad parameters for /greet") && text.contains("greeting"), "{text}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_with_commands_keeps_the_role_checks() {
    let dir = tempfile::tempdir().unwrap();
    let app = example::app();
    let settings = tuned_for_tests(app.load_settings(None, test_overrides(dir.path())).unwrap());
    for roles in [chatops::Roles::router(), chatops::Roles::workers(vec![chatops::Quadrant::ShortRead])] {
        let err = app.start(settings.clone(), roles).await.unwrap_err().to_string();
        assert!(err.contains("shared queue") && err.contains("nats://"), "{err}");
    }
}
