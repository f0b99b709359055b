//! `chatops serve`, `chatops router`, `chatops worker`: settings from defaults, file,
//! environment and flags; logging; then the bot's roles until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use chatops_core::Quadrant;
use chatops_service::config::Overrides;
use chatops_service::startup::{self, Roles};
use chatops_service::telemetry::{self, Console};
use chatops_service::{App, Settings};
use secrecy::SecretString;

use crate::cli::{BotArgs, SecretArgs, ServeArgs, WorkerArgs};
use crate::commands::options;

/// Reads the signing secret from `--signing-secret-file` (the shared rule) or
/// `SLACK_SIGNING_SECRET`.
pub(crate) fn signing_secret(args: &SecretArgs) -> anyhow::Result<Option<SecretString>> {
    if let Some(path) = &args.signing_secret_file {
        return Ok(Some(SecretString::from(options::secret_from_file(path, "signing secret")?)));
    }
    Ok(std::env::var("SLACK_SIGNING_SECRET").ok().filter(|s| !s.is_empty()).map(SecretString::from))
}

/// Builds validated settings from the shared bot arguments, with `app`'s commands.
pub(crate) fn settings(
    app: &App,
    bot: &BotArgs,
    listen: Option<SocketAddr>,
    secret: Option<SecretString>,
) -> anyhow::Result<Settings> {
    let durability = bot
        .durability
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: String| anyhow::anyhow!("--durability: {e}"))?;
    let overrides = Overrides {
        listen,
        log_file: bot.log_file.clone(),
        allow_response_hosts: bot.allow_response_hosts.clone(),
        durability,
        signing_secret: secret,
        slack_bot_token: std::env::var("CHATOPS_SLACK_BOT_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(SecretString::from),
        metrics_listen: bot.metrics_listen,
        ..Default::default()
    };
    options::load_app_settings(app, &bot.queue, overrides)
}

async fn run_roles(app: &App, bot: &BotArgs, settings: Settings, roles: Roles) -> anyhow::Result<ExitCode> {
    let console = if bot.quiet { Console::Off } else { Console::Stdout };
    let mut logs = telemetry::init(console, settings.log_file.as_deref(), bot.otlp_endpoint.as_deref())?;
    let bot_app = app.start(settings, roles).await?;
    let result = bot_app.run_until_stopped(startup::shutdown_signal()).await;
    logs.shutdown().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn serve(app: &App, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = settings(app, &args.bot, args.listen, signing_secret(&args.secret)?)?;
    run_roles(app, &args.bot, settings, Roles::all()).await
}

pub(crate) async fn router(app: &App, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = settings(app, &args.bot, args.listen, signing_secret(&args.secret)?)?;
    run_roles(app, &args.bot, settings, Roles::router()).await
}

pub(crate) async fn worker(app: &App, args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let settings = settings(app, &args.bot, None, None)?;
    let quadrants = if args.quadrant.is_empty() { Quadrant::ALL.to_vec() } else { args.quadrant.clone() };
    run_roles(app, &args.bot, settings, Roles::workers(quadrants)).await
}
