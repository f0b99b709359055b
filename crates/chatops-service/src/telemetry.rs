//! Logging and tracing setup: JSON lines (one object per line, event fields flattened to the
//! top level, as the log contract needs) to stdout and, optionally, to a file; and, only
//! when an OTLP endpoint is given, OpenTelemetry spans exported over OTLP/HTTP. The level
//! comes from `RUST_LOG` (default `info`). Log writers are non-blocking but never lossy: a
//! metrics line is data, so a full buffer slows the writer down instead of dropping lines.

use std::path::Path;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

/// Keeps the background log writers (and the span exporter) alive; dropping it flushes the
/// logs. Call [`LogGuard::shutdown`] first to flush spans.
#[must_use = "dropping the guard stops and flushes the log writers"]
pub struct LogGuard {
    _writers: Vec<WorkerGuard>,
    tracer_provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl LogGuard {
    /// Flushes and stops the span exporter (no-op without OTLP).
    pub async fn shutdown(&mut self) {
        if let Some(provider) = self.tracer_provider.take() {
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
    }
}

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
    #[error("setting up OTLP export to {endpoint}: {message}")]
    Otlp { endpoint: String, message: String },
}

/// Builds the OpenTelemetry tracer provider exporting to `endpoint` (OTLP over HTTP,
/// e.g. `http://127.0.0.1:4318`), batching on the tokio runtime.
pub fn otlp_tracer_provider(
    endpoint: &str,
    service_name: &str,
) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .with_headers(Default::default())
        .with_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| TelemetryError::Otlp { endpoint: endpoint.to_owned(), message: e.to_string() })?;
    let processor = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
        exporter,
        opentelemetry_sdk::runtime::Tokio,
    )
    .build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(service_name.to_owned()).build())
        .build())
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber with any writer (tests pass an in-memory one), plus an
/// OpenTelemetry layer when a tracer provider is given.
pub fn init_with_writer<W>(
    writer: W,
    tracer_provider: Option<&opentelemetry_sdk::trace::SdkTracerProvider>,
) -> Result<(), TelemetryError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    use opentelemetry::trace::TracerProvider as _;
    let layer =
        fmt::layer().json().flatten_event(true).with_current_span(true).with_span_list(false).with_writer(writer);
    let otel = tracer_provider.map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("chatops")));
    tracing_subscriber::registry()
        .with(filter())
        .with(layer)
        .with(otel)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    Stdout,
    Off,
}

/// Installs the global subscriber: JSON lines to stdout (unless `Console::Off`) and to
/// `log_file` (appended) when given; spans to `otlp_endpoint` when given.
pub fn init(
    console: Console,
    log_file: Option<&Path>,
    otlp_endpoint: Option<&str>,
) -> Result<LogGuard, TelemetryError> {
    let tracer_provider = otlp_endpoint.map(|e| otlp_tracer_provider(e, "chatops")).transpose()?;
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
    let tp = tracer_provider.as_ref();
    match (stdout, file) {
        (Some(out), Some(file)) => init_with_writer(out.and(file), tp)?,
        (Some(out), None) => init_with_writer(out, tp)?,
        (None, Some(file)) => init_with_writer(file, tp)?,
        (None, None) => init_with_writer(std::io::sink, tp)?,
    }
    Ok(LogGuard { _writers: guards, tracer_provider })
}
