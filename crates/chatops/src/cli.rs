//! The command line: one binary, one subcommand per job. Each `*Args` struct is the clap
//! definition of one subcommand; `--help` on any of them is its documentation.
// These doc comments are clap's --help text, written for a terminal, not rustdoc.
#![allow(rustdoc::bare_urls, rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chatops",
    version,
    about = "A Slack ChatOps bot with end-to-end performance tracking, and the tools to load-test, analyse and report on it.",
    long_about = "A Slack ChatOps bot with end-to-end performance tracking, and the tools to load-test, analyse and report on it.\n\n\
                  Quick start: SLACK_SIGNING_SECRET=... chatops serve\n\
                  Every subcommand explains itself with --help."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bot: the Slack ingress and the worker pools in one process (embedded SQLite
    /// queue in --data-dir by default, or --queue nats://...).
    Serve(ServeArgs),
    /// Run only the Slack ingress, publishing to NATS JetStream (--queue nats://...); run
    /// any number of these behind a load balancer.
    Router(ServeArgs),
    /// Run only worker pools for some quadrants, consuming from NATS JetStream.
    Worker(WorkerArgs),
    /// Set up the NATS JetStream streams and consumers explicitly.
    Nats(NatsArgs),
    /// Print the Slack signature (v0=...) of a request body, as Slack computes it.
    Sign(SignArgs),
    /// Send one signed slash command to a bot and print the ack and every response it posts.
    Send(SendArgs),
    /// List, redrive or purge the dead-letter queue (of a data directory, or NATS with the
    /// same queue options as serve).
    Dlq(DlqArgs),
    /// Read the audit trail: who ran what, where, the access decision, approvals and the
    /// outcome (of a data directory, or NATS with the same queue options as serve).
    Audit(AuditArgs),
    /// Load-test a bot the way Slack uses it: an open-model generator that signs every
    /// request, plays Slack's response_url, and measures what the user sees. With --spawn
    /// it starts an embedded bot first.
    Loadtest(chatops_loadtest::LoadtestArgs),
    /// Play Slack's response_url alone: print every post that arrives (for manual tests).
    MockSlack(chatops_loadtest::MockSlackArgs),
    /// Read the bot's JSON logs and compute per-stage latency statistics (count, avg, p50,
    /// p95, p99, max) by component, command, quadrant and status, like a Logs Insights query.
    Analyze(chatops_analyze::AnalyzeArgs),
    /// Compare a baseline with a candidate (results or metrics files) and say whether the
    /// candidate regressed; exit code 1 on a regression.
    Compare(chatops_analyze::CompareArgs),
    /// Render a load test's results (and its metrics summary) as one self-contained HTML
    /// file with charts, and optionally a PNG.
    Report(chatops_report::ReportArgs),
}

/// Where the signing secret comes from. The secret is never accepted as a plain flag on
/// `serve`, so it does not show up in `ps` output or shell history.
#[derive(Debug, Clone, Args)]
pub struct SecretArgs {
    /// Read the Slack signing secret from this file (one trailing newline ignored; empty or
    /// over 4 KiB refused; a warning when group or others can read it). Without it, the
    /// SLACK_SIGNING_SECRET environment variable is used.
    #[arg(long, value_name = "FILE", env = "CHATOPS_SIGNING_SECRET_FILE")]
    pub signing_secret_file: Option<PathBuf>,
}

