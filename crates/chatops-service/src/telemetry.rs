//! Logging setup: JSON lines (one object per line, event fields flattened to the top level,
//! as the log contract needs) to stdout and, optionally, to a file. The level comes from
//! `RUST_LOG` (default `info`). Writers are non-blocking but never lossy: a metrics line is
//! data, so a full buffer slows the writer down instead of dropping lines.

use std::path::Path;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

/// Keeps the background log writers alive; dropping it flushes them.
#[must_use = "dropping the guard stops and flushes the log writers"]
pub struct LogGuard(#[allow(dead_code)] Vec<WorkerGuard>);

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogGuard")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("opening log file {path}: {source}")]
    LogFile { path: String, source: std::io::Error },
    #[error("a global logger is already installed")]
    AlreadyInstalled,
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber with any writer (tests pass an in-memory one).
pub fn init_with_writer<W>(writer: W) -> Result<(), TelemetryError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let layer =
        fmt::layer().json().flatten_event(true).with_current_span(true).with_span_list(false).with_writer(writer);
    tracing_subscriber::registry().with(filter()).with(layer).try_init().map_err(|_| TelemetryError::AlreadyInstalled)
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    Stdout,
    Off,
}

/// Installs the global subscriber: JSON lines to stdout (unless `Console::Off`) and to
/// `log_file` (appended) when given.
pub fn init(console: Console, log_file: Option<&Path>) -> Result<LogGuard, TelemetryError> {
    let mut guards = Vec::new();
    let file = match log_file {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|source| TelemetryError::LogFile { path: path.display().to_string(), source })?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| TelemetryError::LogFile { path: path.display().to_string(), source })?;
            let (w, guard) = NonBlockingBuilder::default().lossy(false).finish(f);
            guards.push(guard);
            Some(w)
        }
        None => None,
    };
    let stdout = (console == Console::Stdout).then(|| {
        let (w, guard) = NonBlockingBuilder::default().lossy(false).finish(std::io::stdout());
        guards.push(guard);
        w
    });
    match (stdout, file) {
        (Some(out), Some(file)) => init_with_writer(out.and(file))?,
        (Some(out), None) => init_with_writer(out)?,
        (None, Some(file)) => init_with_writer(file)?,
        (None, None) => init_with_writer(std::io::sink)?,
    }
    Ok(LogGuard(guards))
}
