//! `webhook` against a local axum server that plays GitHub's API: it records every
//! request (path, headers, body) and answers from a script of statuses.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chatops_service::actions::webhook::{
    GithubRepositoryDispatch, GithubWorkflow, WebhookError, WebhookErrorKind, WebhookPlan, WebhookSpec,
};
use chatops_service::actions::{TemplateNames, TemplateValues};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    /// As sent on the wire, percent-encoding kept.
    path_and_query: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone)]
struct Answer {
    status: u16,
    body: String,
    delay: Duration,
    location: Option<String>,
}

impl Answer {
    fn status(status: u16) -> Self {
        Answer { status, body: String::new(), delay: Duration::ZERO, location: None }
    }
    fn json(status: u16, body: Value) -> Self {
        Answer { body: body.to_string(), ..Answer::status(status) }
    }
}

#[derive(Default)]
struct MockState {
    requests: Vec<Recorded>,
    /// Answers in order; when empty, 204.
    script: VecDeque<Answer>,
}

/// A local server playing GitHub's API on 127.0.0.1:0.
struct MockGithub {
    addr: SocketAddr,
    state: Arc<Mutex<MockState>>,
}

impl MockGithub {
    async fn start(script: Vec<Answer>) -> MockGithub {
        let state = Arc::new(Mutex::new(MockState { requests: Vec::new(), script: script.into() }));
        let app = axum::Router::new().fallback(record).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        MockGithub { addr, state }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }
}