/// Settings shared by every process of the bot.
#[derive(Debug, Clone, Args)]
pub struct BotArgs {
    /// Also append the JSON log lines to this file.
    #[arg(long, value_name = "PATH", env = "CHATOPS_LOG_FILE")]
    pub log_file: Option<PathBuf>,
    /// Allow response_url posts to this host as well as https://hooks.slack.com (over http
    /// or https, any port), e.g. 127.0.0.1 for local testing. Repeatable.
    #[arg(
        long = "allow-response-host",
        value_name = "HOST",
        env = "CHATOPS_ALLOW_RESPONSE_HOSTS",
        value_delimiter = ','
    )]
    pub allow_response_hosts: Vec<String>,
    /// Queue durability (SQLite): full (fsync every commit; survives power loss) or normal
    /// (survives a process crash) [default from config: full].
    #[arg(long, value_name = "MODE", env = "CHATOPS_DURABILITY")]
    pub durability: Option<String>,
    /// Do not write log lines to stdout (use with --log-file).
    #[arg(long)]
    pub quiet: bool,
    /// Serve Prometheus metrics on this address too (the ingress listener always serves
    /// /metrics; a worker-only process needs this to be scraped).
    #[arg(long, value_name = "ADDR", env = "CHATOPS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Export OpenTelemetry traces over OTLP/HTTP to this collector, e.g.
    /// http://127.0.0.1:4318 (one trace per command, across processes). Off by default:
    /// without it nothing is exported.
    #[arg(long, value_name = "URL", env = "CHATOPS_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    #[command(flatten)]
    pub queue: QueueArgs,
}

/// Which queue, and how to reach it: the one set of options shared by every subcommand
/// that opens a queue (`serve`, `router`, `worker`, `dlq`, `nats setup`), resolved through
/// the same configuration loading, so `dlq` reaches exactly the queue `serve` uses. Global:
/// they may follow a nested subcommand (`chatops dlq list --queue ...`).
#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    /// TOML config file; only the keys it sets change the built-in defaults
    /// (see config/default.toml for every key).
    #[arg(long, global = true, value_name = "FILE", env = "CHATOPS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of the embedded queue (queue.db) [default from config: ./data].
    #[arg(long, global = true, value_name = "DIR", env = "CHATOPS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://PATH (embedded; default <data-dir>/queue.db) or
    /// nats://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...] (NATS JetStream). Credentials in the
    /// URL are used for authentication and never logged; prefer --nats-user with
    /// --nats-password-file, since a URL on the command line is visible in `ps`.
    #[arg(long, global = true, value_name = "URL", env = "CHATOPS_QUEUE")]
    pub queue: Option<String>,
    /// NATS: prefix of stream and consumer names [default from config: CHATOPS].
    #[arg(long, global = true, value_name = "PREFIX", env = "CHATOPS_NATS_PREFIX")]
    pub nats_prefix: Option<String>,
    /// NATS: credentials file (JWT + nkey seed).
    #[arg(long, global = true, value_name = "FILE", env = "CHATOPS_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// NATS: user name; the password comes from --nats-password-file or the
    /// CHATOPS_NATS_PASSWORD environment variable (never from a flag: flags show in `ps`).
    #[arg(long, global = true, value_name = "USER", env = "CHATOPS_NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS: read the password from this file (one trailing newline ignored); takes
    /// precedence over CHATOPS_NATS_PASSWORD.
    #[arg(long, global = true, value_name = "FILE", env = "CHATOPS_NATS_PASSWORD_FILE")]
    pub nats_password_file: Option<PathBuf>,
    /// NATS: CA certificate file for TLS.
    #[arg(long, global = true, value_name = "FILE", env = "CHATOPS_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// NATS: client certificate for mutual TLS (with --nats-tls-key).
    #[arg(long, global = true, value_name = "FILE", env = "CHATOPS_NATS_TLS_CERT", requires = "nats_tls_key")]
    pub nats_tls_cert: Option<PathBuf>,
    /// NATS: client key for mutual TLS (with --nats-tls-cert).
    #[arg(long, global = true, value_name = "FILE", env = "CHATOPS_NATS_TLS_KEY", requires = "nats_tls_cert")]
    pub nats_tls_key: Option<PathBuf>,
    /// NATS: refuse to connect without TLS.
    #[arg(long, global = true)]
    pub nats_require_tls: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address of the Slack ingress [default from config: 127.0.0.1:3000].
    #[arg(long, value_name = "ADDR", env = "CHATOPS_LISTEN")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub bot: BotArgs,
    #[command(flatten)]
    pub secret: SecretArgs,
}

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Quadrants this process works on (comma-separated) [default: all four].
    #[arg(long, value_name = "QUADRANTS", value_delimiter = ',', env = "CHATOPS_QUADRANTS")]
    pub quadrant: Vec<chatops_core::Quadrant>,
    #[command(flatten)]
    pub bot: BotArgs,
}

