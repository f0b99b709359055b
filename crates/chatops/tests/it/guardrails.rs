//! Guardrails end to end, through real HTTP with signed payloads: access control at the
//! router, approvals with buttons (on SQLite and on NATS), and the audit trail as
//! `chatops audit list` shows it. Slack is played by the local receiver (response_url).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chatops_core::slack::SlashCommand;
use chatops_core::slack::interaction::{APPROVE_ACTION, BlockAction, DENY_ACTION, block_action_form};
use chatops_service::app::App;
use chatops_testkit::NatsServer;

use crate::support::{
    BotProcess, SlackReceiver, TestApp, http, sign, slash, spawn_app_of, test_overrides, tuned_for_tests,
};

const GUARDED: &str = r#"
[[commands]]
name = "/deploy"
quadrant = "long-write"
handler = "simulate"
params = { work = "200ms", answers = 2 }
requires_approval = true
approval = { approvers = ["U0BOSS", "U0BOSS2"] }

[[commands]]
name = "/expire"
quadrant = "short-write"
handler = "simulate"
params = { work = "10ms", answers = 1 }
requires_approval = true
approval = { approvers = ["U0BOSS"], expires_after = "5s" }

[[commands]]
name = "/scale"
quadrant = "short-write"
handler = "simulate"
params = { work = "10ms", answers = 1 }
access = { users = ["U0OPS"], channels = ["C0OPS"], teams = ["T0TEST"] }

[[commands]]
name = "/migrate"
quadrant = "long-write"
handler = "simulate"
params = { work = "10ms", answers = 1 }
requires_approval = true
approval = { approvers = ["U0BOSS", "U0BOSS2"], required = 2, allow_self = true }
"#;

async fn guarded_bot(dir: &Path, queue_url: Option<String>) -> TestApp {
    let config = dir.join("guarded.toml");
    std::fs::write(&config, GUARDED).unwrap();
    let mut overrides = test_overrides(dir);
    overrides.queue_url = queue_url;
    let app = App::default();
    spawn_app_of(&app, tuned_for_tests(app.load_settings(Some(&config), overrides).unwrap())).await
}

/// A bot in this process or a child process: where it listens.
trait Bot {
    fn base(&self) -> &str;
}

impl Bot for TestApp {
    fn base(&self) -> &str {
        &self.base
    }
}

impl Bot for BotProcess {
    fn base(&self) -> &str {
        &self.base
    }
}

fn command_as(command: &str, text: &str, url: &str, user: &str, channel: &str) -> SlashCommand {
    SlashCommand { user_id: user.into(), channel_id: channel.into(), ..slash(command, text, url) }
}

async fn send_as(bot: &impl Bot, cmd: &SlashCommand, request_id: &str) -> serde_json::Value {
    let resp = crate::support::post_signed(bot.base(), &sign(cmd.to_form()), request_id).await;
    assert_eq!(resp.status(), 200, "{request_id}");
    resp.json().await.unwrap()
}

