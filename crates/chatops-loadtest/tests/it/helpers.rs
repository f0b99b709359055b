//! Test helpers: an axum stub bot (verifies signatures, can stall, can answer through
//! response_url) and a one-call wrapper that plans, runs and writes a test like `chatops loadtest`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chatops_core::slack::{SlackForm, SlackSigner, SlashCommand};
use chatops_loadtest::{LoadtestArgs, LoadtestError, Plan, RunResults};
use clap::Parser;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub(crate) const SECRET: &str = "it-signing-secret-0123456789";

#[derive(Clone, Default)]
pub(crate) struct StubConfig {
    /// The request (0-based arrival order) that stalls the server.
    pub stall_on: Option<u64>,
    pub stall: Duration,
    /// Post to the command's response_url after each of these delays.
    pub answer_after: Vec<Duration>,
    /// How many of `answer_after`'s posts a request makes, from its sequence number (the
    /// `X-Request-Id` the generator sends); all of them when None.
    pub answers_for: Option<fn(u64) -> usize>,
    /// Keep the first N requests' headers and bodies.
    pub capture: usize,
    /// Also post once to a response path that names no request.
    pub bogus_post: bool,
}

pub(crate) struct StubState {
    cfg: StubConfig,
    pub requests: AtomicU64,
    pub bad_signatures: AtomicU64,
    pub commands: AtomicU64,
    pub captured: Mutex<Vec<(HeaderMap, Bytes)>>,
    signer: SlackSigner,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub(crate) struct Stub {
    pub url: String,
    pub state: Arc<StubState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the stub bot on 127.0.0.1, port 0. Every path answers like the bot's ingress:
/// 401 on a bad signature, else 200 with an ephemeral "Processing" message.
pub(crate) async fn spawn_stub(cfg: StubConfig) -> Stub {
    let state = Arc::new(StubState {
        cfg,
        requests: AtomicU64::new(0),
        bad_signatures: AtomicU64::new(0),
        commands: AtomicU64::new(0),
        captured: Mutex::new(Vec::new()),
        signer: SlackSigner::new(SECRET.as_bytes()),
        client: Client::builder(TokioExecutor::new()).build_http(),
    });
    let app = axum::Router::new().fallback(handle).with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Stub { url, state, task }
}

async fn handle(State(st): State<Arc<StubState>>, headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
    let n = st.requests.fetch_add(1, Ordering::SeqCst);
    if (n as usize) < st.cfg.capture {
        st.captured.lock().unwrap().push((headers.clone(), body.clone()));
    }
    let verified = st.signer.verify(
        headers.get("x-slack-request-timestamp").map(|v| v.as_bytes()),
        headers.get("x-slack-signature").map(|v| v.as_bytes()),
        &body,
        chatops_core::time::now_unix_secs(),
    );
    if verified.is_err() {
        st.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::UNAUTHORIZED, "bad signature");
    }
    if let Ok(SlackForm::Command(cmd)) = SlashCommand::parse_form(&body) {
        st.commands.fetch_add(1, Ordering::SeqCst);
        let arrived = tokio::time::Instant::now();
        let seq = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|id| id.rsplit_once('-'))
            .and_then(|(_, seq)| seq.parse::<u64>().ok());
        let posts = match (st.cfg.answers_for, seq) {
            (Some(f), Some(seq)) => f(seq),
            _ => usize::MAX,
        };
        for delay in st.cfg.answer_after.iter().copied().take(posts) {
            let (client, url) = (st.client.clone(), cmd.response_url.clone());
            tokio::spawn(async move {
                tokio::time::sleep_until(arrived + delay).await;
                post(&client, &url, r#"{"response_type":"ephemeral","text":"done"}"#).await;
            });
        }
        if st.cfg.bogus_post && n == 0 {
            let base = cmd.response_url.rsplit_once("/hook/").map(|(b, _)| b.to_owned()).unwrap_or_default();
            post(&st.client, &format!("{base}/hook/not-a-request-7"), r#"{"text":"stray"}"#).await;
        }
    }
    if st.cfg.stall_on == Some(n) {
        tokio::time::sleep(st.cfg.stall).await;
    }
    (StatusCode::OK, r#"{"response_type":"ephemeral","text":"Processing"}"#)
}

pub(crate) async fn post(client: &Client<HttpConnector, Full<Bytes>>, url: &str, json: &'static str) -> u16 {
    let req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(json.as_bytes())))
        .unwrap();
    match client.request(req).await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: LoadtestArgs,
}

pub(crate) fn parse_args(argv: &[&str]) -> LoadtestArgs {
    Cli::try_parse_from(std::iter::once("loadtest").chain(argv.iter().copied())).unwrap().args
}

pub(crate) struct Run {
    pub outcome: Result<RunResults, LoadtestError>,
    pub dir: tempfile::TempDir,
}

impl Run {
    pub(crate) fn ok(&self) -> &RunResults {
        match &self.outcome {
            Ok(o) => o,
            Err(e) => panic!("run failed: {e}"),
        }
    }

    pub(crate) fn results(&self) -> &chatops_core::results::LoadTestResults {
        &self.ok().results
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Runs a load test quietly, with the test secret and results in a temp dir; `{dir}` in an
/// argument stands for that dir.
pub(crate) async fn run(argv: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let results = format!("{d}/results.json");
    let mut full = vec!["--quiet", "--signing-secret", SECRET, "-o", &results];
    let owned: Vec<String> = argv.iter().map(|a| a.replace("{dir}", &d)).collect();
    full.extend(owned.iter().map(String::as_str));
    let outcome = plan_run_write(&parse_args(&full)).await;
    Run { outcome, dir }
}

/// What `chatops loadtest` does without `--spawn`, minus the printing: plan, run, write the
/// results file.
pub(crate) async fn plan_run_write(args: &LoadtestArgs) -> Result<RunResults, LoadtestError> {
    let run = Plan::from_args(args, None)?.run().await?;
    run.write()?;
    Ok(run)
}

/// Writes a profile file into a new temp dir (kept alive by the returned guard).
pub(crate) fn write_profile(yaml: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profile.yml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path.display().to_string())
}

/// A one-phase profile posting a templated /echo command with a response_url.
pub(crate) fn echo_profile(phase: &str, http: &str) -> String {
    format!(
        r#"config:
  target: "http://127.0.0.1:9"
  phases:
{phase}
{http}
scenarios:
  - name: echo
    flow:
      - post:
          url: /slack/commands
          body: "command=%2Fecho&text=hi+{{{{ $randomString(6) }}}}&user_id=U{{{{ $randomNumber(1, 999) }}}}&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1%2F2%2F3"
          beforeRequest: generateSlackSignature
"#
    )
}
