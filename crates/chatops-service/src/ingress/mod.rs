//! The router (HTTP ingress): `POST /slack/commands`, `GET /healthz`, `GET /readyz`,
//! `GET /metrics`.
//!
//! It only verifies, parses, enqueues and acknowledges. It never runs a handler or calls
//! Slack, so its latency is the signature check, the form parse and one durable write.
//! Connections are served by hyper directly (not `axum::serve`) so that the header size
//! limit and the header read timeout, the first defences against slow or hostile clients,
//! can be set.

mod error;
mod health;
mod limits;
mod slack_commands;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chatops_core::slack::{AllowedHosts, SlackSigner};
use chatops_queue::Queue;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;

use crate::config::LimitSettings;
use crate::metrics::{self, HttpLabels, Metrics};
use crate::registry::Registry;

pub use error::IngressError;
pub use limits::IngressLimits;

/// What the request handlers share.
pub struct IngressState {
    pub signer: SlackSigner,
    pub allowed_hosts: AllowedHosts,
    pub registry: Arc<Registry>,
    pub queue: Arc<dyn Queue>,
    pub max_body_bytes: usize,
    pub ack_budget: Duration,
    pub limits: IngressLimits,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for IngressState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressState").field("max_body_bytes", &self.max_body_bytes).finish_non_exhaustive()
    }
}

/// The ingress routes.
pub fn router(state: Arc<IngressState>) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/slack/commands", post(slack_commands::handle))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(serve_metrics))
        .with_state(state)
        .layer(middleware::from_fn_with_state(metrics, count_requests))
}

/// Counts every request by matched route and status (unmatched paths share one label).
async fn count_requests(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = match request.extensions().get::<MatchedPath>().map(MatchedPath::as_str) {
        Some("/slack/commands") => "/slack/commands",
        Some("/healthz") => "/healthz",
        Some("/readyz") => "/readyz",
        Some("/metrics") => "/metrics",
        _ => "unmatched",
    };
    let response = next.run(request).await;
    metrics.http_requests.get_or_create(&HttpLabels { route, status: response.status().as_u16() }).inc();
    response
}

async fn serve_metrics(State(state): State<Arc<IngressState>>) -> Response {
    refresh_queue_gauges(&state.metrics, state.queue.as_ref()).await;
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], state.metrics.render()).into_response()
}

/// Updates the queue gauges from the queue itself, at scrape time.
pub async fn refresh_queue_gauges(metrics: &Metrics, queue: &dyn Queue) {
    if let Ok(Ok(stats)) = tokio::time::timeout(Duration::from_secs(2), queue.stats()).await {
        for q in chatops_core::Quadrant::ALL {
            let labels = metrics::QuadrantLabels { quadrant: q.as_str() };
            metrics.queue_depth.get_or_create(&labels).set(stats.quadrant(q).ready as i64);
            metrics.jobs_in_flight.get_or_create(&labels).set(stats.quadrant(q).in_flight as i64);
        }
        metrics.dlq_size.set(stats.dead_letters as i64);
    }
}

/// A listener that serves only `/metrics` (for worker-only processes).
pub fn metrics_router(metrics: Arc<Metrics>, queue: Arc<dyn Queue>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let (metrics, queue) = (metrics.clone(), queue.clone());
            async move {
                refresh_queue_gauges(&metrics, queue.as_ref()).await;
                ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics.render()).into_response()
            }
        }),
    )
}

/// Serves `app` on `listener` until `stop` fires, then lets open connections finish their
/// current request. Header size and header read time are bounded per connection.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &LimitSettings,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error.message = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            |req: hyper::Request<hyper::body::Incoming>| req.map(axum::body::Body::new),
        ));
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
