//! A load test in two steps: [`Plan::from_args`] checks everything that can be wrong with
//! the input (profile, scaling, thresholds, target, secret, timeout) without touching the
//! network or the disk; [`Plan::run`] resolves the target, binds the receiver, fires the
//! schedule, drains and returns the [`RunResults`] with their verdict. Writing the results
//! file and printing are the caller's ([`RunResults::write`], [`crate::console`]), so a
//! library user can run a test without either.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chatops_core::results::{LoadTestResults, RESULTS_SCHEMA_VERSION, TestInfo};
use chatops_core::slack::SlackSigner;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{mpsc, oneshot};

use crate::dashboard::{DashboardFeed, RunView};
use crate::ensure::{self, Condition, Op};
use crate::profile::{self, Profile};
use crate::record::{Finish, Live, Recorder, RecorderConfig};
use crate::scrape::{ScrapeTarget, Scraper};
use crate::template::ProcessEnv;
use crate::tls::TlsTarget;
use crate::{
    LoadtestArgs, LoadtestError, SpawnedBot, console, default_results_path, fire, receiver, request, schedule,
};

/// A validated load test, ready to [`run`](Plan::run).
pub struct Plan {
    args: LoadtestArgs,
    profile: Profile,
    conditions: Vec<Condition>,
    target: String,
    signer: SlackSigner,
    timeout: Duration,
    requests: fire::RequestPlan,
    results_path: PathBuf,
    /// The spawned bot's log, relative to the results folder (`test.botLog`).
    bot_log: Option<PathBuf>,
    /// The bot's `/metrics` (`--scrape`, or the spawned bot's).
    scrape: Option<ScrapeTarget>,
    dashboard: Option<DashboardFeed>,
}

/// What a finished run measured, and its verdict.
#[derive(Debug, Clone)]
pub struct RunResults {
    pub results: LoadTestResults,
    /// Where the results belong (`--output`, or the default `results/test-….json`).
    pub path: PathBuf,
    /// One line per failed condition: what, limit, measured.
    pub failures: Vec<String>,
}

impl RunResults {
    /// Every strict threshold held.
    pub fn passed(&self) -> bool {
        self.results.passed
    }

    /// 0 when every threshold held, 1 when one failed.
    pub fn exit_code(&self) -> u8 {
        if self.passed() { 0 } else { 1 }
    }

    /// The results as the JSON the file holds (pretty, no trailing newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.results).expect("results always serialize")
    }

    /// Writes the results file at [`RunResults::path`] and returns its JSON.
    pub fn write(&self) -> Result<String, LoadtestError> {
        let json = self.to_json();
        std::fs::write(&self.path, format!("{json}\n")).map_err(|source| LoadtestError::Io {
            what: "writing results",
            path: self.path.clone(),
            source,
        })?;
        Ok(json)
    }
}

