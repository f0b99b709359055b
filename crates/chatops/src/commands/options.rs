//! The queue options and secrets every subcommand resolves the same way: queue options go
//! through `config::load` (defaults, `--config`, then flags and the environment), so
//! `serve`, `router`, `worker`, `dlq` and `nats setup` given the same options reach the
//! same queue; secrets from files follow the one rule of
//! [`chatops_core::slack::secret_file`].

use std::path::Path;

use anyhow::Context;
use chatops_core::slack::secret_file::read_secret_file;
use chatops_queue::nats::NatsAuth;
use chatops_service::config::Overrides;
use chatops_service::{App, Settings};

use crate::cli::QueueArgs;

/// Reads a secret file with the shared rule, warning on stderr when others can read it
/// (logging may not be set up yet, and the operator should see it either way).
pub(crate) fn secret_from_file(path: &Path, what: &str) -> anyhow::Result<String> {
    let file = read_secret_file(path).with_context(|| format!("reading the {what}"))?;
    if let Some(warning) = file.permission_warning(path) {
        eprintln!("warning: {warning}");
    }
    Ok(file.into_secret())
}

/// The Slack signing secret for the client tools (`sign`, `send`): the file, else the flag
/// or SLACK_SIGNING_SECRET (clap fills `inline` from either).
pub(crate) fn client_signing_secret(file: Option<&Path>, inline: Option<&str>) -> anyhow::Result<String> {
    if let Some(path) = file {
        return secret_from_file(path, "signing secret");
    }
    match inline {
        Some(s) if !s.is_empty() => Ok(s.to_owned()),
        _ => anyhow::bail!("no signing secret: use --secret-file FILE or set SLACK_SIGNING_SECRET"),
    }
}

/// NATS credentials from flags, files and the environment (secrets never from a flag).
pub(crate) fn nats_auth(q: &QueueArgs) -> anyhow::Result<NatsAuth> {
    let password = match &q.nats_password_file {
        Some(path) => Some(secret_from_file(path, "NATS password")?),
        None => std::env::var("CHATOPS_NATS_PASSWORD").ok().filter(|p| !p.is_empty()),
    };
    Ok(NatsAuth {
        creds_file: q.nats_creds.clone(),
        user: q.nats_user.clone(),
        password,
        token: std::env::var("CHATOPS_NATS_TOKEN").ok().filter(|t| !t.is_empty()),
        tls_ca_file: q.nats_tls_ca.clone(),
        tls_client_cert: q.nats_tls_cert.clone().zip(q.nats_tls_key.clone()),
        require_tls: q.nats_require_tls,
    })
}

/// Loads the settings with the queue options applied over `overrides`.
pub(crate) fn load_settings(q: &QueueArgs, overrides: Overrides) -> anyhow::Result<Settings> {
    load_app_settings(&App::default(), q, overrides)
}

/// [`load_settings`] with `app`'s commands, so the `--config` file can configure them.
pub(crate) fn load_app_settings(app: &App, q: &QueueArgs, overrides: Overrides) -> anyhow::Result<Settings> {
    let overrides = Overrides {
        data_dir: q.data_dir.clone(),
        queue_url: q.queue.clone(),
        nats_prefix: q.nats_prefix.clone(),
        nats_auth: nats_auth(q)?,
        ..overrides
    };
    Ok(app.load_settings(q.config.as_deref(), overrides)?)
}