#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    #[command(subcommand)]
    pub action: NatsAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum NatsAction {
    /// Create or update the streams and consumers for this configuration, print them, and
    /// say what the server's durability setting survives.
    Setup(Box<BotArgs>),
}

#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// Signing secret. Prefer --secret-file or the SLACK_SIGNING_SECRET environment
    /// variable: a value on the command line is visible in `ps` and shell history.
    #[arg(long, env = "SLACK_SIGNING_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Read the signing secret from this file (the same rule as serve --signing-secret-file);
    /// takes precedence over --secret and SLACK_SIGNING_SECRET.
    #[arg(long, value_name = "FILE", env = "CHATOPS_SIGNING_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// Request timestamp in unix seconds [default: now].
    #[arg(long)]
    pub timestamp: Option<u64>,
    /// The exact request body to sign.
    #[arg(long)]
    pub body: String,
}

#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The command, with its slash: /echo.
    pub command: String,
    /// The command's text (the words after it).
    pub text: Vec<String>,
    /// The bot's slash-command endpoint.
    #[arg(long, default_value = "http://127.0.0.1:3000/slack/commands")]
    pub url: String,
    /// Signing secret. Prefer --secret-file or the SLACK_SIGNING_SECRET environment
    /// variable: a value on the command line is visible in `ps` and shell history.
    #[arg(long, env = "SLACK_SIGNING_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Read the signing secret from this file (the same rule as serve --signing-secret-file);
    /// takes precedence over --secret and SLACK_SIGNING_SECRET.
    #[arg(long, value_name = "FILE", env = "CHATOPS_SIGNING_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// Stop waiting for responses after this long.
    #[arg(long, default_value = "15s", value_parser = chatops_core::time::parse_duration)]
    pub wait: std::time::Duration,
    /// Stop as soon as this many responses arrived (e.g. 2 for /echo).
    #[arg(long)]
    pub expect: Option<usize>,
    /// Slack user id to send as.
    #[arg(long, default_value = "U0LOCAL")]
    pub user_id: String,
    /// Address the local response receiver binds to (the bot must allow its host with
    /// --allow-response-host).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub receiver: SocketAddr,
}

#[derive(Debug, Clone, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub action: DlqAction,
    /// The bot's queue: give the same options (or --config file) as to `serve`.
    #[command(flatten)]
    pub queue: QueueArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum DlqAction {
    /// Show dead-lettered jobs: id, command, attempts, last error.
    List {
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put dead-lettered jobs back on their queue with a fresh attempt count.
    Redrive {
        /// The id shown by `dlq list`.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Redrive every dead letter.
        #[arg(long)]
        all: bool,
    },
    /// Delete every dead letter.
    Purge {
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: AuditAction,
    /// The bot's queue: give the same options (or --config file) as to `serve`.
    #[command(flatten)]
    pub queue: QueueArgs,
}

/// Which records: shared by `list` and `export`.
#[derive(Debug, Clone, Args)]
pub struct AuditFilterArgs {
    /// Records received within this long before now (`24h`, `7d`, `30m`).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<std::time::Duration>,
    /// Only this Slack user id.
    #[arg(long)]
    pub user: Option<String>,
    /// Only this command (`/deploy`).
    #[arg(long)]
    pub command: Option<String>,
}

fn parse_since(text: &str) -> Result<std::time::Duration, String> {
    chatops_core::time::parse_duration(text)
}

#[derive(Debug, Clone, Subcommand)]
pub enum AuditAction {
    /// Show records, oldest first: when, user, command, decision, outcome.
    List {
        #[command(flatten)]
        filter: AuditFilterArgs,
        /// Show at most this many (the most recent).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write every matching record as JSON Lines to stdout (`> audit.jsonl`).
    Export {
        #[command(flatten)]
        filter: AuditFilterArgs,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
