//! `chatops loadtest`: an open-model load generator that measures a Slack bot the way a
//! user experiences it, from the moment Slack sends a command to the moment each answer
//! lands at `response_url`; and `chatops mock-slack`, the stand-alone answer receiver.
//!
//! A run loads a profile ([`profile`], Artillery-shaped YAML or a built-in name), plans
//! arrivals from its phases ([`schedule`]), fires signed requests at their scheduled times
//! ([`fire`]), receives the bot's answers on a loopback server that stands in for Slack
//! ([`receiver`]), records everything in HDR histograms ([`record`]), checks the `ensure`
//! conditions and threshold flags ([`ensure`]) and writes the results JSON defined by
//! `chatops_core::results`.
//!
//! ```
//! use chatops_loadtest::profile::Profile;
//! use chatops_loadtest::schedule;
//!
//! let env = std::collections::HashMap::<String, String>::new();
//! let profile = Profile::load("minimal", &env).unwrap();
//! assert_eq!(schedule::arrivals(&profile.phases).count(), 140);
//! ```

pub mod args;
pub mod console;
pub mod ensure;
pub mod fire;
pub mod profile;
pub mod receiver;
pub mod record;
pub mod request;
pub mod schedule;
pub mod template;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chatops_core::results::{LoadTestResults, RESULTS_SCHEMA_VERSION, TestInfo};
use chatops_core::slack::SlackSigner;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Notify, mpsc, oneshot};

pub use args::{LoadtestArgs, MockSlackArgs};
use ensure::{Condition, Op};
use profile::{Profile, ProfileError};
use record::{Finish, Live, Recorder, RecorderConfig};
use template::ProcessEnv;

/// What the `chatops` binary knows about a bot it spawned for `--spawn`.
#[derive(Debug, Clone)]
pub struct SpawnedBot {
    /// Base URL of the bot's ingress, e.g. `http://127.0.0.1:41234`.
    pub target_url: String,
    pub signing_secret: SecretString,
    /// Where the bot's JSON log lines go (recorded in the results as `test.botLog`).
    pub bot_log_path: PathBuf,
}

/// How a run ended, when it could run at all.
#[derive(Debug, Clone)]
pub struct LoadtestOutcome {
    /// Every strict threshold held.
    pub passed: bool,
    /// The results file (None for `--list-profiles`).
    pub results_path: Option<PathBuf>,
    /// One line per failed condition: what, limit, measured.
    pub failures: Vec<String>,
    pub results: Option<Box<LoadTestResults>>,
}

impl LoadtestOutcome {
    /// 0 when every threshold held, 1 when one failed.
    pub fn exit_code(&self) -> u8 {
        if self.passed { 0 } else { 1 }
    }
}

/// Why a run could not happen or finish. Every variant maps to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum LoadtestError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("{0}")]
    Usage(String),
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("binding the response receiver on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
}

impl LoadtestError {
    pub fn exit_code(&self) -> u8 {
        2
    }
}

/// `results/test-YYYYMMDD-HHMMSS.json` for a start time (unix ms, UTC).
pub fn default_results_path(unix_ms: i64) -> PathBuf {
    let secs = unix_ms.div_euclid(1000);
    let (y, mo, d) = chatops_core::time::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    PathBuf::from(format!(
        "results/test-{y:04}{mo:02}{d:02}-{:02}{:02}{:02}.json",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    ))
}

/// Where a spawned bot's log goes for a results file: `results/test-….bot.log`.
pub fn bot_log_path_for(results_path: &Path) -> PathBuf {
    results_path.with_extension("bot.log")
}

impl LoadtestArgs {
    /// Fixes the results path now (filling `--output` with the default when absent), so the
    /// caller can name files beside it (the spawned bot's log) before calling [`run`].
    pub fn resolve_output(&mut self) -> PathBuf {
        self.output
            .get_or_insert_with(|| default_results_path((chatops_core::time::now_unix_ns() / 1_000_000) as i64))
            .clone()
    }
}