impl Plan {
    /// Checks the arguments and loads the profile. `spawned` is filled by the binary when
    /// `--spawn` started a bot: its URL and secret replace `--target` and the secret flags.
    pub fn from_args(args: &LoadtestArgs, spawned: Option<&SpawnedBot>) -> Result<Plan, LoadtestError> {
        if args.list_profiles {
            return Err(LoadtestError::Usage("--list-profiles is not a run: print `list_profiles()` instead".into()));
        }
        if args.spawn && spawned.is_none() {
            return Err(LoadtestError::Usage("--spawn needs the chatops binary to start the bot".into()));
        }
        let name = args
            .profile_name()
            .map(str::to_owned)
            .ok_or_else(|| LoadtestError::Usage("no profile: pass PROFILE.yml (or --profile NAME|FILE)".into()))?;
        let mut profile = Profile::load(&name, &ProcessEnv)?;
        profile.scale(args.rate_scale, args.duration_scale)?;
        let mut conditions = profile.ensure.clone();
        if args.no_receiver && conditions.iter().any(Condition::needs_receiver) {
            // Without the receiver nothing measures E2E: such a threshold could only fail.
            let skipped: Vec<String> =
                conditions.iter().filter(|c| c.needs_receiver()).map(|c| format!("`{}`", c.text)).collect();
            conditions.retain(|c| !c.needs_receiver());
            profile.notes.push(format!("--no-receiver: the profile's {} not checked", skipped.join(", ") + " are"));
        }
        conditions.extend(flag_conditions(args)?);
        let target = match (spawned, &args.target, &profile.target) {
            (Some(bot), _, _) => bot.target_url.clone(),
            (None, Some(t), _) => t.clone(),
            (None, None, Some(t)) => t.clone(),
            (None, None, None) => {
                return Err(LoadtestError::Usage("no target: pass --target URL or set config.target".into()));
            }
        };
        let target = fire::check_target(&target).map_err(|e| LoadtestError::Usage(e.0))?;
        if args.insecure {
            profile.notes.push(if target.starts_with("https://") {
                "--insecure: the target's TLS certificate was not verified".into()
            } else {
                "--insecure has no effect: the target is plain http".into()
            });
        }
        let scrape_url = args.scrape.as_deref().or(spawned.and_then(|b| b.metrics_url.as_deref()));
        let scrape =
            scrape_url.map(ScrapeTarget::parse).transpose().map_err(|e| LoadtestError::Usage(e.to_string()))?;
        let secret = read_secret(args, spawned)?;
        let signer = SlackSigner::new(secret.expose_secret().as_bytes());
        let timeout = args.timeout.unwrap_or(profile.http.timeout);
        if timeout.is_zero() {
            return Err(LoadtestError::Usage("--timeout must be more than zero".into()));
        }
        let requests = fire::RequestPlan::new(&profile, &target).map_err(|e| LoadtestError::Usage(e.0))?;
        let results_path = args
            .output
            .clone()
            .unwrap_or_else(|| default_results_path((chatops_core::time::now_unix_ns() / 1_000_000) as i64));
        Ok(Plan {
            args: args.clone(),
            profile,
            conditions,
            target,
            signer,
            timeout,
            requests,
            results_path,
            bot_log: spawned.map(|b| b.bot_log_path.clone()),
            scrape,
            dashboard: None,
        })
    }

    /// Feeds a live dashboard ([`crate::dashboard`]) while the test runs.
    pub fn attach_dashboard(&mut self, feed: DashboardFeed) {
        self.dashboard = Some(feed);
    }

    /// Where the results will be written.
    pub fn results_path(&self) -> &Path {
        &self.results_path
    }

