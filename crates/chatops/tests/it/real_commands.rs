//! Real commands end to end: the example configurations load; an `exec` runbook runs its
//! script with the command's checked arguments and posts start, progress and result; a
//! `kill -9` of the bot while the script runs does not run it twice (the user is told the
//! outcome is unknown); a `github-repository-dispatch` command calls a local server that
//! plays GitHub's API, and a 4xx is a clear failure.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chatops::App;
use serde_json::Value;

use crate::support::*;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The runbooks example's `/restart`, pointed at the shipped script by absolute path, with
/// a run log (one line per run of the script) and a step time.
fn restart_config(dir: &Path, step_secs: &str) -> (PathBuf, PathBuf) {
    let run_log = dir.join("runs.log");
    let examples = repo_root().join("config/examples");
    let text = std::fs::read_to_string(examples.join("runbooks.toml"))
        .unwrap()
        .replace("cwd = \"config/examples\"", &format!("cwd = {:?}", examples.to_str().unwrap()))
        .replace(
            "env = { REQUESTED_BY = \"{user_name}\", CORRELATION_ID = \"{correlation_id}\" }",
            &format!(
                "env = {{ REQUESTED_BY = \"{{user_name}}\", CHATOPS_RUN_LOG = {:?}, RESTART_STEP_SECS = \"{step_secs}\" }}",
                run_log.to_str().unwrap()
            ),
        );
    let path = dir.join("runbooks.toml");
    std::fs::write(&path, format!("[limits]\nper_user_per_minute = 0\n{text}")).unwrap();
    (path, run_log)
}

fn texts(posts: &[Post]) -> Vec<String> {
    posts.iter().map(|p| p.body["text"].as_str().unwrap_or_default().to_owned()).collect()
}

