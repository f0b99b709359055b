//! The router and a worker over real HTTP: the happy path with its log lines, every bad
//! input with its answer (and nothing enqueued), Slack's special requests, health.

use std::time::Duration;

use chatops_core::Quadrant;
use serde_json::Value;

use crate::support::*;

async fn queue_total(app: &TestApp) -> u64 {
    let stats = app.queue.stats().await.unwrap();
    Quadrant::ALL.iter().map(|&q| stats.quadrant(q).ready + stats.quadrant(q).in_flight).sum::<u64>()
        + stats.dead_letters
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_is_acked_then_answered_twice_in_order() {
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;

    let sent = std::time::Instant::now();
    let resp = app.send(&slack, "/echo", "hello <world>", "echo-1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "echo-1");
    let ack: Value = resp.json().await.unwrap();
    assert_eq!(ack, serde_json::json!({"response_type": "ephemeral", "text": "Processing your `/echo` command..."}));

    let posts = slack.wait_for("echo-1", 2, Duration::from_secs(20)).await;
    assert_eq!(posts.len(), 2, "both answers arrive");
    assert_eq!(posts[0].body["text"], "sync hello <world>");
    assert_eq!(posts[1].body["text"], "async hello <world>");
    assert!(posts[0].at <= posts[1].at, "sync before async");
    assert!(posts[0].at >= sent);
    let blocks = posts[1].body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["text"], "async hello &lt;world&gt;", "user text cannot forge mentions");
    assert_eq!(blocks[1]["elements"][0]["text"], "Requested by <@U0TEST>");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_lines_follow_the_log_contract() {
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    assert_eq!(app.send(&slack, "/echo", "contract", "contract-1").await.status(), 200);
    slack.wait_for("contract-1", 2, Duration::from_secs(20)).await;

    let router = wait_for_log("contract-1", "Router performance metrics", 1).await;
    assert_eq!(router.len(), 1, "one router line per request");
    let r = &router[0];
    assert_eq!(r["correlationId"], "contract-1");
    assert_eq!(r["command"], "/echo");
    assert_eq!(r["statusCode"], 200);
    assert_eq!(r["success"], true);
    assert!(r["duration"].as_f64().unwrap() > 0.0);
    assert!(r["enqueueMs"].as_f64().unwrap() <= r["duration"].as_f64().unwrap());

    let worker = wait_for_log("contract-1", "Performance metrics", 1).await;
    assert_eq!(worker.len(), 1, "one worker line per attempt");
    let w = &worker[0];
    assert_eq!(w["component"], "sr-worker");
    assert_eq!(w["quadrant"], "short-read");
    assert_eq!(w["success"], true);
    assert_eq!(w["attempt"], 1);
    assert_eq!(w["responses"], 2);
    let f = |k: &str| w[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {w}"));
    for k in ["queueWaitMs", "routerMs", "enqueueMs", "handlerMs", "syncResponseMs", "asyncResponseMs"] {
        assert!(f(k) >= 0.0, "{k} = {}", f(k));
    }
    // Stages are measured, not derived: the total covers them and is not their difference.
    let stages = f("routerMs") + f("enqueueMs") + f("queueWaitMs") + f("workerDurationMs");
    assert!(f("totalE2eMs") + 0.01 >= stages, "total {} < stages {stages}", f("totalE2eMs"));
    assert!(f("workerDurationMs") + 0.01 >= f("handlerMs"));
    assert!(f("handlerMs") + 0.01 >= f("syncResponseMs") + f("asyncResponseMs"));
    assert!(f("lastResponseE2eMs") >= f("firstResponseE2eMs"));
    assert!(f("totalE2eMs") >= f("lastResponseE2eMs"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlation_id_is_generated_when_the_header_is_missing_or_hostile() {
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    for hostile in ["", "has space", "a\"b", &"x".repeat(200)] {
        let req = sign(slash("/help", "", &slack.url("gen")).to_form());
        let resp = http()
            .post(format!("{}/slack/commands", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", &req.timestamp)
            .header("x-slack-signature", &req.signature)
            .header("x-request-id", hostile)
            .body(req.body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(id, hostile);
        assert_eq!(id.len(), 36, "a UUIDv7: {id}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_slack_request_twice_runs_once() {
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    let req = sign(slash("/echo", "once", &slack.url("dup")).to_form());
    assert_eq!(app.post(&req, "dup-a").await.status(), 200);
    let second = app.post(&req, "dup-b").await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["x-chatops-duplicate"], "true");
    slack.wait_for("dup", 2, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slack.posts("dup").len(), 2, "one job: two posts, not four");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_command_gets_the_list_of_commands_and_is_not_queued() {
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    let resp = app.send(&slack, "/teleport", "me", "unknown-1").await;
    assert_eq!(resp.status(), 200, "Slack shows non-200 answers as a generic failure");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["response_type"], "ephemeral");
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("/teleport") && text.contains("/echo") && text.contains("/deploy"), "{text}");
    assert_eq!(queue_total(&app).await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_check_is_answered_and_not_queued() {
    let app = spawn_app().await;
    let resp = app.post(&sign("ssl_check=1&token=legacy"), "ssl").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(queue_total(&app).await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let health = http().get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = http().get(format!("{}/readyz", app.base)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
    app.stop().await;
}

/// One bad request: what is sent, and the status and error it must get.
struct BadCase {
    name: &'static str,
    status: u16,
    error: &'static str,
    content_type: Option<&'static str>,
    timestamp: Option<String>,
    signature: Option<String>,
    body: Vec<u8>,
}

fn bad_cases(receiver: &SlackReceiver) -> Vec<BadCase> {
    let good_body = slash("/echo", "x", &receiver.url("bad")).to_form().into_bytes();
    let signed = |body: Vec<u8>| {
        let s = sign(body.clone());
        (Some(s.timestamp), Some(s.signature), body)
    };
    let case = |name, status, error, parts: (Option<String>, Option<String>, Vec<u8>)| BadCase {
        name,
        status,
        error,
        content_type: Some("application/x-www-form-urlencoded"),
        timestamp: parts.0,
        signature: parts.1,
        body: parts.2,
    };
    let now = chatops_core::time::now_unix_secs();
    let signer = chatops_core::slack::SlackSigner::new(SECRET.as_bytes());
    let at = |ts: u64| {
        let t = ts.to_string();
        (Some(t.clone()), Some(signer.sign(&t, &good_body)), good_body.clone())
    };
    let (ts, sig, _) = signed(good_body.clone());
    let with_form = |form: String| signed(form.into_bytes());
    let hook = receiver.url("bad");
    vec![
        case("missing timestamp", 401, "missing_timestamp", (None, sig.clone(), good_body.clone())),
        case("missing signature", 401, "missing_signature", (ts.clone(), None, good_body.clone())),
        case("malformed timestamp", 401, "malformed_timestamp", (Some("12ab".into()), sig.clone(), good_body.clone())),
        case(
            "malformed signature",
            401,
            "malformed_signature",
            (ts.clone(), Some("v0=nothex".into()), good_body.clone()),
        ),
        case(
            "signature of another body",
            401,
            "bad_signature",
            (ts.clone(), sig.clone(), b"command=%2Fdeploy".to_vec()),
        ),
        case("signed with another secret", 401, "bad_signature", {
            let t = now.to_string();
            (
                Some(t.clone()),
                Some(chatops_core::slack::SlackSigner::new(b"other").sign(&t, &good_body)),
                good_body.clone(),
            )
        }),
        case("stale timestamp", 401, "stale_timestamp", at(now - 301)),
        case("future timestamp", 401, "future_timestamp", at(now + 301)),
        case("oversized body", 413, "payload_too_large", signed(vec![b'a'; 16 * 1024 + 1])),
        BadCase {
            content_type: Some("application/json"),
            ..case("json content type", 415, "unsupported_media_type", signed(good_body.clone()))
        },
        BadCase {
            content_type: None,
            ..case("no content type", 415, "unsupported_media_type", signed(good_body.clone()))
        },
        case("missing command", 400, "invalid_form", with_form(format!("text=x&response_url={hook}"))),
        case("missing response_url", 400, "invalid_form", with_form("command=%2Fecho&text=x".into())),
        case(
            "duplicated command field",
            400,
            "invalid_form",
            with_form(format!("command=%2Fecho&command=%2Fdeploy&response_url={hook}")),
        ),
        case("invalid UTF-8", 400, "invalid_form", signed(b"command=%2Fecho&text=\xff\xfe&response_url=x".to_vec())),
        case(
            "response_url on a foreign host",
            400,
            "response_url_not_allowed",
            with_form(slash("/echo", "x", "https://evil.example/hook").to_form()),
        ),
        case(
            "response_url lookalike host",
            400,
            "response_url_not_allowed",
            with_form(slash("/echo", "x", "https://hooks.slack.com.evil.example/x").to_form()),
        ),
        case(
            "response_url with credentials",
            400,
            "response_url_not_allowed",
            with_form(slash("/echo", "x", "https://u:p@hooks.slack.com/x").to_form()),
        ),
        case(
            "response_url over file scheme",
            400,
            "response_url_not_allowed",
            with_form(slash("/echo", "x", "file:///etc/passwd").to_form()),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_clear_error_and_enqueue_nothing() {
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    for case in bad_cases(&slack) {
        let mut req = http().post(format!("{}/slack/commands", app.base)).body(case.body.clone());
        if let Some(ct) = case.content_type {
            req = req.header("content-type", ct);
        }
        if let Some(ts) = &case.timestamp {
            req = req.header("x-slack-request-timestamp", ts);
        }
        if let Some(sig) = &case.signature {
            req = req.header("x-slack-signature", sig);
        }
        let request_id = format!("bad-{}", case.name.replace(' ', "-"));
        let resp = req.header("x-request-id", &request_id).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), case.status, "{}", case.name);
        // Only a verified request keeps the id it asked for; the others get a fresh one.
        let assigned = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        let verified = !matches!(case.status, 401 | 408 | 413 | 415);
        assert_eq!(assigned == request_id, verified, "{}: correlation id {assigned}", case.name);
        let body: Value = resp.json().await.unwrap_or_else(|e| panic!("{}: body is not JSON: {e}", case.name));
        assert_eq!(body["ok"], false, "{}: {body}", case.name);
        assert_eq!(body["error"], case.error, "{}: {body}", case.name);
        assert!(!body["message"].as_str().unwrap().is_empty(), "{}", case.name);
        assert_eq!(queue_total(&app).await, 0, "{}: nothing enqueued", case.name);
        let line = wait_for_log(&assigned, "Router performance metrics", 1).await;
        assert_eq!(line.len(), 1, "{}: one router line", case.name);
        assert_eq!(line[0]["statusCode"], case.status, "{}", case.name);
        assert_eq!(line[0]["success"], false, "{}", case.name);
        assert_eq!(line[0]["errorType"], case.error, "{}", case.name);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(slack.total_posts(), 0, "no bad request produced a response");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_and_says_the_command_was_not_queued() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    settings.queue.max_depth = 1;
    // No worker takes jobs off the long-write queue while this test runs.
    settings.workers[3].concurrency = 1;
    let app = spawn_app_with(settings).await;
    let slack = SlackReceiver::start().await;
    // /deploy simulates 3 s of work, so the first one holds the only slot.
    assert_eq!(app.send(&slack, "/deploy", "web", "full-1").await.status(), 200);
    let resp = app.send(&slack, "/deploy", "api", "full-2").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["response_type"], "ephemeral");
    assert!(body["text"].as_str().unwrap().contains("*not* queued"), "{body}");
    assert_eq!(body["error"], "queue_full");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_and_check_status_answer_from_the_running_bot() {
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    app.send(&slack, "/echo", "warm", "warm").await;
    slack.wait_for("warm", 2, Duration::from_secs(20)).await;

    app.send(&slack, "/help", "", "help").await;
    let help = slack.wait_for("help", 1, Duration::from_secs(20)).await;
    let text = help[0].body["text"].as_str().unwrap();
    assert!(text.contains("/deploy") && text.contains("long-write"), "{text}");

    wait_for_log("help", "Performance metrics", 1).await;
    app.send(&slack, "/status", "", "status").await;
    let status = slack.wait_for("status", 1, Duration::from_secs(20)).await;
    let text = status[0].body["text"].as_str().unwrap();
    assert!(text.contains("short-read") && text.contains("dead letters: 0"), "{text}");
    assert!(text.contains("E2E (last 5 min, 2 jobs)") && text.contains("p99"), "echo and help are counted: {text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_long_command_says_it_is_a_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    for c in settings.commands.iter_mut().filter(|c| c.name == "/deploy") {
        c.handler = chatops_service::spec::HandlerSpec::new("simulate").param("work", "200ms").param("answers", 3);
    }
    let app = spawn_app_with(settings).await;
    let slack = SlackReceiver::start().await;
    app.send(&slack, "/deploy", "web v2", "deploy").await;
    let posts = slack.wait_for("deploy", 3, Duration::from_secs(20)).await;
    assert_eq!(posts.len(), 3);
    for p in &posts {
        assert!(p.body["text"].as_str().unwrap().starts_with("[simulation] /deploy web v2"), "{}", p.body);
    }
    let line = wait_for_log("deploy", "Performance metrics", 1).await;
    assert_eq!(line[0]["component"], "lw-worker");
    assert!(line[0]["handlerMs"].as_f64().unwrap() >= 200.0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    let token = "XyZsecretTOKEN123";
    let url = format!("http://{}/hook/{token}", slack.addr);
    let body = slash("/echo", "hi", &url).to_form();
    assert_eq!(app.post(&sign(body), "secret-check").await.status(), 200);
    slack.wait_for(token, 2, Duration::from_secs(20)).await;
    wait_for_log("secret-check", "Performance metrics", 1).await;
    let text = all_log_text();
    assert!(!text.contains(SECRET), "the signing secret is in the logs");
    assert!(!text.contains(token), "a response_url token is in the logs");
    app.stop().await;
}

/// Sends one signed `/echo` four times: as signed, the same again, and with the
/// signature's hex digits upper-cased and mixed-case (hex is case-insensitive, so all four
/// verify). Exactly one job must run; the other three are acknowledged as duplicates.
pub(crate) async fn assert_signature_case_variants_are_one_job(app: &TestApp, slack: &SlackReceiver, id: &str) {
    let req = sign(slash("/echo", "replayed in another case", &slack.url(id)).to_form());
    let hex = req.signature.strip_prefix("v0=").unwrap();
    let upper = format!("v0={}", hex.to_ascii_uppercase());
    let mixed: String = format!(
        "v0={}",
        hex.char_indices().map(|(i, c)| if i % 3 == 0 { c.to_ascii_uppercase() } else { c }).collect::<String>()
    );
    assert_ne!(upper, req.signature, "the signature has hex letters to change the case of");
    let mut duplicates = 0;
    for (n, signature) in [req.signature.clone(), req.signature.clone(), upper, mixed].into_iter().enumerate() {
        let variant = SignedRequest { body: req.body.clone(), timestamp: req.timestamp.clone(), signature };
        let resp = app.post(&variant, &format!("{id}-{n}")).await;
        assert_eq!(resp.status(), 200, "variant {n} verifies");
        if resp.headers().get("x-chatops-duplicate").is_some_and(|v| v == "true") {
            duplicates += 1;
        }
    }
    assert_eq!(duplicates, 3, "the original is one job; the same again and both case variants are duplicates");
    assert_eq!(slack.wait_for(id, 2, Duration::from_secs(20)).await.len(), 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(slack.posts(id).len(), 2, "one job ran: two answers, not eight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_with_the_signature_in_another_case_is_the_same_request() {
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    assert_signature_case_variants_are_one_job(&app, &slack, "case-replay").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_and_traceparent_are_adopted_only_from_verified_requests() {
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    let forged = SignedRequest {
        signature: format!("v0={}", "0".repeat(64)),
        ..sign(slash("/echo", "forged", &slack.url("forged")).to_form())
    };
    let resp = http()
        .post(format!("{}/slack/commands", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", &forged.timestamp)
        .header("x-slack-signature", &forged.signature)
        .header("x-request-id", "chosen-by-an-attacker")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .body(forged.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let assigned = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(assigned, "chosen-by-an-attacker", "an unverified request does not choose its correlation id");
    assert!(chatops_core::CorrelationId::parse(&assigned).is_some(), "a fresh id instead: {assigned}");
    let refused = wait_for_log(&assigned, "Router performance metrics", 1).await;
    assert_eq!(refused[0]["errorType"], "bad_signature");
    assert!(log_lines_for("chosen-by-an-attacker").is_empty(), "the attacker's id is in no log line");
    // A verified request keeps its id, as before.
    assert_eq!(app.send(&slack, "/echo", "trusted", "trusted-id").await.headers()["x-request-id"], "trusted-id");
    app.stop().await;
}

/// The metric lines' timed fields come from one table (`chatops_core::metric_fields!`):
/// the lines the bot really writes carry exactly its fields, and the analyzer reads each
/// of them back as the same number. A field renamed in the table is renamed in the bot,
/// the analyzer and the report together; one spelled by hand somewhere fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metric_lines_carry_exactly_the_fields_of_the_contract_table() {
    use chatops_analyze::line::{LineKind, LineParser};
    use chatops_core::Metric;

    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    assert_eq!(app.send(&slack, "/echo", "fields", "field-table").await.status(), 200);
    assert_eq!(slack.wait_for("field-table", 2, Duration::from_secs(20)).await.len(), 2);
    let worker = wait_for_log("field-table", "Performance metrics", 1).await.remove(0);
    let router = wait_for_log("field-table", "Router performance metrics", 1).await.remove(0);

    let timed_keys = |line: &Value| -> Vec<String> {
        let object = line.as_object().unwrap();
        let mut keys: Vec<String> = object
            .keys()
            .filter(|k| Metric::from_field(k).is_some() || k.ends_with("Ms") || *k == "duration")
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    // An /echo job waited for no approval: every worker field of the table but that one.
    let on_this_line = |m: &Metric| !m.is_router_line() && *m != Metric::ApprovalWait;
    let mut want_worker: Vec<String> =
        Metric::ALL.into_iter().filter(on_this_line).map(|m| m.field().to_owned()).collect();
    want_worker.sort();
    assert_eq!(timed_keys(&worker), want_worker, "the worker line's timed fields are the table's: {worker}");
    assert_eq!(
        timed_keys(&router),
        vec![Metric::RouterDuration.field().to_owned(), Metric::Enqueue.field().to_owned()],
        "the router line's: {router}"
    );

    let parser = LineParser::new();
    let text = serde_json::to_string(&worker).unwrap();
    let LineKind::Worker(parsed) = parser.parse(text.as_bytes()) else { panic!("not read as a worker line: {text}") };
    for m in Metric::ALL.into_iter().filter(|m| !m.is_router_line()) {
        assert_eq!(parsed.get(m), worker[m.field()].as_f64(), "{m} read back by the analyzer");
    }
    assert_eq!(parsed.get(Metric::ApprovalWait), None);
    let text = serde_json::to_string(&router).unwrap();
    let LineKind::Router(parsed) = parser.parse(text.as_bytes()) else { panic!("not read as a router line: {text}") };
    assert_eq!(Some(parsed.duration_ms), router[Metric::RouterDuration.field()].as_f64());
    assert_eq!(parsed.enqueue_ms, router[Metric::Enqueue.field()].as_f64());
    app.stop().await;
}

/// A job that waited for approvals reports the human's wait as its own stage: on its
/// worker line (`approvalWaitMs`, with `routerMs` the router's own work only), in the
/// `approval_wait` histogram, and in the analyzer's breakdown, whose segments still add up
/// to the E2E total. The approval flow's part (storing the request, resetting the enqueue
/// stamp to the approval) is played here by enqueuing the approved job directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_jobs_wait_for_a_human_is_its_own_stage() {
    use chatops_analyze::aggregate::{Aggregator, WindowNs};
    use chatops_core::time::{ms_between, now_unix_ns, round_ms};
    use chatops_core::{Approval, CorrelationId, Job, Metric, Segment};

    const MS: u64 = 1_000_000;
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    let approved_ns = now_unix_ns();
    let received_ns = approved_ns - 4_000 * MS;
    let requested_ns = received_ns + 2 * MS;
    let job = Job {
        job_id: Job::new_id(),
        correlation_id: CorrelationId::parse("approved-job").unwrap(),
        idempotency_key: "approved-job".into(),
        quadrant: Quadrant::ShortRead,
        command: slash("/echo", "after approval", &slack.url("approved-job")),
        max_attempts: 3,
        router_received_ns: received_ns,
        enqueue_started_ns: approved_ns,
        traceparent: None,
        redrives: 0,
        args: Default::default(),
        approval: Some(Approval { requested_ns, approved_ns, approvers: vec!["U0APPROVER".into()], message_url: None }),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    app.queue.enqueue(&job, deadline).await.unwrap();
    assert_eq!(slack.wait_for("approved-job", 2, Duration::from_secs(20)).await.len(), 2);
    let line = wait_for_log("approved-job", "Performance metrics", 1).await.remove(0);

    let field = |name: &str| line[name].as_f64().unwrap_or_else(|| panic!("{name} in {line}"));
    let wait = round_ms(ms_between(requested_ns, approved_ns));
    assert_eq!(field("approvalWaitMs"), wait, "{line}");
    assert_eq!(field("routerMs"), 2.0, "the router's own work, not the human's wait: {line}");
    assert!(field("enqueueMs") < wait, "the durable write only: {line}");
    let stages = ["routerMs", "approvalWaitMs", "enqueueMs", "queueWaitMs", "workerDurationMs"];
    let sum: f64 = stages.iter().map(|&f| field(f)).sum();
    assert!((sum - field("totalE2eMs")).abs() < 0.01, "{sum} vs {line}");

    let text = serde_json::to_string(&line).unwrap();
    let mut agg = Aggregator::new(WindowNs::default(), None, None);
    agg.feed(text.as_bytes());
    let out = agg.finish();
    let analyzed = out.stages.iter().find(|s| s.metric == Metric::ApprovalWait).expect("the figure is reported");
    assert_eq!(analyzed.stats.max, wait);
    let b = &out.e2e_breakdown;
    let segment = b.segments.iter().find(|s| s.name == Segment::ApprovalWait).expect("its own segment");
    assert_eq!(segment.mean_ms, wait);
    let total: f64 = b.segments.iter().map(|s| s.mean_ms).sum();
    assert!((total - b.total_mean_ms).abs() < 0.01, "{total} vs {}", b.total_mean_ms);

    let metrics = http().get(format!("{}/metrics", app.metrics_base)).send().await.unwrap().text().await.unwrap();
    let count = r#"chatops_stage_duration_seconds_count{stage="approval_wait",command="/echo",quadrant="short-read",outcome="completed"} 1"#;
    assert!(metrics.contains(count), "{metrics}");
    // The 3.998 s wait, recorded in seconds like every stage.
    for (le, n) in [("1.0", 0), ("5.0", 1)] {
        let bucket = format!(
            r#"chatops_stage_duration_seconds_bucket{{le="{le}",stage="approval_wait",command="/echo",quadrant="short-read",outcome="completed"}} {n}"#
        );
        assert!(metrics.contains(&bucket), "{bucket} in {metrics}");
    }
    // Buckets reach past the default approval expiry (15 min), so a quantile of human waits
    // is not clamped to the top bucket.
    assert!(metrics.contains(r#"le="900.0",stage="approval_wait""#), "{metrics}");
    app.stop().await;
}