/// The text of `--list-profiles`.
pub fn list_profiles() -> String {
    let mut out = String::from("Built-in profiles (chatops loadtest --profile NAME):\n");
    for p in profile::BUILTIN {
        out.push_str(&format!("  {:<10}{}\n", p.name, p.summary));
    }
    out.push_str("Or pass an Artillery-style YAML file: --profile path/to/profile.yml\n");
    out
}

fn read_secret(args: &LoadtestArgs, spawned: Option<&SpawnedBot>) -> Result<SecretString, LoadtestError> {
    if let Some(bot) = spawned {
        return Ok(bot.signing_secret.clone());
    }
    if let Some(path) = &args.signing_secret_file {
        // The one rule every tool shares, so one file gives `serve` and `loadtest` the
        // same secret.
        let file = chatops_core::slack::secret_file::read_secret_file(path).map_err(|e| match e {
            chatops_core::slack::secret_file::SecretFileError::Read { path, source } => {
                LoadtestError::Io { what: "reading signing secret file", path, source }
            }
            invalid => LoadtestError::Usage(invalid.to_string()),
        })?;
        if let Some(warning) = file.permission_warning(path) {
            eprintln!("warning: {warning}");
        }
        return Ok(SecretString::from(file.into_secret()));
    }
    args.signing_secret.clone().ok_or_else(|| {
        LoadtestError::Usage(
            "no signing secret: use --signing-secret-file FILE or set SLACK_SIGNING_SECRET (or --signing-secret)"
                .into(),
        )
    })
}

