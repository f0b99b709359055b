//! `capture` and `expect` against a local HTTP server that answers JSON and a header: a
//! flow logs in, captures a token (JSON) and a session (header), sends both back, checks
//! expectations that hold and ones that fail, and stops at a capture that finds nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::helpers::{run, write_profile};

#[derive(Default)]
struct Server {
    logins: AtomicU64,
    /// token → session, as issued.
    issued: Mutex<HashMap<String, String>>,
    whoami_ok: AtomicU64,
    whoami_mismatch: AtomicU64,
    never: AtomicU64,
}

fn json(body: String, extra: Option<(&'static str, String)>) -> Response {
    let mut r = ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some((name, value)) = extra {
        r.headers_mut().insert(name, value.parse().unwrap());
    }
    r
}

async fn login(State(s): State<Arc<Server>>) -> Response {
    let n = s.logins.fetch_add(1, Ordering::SeqCst);
    let (token, session) = (format!("tok-{n}"), format!("s-{n}"));
    s.issued.lock().unwrap().insert(token.clone(), session.clone());
    json(format!(r#"{{"token":"{token}","user":{{"id":{n},"name":"ünï"}}}}"#), Some(("x-session", session)))
}

async fn whoami(State(s): State<Arc<Server>>, Query(q): Query<HashMap<String, String>>, h: HeaderMap) -> Response {
    let token = q.get("token").cloned().unwrap_or_default();
    let session = h.get("x-session").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let matches = s.issued.lock().unwrap().get(&token) == Some(&session);
    let counter = if matches { &s.whoami_ok } else { &s.whoami_mismatch };
    counter.fetch_add(1, Ordering::SeqCst);
    json(format!(r#"{{"token":"{token}","session":"{session}"}}"#), None)
}

async fn serve() -> (String, Arc<Server>, tokio::task::JoinHandle<()>) {
    let state = Arc::new(Server::default());
    let app = axum::Router::new()
        .route("/login", post(login))
        .route("/whoami", get(whoami))
        .route("/missing", get(|| async { json(r#"{"other":1}"#.into(), None) }))
        .route(
            "/never",
            get(|State(s): State<Arc<Server>>| async move {
                s.never.fetch_add(1, Ordering::SeqCst);
                "reached"
            }),
        )
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state, task)
}

const FLOW: &str = r#"config:
  target: "http://127.0.0.1:9"
  phases:
    - duration: 1
      arrivalCount: 6
scenarios:
  - name: checks
    flow:
      - post:
          url: /login
          capture:
            - json: "$.token"
              as: token
            - header: X-Session
              as: session
            - json: "$.user['name']"
              as: name
          expect:
            - statusCode: 200
            - contentType: json
            - hasProperty: user.id
            - equals:
                - "{{ name }}"
                - "ünï"
      - get:
          url: "/whoami?token={{ token }}"
          headers:
            X-Session: "{{ session }}"
          capture:
            json: "$.token"
            as: echoed
          expect:
            - equals: ["{{ echoed }}", "{{ token }}"]
            - statusCode: 201
            - hasProperty: nope
      - get:
          url: /missing
          capture:
            - json: "$.nothing"
              as: gone
      - get:
          url: /never
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_captures_reuses_and_checks_and_stops_at_a_failed_capture() {
    let (url, server, _task) = serve().await;
    let (_g, path) = write_profile(FLOW);
    let r = run(&["--profile", &path, "--target", &url, "--no-receiver"]).await;
    let res = r.results();
    let c = &res.counters;
    // Login, whoami and the failed capture: the fourth step is never sent.
    assert_eq!(c.requests, 18);
    assert_eq!(server.never.load(Ordering::SeqCst), 0, "a failed strict capture ends the flow");
    assert_eq!(server.logins.load(Ordering::SeqCst), 6);
    assert_eq!(server.whoami_ok.load(Ordering::SeqCst), 6, "every user sent back its own token and session");
    assert_eq!(server.whoami_mismatch.load(Ordering::SeqCst), 0);
    assert_eq!(c.acks.get("200"), Some(&18));
    // One error per failing request, by kind; the failed expectations by theirs.
    assert_eq!(c.errors.get("expect_failed"), Some(&6), "{:?}", c.errors);
    assert_eq!(c.errors.get("capture_failed"), Some(&6), "{:?}", c.errors);
    assert_eq!(c.errors.len(), 2, "{:?}", c.errors);
    let failed: Vec<(&str, u64)> = c.failed_expectations.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(failed, [("hasProperty", 6), ("statusCode", 6)], "login's and whoami's equals hold");
    // A failed check keeps the request's latency.
    assert_eq!(res.summaries.ack.count, 18);
    assert!(!res.test.notes.iter().any(|n| n.contains("not applied")), "{:?}", res.test.notes);
    // The results file carries them too.
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.path("results.json")).unwrap()).unwrap();
    assert_eq!(on_disk["counters"]["failedExpectations"]["statusCode"], 6);
    assert_eq!(on_disk["counters"]["errors"]["capture_failed"], 6);
}