#[test]
fn the_example_configurations_load() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["runbooks.toml", "github.toml"] {
        let path = repo_root().join("config/examples").join(name);
        let settings = App::default().load_settings(Some(&path), test_overrides(dir.path())).unwrap();
        let s = chatops_service::registry::RegistryBuilder::default().build(settings.commands);
        assert!(s.is_ok(), "{name}: {:?}", s.err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_runbook_runs_its_script_and_reports_progress_and_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let (config, run_log) = restart_config(dir.path(), "1.2");
    let app = App::default();
    let settings = tuned_for_tests(app.load_settings(Some(&config), test_overrides(dir.path())).unwrap());
    let bot = spawn_app_of(&app, settings).await;
    let slack = SlackReceiver::start().await;
    let ack: Value = bot.send(&slack, "/restart", "web staging", "exec-ok").await.json().await.unwrap();
    assert!(ack["text"].as_str().unwrap().starts_with("Processing"), "{ack}");
    let posts = texts(&slack.wait_for("exec-ok", 4, Duration::from_secs(30)).await);
    assert!(posts[0].contains("Running `/restart web staging`"), "{posts:?}");
    assert!(posts[1].contains("draining web in staging"), "progress: {posts:?}");
    assert!(posts[2].contains("restarting web"), "progress: {posts:?}");
    let result = &posts[3];
    assert!(
        result.contains("succeeded (exit code 0)") && result.contains("web restarted in staging (requested by tester)"),
        "{result}"
    );
    assert_eq!(std::fs::read_to_string(&run_log).unwrap(), "run web staging\n");
    let line = wait_for_log("exec-ok", "Performance metrics", 1).await;
    assert_eq!((&line[0]["outcome"], &line[0]["component"]), (&"completed".into(), &"sw-worker".into()));
    assert!(line[0]["handlerMs"].as_f64().unwrap() >= 2000.0, "handlerMs covers the script: {}", line[0]);
    // A value that tries to become shell syntax never reaches the script: the pattern refuses it.
    let refused: Value =
        bot.send(&slack, "/restart", "\"web; rm -rf /\" staging", "exec-inject").await.json().await.unwrap();
    assert!(refused["text"].as_str().unwrap().contains("*not* run"), "{refused}");
    bot.stop().await;
    assert_eq!(std::fs::read_to_string(&run_log).unwrap().lines().count(), 1, "the refused one never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runbook_interrupted_by_kill_9_is_not_run_again_and_the_user_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let (config, run_log) = restart_config(dir.path(), "4");
    let data = dir.path().join("data");
    let env = [("CHATOPS_CONFIG", config.to_str().unwrap())];
    let mut bot = BotProcess::start(&data, &dir.path().join("bot-1.log"), &env);
    let slack = SlackReceiver::start().await;
    let body = slash("/restart", "web production", &slack.url("exec-crash")).to_form();
    assert_eq!(post_signed(&bot.base, &sign(body), "exec-crash").await.status(), 200);
    // The script is running (its first progress line arrived): kill the bot.
    let posts = slack.wait_for("exec-crash", 2, Duration::from_secs(30)).await;
    assert!(texts(&posts)[1].contains("draining web"), "{:?}", texts(&posts));
    bot.kill9();
    let restarted = BotProcess::start(&data, &dir.path().join("bot-2.log"), &env);
    let deadline = Instant::now() + Duration::from_secs(30);
    let told = loop {
        let all = texts(&slack.posts("exec-crash"));
        if let Some(t) = all.iter().find(|t| t.contains("interrupted")) {
            break t.clone();
        }
        assert!(Instant::now() < deadline, "the user is told within 30 s: {all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(told.contains("outcome is unknown") && told.contains("not run again"), "{told}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(std::fs::read_to_string(&run_log).unwrap(), "run web production\n", "the script ran once");
    let line = restarted
        .log_lines()
        .into_iter()
        .find(|l| l["message"] == "Performance metrics" && l["correlationId"] == "exec-crash")
        .expect("the redelivery's metric line");
    assert_eq!((&line["errorType"], &line["outcome"]), (&"Interrupted".into(), &"dead_lettered".into()), "{line}");
}

/// A local server that plays GitHub's dispatch endpoints: records each request and answers
/// with the next status of `answers` (204 when they run out).
async fn fake_github(answers: Vec<u16>) -> (String, Arc<Mutex<Vec<(String, HeaderMap, Value)>>>) {
    let seen: Arc<Mutex<Vec<(String, HeaderMap, Value)>>> = Arc::default();
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    let app = Router::new().route(
        "/repos/{owner}/{repo}/dispatches",
        post({
            let seen = seen.clone();
            move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let (seen, answers) = (seen.clone(), answers.clone());
                async move {
                    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    seen.lock().unwrap().push((uri.path().to_owned(), headers, json));
                    let status = answers.lock().unwrap().next().unwrap_or(204);
                    let body = if status >= 400 { r#"{"message":"Validation Failed"}"# } else { "" };
                    (StatusCode::from_u16(status).unwrap(), body)
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_dispatch_command_calls_github_and_a_4xx_is_a_clear_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (api, seen) = fake_github(vec![204, 422]).await;
    let token = dir.path().join("token");
    std::fs::write(&token, "ghp_test_token\n").unwrap();
    let text = std::fs::read_to_string(repo_root().join("config/examples/github.toml"))
        .unwrap()
        .replace("repo = \"platform\"\nevent_type", &format!("repo = \"platform\"\napi_base = {api:?}\nevent_type"))
        .replace("token = { env = \"GITHUB_TOKEN\" }", &format!("token = {{ file = {:?} }}", token.to_str().unwrap()))
        .replace("requires_approval = true\n", "")
        .replace("approval = { approvers = [\"U0LEAD0001\", \"U0LEAD0002\"], expires_after = \"15m\" }\n", "");
    let config = dir.path().join("github.toml");
    std::fs::write(&config, text).unwrap();
    let app = App::default();
    let bot =
        spawn_app_of(&app, tuned_for_tests(app.load_settings(Some(&config), test_overrides(dir.path())).unwrap()))
            .await;
    let slack = SlackReceiver::start().await;
    assert_eq!(bot.send(&slack, "/deploy", "web production v1.4.2", "gh-ok").await.status(), 200);
    let ok = texts(&slack.wait_for("gh-ok", 1, Duration::from_secs(30)).await);
    assert!(ok[0].contains("HTTP 204") && ok[0].contains(&format!("<{api}/acme/platform/actions|Actions>")), "{ok:?}");
    {
        let seen = seen.lock().unwrap();
        let (path, headers, body) = &seen[0];
        assert_eq!(path, "/repos/acme/platform/dispatches");
        assert_eq!(headers["authorization"], "Bearer ghp_test_token");
        assert_eq!(body["event_type"], "deploy");
        assert_eq!(body["client_payload"]["service"], "web");
        assert_eq!(body["client_payload"]["env"], "production");
        assert_eq!(body["client_payload"]["version"], "v1.4.2");
        assert_eq!(body["client_payload"]["correlation_id"], "gh-ok");
    }
    assert_eq!(bot.send(&slack, "/deploy", "web staging", "gh-422").await.status(), 200);
    let failed = texts(&slack.wait_for("gh-422", 1, Duration::from_secs(30)).await);
    assert!(
        failed[0].contains("failed") && failed[0].contains("HTTP 422") && failed[0].contains("Validation Failed"),
        "{failed:?}"
    );
    let line = wait_for_log("gh-422", "Performance metrics", 1).await;
    assert_eq!((&line[0]["errorType"], &line[0]["outcome"]), (&"CommandFailed".into(), &"dead_lettered".into()));
    assert_eq!(seen.lock().unwrap().len(), 2, "a 4xx is not retried");
    bot.stop().await;
}