/// Posts a signed click on `/slack/interactions`; returns the status.
async fn click_raw(bot: &impl Bot, body: &str) -> u16 {
    let req = sign(body.as_bytes().to_vec());
    http()
        .post(format!("{}/slack/interactions", bot.base()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", &req.timestamp)
        .header("x-slack-signature", &req.signature)
        .body(req.body.clone())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn click_form(slack: &SlackReceiver, user: &str, approve: bool, approval_id: &str, hook: &str) -> String {
    block_action_form(&BlockAction {
        user_id: user.into(),
        user_name: user.to_lowercase(),
        team_id: "T0TEST".into(),
        enterprise_id: None,
        channel_id: "C0TEST".into(),
        response_url: slack.url(hook),
        action_id: if approve { APPROVE_ACTION } else { DENY_ACTION }.into(),
        value: approval_id.into(),
    })
}

async fn click(bot: &impl Bot, slack: &SlackReceiver, user: &str, approve: bool, id: &str, hook: &str) {
    assert_eq!(click_raw(bot, &click_form(slack, user, approve, id, hook)).await, 200, "{hook}");
}

/// Waits for the request message and returns the approval id its buttons carry.
async fn approval_id(slack: &SlackReceiver, hook: &str) -> String {
    let posts = slack.wait_for(hook, 1, Duration::from_secs(10)).await;
    let message = &posts.first().unwrap_or_else(|| panic!("no approval message at {hook}")).body;
    assert_eq!(message["response_type"], "in_channel", "{message}");
    let buttons = message["blocks"].as_array().unwrap().iter().find(|b| b["type"] == "actions").unwrap();
    assert_eq!(buttons["elements"][0]["action_id"], APPROVE_ACTION);
    assert_eq!(buttons["elements"][1]["action_id"], DENY_ACTION);
    buttons["elements"][0]["value"].as_str().unwrap().to_owned()
}

fn texts(slack: &SlackReceiver, hook: &str) -> Vec<String> {
    slack.posts(hook).iter().map(|p| p.body["text"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Waits until `hook` has `n` posts and returns their texts.
async fn wait_texts(slack: &SlackReceiver, hook: &str, n: usize) -> Vec<String> {
    slack.wait_for(hook, n, Duration::from_secs(15)).await;
    texts(slack, hook)
}

/// `chatops audit list --json` of a data directory (or NATS), as the CLI prints it.
fn audit_list(dir: &Path, queue_url: Option<&str>) -> Vec<serde_json::Value> {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chatops"));
    cmd.args(["audit", "list", "--json", "--limit", "1000", "--data-dir", dir.to_str().unwrap()]);
    if let Some(url) = queue_url {
        cmd.args(["--queue", url]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Polls the audit trail until `n` records exist.
async fn audit_records(dir: &Path, queue_url: Option<&str>, n: usize) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let records = audit_list(dir, queue_url);
        if records.len() >= n || tokio::time::Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn record_of<'a>(records: &'a [serde_json::Value], correlation_id: &str) -> &'a serde_json::Value {
    records
        .iter()
        .find(|r| r["correlationId"] == correlation_id)
        .unwrap_or_else(|| panic!("no audit record for {correlation_id} in {records:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rules_refuse_with_the_rule_audit_it_and_enqueue_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bot = guarded_bot(dir.path(), None).await;
    let slack = SlackReceiver::start().await;
    // (request id, user, channel, team, expected rule or None when allowed)
    let cases = [
        ("acl-ok", "U0OPS", "C0OPS", "T0TEST", None),
        ("acl-user", "U0DEV", "C0OPS", "T0TEST", Some("user")),
        ("acl-channel", "U0OPS", "C0RANDOM", "T0TEST", Some("channel")),
        ("acl-team", "U0OPS", "C0OPS", "T0OTHER", Some("team")),
    ];
    for (id, user, channel, team, refused_by) in cases {
        let cmd = SlashCommand { team_id: team.into(), ..command_as("/scale", "web 3", &slack.url(id), user, channel) };
        let ack = send_as(&bot, &cmd, id).await;
        let text = ack["text"].as_str().unwrap();
        match refused_by {
            None => assert!(text.contains("Processing"), "{id}: {text}"),
            Some(rule) => {
                assert!(text.contains("Not allowed here") && text.contains(&format!("(rule: {rule})")), "{id}: {text}");
                assert!(
                    !text.contains("U0OPS") && !text.contains("C0OPS"),
                    "the answer never lists who is allowed: {text}"
                );
                assert_eq!(ack["response_type"], "ephemeral");
            }
        }
    }
    // Unrestricted commands still run for anyone.
    assert!(
        send_as(&bot, &command_as("/echo", "hi", &slack.url("acl-echo"), "U0DEV", "C0X"), "acl-echo").await["text"]
            .as_str()
            .unwrap()
            .contains("Processing")
    );
    assert_eq!(wait_texts(&slack, "acl-ok", 1).await.len(), 1);
    let records = audit_records(dir.path(), None, 5).await;
    assert_eq!(record_of(&records, "acl-ok")["outcome"], "completed");
    assert_eq!(record_of(&records, "acl-ok")["decision"], "allowed");
    for (id, rule) in [("acl-user", "user"), ("acl-channel", "channel"), ("acl-team", "team")] {
        let r = record_of(&records, id);
        assert_eq!(
            (r["decision"].as_str(), r["refusedBy"].as_str(), r["outcome"].as_str()),
            (Some("refused"), Some(rule), Some("refused")),
            "{r}"
        );
        assert_eq!(r["attempts"], 0, "a refused command never reached a worker: {r}");
        assert!(slack.posts(id).is_empty(), "{id} ran");
    }
    assert_eq!(record_of(&records, "acl-echo")["outcome"], "completed");
    let refusals = http().get(format!("{}/metrics", bot.metrics_base)).send().await.unwrap().text().await.unwrap();
    assert!(refusals.contains(r#"chatops_access_refusals_total{command="/scale",rule="user"} 1"#), "{refusals}");
    bot.stop().await;
}

/// The whole approval flow on one engine.
async fn approval_flow(queue_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let bot = guarded_bot(dir.path(), queue_url.clone()).await;
    let slack = SlackReceiver::start().await;

    // Approved by one approver after refused clicks; the result lands in the message.
    let ack = send_as(&bot, &command_as("/deploy", "web", &slack.url("ap-req"), "U0REQ", "C0TEST"), "ap-req").await;
    assert!(ack["text"].as_str().unwrap().contains("needs approval"), "{ack}");
    let id = approval_id(&slack, "ap-req").await;
    assert!(id.len() == 32 && !id.contains("ap-req"), "an opaque id: {id}");
    click(&bot, &slack, "U0RANDOM", true, &id, "ap-stranger").await;
    assert!(
        wait_texts(&slack, "ap-stranger", 1).await[0].contains("cannot approve"),
        "{:?}",
        texts(&slack, "ap-stranger")
    );
    click(&bot, &slack, "U0REQ", true, &id, "ap-self").await;
    assert!(wait_texts(&slack, "ap-self", 1).await[0].contains("your own request"));
    let approve = click_form(&slack, "U0BOSS", true, &id, "ap-boss");
    assert_eq!(click_raw(&bot, &approve).await, 200);
    let boss = wait_texts(&slack, "ap-boss", 2).await;
    assert!(boss[0].contains("approved by <@U0BOSS>") && boss[0].contains("running"), "{boss:?}");
    assert!(boss[1].contains("completed"), "the result goes into the approval message: {boss:?}");
    assert!(slack.posts("ap-boss").iter().all(|p| p.body["replace_original"] == true));
    let ran = wait_texts(&slack, "ap-req", 3).await;
    assert!(ran[1].contains("[simulation]") && ran[1].contains("Approved by <@U0BOSS>"), "{ran:?}");
    // The human's wait is its own stage of the E2E line, and the stages still add up.
    let line = &crate::support::wait_for_log("ap-req", "Performance metrics", 1).await[0];
    let wait = line["approvalWaitMs"].as_f64().unwrap_or_else(|| panic!("no approvalWaitMs: {line}"));
    assert!(wait > 0.0, "{line}");
    let stages: f64 = ["routerMs", "approvalWaitMs", "enqueueMs", "queueWaitMs", "workerDurationMs"]
        .iter()
        .map(|k| line[k].as_f64().unwrap())
        .sum();
    assert!((line["totalE2eMs"].as_f64().unwrap() - stages).abs() < 5.0, "{line}");
    // The same click again (a replay): nothing runs a second time.
    assert_eq!(click_raw(&bot, &approve).await, 200);
    assert!(wait_texts(&slack, "ap-boss", 3).await[2].contains("already approved"), "{:?}", texts(&slack, "ap-boss"));

    // Two approvers race on a request that needs one: one job.
    send_as(&bot, &command_as("/deploy", "api", &slack.url("race-req"), "U0REQ", "C0TEST"), "race-req").await;
    let id = approval_id(&slack, "race-req").await;
    let (a, b) =
        (click_form(&slack, "U0BOSS", true, &id, "race-a"), click_form(&slack, "U0BOSS2", true, &id, "race-b"));
    let (ra, rb) = tokio::join!(click_raw(&bot, &a), click_raw(&bot, &b));
    assert_eq!((ra, rb), (200, 200));
    wait_texts(&slack, "race-req", 3).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sims = texts(&slack, "race-req").iter().filter(|t| t.contains("[simulation]")).count();
    assert_eq!(sims, 2, "one job (two posts), not two: {:?}", texts(&slack, "race-req"));

    // Two approvals needed; a double-click counts once; the requester may approve (allowed).
    send_as(&bot, &command_as("/migrate", "", &slack.url("two-req"), "U0BOSS", "C0TEST"), "two-req").await;
    let id = approval_id(&slack, "two-req").await;
    click(&bot, &slack, "U0BOSS", true, &id, "two-1").await;
    assert!(wait_texts(&slack, "two-1", 1).await[0].contains("1 of 2"), "{:?}", texts(&slack, "two-1"));
    click(&bot, &slack, "U0BOSS", true, &id, "two-1again").await;
    assert!(wait_texts(&slack, "two-1again", 1).await[0].contains("already voted"));
    click(&bot, &slack, "U0BOSS2", true, &id, "two-2").await;
    assert!(wait_texts(&slack, "two-2", 1).await[0].contains("running"));
    assert!(wait_texts(&slack, "two-req", 2).await[1].contains("[simulation]"));

    // Denied: the requester is told, nothing runs.
    send_as(&bot, &command_as("/deploy", "db", &slack.url("deny-req"), "U0REQ", "C0TEST"), "deny-req").await;
    let id = approval_id(&slack, "deny-req").await;
    click(&bot, &slack, "U0BOSS2", false, &id, "deny-click").await;
    assert!(wait_texts(&slack, "deny-click", 1).await[0].contains("denied by <@U0BOSS2>"));
    let told = wait_texts(&slack, "deny-req", 2).await;
    assert!(told[1].contains("was denied"), "{told:?}");

    // Expired: the channel is told, a late click cannot run it.
    send_as(&bot, &command_as("/expire", "cache", &slack.url("exp-req"), "U0REQ", "C0TEST"), "exp-req").await;
    let id = approval_id(&slack, "exp-req").await;
    let expired = slack.wait_for("exp-req", 2, Duration::from_secs(20)).await;
    assert!(
        expired.len() >= 2 && expired[1].body["text"].as_str().unwrap().contains("expired"),
        "{:?}",
        texts(&slack, "exp-req")
    );
    click(&bot, &slack, "U0BOSS", true, &id, "exp-late").await;
    assert!(
        wait_texts(&slack, "exp-late", 1).await[0].contains("expired before it was approved"),
        "{:?}",
        texts(&slack, "exp-late")
    );

    // Unknown and malformed ids are answered, not run.
    click(&bot, &slack, "U0BOSS", true, &"0".repeat(32), "unknown-id").await;
    assert!(wait_texts(&slack, "unknown-id", 1).await[0].contains("unknown"));
    click(&bot, &slack, "U0BOSS", true, "../../etc/passwd", "bad-id").await;
    assert!(wait_texts(&slack, "bad-id", 1).await[0].contains("unknown"));

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(texts(&slack, "deny-req").iter().filter(|t| t.contains("[simulation]")).count(), 0);
    assert_eq!(texts(&slack, "exp-req").iter().filter(|t| t.contains("[simulation]")).count(), 0);
    let url = queue_url.as_deref();
    let records = audit_records(dir.path(), url, 5).await;
    let approved = record_of(&records, "ap-req");
    assert_eq!(approved["outcome"], "completed", "{approved}");
    assert_eq!(approved["approvals"][0]["userId"], "U0BOSS", "{approved}");
    assert_eq!(record_of(&records, "race-req")["outcome"], "completed");
    assert_eq!(record_of(&records, "deny-req")["outcome"], "denied");
    assert_eq!(record_of(&records, "exp-req")["outcome"], "expired");
    assert_eq!(records.iter().filter(|r| r["correlationId"] == "race-req").count(), 1);
    let metrics = http().get(format!("{}/metrics", bot.metrics_base)).send().await.unwrap().text().await.unwrap();
    for (command, event, n) in
        [("/deploy", "requested", 3), ("/deploy", "approved", 2), ("/deploy", "denied", 1), ("/expire", "expired", 1)]
    {
        let line = format!(r#"chatops_approvals_total{{command="{command}",event="{event}"}} {n}"#);
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_end_to_end_on_sqlite() {
    approval_flow(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_end_to_end_on_nats() {
    let nats = NatsServer::start();
    approval_flow(Some(nats.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_interaction_payloads_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bot = guarded_bot(dir.path(), None).await;
    let slack = SlackReceiver::start().await;
    let good = click_form(&slack, "U0BOSS", true, &"a".repeat(32), "hostile");
    // A bad signature.
    let forged = http()
        .post(format!("{}/slack/interactions", bot.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", chatops_core::time::now_unix_secs().to_string())
        .header("x-slack-signature", format!("v0={}", "0".repeat(64)))
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let cases: Vec<(String, u16)> = vec![
        ("payload=%7Bnot-json".to_owned(), 400),
        ("nothing=here".to_owned(), 400),
        (format!("{good}&{good}"), 400),
        (format!("payload={}", "x".repeat(70 * 1024)), 413),
        // Another type of interaction, and an action id we do not own: acknowledged, ignored.
        ("payload=%7B%22type%22%3A%22view_submission%22%7D".to_owned(), 200),
        (good.replace(APPROVE_ACTION, "someone_elses_button"), 200),
    ];
    for (body, status) in cases {
        assert_eq!(click_raw(&bot, &body).await, status, "{}", &body[..body.len().min(80)]);
    }
    // A response_url outside the allow-list is refused before anything is looked up.
    let elsewhere = good.replace("127.0.0.1", "evil.example.com");
    assert_eq!(click_raw(&bot, &elsewhere).await, 400);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(slack.posts("hostile").is_empty() || texts(&slack, "hostile").iter().all(|t| t.contains("unknown")));
    bot.stop().await;
}

/// Pending approvals survive `kill -9`: approved after the restart, the job runs once.
async fn pending_approvals_survive_kill9(queue_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("guarded.toml");
    std::fs::write(&config, format!("[limits]\nper_user_per_minute = 0\n{GUARDED}")).unwrap();
    let data = dir.path().join("data");
    let mut args: Vec<String> = ["serve", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()]
        .into_iter()
        .map(String::from)
        .collect();
    args.extend(["--config".to_owned(), config.to_str().unwrap().to_owned()]);
    if let Some(url) = &queue_url {
        args.extend(["--queue".to_owned(), url.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let slack = SlackReceiver::start().await;
    let mut bot = BotProcess::spawn(&args, &dir.path().join("bot-1.log"), &[]);
    send_as(&bot, &command_as("/deploy", "web", &slack.url("k9-req"), "U0REQ", "C0TEST"), "k9-req").await;
    let id = approval_id(&slack, "k9-req").await;
    bot.kill9();
    let bot = BotProcess::spawn(&args, &dir.path().join("bot-2.log"), &[]);
    click(&bot, &slack, "U0BOSS", true, &id, "k9-click").await;
    let after = wait_texts(&slack, "k9-click", 2).await;
    assert!(after[0].contains("running") && after[1].contains("completed"), "{after:?}");
    let ran = wait_texts(&slack, "k9-req", 3).await;
    assert_eq!(ran.iter().filter(|t| t.contains("[simulation]")).count(), 2, "{ran:?}");
    drop(bot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_approvals_survive_kill9_on_sqlite() {
    pending_approvals_survive_kill9(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_approvals_survive_kill9_on_nats() {
    let nats = NatsServer::start();
    pending_approvals_survive_kill9(Some(nats.url())).await;
}

/// Plays Slack's `usergroups.users.list`: `S0SRE` has `U0GROUPIE` and `U0BOSS`; any other
/// group is unknown (`no_such_subteam`). Counts the calls.
async fn fake_usergroups() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = axum::Router::new().route(
        "/usergroups.users.list",
        axum::routing::get(move |headers: axum::http::HeaderMap, q: axum::extract::Query<HashMap<String, String>>| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let authorized =
                    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer xoxb-groups");
                axum::Json(match q.get("usergroup").map(String::as_str) {
                    _ if !authorized => serde_json::json!({"ok": false, "error": "invalid_auth"}),
                    Some("S0SRE") => serde_json::json!({"ok": true, "users": ["U0GROUPIE", "U0BOSS"]}),
                    _ => serde_json::json!({"ok": false, "error": "no_such_subteam"}),
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, calls)
}

fn settings_with_groups(
    dir: &Path,
    api_base: &str,
    token: Option<&str>,
    groups: &str,
) -> chatops_service::config::Settings {
    let config = dir.join("groups.toml");
    std::fs::write(
        &config,
        format!(
            "[[commands]]\nname = \"/scale\"\nquadrant = \"short-write\"\nhandler = \"simulate\"\n\
             params = {{ work = \"10ms\", answers = 1 }}\naccess = {{ usergroups = {groups} }}\n"
        ),
    )
    .unwrap();
    let app = App::default();
    let mut settings = tuned_for_tests(app.load_settings(Some(&config), test_overrides(dir)).unwrap());
    settings.slack.api_base = api_base.parse().unwrap();
    settings.slack.bot_token = token.map(|t| secrecy::SecretString::from(t.to_owned()));
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_groups_are_resolved_through_the_web_api_and_unknown_ones_stop_the_bot() {
    let (api, calls) = fake_usergroups().await;
    let dir = tempfile::tempdir().unwrap();
    let bot =
        spawn_app_of(&App::default(), settings_with_groups(dir.path(), &api, Some("xoxb-groups"), r#"["S0SRE"]"#))
            .await;
    let slack = SlackReceiver::start().await;
    let member =
        send_as(&bot, &command_as("/scale", "web 2", &slack.url("grp-in"), "U0GROUPIE", "C0X"), "grp-in").await;
    assert!(member["text"].as_str().unwrap().contains("Processing"), "{member}");
    let stranger =
        send_as(&bot, &command_as("/scale", "web 2", &slack.url("grp-out"), "U0DEV", "C0X"), "grp-out").await;
    assert!(stranger["text"].as_str().unwrap().contains("(rule: user)"), "{stranger}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "fetched once at startup, not per command");
    bot.stop().await;

    for (token, groups, expected) in [
        (Some("xoxb-groups"), r#"["S0NOPE"]"#, "S0NOPE"),
        (Some("xoxb-groups"), r#"["S0NOPE"]"#, "no_such_subteam"),
        (Some("xoxb-wrong"), r#"["S0SRE"]"#, "invalid_auth"),
        (None, r#"["S0SRE"]"#, "bot token"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings_with_groups(dir.path(), &api, token, groups);
        let err = App::default().start(settings, chatops_service::startup::Roles::all()).await.unwrap_err().to_string();
        assert!(err.contains(expected), "{groups} with {token:?}: {err}");
        assert!(!err.contains("xoxb"), "the token never shows: {err}");
    }
}
