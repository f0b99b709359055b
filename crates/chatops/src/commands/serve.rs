//! `chatops serve`, `chatops router`, `chatops worker`: settings from defaults, file,
//! environment and flags; logging; then the bot's roles until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use chatops_core::Quadrant;
use chatops_queue::nats::NatsAuth;
use chatops_service::config::{self, Overrides};
use chatops_service::startup::{self, Roles};
use chatops_service::telemetry::{self, Console};
use chatops_service::{Application, Settings};
use secrecy::SecretString;

use crate::cli::{BotArgs, QueueArgs, SecretArgs, ServeArgs, WorkerArgs};

/// Reads the signing secret from `--signing-secret-file` or `SLACK_SIGNING_SECRET`.
pub fn signing_secret(args: &SecretArgs) -> anyhow::Result<Option<SecretString>> {
    if let Some(path) = &args.signing_secret_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the signing secret from {}", path.display()))?;
        let secret = text.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(!secret.is_empty(), "signing secret file {} is empty", path.display());
        return Ok(Some(SecretString::from(secret.to_owned())));
    }
    Ok(std::env::var("SLACK_SIGNING_SECRET").ok().filter(|s| !s.is_empty()).map(SecretString::from))
}

/// NATS credentials from flags and the environment (secrets from the environment only).
fn nats_auth(q: &QueueArgs) -> NatsAuth {
    NatsAuth {
        creds_file: q.nats_creds.clone(),
        user: q.nats_user.clone(),
        password: std::env::var("CHATOPS_NATS_PASSWORD").ok(),
        token: std::env::var("CHATOPS_NATS_TOKEN").ok(),
        tls_ca_file: q.nats_tls_ca.clone(),
        tls_client_cert: q.nats_tls_cert.clone().zip(q.nats_tls_key.clone()),
        require_tls: q.nats_require_tls,
    }
}

/// Builds validated settings from the shared bot arguments.
pub fn settings(bot: &BotArgs, listen: Option<SocketAddr>, secret: Option<SecretString>) -> anyhow::Result<Settings> {
    let durability = bot
        .durability
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: String| anyhow::anyhow!("--durability: {e}"))?;
    let overrides = Overrides {
        listen,
        data_dir: bot.data_dir.clone(),
        log_file: bot.log_file.clone(),
        allow_response_hosts: bot.allow_response_hosts.clone(),
        durability,
        signing_secret: secret,
        queue_url: bot.queue.queue.clone(),
        nats_prefix: bot.queue.nats_prefix.clone(),
        nats_auth: nats_auth(&bot.queue),
        metrics_listen: bot.metrics_listen,
    };
    Ok(config::load(bot.config.as_deref(), overrides)?)
}

async fn run_roles(bot: &BotArgs, settings: Settings, roles: Roles) -> anyhow::Result<ExitCode> {
    let console = if bot.quiet { Console::Off } else { Console::Stdout };
    let mut logs = telemetry::init(console, settings.log_file.as_deref(), bot.otlp_endpoint.as_deref())?;
    let app = Application::build(settings, roles).await?;
    let result = app.run_until_stopped(startup::shutdown_signal()).await;
    logs.shutdown().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = settings(&args.bot, args.listen, signing_secret(&args.secret)?)?;
    run_roles(&args.bot, settings, Roles::all()).await
}

pub async fn router(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = settings(&args.bot, args.listen, signing_secret(&args.secret)?)?;
    run_roles(&args.bot, settings, Roles::router()).await
}

pub async fn worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let settings = settings(&args.bot, None, None)?;
    let quadrants = if args.quadrant.is_empty() { Quadrant::ALL.to_vec() } else { args.quadrant.clone() };
    run_roles(&args.bot, settings, Roles::workers(quadrants)).await
}
