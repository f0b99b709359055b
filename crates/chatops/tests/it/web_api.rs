//! Progress through Slack's Web API, end to end: a local server plays `chat.postMessage` and
//! `chat.update` (checking the bearer token, answering one 429 among the edits), a real bot
//! process runs an `exec` command whose script prints progress lines faster than once a
//! second, and the server records exactly one message created and its edits in order,
//! never two edits of it within a second, ending with the result; the token is in no log
//! line. Without the Web API's conditions (an ephemeral command, or a channel the bot may
//! not post in) the same progress goes to `response_url`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chatops::App;
use serde_json::{Value, json};

use crate::support::*;

const BOT_TOKEN: &str = "xoxb-test-5a8d2c41e9-web-api";
const TS: &str = "1700000000.000100";
const RESULT: usize = 99;

/// One call the fake Web API received.
#[derive(Debug, Clone)]
struct ApiCall {
    at: Instant,
    method: String,
    body: Value,
    status: u16,
}

/// Plays Slack's Web API on a random port: `chat.postMessage` answers `post_answer`,
/// `chat.update` answers ok except a 429 (`Retry-After: 1`) to edit number `limit_edit`
/// (1-based). A request without the bot's bearer token gets `invalid_auth`.
struct FakeWebApi {
    base: String,
    calls: Arc<Mutex<Vec<ApiCall>>>,
}

