//! `chatops loadtest`: runs the load generator; with `--spawn`, first starts an embedded
//! bot on a random port with a throwaway data directory and a random signing secret, its
//! JSON logs written beside the results (`results/test-….bot.log`), so that
//! `chatops analyze --from-results` finds them with no further flags. The spawned bot's
//! metrics listener (on a free port) is handed to the generator, which scrapes it. With
//! `--dashboard`, the live dashboard is served from before the first request until the
//! results are written and, after that, for `--dashboard-linger`.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chatops_loadtest::dashboard::{Dashboard, Linger};
use chatops_loadtest::{LoadtestArgs, LoadtestError, Plan, RunResults, SpawnedBot};
use chatops_service::Settings;
use chatops_service::app::App;
use chatops_service::config::Overrides;
use chatops_service::startup::Roles;
use chatops_service::telemetry::{self, Console};
use secrecy::{ExposeSecret, SecretString};

/// A bot started for the duration of one load test.
struct EmbeddedBot {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    data_dir: PathBuf,
}

/// Settings of the spawned bot: the built-in defaults (or `CHATOPS_CONFIG`), on a random
/// local port, answering to the generator's receiver, without the per-user rate limit (a
/// load test is one "user" sending thousands of commands), metrics on a free port (always
/// on, even if the config turns them off: the generator scrapes them).
fn spawn_settings(app: &App, data_dir: &Path, secret: &SecretString, log_file: &Path) -> anyhow::Result<Settings> {
    let config_file = std::env::var_os("CHATOPS_CONFIG").map(PathBuf::from);
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".parse().expect("a valid socket address")),
        data_dir: Some(data_dir.to_owned()),
        log_file: Some(log_file.to_owned()),
        allow_response_hosts: vec!["127.0.0.1".into()],
        signing_secret: Some(secret.clone()),
        durability: std::env::var("CHATOPS_DURABILITY")
            .ok()
            .map(|d| d.parse())
            .transpose()
            .map_err(anyhow::Error::msg)?,
        ..Default::default()
    };
    let mut settings = app.load_settings(config_file.as_deref(), overrides).context("configuring the spawned bot")?;
    settings.limits.per_user_per_minute = 0;
    // Beside a running bot the default metrics port may be taken: any free port, whose
    // number the started bot reports (`Application::metrics_addr`).
    settings.limits.metrics_listen = Some("127.0.0.1:0".parse().expect("a valid socket address"));
    Ok(settings)
}

async fn start_bot(app: &App, results: &Path, log_file: &Path) -> anyhow::Result<(EmbeddedBot, SpawnedBot)> {
    let secret = SecretString::from(format!("{}{}", fastrand::u64(..), fastrand::u64(..)));
    let data_dir = std::env::temp_dir().join(format!("chatops-spawn-{}-{}", std::process::id(), fastrand::u32(..)));
    let settings = spawn_settings(app, &data_dir, &secret, log_file)?;
    if let Some(dir) = results.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let bot = app.start(settings, Roles::all()).await.context("starting the spawned bot")?;
    let addr = bot.local_addr().expect("serve listens");
    let metrics_url = bot.metrics_addr().map(|a| format!("http://{a}/metrics"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        bot.run_until_stopped(async {
            let _ = stopped.await;
        })
        .await
        .map_err(anyhow::Error::from)
    });
    let spawned = SpawnedBot {
        target_url: format!("http://{addr}"),
        signing_secret: SecretString::from(secret.expose_secret().to_owned()),
        bot_log_path: log_file.to_owned(),
        metrics_url,
    };
    Ok((EmbeddedBot { stop, task, data_dir }, spawned))
}

pub(crate) async fn run(app: &App, mut args: LoadtestArgs) -> anyhow::Result<ExitCode> {
    if args.list_profiles {
        print!("{}", chatops_loadtest::list_profiles());
        return Ok(ExitCode::SUCCESS);
    }
    if !args.spawn {
        let (outcome, dashboard) = prepare_and_run(&args, None).await;
        return Ok(finish(&args, outcome, dashboard).await);
    }
    let results = args.resolve_output();
    let log_file = chatops_loadtest::bot_log_path_for(&results);
    // The bot's log lines go to the file only: the console belongs to the load generator.
    let mut logs = telemetry::init(Console::Off, Some(&log_file), None)?;
    let (bot, spawned) = start_bot(app, &results, &log_file).await?;
    let (outcome, dashboard) = prepare_and_run(&args, Some(&spawned)).await;
    let _ = bot.stop.send(());
    let stopped = bot.task.await;
    logs.shutdown().await;
    drop(logs);
    let _ = std::fs::remove_dir_all(&bot.data_dir);
    stopped.context("the spawned bot's task failed")??;
    Ok(finish(&args, outcome, dashboard).await)
}

/// Plans the test, starts the dashboard when asked (after the arguments are checked, so a
/// bad profile is not served), and runs.
async fn prepare_and_run(
    args: &LoadtestArgs,
    spawned: Option<&SpawnedBot>,
) -> (Result<RunResults, LoadtestError>, Option<Dashboard>) {
    let mut plan = match Plan::from_args(args, spawned) {
        Ok(plan) => plan,
        Err(e) => return (Err(e), None),
    };
    let dashboard = match args.dashboard {
        Some(addr) => match Dashboard::serve(addr).await {
            Ok(d) => {
                eprintln!("dashboard: {}", d.url());
                plan.attach_dashboard(d.feed());
                Some(d)
            }
            Err(e) => return (Err(e), None),
        },
        None => None,
    };
    (plan.run().await, dashboard)
}

/// Writes the results file, prints the summary (and the JSON with `--json`), shows the
/// verdict on the dashboard and serves it for `--dashboard-linger`, and maps the verdict to
/// the exit code: 0 every threshold held, 1 one failed, 2 the run failed.
async fn finish(
    args: &LoadtestArgs,
    outcome: Result<RunResults, LoadtestError>,
    dashboard: Option<Dashboard>,
) -> ExitCode {
    let written = outcome.and_then(|run| run.write().map(|json| (run, json)));
    match written {
        Ok((run, json)) => {
            eprint!("{}", chatops_loadtest::console::end_of_run(&run, args.quiet));
            if args.json {
                println!("{json}");
            }
            if let Some(d) = dashboard {
                d.finish(&run);
                d.linger(Linger::from_flag(args.dashboard_linger, std::io::stderr().is_terminal())).await;
            }
            ExitCode::from(run.exit_code())
        }
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(d) = dashboard {
                d.fail(&e);
                // Only when asked: the error is on stderr, and a terminal should not hang on it.
                if let Some(linger) = args.dashboard_linger {
                    d.linger(Linger::For(linger)).await;
                }
            }
            ExitCode::from(e.exit_code())
        }
    }
}