    /// Runs the test to its end (or ctrl-c) and evaluates the thresholds. Creates the
    /// results folder and the `--record-requests` file (streamed while running), but does
    /// not write the results file.
    pub async fn run(self) -> Result<RunResults, LoadtestError> {
        let Plan {
            args,
            profile,
            conditions,
            target,
            signer,
            timeout,
            requests,
            results_path,
            bot_log,
            scrape,
            dashboard,
        } = self;
        let authority = requests.authority.clone();
        let tls = if requests.https {
            let tls = TlsTarget::new(&requests.host, args.insecure).map_err(|e| LoadtestError::Usage(e.to_string()))?;
            if args.insecure {
                eprintln!("warning: --insecure: the TLS certificate of {target} is not verified");
            }
            Some(tls)
        } else {
            None
        };
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(authority.as_str())
            .await
            .map_err(|e| LoadtestError::Usage(format!("cannot resolve target {authority}: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(LoadtestError::Usage(format!("target {authority} resolves to no address")));
        }

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
                commands: requests.commands.clone(),
                scenarios: requests.scenario_names.clone(),
                interval,
                response_window: args.response_window,
                http_timeout: timeout,
            },
            Arc::clone(&live),
            record_file
                .map(|f| Box::new(std::io::BufWriter::with_capacity(256 * 1024, f)) as Box<dyn std::io::Write + Send>),
        );
        let n_intervals = (total.as_nanos() as u64).div_ceil(interval.as_nanos() as u64).max(1);
        let scraper = scrape.map(|target| Scraper::spawn(target, start, interval, n_intervals));
        let recorder = match &dashboard {
            Some(feed) => recorder.with_progress(feed.begin(RunView {
                server: scraper.as_ref().map(Scraper::live),
                profile: profile.source.clone(),
                target: target.clone(),
                phases: profile.phases.clone(),
                interval,
                start,
                live: Arc::clone(&live),
            })),
            None => recorder,
        };
        let (finish_tx, finish_rx) = oneshot::channel();
        let recorder_task = tokio::spawn(recorder.run(events_rx, finish_rx));
        let engine = fire::Engine::new(fire::EngineConfig {
            signer,
            plan: requests,
            hook_prefix,
            run_tag,
            issued: Arc::clone(&issued),
            events: events_tx,
            start,
            timeout,
            live: Arc::clone(&live),
            addrs,
            max_connections: profile.http.pool.unwrap_or(fire::DEFAULT_MAX_CONNECTIONS),
            tls,
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
        drain(&engine, &live, &issued, timeout, drain_limit.min(args.response_window)).await;
        ctrl_c.abort();
        drop(live_line);
        drop(receiver);
        // A completed run may end before the last interval's scrape (taken at its middle).
        let scrapes = match scraper {
            Some(s) => Some(s.finish(if completed { interval } else { Duration::ZERO }).await),
            None => None,
        };

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
        if let Some(reason) = engine.first_tls_failure.get() {
            notes.push(format!("TLS failed ({} `tls` errors), first: {reason}", tls_errors(&out.counters)));
        }
        let mut time_series = out.time_series;
        fill_target_rates(&mut time_series, &profile.phases, interval);
        if let Some(log) = &scrapes {
            log.join_into(&mut time_series);
            notes.extend(log.note());
        }
        let mut counters = out.counters;
        counters.connections = engine.connections.load(Ordering::Relaxed);
        counters.tls_handshakes = engine.tls_handshakes.load(Ordering::Relaxed);
        let mut results = LoadTestResults {
            schema_version: RESULTS_SCHEMA_VERSION,
            test: TestInfo {
                profile: profile.source.clone(),
                target,
                start_ms: start_epoch_ms,
                end_ms: end_epoch_ms,
                duration_ms: end_epoch_ms - start_epoch_ms,
                tool_version: env!("CARGO_PKG_VERSION").to_owned(),
                host: host_name(),
                os: std::env::consts::OS.to_owned(),
                cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
                rate_scale: args.rate_scale,
                duration_scale: args.duration_scale,
                spawned: bot_log.is_some(),
                bot_log: bot_log.as_ref().map(|p| relative_to(p, &results_dir)),
                requests_file: args.record_requests.as_ref().map(|p| relative_to(p, &results_dir)),
                notes,
            },
            phases: schedule::resolve(&profile.phases),
            counters,
            summaries: out.summaries,
            by_command: out.by_command,
            by_scenario: out.by_scenario,
            time_series,
            thresholds: vec![],
            passed: true,
        };
        results.thresholds = conditions.iter().map(|c| c.evaluate(&results)).collect();
        results.passed = results.thresholds.iter().all(|t| t.passed || !t.strict);
        let failures = results.thresholds.iter().filter(|t| !t.passed).map(ensure::failure_line).collect();
        Ok(RunResults { results, path: results_path, failures })
    }
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
        ("incomplete", args.max_incomplete.map(|n| n as f64)),
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

fn tls_errors(c: &chatops_core::results::Counters) -> u64 {
    c.errors.get(crate::record::ErrorKind::Tls.as_str()).copied().unwrap_or(0)
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

/// Waits for requests in flight (bounded by the HTTP timeout), then for every expected
/// answer still outstanding and a short quiet spell for trailing ones (bounded by
/// `drain_limit`: the drain timeout, or the response window when that is shorter, since no
/// answer counts after it).
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
        let awaiting = live.awaiting_answers.load(Ordering::Relaxed);
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
    let rates = schedule::target_rates(phases, interval, ts.points.len());
    for (p, rate) in ts.points.iter_mut().zip(rates) {
        p.target_rate = rate;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tests_get_a_coarser_time_series() {
        assert_eq!(series_interval(Duration::from_secs(60)), Duration::from_secs(1));
        assert_eq!(series_interval(Duration::from_secs(300)), Duration::from_secs(1));
        assert_eq!(series_interval(Duration::from_secs(301)), Duration::from_secs(10));
    }
}