async fn record(
    State(state): State<Arc<Mutex<MockState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = {
        let mut state = state.lock().unwrap();
        state.requests.push(Recorded {
            method,
            path_and_query: uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        state.script.pop_front().unwrap_or(Answer::status(204))
    };
    tokio::time::sleep(answer.delay).await;
    let mut response = (StatusCode::from_u16(answer.status).unwrap(), answer.body).into_response();
    if let Some(location) = answer.location {
        response.headers_mut().insert("location", location.parse().unwrap());
    }
    response
}

fn values(pairs: &[(&str, &str)]) -> TemplateValues {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn names() -> TemplateNames {
    TemplateNames::with_args(["service", "env", "org"])
}

struct Token {
    _dir: tempfile::TempDir,
    path: String,
    value: String,
}

fn token() -> Token {
    let dir = tempfile::tempdir().unwrap();
    let value: String = format!("ghp_{}", std::iter::repeat_with(fastrand::alphanumeric).take(36).collect::<String>());
    let path = dir.path().join("github-token");
    std::fs::write(&path, format!("{value}\n")).unwrap();
    Token { path: path.to_string_lossy().into_owned(), _dir: dir, value }
}

fn workflow_plan(api_base: &str, owner: &str, token: &Token, retries: u32) -> WebhookPlan {
    let preset: GithubWorkflow = toml::from_str(&format!(
        r#"
        api_base = "{api_base}"
        owner = "{owner}"
        repo = "{{service}}"
        token = {{ file = "{}" }}
        workflow = "deploy.yml"
        ref = "main"
        retries = {retries}
        timeout = "2s"
        inputs = {{ env = "{{env}}", requested_by = "{{user_id}}" }}
        "#,
        token.path
    ))
    .unwrap();
    let mut spec = preset.spec();
    // Short backoff: the test measures attempts, not waiting.
    spec.retry_backoff = Duration::from_millis(20);
    spec.compile(&names()).unwrap()
}

fn deploy_values() -> TemplateValues {
    values(&[("service", "web"), ("env", "production"), ("user_id", "U123"), ("correlation_id", "c-1")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_dispatch_sends_githubs_request_and_204_is_success() {
    let github = MockGithub::start(vec![]).await;
    let token = token();
    let plan = workflow_plan(&github.base(), "acme", &token, 2);
    let outcome = plan.run(&deploy_values()).await.unwrap();

    assert_eq!((outcome.status, outcome.attempts, outcome.body_json.clone()), (204, 1, None));
    let requests = github.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path_and_query, "/repos/acme/web/actions/workflows/deploy.yml/dispatches");
    let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert_eq!(header("authorization"), format!("Bearer {}", token.value));
    assert_eq!(header("accept"), "application/vnd.github+json");
    assert_eq!(header("x-github-api-version"), "2022-11-28");
    assert_eq!(header("user-agent"), "chatops");
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(request.body, json!({"ref": "main", "inputs": {"env": "production", "requested_by": "U123"}}));
    assert!(!format!("{plan:?}").contains(&token.value), "the token is read at run time, never held in Debug");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_dispatch_sends_event_type_and_client_payload() {
    let github = MockGithub::start(vec![]).await;
    let token = token();
    let preset: GithubRepositoryDispatch = toml::from_str(&format!(
        r#"
        api_base = "{}"
        owner = "acme"
        repo = "ops"
        token = {{ file = "{}" }}
        event_type = "deploy-{{service}}"
        client_payload = {{ service = "{{service}}", env = "{{env}}", correlation_id = "{{correlation_id}}", dry_run = false }}
        "#,
        github.base(),
        token.path
    ))
    .unwrap();
    let plan = preset.spec().compile(&names()).unwrap();
    let outcome = plan.run(&deploy_values()).await.unwrap();

    assert_eq!((outcome.status, outcome.attempts), (204, 1));
    let request = &github.requests()[0];
    assert_eq!(request.path_and_query, "/repos/acme/ops/dispatches");
    assert_eq!(
        request.body,
        json!({"event_type": "deploy-web", "client_payload": {
            "service": "web", "env": "production", "correlation_id": "c-1", "dry_run": false}})
    );
    assert_eq!(preset.target().actions_url(&deploy_values()), format!("{}/acme/ops/actions", github.base()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_fails_at_once_with_githubs_message() {
    for (status, message) in [(422, "Workflow does not have 'workflow_dispatch' trigger"), (404, "Not Found")] {
        let github = MockGithub::start(vec![Answer::json(
            status,
            json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
        )])
        .await;
        let token = token();
        let err = workflow_plan(&github.base(), "acme", &token, 3).run(&deploy_values()).await.unwrap_err();

        assert!(
            matches!(&err, WebhookError::Rejected { status: s, message: m, attempts: 1 } if *s == status && m == message),
            "{err:?}"
        );
        assert_eq!(err.to_string(), format!("HTTP {status}: {message}"));
        assert_eq!((err.kind(), err.may_have_started()), (WebhookErrorKind::Rejected, true));
        assert_eq!(github.requests().len(), 1, "a 4xx is not retried");
    }
    // Not JSON: a bounded snippet of the body instead.
    let github = MockGithub::start(vec![Answer { body: "x".repeat(10_000), ..Answer::status(403) }]).await;
    let err = workflow_plan(&github.base(), "acme", &token(), 0).run(&deploy_values()).await.unwrap_err();
    assert!(matches!(&err, WebhookError::Rejected { message, .. } if message.len() == 300), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_502s_then_204_succeeds_after_three_attempts() {
    let github = MockGithub::start(vec![Answer::status(502), Answer::status(502), Answer::status(204)]).await;
    let outcome = workflow_plan(&github.base(), "acme", &token(), 2).run(&deploy_values()).await.unwrap();
    assert_eq!((outcome.status, outcome.attempts), (204, 3));
    let requests = github.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.body == requests[0].body), "the same request each time");

    // One retry fewer than needed: the 502s exhaust it.
    let github = MockGithub::start(vec![Answer::status(502), Answer::status(502), Answer::status(204)]).await;
    let err = workflow_plan(&github.base(), "acme", &token(), 1).run(&deploy_values()).await.unwrap_err();
    assert!(matches!(err, WebhookError::Exhausted { attempts: 2, status: Some(502), sent: true, .. }), "{err:?}");
    assert!(err.may_have_started());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_attempt_is_retried() {
    let slow = Answer { delay: Duration::from_secs(6), ..Answer::status(204) };
    let github = MockGithub::start(vec![slow, Answer::status(204)]).await;
    // The plan's timeout is 2 s per attempt.
    let outcome = workflow_plan(&github.base(), "acme", &token(), 1).run(&deploy_values()).await.unwrap();
    assert_eq!((outcome.status, outcome.attempts), (204, 2));
    assert!(outcome.duration >= Duration::from_secs(2) && outcome.duration < Duration::from_secs(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_sent_is_reported_as_not_started() {
    // A port nobody listens on: every attempt fails to connect.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let err = workflow_plan(&base, "acme", &token(), 1).run(&deploy_values()).await.unwrap_err();
    assert!(matches!(err, WebhookError::Exhausted { attempts: 2, sent: false, .. }), "{err:?}");
    assert!(!err.may_have_started());

    // An unreadable token: refused before any request.
    let github = MockGithub::start(vec![]).await;
    let mut missing = token();
    missing.path = format!("{}.absent", missing.path);
    let err = workflow_plan(&github.base(), "acme", &missing, 1).run(&deploy_values()).await.unwrap_err();
    assert_eq!((err.kind(), err.may_have_started()), (WebhookErrorKind::NotSent, false), "{err}");
    assert!(github.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_cannot_move_the_request_to_another_host() {
    let github = MockGithub::start(vec![Answer::json(404, json!({"message": "Not Found"})); 8]).await;
    let evil = MockGithub::start(vec![]).await;
    let token = token();
    let plan = workflow_plan(&github.base(), "{org}", &token, 0);
    let evil_host = evil.addr.to_string();
    let attempts = [
        "evil.com/x".to_owned(),
        "@evil".to_owned(),
        format!("@{evil_host}"),
        format!("{evil_host}/x"),
        format!("x@{evil_host}/"),
        format!("//{evil_host}"),
        format!("x?y=1#@{evil_host}"),
        "%2e%2e".to_owned(),
    ];
    for org in &attempts {
        let mut v = deploy_values();
        v.insert("org".into(), org.clone());
        let err = plan.run(&v).await.unwrap_err();
        // The mock GitHub saw it under an encoded path and answered 404.
        assert!(matches!(err, WebhookError::Rejected { status: 404, .. }), "{org}: {err:?}");
    }
    let paths: Vec<String> = github.requests().into_iter().map(|r| r.path_and_query).collect();
    assert_eq!(paths.len(), attempts.len());
    assert_eq!(paths[0], "/repos/evil.com%2Fx/web/actions/workflows/deploy.yml/dispatches");
    assert_eq!(paths[1], "/repos/%40evil/web/actions/workflows/deploy.yml/dispatches");
    assert!(
        paths.iter().all(|p| p.starts_with("/repos/") && p.ends_with("/web/actions/workflows/deploy.yml/dispatches"))
    );
    assert!(evil.requests().is_empty(), "the other host was never called");

    // Dot segments would be normalised away by the URL parser: refused, nothing sent.
    for dots in ["..", "."] {
        let mut v = deploy_values();
        v.insert("org".into(), dots.into());
        let err = plan.run(&v).await.unwrap_err();
        assert_eq!(err.kind(), WebhookErrorKind::NotSent, "{dots}: {err}");
    }
    assert_eq!(github.requests().len(), attempts.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    let evil = MockGithub::start(vec![]).await;
    let redirect = Answer { location: Some(format!("{}/steal", evil.base())), ..Answer::status(307) };
    let github = MockGithub::start(vec![redirect]).await;
    let err = workflow_plan(&github.base(), "acme", &token(), 2).run(&deploy_values()).await.unwrap_err();
    assert!(matches!(err, WebhookError::UnexpectedStatus { status: 307, attempts: 1, .. }), "{err:?}");
    assert!(evil.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_webhook_answers_with_its_json_and_checks_its_host_list() {
    let github = MockGithub::start(vec![Answer::json(201, json!({"id": 42, "state": "queued"}))]).await;
    let mut spec =
        WebhookSpec::new(format!("{}/runs/{{service}}?env={{env}}", github.base()), vec!["127.0.0.1".into()]);
    spec.headers.insert(
        "X-Correlation-Id".into(),
        chatops_service::actions::webhook::HeaderSpec::Value("{correlation_id}".into()),
    );
    spec.body = Some(json!({"text": "deploy {service} \"now\"", "n": 1}));
    let outcome = spec.compile(&names()).unwrap().run(&deploy_values()).await.unwrap();
    assert_eq!((outcome.status, outcome.body_json), (201, Some(json!({"id": 42, "state": "queued"}))));
    let request = &github.requests()[0];
    assert_eq!(request.path_and_query, "/runs/web?env=production");
    assert_eq!(request.headers["x-correlation-id"], "c-1");
    assert_eq!(request.body, json!({"text": "deploy web \"now\"", "n": 1}));

    let refused = WebhookSpec::new(format!("{}/x", github.base()), vec!["localhost".into()]).compile(&names());
    assert!(refused.is_err(), "127.0.0.1 is not on the list");
}
