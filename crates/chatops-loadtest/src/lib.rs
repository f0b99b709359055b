//! `chatops loadtest`: an open-model load generator that measures a Slack bot the way a
//! user experiences it, from the moment Slack sends a command to the moment each answer
//! lands at `response_url`; and `chatops mock-slack`, the stand-alone answer receiver.
//!
//! A run loads a profile ([`profile`], Artillery-shaped YAML or a built-in name), plans
//! arrivals from its phases ([`schedule`]), fires signed requests at their scheduled times
//! ([`fire`]), checks the HTTP answers of steps with `capture`/`expect` ([`inspect`]),
//! receives the bot's answers on a loopback server that stands in for Slack
//! ([`receiver`]), counts each command's answers against its `expectAnswers` and records
//! everything in HDR histograms ([`record`]), checks the `ensure` conditions and threshold
//! flags ([`ensure`]) and returns the results defined by
//! `chatops_core::results`. [`Plan`] is the entry point: `Plan::from_args` validates,
//! `Plan::run` runs and returns [`RunResults`]; the caller writes the file and prints.
//! [`dashboard`] serves a live view of a run in the browser (`--dashboard`), fed by the
//! plan while it runs ([`Plan::attach_dashboard`]) and given the results at the end.
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
pub mod dashboard;
pub mod ensure;
pub mod fire;
pub mod inspect;
pub mod jsonpath;
pub mod pace;
pub mod plan;
pub mod profile;
pub mod receiver;
pub mod record;
pub mod request;
pub mod schedule;
pub mod scrape;
pub mod template;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use secrecy::SecretString;
use tokio::sync::Notify;

pub use args::{LoadtestArgs, MockSlackArgs};
pub use plan::{Plan, RunResults};
use profile::ProfileError;

/// What the `chatops` binary knows about a bot it spawned for `--spawn`.
#[derive(Debug, Clone)]
pub struct SpawnedBot {
    /// Base URL of the bot's ingress, e.g. `http://127.0.0.1:41234`.
    pub target_url: String,
    pub signing_secret: SecretString,
    /// Where the bot's JSON log lines go (recorded in the results as `test.botLog`).
    pub bot_log_path: PathBuf,
    /// The bot's `/metrics` URL, scraped during the test (as `--scrape`).
    pub metrics_url: Option<String>,
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
    #[error("binding the dashboard on {addr}: {source}")]
    DashboardBind { addr: std::net::SocketAddr, source: std::io::Error },
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
    /// caller can name files beside it (the spawned bot's log) before [`Plan::from_args`].
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
    fn lists_every_builtin_profile() {
        let text = list_profiles();
        for name in ["smoke", "minimal", "light", "standard", "full"] {
            assert!(text.contains(name), "{text}");
        }
    }
}
