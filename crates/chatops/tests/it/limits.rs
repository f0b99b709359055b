//! Observability and abuse resistance: the Prometheus scrape matches the traffic, labels
//! stay bounded under a flood of random commands, and slow clients, oversized headers,
//! floods of one user, replays and a saturated ingress each get their documented answer
//! while a parallel stream of legitimate commands keeps being acknowledged quickly.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

async fn scrape(app: &TestApp) -> String {
    let resp = http().get(format!("{}/metrics", app.metrics_base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    resp.text().await.unwrap()
}

/// The value of the first sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_command_of_a_smoke_load() {
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    let ids: Vec<String> = (0..20).map(|i| format!("metric-{i}")).collect();
    for id in &ids {
        assert_eq!(app.send(&slack, "/echo", id, id).await.status(), 200);
    }
    for id in &ids {
        assert_eq!(slack.wait_for(id, 2, Duration::from_secs(30)).await.len(), 2);
        wait_for_log(id, "Performance metrics", 1).await;
    }
    let text = scrape(&app).await;
    let labels = r#"command="/echo",quadrant="short-read",outcome="completed"}"#;
    for stage in ["queue_wait", "handler", "worker", "e2e"] {
        let count = sample(&text, &format!(r#"chatops_stage_duration_seconds_count{{stage="{stage}",{labels}"#));
        assert_eq!(count, Some(20.0), "{stage} histogram counts every command:\n{text}");
    }
    let responses = sample(&text, &format!(r#"chatops_stage_duration_seconds_count{{stage="response",{labels}"#));
    assert_eq!(responses, Some(40.0), "two posts per /echo");
    let router = sample(
        &text,
        r#"chatops_stage_duration_seconds_count{stage="router",command="/echo",quadrant="short-read",outcome="accepted"}"#,
    );
    assert_eq!(router, Some(20.0));
    assert_eq!(sample(&text, r#"chatops_http_requests_total{route="/slack/commands",status="200"}"#), Some(20.0));
    assert_eq!(sample(&text, r#"chatops_response_posts_total{outcome="delivered"}"#), Some(40.0));
    assert_eq!(sample(&text, r#"chatops_jobs_total{quadrant="short-read",outcome="completed"}"#), Some(20.0));
    assert_eq!(sample(&text, r#"chatops_worker_pool_size{quadrant="short-read"}"#), Some(64.0));
    assert_eq!(sample(&text, "chatops_dlq_size"), Some(0.0));
    // Buckets cover 1 ms .. 30 s.
    assert!(text.contains(r#"le="0.001""#) && text.contains(r#"le="30.0""#), "{text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_labels_stay_bounded_under_a_flood_of_random_commands() {
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    for i in 0..200 {
        let command = format!("/random-{i}-{}", fastrand_suffix(i));
        let body = slash(&command, "x", &slack.url("flood")).to_form();
        assert_eq!(app.post(&sign(body), &format!("flood-{i}")).await.status(), 200);
    }
    let text = scrape(&app).await;
    assert!(!text.contains("/random-"), "a random command name became a label");
    let unknown = sample(
        &text,
        r#"chatops_stage_duration_seconds_count{stage="router",command="unknown",quadrant="none",outcome="accepted"}"#,
    );
    assert_eq!(unknown, Some(200.0), "{text}");
    let distinct: std::collections::HashSet<&str> =
        text.lines().filter_map(|l| l.split("command=\"").nth(1)).filter_map(|r| r.split('"').next()).collect();
    assert!(distinct.len() <= 13, "command labels: {distinct:?}");
    app.stop().await;
}

fn fastrand_suffix(i: usize) -> String {
    format!("{:x}", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Sends legitimate commands at ~25/s until stopped; returns the ack latencies.
fn legitimate_stream(
    app: &TestApp,
    slack: &SlackReceiver,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Duration>> {
    let (base, slack) = (app.base.clone(), slack.clone());
    tokio::spawn(async move {
        let mut acks = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let id = format!("legit-{i}");
            i += 1;
            let mut cmd = slash("/echo", "legit", &slack.url(&id));
            cmd.user_id = format!("U{i}");
            let req = sign(cmd.to_form());
            let sent = Instant::now();
            let resp = post_signed(&base, &req, &id).await;
            acks.push(sent.elapsed());
            assert_eq!(resp.status(), 200, "legitimate command {id} refused");
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        acks
    })
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_gets_its_documented_answer_while_legitimate_acks_stay_fast() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    settings.limits.header_read_timeout = Duration::from_millis(800);
    settings.limits.body_read_timeout = Duration::from_millis(800);
    settings.limits.per_user_per_minute = 60;
    settings.limits.per_user_burst = 5;
    let app = spawn_app_with(settings).await;
    let slack = SlackReceiver::start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let legit = legitimate_stream(&app, &slack, stop.clone());
    let addr = app.base.trim_start_matches("http://").to_owned();

    // 1. Slow clients: headers that never finish, and a body that never finishes.
    let slow_headers = {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"POST /slack/commands HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
            let started = Instant::now();
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).unwrap_or(0);
            (started.elapsed(), String::from_utf8_lossy(&buf[..n]).into_owned())
        })
    };
    let slow_body = {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let now = chatops_core::time::now_unix_secs();
            let head = format!(
                "POST /slack/commands HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: 500\r\nX-Slack-Request-Timestamp: {now}\r\nX-Slack-Signature: v0={}\r\n\r\ncommand=%2Fecho",
                "0".repeat(64)
            );
            s.write_all(head.as_bytes()).unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap_or(0);
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
    };
    let (waited, answer) = slow_headers.await.unwrap();
    assert!(waited < Duration::from_secs(8), "a slow client is cut off ({waited:?})");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body_answer = slow_body.await.unwrap();
    assert!(body_answer.starts_with("HTTP/1.1 408"), "{body_answer}");
    assert!(body_answer.contains("body_timeout"), "{body_answer}");

    // 2. Oversized headers.
    let big = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let header = format!("X-Big: {}\r\n", "a".repeat(64 * 1024));
            let _ = s.write_all(format!("POST /slack/commands HTTP/1.1\r\nHost: x\r\n{header}\r\n").as_bytes());
            let mut buf = [0u8; 256];
            let n = s.read(&mut buf).unwrap_or(0);
            String::from_utf8_lossy(&buf[..n]).into_owned()
        }
    })
    .await
    .unwrap();
    assert!(big.starts_with("HTTP/1.1 431") || big.is_empty(), "oversized headers refused: {big}");

    // 3. One user floods: the burst passes, then "slow down", nothing queued for the rest.
    let mut slowed = 0;
    for i in 0..10 {
        let id = format!("flooder-{i}");
        let mut cmd = slash("/echo", "flood", &slack.url(&id));
        cmd.user_id = "UFLOOD".into();
        let resp = app.post(&sign(cmd.to_form()), &id).await;
        assert_eq!(resp.status(), 200);
        if resp.headers().contains_key("retry-after") {
            let body: serde_json::Value = resp.json().await.unwrap();
            assert!(body["text"].as_str().unwrap().contains("*not* run"), "{body}");
            slowed += 1;
        }
    }
    assert_eq!(slowed, 5, "the first 5 (the burst) run, the other 5 are told to slow down");

    // 4. Replay of a request already accepted: acknowledged, never run twice.
    let mut cmd = slash("/echo", "replayed", &slack.url("replay"));
    cmd.user_id = "UREPLAY".into();
    let req = sign(cmd.to_form());
    assert_eq!(app.post(&req, "replay-1").await.status(), 200);
    slack.wait_for("replay", 2, Duration::from_secs(20)).await;
    let again = app.post(&req, "replay-2").await;
    assert_eq!(again.headers()["x-chatops-duplicate"], "true");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slack.posts("replay").len(), 2, "the replay did not run");

    stop.store(true, Ordering::SeqCst);
    let acks = legit.await.unwrap();
    assert!(acks.len() >= 20, "the legitimate stream kept going ({} acks)", acks.len());
    let p99 = p99(acks);
    // Generous: this test runs beside the whole suite on 2 shared cores. What it guards
    // against, legitimate acks stuck behind slow or abusive clients, shows as seconds (the
    // header and body timeouts); the tight latency bound is the #[ignore]d load test's,
    // which runs alone.
    assert!(p99 < Duration::from_millis(500), "legitimate ack p99 {p99:?} during the abuse");
    let text = scrape(&app).await;
    assert_eq!(sample(&text, r#"chatops_throttled_requests_total{reason="user_rate"}"#), Some(5.0));
    app.stop().await;
}

/// Opens a connection from `source` and sends headers that pass every check that needs no
/// body (content type, length, a fresh timestamp, a well-formed signature) plus `start` of
/// a 400-byte body that never finishes. Returns the stream, still open.
async fn trickling_client(
    addr: &str,
    source: std::net::IpAddr,
    start: &[u8],
) -> std::io::Result<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::new(source, 0))?;
    let mut stream = socket.connect(addr.parse().unwrap()).await?;
    let now = chatops_core::time::now_unix_secs();
    let head = format!(
        "POST /slack/commands HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 400\r\nX-Slack-Request-Timestamp: {now}\r\nX-Slack-Signature: v0={}\r\n\r\n",
        "0".repeat(64)
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(start).await?;
    Ok(stream)
}

/// Reads the start of the answer on a stream, or "" if none comes within `wait`.
async fn answer_of(stream: &mut tokio::net::TcpStream, wait: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 512];
    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        _ => String::new(),
    }
}

const ATTACKER: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_bodies_have_their_own_budget_and_verified_commands_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    settings.limits.max_concurrent_requests = 3;
    settings.limits.max_unverified_bodies_per_peer = 3;
    settings.limits.body_read_timeout = Duration::from_millis(1500);
    let app = spawn_app_with(settings).await;
    let slack = SlackReceiver::start().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // Three clients from one address hold that address's whole budget by never finishing
    // their bodies. (Before, a slow body held one of the max_concurrent_requests slots, and
    // three of them refused every command.)
    let mut holders = Vec::new();
    for _ in 0..3 {
        holders.push(trickling_client(&addr, ATTACKER, b"ab").await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = Instant::now();
    let mut fourth = trickling_client(&addr, ATTACKER, b"ab").await.unwrap();
    let refused = answer_of(&mut fourth, Duration::from_secs(1)).await;
    assert!(sent.elapsed() < Duration::from_secs(1), "refused at once, not after the body deadline");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.contains("unverified_bodies") && refused.to_ascii_lowercase().contains("retry-after: 5"),
        "{refused}"
    );
    // Legitimate commands from another address are not affected.
    let sent = Instant::now();
    assert_eq!(app.send(&slack, "/echo", "accepted", "other-peer").await.status(), 200);
    assert!(sent.elapsed() < Duration::from_secs(1), "accepted at once");
    // The slow clients are cut off by the body deadline (408), and their address may send again.
    for mut holder in holders {
        let answer = answer_of(&mut holder, Duration::from_secs(4)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    let mut again = trickling_client(&addr, ATTACKER, b"ab").await.unwrap();
    let answer = answer_of(&mut again, Duration::from_secs(4)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "after the deadline the budget is back: {answer}");
    let text = scrape(&app).await;
    assert_eq!(sample(&text, r#"chatops_throttled_requests_total{reason="unverified_bodies"}"#), Some(1.0));
    app.stop().await;
}

/// A load test with a latency bound: on a 2-core machine it needs the machine to itself, so
/// `scripts/test.sh` runs it alone after the suite (`-- --ignored --test-threads=1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a load test: scripts/test.sh runs it alone, after the suite"]
async fn trickling_bodies_do_not_starve_a_legitimate_stream() {
    // The built-in limits, as a user runs them.
    let app = spawn_app().await;
    let slack = SlackReceiver::start().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let run_for = Duration::from_secs(10);
    // The attacker: 300 new connections a second for 10 s, each sending headers that pass
    // the cheap checks and one byte of its body, then holding the connection.
    let attacker = tokio::spawn({
        let addr = addr.clone();
        async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_micros(3333));
            let mut held = tokio::task::JoinSet::new();
            let mut opened = 0u32;
            while started.elapsed() < run_for {
                tick.tick().await;
                let addr = addr.clone();
                opened += 1;
                held.spawn(async move {
                    if let Ok(mut stream) = trickling_client(&addr, ATTACKER, b"a").await {
                        answer_of(&mut stream, Duration::from_secs(6)).await
                    } else {
                        String::new()
                    }
                });
            }
            let mut answers = std::collections::BTreeMap::<String, u32>::new();
            while let Some(answer) = held.join_next().await {
                let status = answer.unwrap().get(9..12).unwrap_or("none").to_owned();
                *answers.entry(status).or_default() += 1;
            }
            (opened, answers)
        }
    });
    // The legitimate stream: 100 commands a second from 127.0.0.1, open model.
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut sends = tokio::task::JoinSet::new();
    let mut i = 0;
    let client = http();
    while started.elapsed() < run_for {
        tick.tick().await;
        let (base, slack, client) = (app.base.clone(), slack.clone(), client.clone());
        i += 1;
        sends.spawn(async move {
            let id = format!("starve-{i}");
            let mut cmd = slash("/echo", "legit", &slack.url(&id));
            cmd.user_id = format!("U{i}");
            let req = sign(cmd.to_form());
            let sent = Instant::now();
            let resp = post_signed_with(&client, &base, &req, &id).await;
            let took = sent.elapsed();
            let status = resp.status().as_u16();
            let error = if status == 200 { String::new() } else { resp.text().await.unwrap_or_default() };
            (status, took, error)
        });
    }
    let mut acks = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    let mut errors = std::collections::BTreeSet::new();
    while let Some(r) = sends.join_next().await {
        let (status, took, error) = r.unwrap();
        *statuses.entry(status).or_default() += 1;
        if !error.is_empty() {
            errors.insert(error);
        }
        acks.push(took);
    }
    let (opened, attacker_answers) = attacker.await.unwrap();
    eprintln!("attacker opened {opened} connections, answers {attacker_answers:?}; legitimate statuses {statuses:?}");
    assert!(opened >= 2000, "the attacker ran ({opened} connections)");
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        vec![200],
        "no legitimate command refused: {statuses:?} {errors:?}"
    );
    assert!(acks.len() >= 800, "the legitimate stream ran ({} commands)", acks.len());
    let slow = acks.iter().filter(|d| **d > Duration::from_millis(100)).count();
    let p99 = p99(acks);
    eprintln!("legitimate ack p99 during the attack: {p99:?} ({slow} slower than 100 ms)");
    assert!(p99 < Duration::from_millis(100), "legitimate ack p99 {p99:?} during the attack");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_only_process_serves_metrics_on_its_own_listener() {
    let nats = chatops_testkit::NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let worker = BotProcess::spawn(
        &["worker", "--queue", &nats.url(), "--metrics-listen", &metrics_addr],
        &dir.path().join("worker.log"),
        &[],
    );
    let text = http().get(format!("http://{metrics_addr}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"chatops_worker_pool_size{quadrant="long-write"} 32"#), "{text}");
    assert!(text.contains("chatops_queue_depth"), "{text}");
    drop(worker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_only_charts_metrics_the_bot_exports() {
    // With a guarded command, so that the guardrail series exist (they start at 0 for
    // guarded commands only).
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("guarded.toml");
    std::fs::write(
        &config,
        "[[commands]]\nname = \"/guarded\"\nquadrant = \"short-write\"\nhandler = \"echo\"\n\
         access = { users = [\"U0TEST\"] }\nrequires_approval = true\napproval = { approvers = [\"U0BOSS\"] }\n",
    )
    .unwrap();
    let chatops_app = chatops_service::App::default();
    let settings = tuned_for_tests(chatops_app.load_settings(Some(&config), test_overrides(dir.path())).unwrap());
    let app = spawn_app_of(&chatops_app, settings).await;
    let slack = SlackReceiver::start().await;
    app.send(&slack, "/echo", "x", "dash").await;
    slack.wait_for("dash", 2, Duration::from_secs(20)).await;
    wait_for_log("dash", "Performance metrics", 1).await;
    let text = scrape(&app).await;
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../../../docs/grafana/chatops-dashboard.json")).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        // Rows have no targets.
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(exprs.len() >= 10);
    for expr in &exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("chatops_") {
            let name: String = rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let family = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "dashboard uses {name}, which /metrics does not export"
            );
            rest = &rest[at + name.len()..];
        }
    }
    app.stop().await;
}
