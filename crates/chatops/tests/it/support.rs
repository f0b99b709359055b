//! Test fixtures: the bot in-process on a random port ([`spawn_app`]) or as a child process
//! ([`BotProcess`]), a fake Slack `response_url` receiver ([`SlackReceiver`], the only fake
//! allowed: it plays Slack), request signing, and captured log lines.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::post;
use chatops_core::SlashCommand;
use chatops_core::slack::SlackSigner;
use chatops_service::config::{self, Overrides};
use chatops_service::{App, Settings};
use secrecy::SecretString;
use tokio::sync::Notify;

pub(crate) const SECRET: &str = "test-signing-secret-6b1c";

// ---------------------------------------------------------------------------------------
// Captured logs: one global subscriber for the test binary, lines kept in memory.

#[derive(Clone, Default)]
pub(crate) struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = std::io::stderr().write_all(buf);
        }
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

static LOGS: OnceLock<LogBuffer> = OnceLock::new();

pub(crate) fn logs() -> &'static LogBuffer {
    LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        chatops_service::telemetry::init_with_writer(buffer.clone(), None).expect("first and only subscriber");
        buffer
    })
}

/// Every captured JSON log line that mentions `correlation_id`.
pub(crate) fn log_lines_for(correlation_id: &str) -> Vec<serde_json::Value> {
    let bytes = logs().0.lock().unwrap().clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| l.contains(correlation_id))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub(crate) fn all_log_text() -> String {
    String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned()
}

/// Waits until a line with `message` exists for the correlation id.
pub(crate) async fn wait_for_log(correlation_id: &str, message: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines: Vec<_> = log_lines_for(correlation_id).into_iter().filter(|l| l["message"] == message).collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The fake Slack response_url receiver.

#[derive(Debug, Clone)]
pub(crate) struct Post {
    pub at: Instant,
    pub body: serde_json::Value,
}

#[derive(Default)]
struct ReceiverState {
    posts: Mutex<HashMap<String, Vec<Post>>>,
    attempts: Mutex<HashMap<String, usize>>,
    /// Answer 500 to the first N posts of every hook id (usize::MAX: always).
    fail_first: AtomicUsize,
    arrived: Notify,
}

/// Plays Slack's `response_url`: `POST /hook/{id}` → 200 (or 500 when told to fail).
#[derive(Clone)]
pub(crate) struct SlackReceiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
}

async fn hook(State(s): State<Arc<ReceiverState>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let attempt = {
        let mut attempts = s.attempts.lock().unwrap();
        let n = attempts.entry(id.clone()).or_default();
        *n += 1;
        *n
    };
    if attempt <= s.fail_first.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    s.posts.lock().unwrap().entry(id).or_default().push(Post { at, body });
    s.arrived.notify_waiters();
    StatusCode::OK
}