impl FakeWebApi {
    async fn start(post_answer: Value, limit_edit: Option<usize>) -> FakeWebApi {
        let calls: Arc<Mutex<Vec<ApiCall>>> = Arc::default();
        let edits = Arc::new(AtomicUsize::new(0));
        let route = |method: &'static str| {
            let (calls, edits, post_answer) = (calls.clone(), edits.clone(), post_answer.clone());
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (calls, edits, post_answer) = (calls.clone(), edits.clone(), post_answer.clone());
                async move {
                    let at = Instant::now();
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
                        == Some(&format!("Bearer {BOT_TOKEN}"))
                        && headers.get("content-type").and_then(|v| v.to_str().ok())
                            == Some("application/json; charset=utf-8");
                    let limited = method == "chat.update" && {
                        let n = edits.fetch_add(1, Ordering::SeqCst) + 1;
                        Some(n) == limit_edit
                    };
                    let (status, answer) = if !authorized {
                        (200, json!({"ok": false, "error": "invalid_auth"}))
                    } else if limited {
                        (429, json!({"ok": false, "error": "ratelimited"}))
                    } else if method == "chat.postMessage" {
                        (200, post_answer)
                    } else {
                        (200, json!({"ok": true, "channel": body["channel"], "ts": body["ts"]}))
                    };
                    calls.lock().unwrap().push(ApiCall { at, method: method.to_owned(), body, status });
                    let mut response = axum::response::Response::new(axum::body::Body::from(answer.to_string()));
                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                    if status == 429 {
                        response.headers_mut().insert("retry-after", "1".parse().unwrap());
                    }
                    response
                }
            })
        };
        let app = Router::new()
            .route("/api/chat.postMessage", route("chat.postMessage"))
            .route("/api/chat.update", route("chat.update"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/api", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeWebApi { base, calls }
    }

    fn calls(&self) -> Vec<ApiCall> {
        self.calls.lock().unwrap().clone()
    }

    /// Waits until a call satisfies `done`, or 30 s.
    async fn wait_until(&self, done: impl Fn(&ApiCall) -> bool) -> Vec<ApiCall> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let calls = self.calls();
            if calls.iter().any(&done) || Instant::now() > deadline {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A script that reports eight steps, 0.4 s apart (faster than one edit a second), then
/// prints its result.
fn steps_script(dir: &Path) -> PathBuf {
    let path = dir.join("eight-steps.sh");
    std::fs::write(
        &path,
        "#!/usr/bin/env bash\nset -euo pipefail\nfor i in 1 2 3 4 5 6 7 8; do\n  echo \"::progress::step $i of 8\"\n  sleep 0.4\ndone\necho \"all eight steps done\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `/eight-steps`, an `exec` command of that script, with `visibility` and the Web API at
/// `api_base`; `extra` goes into `[slack]`.
fn config(dir: &Path, api_base: &str, visibility: &str, slack_extra: &str) -> PathBuf {
    let script = steps_script(dir);
    test_config_file(
        dir,
        &format!(
            "[slack]\napi_base = {api_base:?}\n{slack_extra}\n\n\
             [[commands]]\nname = \"/eight-steps\"\nquadrant = \"long-write\"\ndescription = \"Eight steps\"\n\
             handler = \"exec\"\nvisibility = {visibility:?}\n\n\
             [commands.params]\nargv = [{:?}]\nenv_allow = [\"PATH\"]\ntimeout = \"60s\"\n",
            script.to_str().unwrap()
        ),
    )
}

fn texts(posts: &[Post]) -> Vec<String> {
    posts.iter().map(|p| p.body["text"].as_str().unwrap_or_default().to_owned()).collect()
}

/// The step number an edit shows (0 for the start, [`RESULT`] for the result).
fn step_of(text: &str) -> usize {
    if text.contains("exit code") {
        return RESULT;
    }
    text.split("step ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_command_shows_its_progress_as_one_channel_message_edited_at_most_once_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeWebApi::start(json!({"ok": true, "channel": "C0TEST", "ts": TS}), Some(2)).await;
    let config = config(dir.path(), &api.base, "in_channel", "");
    let log_file = dir.path().join("bot.log");
    let env = [
        ("CHATOPS_CONFIG", config.to_str().unwrap()),
        ("CHATOPS_SLACK_BOT_TOKEN", BOT_TOKEN),
        // Everything the bot and its libraries say, to look for the token in.
        ("RUST_LOG", "debug"),
    ];
    let bot = BotProcess::start(&dir.path().join("data"), &log_file, &env);
    let slack = SlackReceiver::start().await;
    let body = slash("/eight-steps", "", &slack.url("web-api")).to_form();
    assert_eq!(post_signed(&bot.base, &sign(body), "web-api").await.status(), 200);

    let calls = api.wait_until(|c| c.status == 200 && step_of(c.body["text"].as_str().unwrap_or("")) == RESULT).await;
    let posts: Vec<_> = calls.iter().filter(|c| c.method == "chat.postMessage").collect();
    assert_eq!(posts.len(), 1, "exactly one message is created: {calls:#?}");
    assert_eq!(posts[0].body["channel"], "C0TEST", "in the command's channel");
    assert!(posts[0].body["text"].as_str().unwrap().contains("Running `/eight-steps`"), "{:?}", posts[0].body);
    let edits: Vec<_> = calls.iter().filter(|c| c.method == "chat.update").collect();
    assert!(edits.iter().all(|e| e.body["channel"] == "C0TEST" && e.body["ts"] == TS), "all edit that message");
    assert_eq!(edits.iter().filter(|e| e.status == 429).count(), 1, "the 429 was answered: {edits:#?}");
    let shown: Vec<usize> =
        edits.iter().filter(|e| e.status == 200).map(|e| step_of(e.body["text"].as_str().unwrap())).collect();
    assert!(shown.windows(2).all(|w| w[0] < w[1]), "edits in order, each newer than the last: {shown:?}");
    assert!(shown.len() >= 3, "steps were shown on the way: {shown:?}");
    assert!(shown.len() < 9, "steps faster than a second were coalesced: {shown:?}");
    assert_eq!(shown.last(), Some(&RESULT), "the last edit is the result, the 429 notwithstanding: {shown:?}");
    let result = edits.last().unwrap().body["text"].as_str().unwrap();
    assert!(result.contains("succeeded (exit code 0)") && result.contains("all eight steps done"), "{result}");
    for pair in calls.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(900), "two calls on the message {gap:?} apart: {calls:#?}");
    }
    assert!(slack.posts("web-api").is_empty(), "nothing went to response_url: {:?}", texts(&slack.posts("web-api")));

    // The breakdown counts what the user saw: the post and every delivered edit.
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let line = bot
            .log_lines()
            .into_iter()
            .find(|l| l["message"] == "Performance metrics" && l["correlationId"] == "web-api");
        if let Some(line) = line {
            break line;
        }
        assert!(Instant::now() < deadline, "no metrics line");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(line["outcome"], "completed", "{line}");
    assert_eq!(line["responses"].as_u64(), Some(1 + shown.len() as u64), "{line}");
    assert!(line["syncResponseMs"].is_number() && line["lastResponseE2eMs"].is_number(), "{line}");
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(log.contains("Slack Web API enabled"), "the log says the Web API is on");
    assert!(!log.contains(BOT_TOKEN) && !log.contains("5a8d2c41e9"), "the bot token is in the log file");
}

/// The in-process bot with the token in `[slack] bot_token_file` and `config`.
async fn bot_with_token_file(dir: &Path, api: &FakeWebApi, visibility: &str) -> TestApp {
    let token_file = dir.join("bot-token");
    std::fs::write(&token_file, format!("{BOT_TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let extra = format!("bot_token_file = {:?}", token_file.to_str().unwrap());
    let config = config(dir, &api.base, visibility, &extra);
    let app = App::default();
    let settings = app.load_settings(Some(&config), test_overrides(&dir.join("data"))).unwrap();
    assert!(settings.slack.bot_token.is_some(), "the token file was read");
    spawn_app_of(&app, tuned_for_tests(settings)).await
}

/// Start, two steps (at most one a second), result: within Slack's five posts.
fn assert_progress_on_response_url(posts: &[String]) {
    assert_eq!(posts.len(), 4, "{posts:?}");
    assert!(posts[0].contains("Running `/eight-steps`"), "{posts:?}");
    assert!(posts[1].contains("step 1 of 8") && posts[2].contains("step "), "{posts:?}");
    assert!(posts[3].contains("succeeded (exit code 0)"), "{posts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_command_keeps_its_progress_on_response_url_even_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeWebApi::start(json!({"ok": true, "channel": "C0TEST", "ts": TS}), None).await;
    let bot = bot_with_token_file(dir.path(), &api, "ephemeral").await;
    let slack = SlackReceiver::start().await;
    assert_eq!(bot.send(&slack, "/eight-steps", "", "ephemeral-progress").await.status(), 200);
    wait_for_log("ephemeral-progress", "Performance metrics", 1).await;
    let posts = slack.posts("ephemeral-progress");
    assert_progress_on_response_url(&texts(&posts));
    assert!(posts.iter().all(|p| p.body["response_type"] == "ephemeral"), "{posts:?}");
    assert!(api.calls().is_empty(), "chat.postEphemeral cannot be edited: no Web API call");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_the_bot_cannot_post_in_sends_the_progress_to_response_url() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeWebApi::start(json!({"ok": false, "error": "not_in_channel"}), None).await;
    let bot = bot_with_token_file(dir.path(), &api, "in_channel").await;
    let slack = SlackReceiver::start().await;
    assert_eq!(bot.send(&slack, "/eight-steps", "", "not-in-channel").await.status(), 200);
    let line = wait_for_log("not-in-channel", "Performance metrics", 1).await;
    assert_eq!(line[0]["outcome"], "completed", "{}", line[0]);
    let posts = slack.posts("not-in-channel");
    assert_progress_on_response_url(&texts(&posts));
    assert!(posts.iter().all(|p| p.body["response_type"] == "in_channel"), "the command's visibility: {posts:?}");
    let calls = api.calls();
    assert_eq!(calls.len(), 1, "one try to post, then response_url: {calls:?}");
    let warned = log_lines_for("not-in-channel");
    assert!(
        warned.iter().any(|l| l["error.message"].as_str().is_some_and(|m| m.contains("not_in_channel"))),
        "the log says why: {warned:?}"
    );
    assert!(!all_log_text().contains(BOT_TOKEN), "the bot token is in the log");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_message_whose_command_timed_out_says_it_stopped_instead_of_running_forever() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeWebApi::start(json!({"ok": true, "channel": "C0TEST", "ts": TS}), None).await;
    let script = dir.path().join("hangs.sh");
    std::fs::write(&script, "#!/usr/bin/env bash\necho '::progress::waiting for the lock'\nsleep 30\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let token_file = dir.path().join("bot-token");
    std::fs::write(&token_file, BOT_TOKEN).unwrap();
    let config = test_config_file(
        dir.path(),
        &format!(
            "[slack]\napi_base = {:?}\nbot_token_file = {:?}\n\n\
             [[commands]]\nname = \"/hangs\"\nquadrant = \"long-write\"\ntimeout = \"2s\"\nhandler = \"exec\"\n\
             visibility = \"in_channel\"\n\n[commands.params]\nargv = [{:?}]\n",
            api.base,
            token_file.to_str().unwrap(),
            script.to_str().unwrap()
        ),
    );
    let app = App::default();
    let settings = app.load_settings(Some(&config), test_overrides(&dir.path().join("data"))).unwrap();
    let bot = spawn_app_of(&app, tuned_for_tests(settings)).await;
    let slack = SlackReceiver::start().await;
    assert_eq!(bot.send(&slack, "/hangs", "", "hangs").await.status(), 200);
    let calls = api.wait_until(|c| c.body["text"].as_str().is_some_and(|t| t.contains("stopped before"))).await;
    let edits: Vec<&str> = calls.iter().map(|c| c.body["text"].as_str().unwrap_or_default()).collect();
    assert_eq!(calls.iter().filter(|c| c.method == "chat.postMessage").count(), 1, "{edits:?}");
    assert!(edits.iter().any(|t| t.contains("waiting for the lock")), "the step was shown: {edits:?}");
    assert!(edits.last().unwrap().contains("`/hangs` stopped before it reported a result"), "{edits:?}");
    let told = slack.wait_for("hangs", 1, Duration::from_secs(10)).await;
    assert!(texts(&told)[0].contains("timed out"), "the worker's notice: {:?}", texts(&told));
    bot.stop().await;
}
