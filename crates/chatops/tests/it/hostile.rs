//! The checked-in hostile-request corpus (`tests/corpus/hostile-requests.json`: slash
//! commands, and interaction payloads for `/slack/interactions`) replayed against a real router: each request gets its documented answer, nothing panics, and
//! only the requests meant to be accepted are queued. The router here allows only Slack's
//! own response host and runs no workers, so nothing leaves the machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chatops_core::Quadrant;
use chatops_core::slack::SlackSigner;
use chatops_service::App;
use chatops_service::startup::Roles;
use serde_json::Value;

use crate::support::*;

const CORPUS: &str = include_str!("../corpus/hostile-requests.json");

fn body_bytes(spec: &Value) -> Vec<u8> {
    match spec {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Object(o) => {
            let mut out = o["prefix"].as_str().unwrap().as_bytes().to_vec();
            if let Some(r) = o.get("repeat") {
                out.extend(r.as_str().unwrap().repeat(o["times"].as_u64().unwrap() as usize).into_bytes());
            }
            if let Some(h) = o.get("bytesHex") {
                out.extend(hex::decode(h.as_str().unwrap()).unwrap());
            }
            out
        }
        other => panic!("bad body spec {other}"),
    }
}

fn timestamp(spec: Option<&str>, now: u64) -> String {
    match spec {
        None => now.to_string(),
        Some(t) => t
            .replace("{now-301}", &(now - 301).to_string())
            .replace("{now+301}", &(now + 301).to_string())
            .replace("{now}", &now.to_string()),
    }
}

async fn queued(queue: &Arc<dyn chatops_queue::Queue>) -> u64 {
    let stats = queue.stats().await.unwrap();
    Quadrant::ALL.iter().map(|&q| stats.quadrant(q).ready + stats.quadrant(q).in_flight).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_request_gets_its_documented_answer() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    settings.allowed_hosts = chatops_core::slack::AllowedHosts::default();
    // A router alone on the embedded queue: no worker runs, so what is queued stays queued
    // and nothing is posted anywhere. `start` would refuse this split (nobody consumes);
    // `start_on` leaves the role check to the caller, who opened the queue on purpose.
    let opened = chatops_service::startup::open_queue(&settings, &Roles::router()).await.unwrap();
    let queue = opened.queue.clone();
    let app = App::default().start_on(settings, Roles::router(), opened).await.unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));

    let corpus: Value = serde_json::from_str(CORPUS).unwrap();
    let cases = corpus["cases"].as_array().unwrap();
    assert!(cases.len() >= 50, "the corpus has {} cases", cases.len());
    let signer = SlackSigner::new(SECRET.as_bytes());
    let mut previous: Option<(Vec<u8>, String)> = None;
    for (i, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        // A field unique to the case, so two otherwise identical requests signed in the same
        // second are not taken for one request delivered twice; a case that replays the
        // previous request re-sends its exact bytes and timestamp instead.
        let (body, ts) = match (case["replayPrevious"].as_bool(), &previous) {
            (Some(true), Some((body, ts))) => (body.clone(), ts.clone()),
            _ => {
                let mut body = body_bytes(&case["body"]);
                body.extend(format!("&case={i}").into_bytes());
                (body, timestamp(case["timestamp"].as_str(), chatops_core::time::now_unix_secs()))
            }
        };
        previous = Some((body.clone(), ts.clone()));
        let signature = match case["signature"].as_str() {
            None => Some(signer.sign(&ts, &body)),
            Some("uppercase") => Some(format!("v0={}", signer.sign(&ts, &body)[3..].to_uppercase())),
            Some("mixedcase") => Some(
                signer
                    .sign(&ts, &body)
                    .char_indices()
                    .map(|(i, c)| if i > 3 && i % 2 == 0 { c.to_ascii_uppercase() } else { c })
                    .collect(),
            ),
            Some("of-empty-body") => Some(signer.sign(&ts, b"")),
            Some("none") => None,
            Some(literal) => Some(literal.to_owned()),
        };
        let request_id = format!("hostile-{i}");
        let path = case["path"].as_str().unwrap_or("/slack/commands");
        let mut req = http().post(format!("{base}{path}")).header("x-slack-request-timestamp", &ts);
        let headers = case["headers"].as_object();
        if !headers.is_some_and(|h| h.contains_key("content-type")) {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        if !headers.is_some_and(|h| h.contains_key("x-request-id")) {
            req = req.header("x-request-id", &request_id);
        }
        for pair in case["extraHeaders"].as_array().into_iter().flatten() {
            req = req.header(pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        }
        if let Some(sig) = &signature {
            req = req.header("x-slack-signature", sig);
        }
        if let Some(headers) = headers {
            for (k, v) in headers {
                req = req.header(k.as_str(), v.as_str().unwrap());
            }
        }
        let before = queued(&queue).await;
        let resp = req.body(body).send().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let expect = &case["expect"];
        assert_eq!(resp.status().as_u16() as u64, expect["status"].as_u64().unwrap(), "{name}");
        let echoed_id = resp.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_owned());
        if let Some(duplicate) = expect["duplicate"].as_bool() {
            assert_eq!(resp.headers().get("x-chatops-duplicate").is_some(), duplicate, "{name}: duplicate header");
        }
        let text = resp.text().await.unwrap();
        if let Some(error) = expect["error"].as_str() {
            let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {text}"));
            assert_eq!(json["error"], error, "{name}: {text}");
        }
        if case["replacedRequestId"].as_bool() == Some(true) {
            let id = echoed_id.unwrap();
            assert_eq!(id.len(), 36, "{name}: a generated id replaces the hostile one, got {id:?}");
        }
        let after = queued(&queue).await;
        let want = u64::from(expect["enqueued"].as_bool().unwrap());
        assert_eq!(after - before, want, "{name}: queued {} job(s)", after - before);
        let health = http().get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200, "{name}: the server still answers");
    }
    let logs = all_log_text();
    assert!(!logs.contains("panicked"), "nothing panicked");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_response_url_is_not_followed() {
    // The allowed host answers with a redirect to another address; the worker must refuse
    // to follow it (a classic SSRF hop), and the target never hears from us.
    let hits = Arc::new(AtomicUsize::new(0));
    let target = {
        let hits = hits.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(move || {
            hits.fetch_add(1, Ordering::SeqCst);
            async { "reached" }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    };
    let redirector = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let location = format!("http://{target}/stolen");
        let app = Router::new().route(
            "/hook/{id}",
            post(move || {
                let location = location.clone();
                async move {
                    let mut headers = HeaderMap::new();
                    headers.insert("location", location.parse().unwrap());
                    (StatusCode::FOUND, headers)
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    };
    let app = spawn_app().await;
    let body = slash("/echo", "x", &format!("http://{redirector}/hook/redirect")).to_form();
    assert_eq!(app.post(&sign(body), "redirect").await.status(), 200);
    let lines = wait_for_log("redirect", "Performance metrics", 1).await;
    assert_eq!(lines[0]["errorType"], "ResponseUrlRejected", "{:?}", lines[0]);
    assert_eq!(lines[0]["outcome"], "dead_lettered", "a refused post is not retried");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect target was never contacted");
    app.stop().await;
}