impl SlackReceiver {
    pub(crate) async fn start() -> Self {
        let state = Arc::new(ReceiverState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/hook/{id}", post(hook)).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        SlackReceiver { addr, state }
    }

    pub(crate) fn url(&self, id: &str) -> String {
        format!("http://{}/hook/{id}", self.addr)
    }

    /// Answer 500 to the first `n` posts of each hook id (`usize::MAX`: always).
    pub(crate) fn fail_first(&self, n: usize) {
        self.state.fail_first.store(n, Ordering::SeqCst);
    }

    pub(crate) fn posts(&self, id: &str) -> Vec<Post> {
        self.state.posts.lock().unwrap().get(id).cloned().unwrap_or_default()
    }

    /// Posts attempted (answered or failed) for a hook id.
    pub(crate) fn attempts(&self, id: &str) -> usize {
        self.state.attempts.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    pub(crate) fn total_posts(&self) -> usize {
        self.state.posts.lock().unwrap().values().map(Vec::len).sum()
    }

    /// Waits until `n` posts arrived for `id`, or `timeout`.
    pub(crate) async fn wait_for(&self, id: &str, n: usize, timeout: Duration) -> Vec<Post> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.arrived.notified();
            let posts = self.posts(id);
            if posts.len() >= n {
                return posts;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.posts(id);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Signed requests.

pub(crate) fn slash(command: &str, text: &str, response_url: &str) -> SlashCommand {
    SlashCommand {
        command: command.into(),
        text: text.into(),
        response_url: response_url.into(),
        team_id: "T0TEST".into(),
        team_domain: "test".into(),
        channel_id: "C0TEST".into(),
        channel_name: "test".into(),
        user_id: "U0TEST".into(),
        user_name: "tester".into(),
        trigger_id: "1.2.3".into(),
        api_app_id: "A0TEST".into(),
        ..Default::default()
    }
}

pub(crate) struct SignedRequest {
    pub body: Vec<u8>,
    pub timestamp: String,
    pub signature: String,
}

pub(crate) fn sign(body: impl Into<Vec<u8>>) -> SignedRequest {
    let body = body.into();
    let timestamp = chatops_core::time::now_unix_secs().to_string();
    let signature = SlackSigner::new(SECRET.as_bytes()).sign(&timestamp, &body);
    SignedRequest { body, timestamp, signature }
}

pub(crate) fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

/// Posts a signed form with `X-Request-Id: request_id`.
pub(crate) async fn post_signed(base: &str, req: &SignedRequest, request_id: &str) -> reqwest::Response {
    post_signed_with(&http(), base, req, request_id).await
}

/// [`post_signed`] on a given client (and so its connection pool).
pub(crate) async fn post_signed_with(
    client: &reqwest::Client,
    base: &str,
    req: &SignedRequest,
    request_id: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/slack/commands"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", &req.timestamp)
        .header("x-slack-signature", &req.signature)
        .header("x-request-id", request_id)
        .body(req.body.clone())
        .send()
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// The bot in-process.

/// The overrides of a test bot: random port, its own data directory, responses to loopback.
pub(crate) fn test_overrides(data_dir: &Path) -> Overrides {
    Overrides {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(data_dir.to_owned()),
        allow_response_hosts: vec!["127.0.0.1".into()],
        signing_secret: Some(SecretString::from(SECRET)),
        ..Default::default()
    }
}

/// Settings for a test bot: [`test_overrides`], fast retries.
pub(crate) fn test_settings(data_dir: &Path) -> Settings {
    tuned_for_tests(config::load(None, test_overrides(data_dir)).unwrap())
}

/// Fast retries, no per-user rate limit, metrics on a free port.
pub(crate) fn tuned_for_tests(mut s: Settings) -> Settings {
    s.retry.base_delay = Duration::from_millis(50);
    s.retry.max_delay = Duration::from_millis(200);
    s.respond.max_retries = 1;
    s.shutdown_grace = Duration::from_secs(10);
    // Tests send many commands as one user; the rate limit has tests of its own.
    s.limits.per_user_per_minute = 0;
    // Tests run side by side: the metrics listener on a free port.
    s.limits.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    s
}

/// Config for bot processes in tests: the per-user rate limit off (tests send many
/// commands as one user), plus `extra`.
pub(crate) fn test_config_file(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("test-config.toml");
    std::fs::write(&path, format!("[limits]\nper_user_per_minute = 0\n{extra}")).unwrap();
    path
}

pub(crate) struct TestApp {
    pub base: String,
    /// `http://ADDR` of the metrics listener.
    pub metrics_base: String,
    pub queue: Arc<dyn chatops_queue::Queue>,
    pub data_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestApp {
    /// Stops the bot gracefully and waits for it.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    pub(crate) async fn post(&self, req: &SignedRequest, request_id: &str) -> reqwest::Response {
        post_signed(&self.base, req, request_id).await
    }

    /// Sends `/cmd text` with its response_url on the receiver at hook `id`.
    pub(crate) async fn send(
        &self,
        receiver: &SlackReceiver,
        command: &str,
        text: &str,
        id: &str,
    ) -> reqwest::Response {
        let body = slash(command, text, &receiver.url(id)).to_form();
        self.post(&sign(body), id).await
    }
}

pub(crate) async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(dir.path());
    let mut app = spawn_app_with(settings).await;
    app._dir = Some(dir);
    app
}

pub(crate) async fn spawn_app_with(settings: Settings) -> TestApp {
    spawn_app_of(&App::default(), settings).await
}

/// Runs `app` (its own commands) with `settings`, in every role.
pub(crate) async fn spawn_app_of(app: &App, settings: Settings) -> TestApp {
    logs();
    let data_dir = settings.data_dir.clone();
    let app = app.start(settings, chatops_service::startup::Roles::all()).await.unwrap();
    let base = format!("http://{}", app.local_addr().expect("serve listens"));
    let metrics_base = app.metrics_addr().map(|a| format!("http://{a}")).unwrap_or_default();
    let queue = app.queue();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        app.run_until_stopped(async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    TestApp { base, metrics_base, queue, data_dir, stop: Some(tx), task: Some(task), _dir: None }
}

// ---------------------------------------------------------------------------------------
// The bot as a child process (for SIGKILL and SIGTERM).

pub(crate) struct BotProcess {
    pub child: Child,
    pub base: String,
    /// `http://ADDR` of its metrics listener (empty without one).
    pub metrics_base: String,
    pub log_file: PathBuf,
}

impl BotProcess {
    /// Starts `chatops serve` on a random port and waits until it listens.
    pub(crate) fn start(data_dir: &Path, log_file: &Path, extra_env: &[(&str, &str)]) -> BotProcess {
        let args = ["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir.to_str().unwrap()];
        Self::spawn(&args, log_file, extra_env)
    }

    /// Starts `chatops <args...> --allow-response-host 127.0.0.1 --log-file <log_file>` and
    /// waits for its "chatops is serving" line. `base` is empty for a worker-only process.
    pub(crate) fn spawn(args: &[&str], log_file: &Path, extra_env: &[(&str, &str)]) -> BotProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatops"));
        cmd.args(args)
            .args(["--allow-response-host", "127.0.0.1"])
            .arg("--log-file")
            .arg(log_file)
            .env("SLACK_SIGNING_SECRET", SECRET)
            .env("RUST_LOG", "info")
            // Processes run side by side: the metrics listener on a free port.
            .env("CHATOPS_METRICS_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the chatops binary runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !sent && line.contains("chatops is serving") {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let addr = |key: &str| v[key].as_str().unwrap_or_default().to_owned();
                    let _ = tx.send((addr("listen"), addr("metrics_listen")));
                    sent = true;
                }
            }
        });
        let (addr, metrics_addr) = rx.recv_timeout(Duration::from_secs(30)).expect("the bot starts within 30 s");
        let http_base = |a: String| if a.is_empty() { String::new() } else { format!("http://{a}") };
        BotProcess {
            child,
            base: http_base(addr),
            metrics_base: http_base(metrics_addr),
            log_file: log_file.to_owned(),
        }
    }

    pub(crate) fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub(crate) fn sigterm(&mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the bot did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The JSON lines of its log file.
    pub(crate) fn log_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