fn flag_conditions(args: &LoadtestArgs) -> Result<Vec<Condition>, LoadtestError> {
    let flags = [
        ("error_rate", args.max_error_rate),
        ("http.response_time.p95", args.p95),
        ("http.response_time.p99", args.p99),
        ("e2e.p95", args.e2e_p95),
        ("e2e.p99", args.e2e_p99),
        ("lost", args.max_lost.map(|n| n as f64)),
    ];
    let mut out = Vec::new();
    for (metric, limit) in flags {
        if let Some(limit) = limit {
            if !limit.is_finite() || limit < 0.0 {
                return Err(LoadtestError::Usage(format!("threshold for {metric} must be a number ≥ 0")));
            }
            out.push(Condition::single(metric, Op::Le, limit).map_err(LoadtestError::Usage)?);
        }
    }
    Ok(out)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

fn relative_to(path: &Path, dir: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

/// Runs a load test. `spawned` is filled by the binary when `--spawn` started a bot.
pub async fn run(mut args: LoadtestArgs, spawned: Option<SpawnedBot>) -> Result<LoadtestOutcome, LoadtestError> {
    if args.list_profiles {
        print!("{}", list_profiles());
        return Ok(LoadtestOutcome { passed: true, results_path: None, failures: vec![], results: None });
    }
    if args.spawn && spawned.is_none() {
        return Err(LoadtestError::Usage("--spawn needs the chatops binary to start the bot".into()));
    }
    let name = args.profile.clone().ok_or_else(|| LoadtestError::Usage("--profile is required".into()))?;
    let mut profile = Profile::load(&name, &ProcessEnv)?;
    profile.scale(args.rate_scale, args.duration_scale)?;
    let mut conditions = profile.ensure.clone();
    conditions.extend(flag_conditions(&args)?);
    let target = match (&spawned, &args.target, &profile.target) {
        (Some(bot), _, _) => bot.target_url.clone(),
        (None, Some(t), _) => t.clone(),
        (None, None, Some(t)) => t.clone(),
        (None, None, None) => {
            return Err(LoadtestError::Usage("no target: pass --target URL or set config.target".into()));
        }
    };
    let target = fire::check_target(&target).map_err(|e| LoadtestError::Usage(e.0))?;
    let secret = read_secret(&args, spawned.as_ref())?;
    let signer = SlackSigner::new(secret.expose_secret().as_bytes());
    let timeout = args.timeout.unwrap_or(profile.http.timeout);
    if timeout.is_zero() {
        return Err(LoadtestError::Usage("--timeout must be more than zero".into()));
    }
    let plan = fire::Plan::new(&profile, &target).map_err(|e| LoadtestError::Usage(e.0))?;
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(plan.authority.as_str())
        .await
        .map_err(|e| LoadtestError::Usage(format!("cannot resolve target {}: {e}", plan.authority)))?
        .collect();
    if addrs.is_empty() {
        return Err(LoadtestError::Usage(format!("target {} resolves to no address", plan.authority)));
    }
    let results_path = args.resolve_output();

    // Everything that can fail on bad input has been checked; now bind and start.
    let run_tag: String = (0..8).map(|_| fastrand::alphanumeric().to_ascii_lowercase()).collect();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let start_epoch_ms = (chatops_core::time::now_unix_ns() / 1_000_000) as i64;
    let receiver = if args.no_receiver {
        None
    } else {
        let listener = tokio::net::TcpListener::bind(args.receiver_listen)
            .await
            .map_err(|source| LoadtestError::Bind { addr: args.receiver_listen, source })?;
        let sink = receiver::RecorderSink {
            run_tag: run_tag.clone(),
            start,
            issued: Arc::clone(&issued),
            events: events_tx.clone(),
            sent: AtomicU64::new(0),
        };
        Some(
            receiver::serve(listener, Arc::new(sink))
                .map_err(|source| LoadtestError::Bind { addr: args.receiver_listen, source })?,
        )
    };
    let hook_prefix = receiver.as_ref().map(|r| {
        let base = args.receiver_url.clone().unwrap_or_else(|| r.base_url());
        request::encode_hook_prefix(&base)
    });
    let record_file = match &args.record_requests {
        Some(path) => Some(create_file(path, "creating request record file")?),
        None => None,
    };
    if let Some(dir) = results_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| LoadtestError::Io {
            what: "creating results folder",
            path: dir.to_owned(),
            source,
        })?;
    }

    let total = profile.total_duration();
    let interval = series_interval(total);
    let live = Arc::new(Live::default());
    let recorder = Recorder::new(
        RecorderConfig {
            start,
            start_epoch_ms,
            run_tag: run_tag.clone(),
            commands: plan.commands.clone(),
            scenarios: plan.scenario_names.clone(),
            interval,
            response_window: args.response_window,
            http_timeout: timeout,
        },
        Arc::clone(&live),
        record_file
            .map(|f| Box::new(std::io::BufWriter::with_capacity(256 * 1024, f)) as Box<dyn std::io::Write + Send>),
    );
    let (finish_tx, finish_rx) = oneshot::channel();
    let recorder_task = tokio::spawn(recorder.run(events_rx, finish_rx));
    let engine = fire::Engine::new(fire::EngineConfig {
        signer,
        plan,
        hook_prefix,
        run_tag,
        issued: Arc::clone(&issued),
        events: events_tx,
        start,
        timeout,
        live: Arc::clone(&live),
        addrs,
        max_connections: profile.http.pool.unwrap_or(fire::DEFAULT_MAX_CONNECTIONS),
    })
    .map_err(|e| LoadtestError::Usage(e.0))?;
    let live_line = console::start_live_line(Arc::clone(&live), profile.phases.clone(), start, args.quiet);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    let completed = fire::run_sharded(&engine, &profile.phases, threads, args.max_in_flight, stop_rx).await;
    let drain_limit = if completed { args.drain_timeout } else { Duration::from_secs(1) };
    drain(&engine, &live, &issued, timeout, drain_limit).await;
    ctrl_c.abort();
    drop(live_line);
    drop(receiver);

    let (reply, output) = oneshot::channel();
    let _ = finish_tx.send(Finish { test_duration: total, reply });
    let _ = recorder_task.await;
    let out = output.await.map_err(|_| LoadtestError::Usage("the recorder stopped unexpectedly".into()))?;
    let end_epoch_ms = (chatops_core::time::now_unix_ns() / 1_000_000) as i64;

    let results_dir = results_path.parent().unwrap_or(Path::new("")).to_owned();
    let mut notes = profile.notes.clone();
    if !completed {
        notes.push("interrupted before the last phase ended".into());
    }
    if let Some(e) = &out.record_error {
        notes.push(format!("writing the request record failed: {e}"));
    }
    let mut time_series = out.time_series;
    fill_target_rates(&mut time_series, &profile.phases, interval);
    let mut results = LoadTestResults {
        schema_version: RESULTS_SCHEMA_VERSION,
        test: TestInfo {
            profile: profile.source.clone(),
            target: target.clone(),
            start_ms: start_epoch_ms,
            end_ms: end_epoch_ms,
            duration_ms: end_epoch_ms - start_epoch_ms,
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            host: host_name(),
            os: std::env::consts::OS.to_owned(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            rate_scale: args.rate_scale,
            duration_scale: args.duration_scale,
            spawned: spawned.is_some(),
            bot_log: spawned.as_ref().map(|b| relative_to(&b.bot_log_path, &results_dir)),
            requests_file: args.record_requests.as_ref().map(|p| relative_to(p, &results_dir)),
            notes,
        },
        phases: schedule::resolve(&profile.phases),
        counters: out.counters,
        summaries: out.summaries,
        by_command: out.by_command,
        by_scenario: out.by_scenario,
        time_series,
        thresholds: vec![],
        passed: true,
    };
    results.thresholds = conditions.iter().map(|c| c.evaluate(&results)).collect();
    results.passed = results.thresholds.iter().all(|t| t.passed || !t.strict);
    let failures: Vec<String> = results.thresholds.iter().filter(|t| !t.passed).map(ensure::failure_line).collect();

    let json = serde_json::to_string_pretty(&results).expect("results always serialize");
    std::fs::write(&results_path, format!("{json}\n")).map_err(|source| LoadtestError::Io {
        what: "writing results",
        path: results_path.clone(),
        source,
    })?;
    if !args.quiet {
        eprint!("{}", console::summary_table(&results));
        eprintln!("results: {}", results_path.display());
    }
    for line in &failures {
        eprintln!("{line}");
    }
    if args.json {
        println!("{json}");
    }
    Ok(LoadtestOutcome {
        passed: results.passed,
        results_path: Some(results_path),
        failures,
        results: Some(Box::new(results)),
    })
}

fn create_file(path: &Path, what: &'static str) -> Result<std::fs::File, LoadtestError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| LoadtestError::Io { what, path: dir.to_owned(), source })?;
    }
    std::fs::File::create(path).map_err(|source| LoadtestError::Io { what, path: path.to_owned(), source })
}

