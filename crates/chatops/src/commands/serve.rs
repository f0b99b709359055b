//! `chatops serve`: settings from defaults, file, environment and flags; logging; then the
//! bot until SIGINT/SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use chatops_service::config::{self, Overrides};
use chatops_service::telemetry::{self, Console};
use chatops_service::{Application, startup};
use secrecy::SecretString;

use crate::cli::{SecretArgs, ServeArgs};

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

/// Builds the validated settings of `serve` from its arguments.
pub fn settings(args: &ServeArgs) -> anyhow::Result<chatops_service::Settings> {
    let durability = args
        .durability
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: String| anyhow::anyhow!("--durability: {e}"))?;
    let overrides = Overrides {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        log_file: args.log_file.clone(),
        allow_response_hosts: args.allow_response_hosts.clone(),
        durability,
        signing_secret: signing_secret(&args.secret)?,
    };
    Ok(config::load(args.config.as_deref(), overrides)?)
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = settings(&args)?;
    let console = if args.quiet { Console::Off } else { Console::Stdout };
    let _logs = telemetry::init(console, settings.log_file.as_deref())?;
    let app = Application::build(settings).await?;
    app.run_until_stopped(startup::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