/// The time-series step: 1 s, or 10 s for tests longer than 5 minutes.
pub fn series_interval(total: Duration) -> Duration {
    if total > Duration::from_secs(300) { Duration::from_secs(10) } else { Duration::from_secs(1) }
}

/// Waits for requests in flight (bounded by the HTTP timeout), then for outstanding first
/// answers and a short quiet spell for trailing ones (bounded by the drain timeout).
async fn drain(engine: &fire::Engine, live: &Live, issued: &AtomicU64, timeout: Duration, drain_limit: Duration) {
    let poll = Duration::from_millis(10);
    let in_flight_deadline = Instant::now() + timeout + Duration::from_secs(1);
    while live.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < in_flight_deadline {
        tokio::time::sleep(poll).await;
    }
    // The recorder has seen every finished request once its count catches up.
    let catch_up = Instant::now() + Duration::from_secs(5);
    while live.sent.load(Ordering::Relaxed) < issued.load(Ordering::Relaxed) && Instant::now() < catch_up {
        tokio::time::sleep(poll).await;
    }
    if engine.hook_prefix.is_none() {
        return;
    }
    let deadline = Instant::now() + drain_limit;
    let quiet = Duration::from_millis(250);
    while Instant::now() < deadline {
        let awaiting = live.awaiting_first.load(Ordering::Relaxed);
        let last = Duration::from_nanos(live.last_response_ns.load(Ordering::Relaxed));
        let since_last = engine.start.elapsed().saturating_sub(last);
        if awaiting == 0 && since_last >= quiet {
            return;
        }
        tokio::time::sleep(poll).await;
    }
}

/// Fills each point's target rate from the schedule (arrivals planned in its interval).
fn fill_target_rates(ts: &mut chatops_core::results::TimeSeries, phases: &[profile::Phase], interval: Duration) {
    if ts.points.is_empty() {
        return;
    }
    let mut counts = vec![0u64; ts.points.len()];
    let interval_ns = interval.as_nanos() as u64;
    for a in schedule::arrivals(phases) {
        let idx = ((a.offset_ns / interval_ns) as usize).min(counts.len() - 1);
        counts[idx] += 1;
    }
    for (p, n) in ts.points.iter_mut().zip(counts) {
        p.target_rate = n as f64 / interval.as_secs_f64();
    }
}

/// `chatops mock-slack`: serves the receiver until ctrl-c (or `--max-posts`), printing one
/// line per post to stdout.
pub async fn run_mock_slack(args: MockSlackArgs) -> Result<(), LoadtestError> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| LoadtestError::Bind { addr: args.listen, source })?;
    let done = Arc::new(Notify::new());
    let server = serve_mock_slack(listener, Box::new(std::io::stdout()), &args, Arc::clone(&done))?;
    eprintln!("mock-slack listening on {} (POST /hook/<id>)", server.base_url());
    tokio::select! {
        _ = done.notified() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

/// The mock-slack server on a bound listener, writing lines to `out`; `done` is notified
/// after `--max-posts` posts. Exposed for tests and for embedding.
pub fn serve_mock_slack(
    listener: tokio::net::TcpListener,
    out: Box<dyn std::io::Write + Send>,
    args: &MockSlackArgs,
    done: Arc<Notify>,
) -> Result<receiver::Receiver, LoadtestError> {
    let addr = listener.local_addr().unwrap_or(args.listen);
    let sink = receiver::PrintSink {
        out: std::sync::Mutex::new(out),
        raw: args.raw,
        posts: AtomicU64::new(0),
        max_posts: args.max_posts,
        done,
    };
    receiver::serve(listener, Arc::new(sink)).map_err(|source| LoadtestError::Bind { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_results_path_is_utc_stamped() {
        // 2026-11-28T12:34:56Z
        let ms = (chatops_core::time::days_from_civil(2026, 11, 28) * 86_400 + 12 * 3600 + 34 * 60 + 56) * 1000;
        assert_eq!(default_results_path(ms), PathBuf::from("results/test-20261128-123456.json"));
        assert_eq!(
            bot_log_path_for(Path::new("results/test-20261128-123456.json")),
            PathBuf::from("results/test-20261128-123456.bot.log")
        );
    }

    #[test]
    fn long_tests_get_a_coarser_time_series() {
        assert_eq!(series_interval(Duration::from_secs(60)), Duration::from_secs(1));
        assert_eq!(series_interval(Duration::from_secs(300)), Duration::from_secs(1));
        assert_eq!(series_interval(Duration::from_secs(301)), Duration::from_secs(10));
    }

    #[test]
    fn lists_every_builtin_profile() {
        let text = list_profiles();
        for name in ["smoke", "minimal", "light", "standard", "full"] {
            assert!(text.contains(name), "{text}");
        }
    }
}
