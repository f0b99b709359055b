//! The router (HTTP ingress): `POST /slack/commands`, `POST /slack/interactions` (button
//! clicks on approval requests), `GET /healthz`, `GET /readyz`, and
//! `GET /metrics` only when asked for (`limits.metrics_on_ingress`): the Slack-facing
//! listener is public, and metrics carry command names, queue depths and error counts. The
//! metrics listener (`limits.metrics_listen`) serves `/metrics` by default.
//!
//! It only verifies, parses, enqueues and acknowledges. It never runs a handler or calls
//! Slack, so its latency is the signature check, the form parse and one durable write.
//! Connections are served by hyper directly (not `axum::serve`) so that the connection
//! cap, the header size limit and the header read timeout, the first defences against slow
//! or hostile clients, can be set.

mod error;
mod health;
mod interactions;
mod limits;
mod slack_commands;

use std::net::SocketAddr;
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
use crate::guard::access::AccessPolicy;
use crate::guard::approvals::ApprovalFlow;
use crate::guard::audit::AuditTrail;
use crate::metrics::{self, HttpLabels, Metrics};
use crate::probe::QueueProbe;
use crate::registry::Registry;

pub use error::IngressError;
pub use limits::IngressLimits;

/// Largest `/slack/interactions` body accepted: Slack's payload repeats the whole message
/// the button was in (ours are about 2 KiB; Slack allows messages of up to 50 blocks).
pub const MAX_INTERACTION_BYTES: usize = 64 * 1024;

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
    pub probe: Arc<QueueProbe>,
    /// Serve `/metrics` on this (public) listener too.
    pub metrics_on_ingress: bool,
    /// Larger `/slack/interactions` bodies are refused (they carry the whole message).
    pub max_interaction_bytes: usize,
    pub access: Arc<AccessPolicy>,
    pub approvals: Arc<ApprovalFlow>,
    pub audit: AuditTrail,
}

/// The client address of the connection a request came on (an extension of every request).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl std::fmt::Debug for IngressState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressState").field("max_body_bytes", &self.max_body_bytes).finish_non_exhaustive()
    }
}

/// The ingress routes.
pub fn router(state: Arc<IngressState>) -> Router {
    let metrics = state.metrics.clone();
    let mut routes = Router::new()
        .route("/slack/commands", post(slack_commands::handle))
        .route("/slack/interactions", post(interactions::handle))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    if state.metrics_on_ingress {
        routes = routes.route("/metrics", get(serve_metrics));
    }
    routes.with_state(state).layer(middleware::from_fn_with_state(metrics, count_requests))
}

/// Counts every request by matched route and status (unmatched paths share one label).
async fn count_requests(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = match request.extensions().get::<MatchedPath>().map(MatchedPath::as_str) {
        Some("/slack/commands") => "/slack/commands",
        Some("/slack/interactions") => "/slack/interactions",
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
    render_metrics(&state.metrics, &state.probe).await
}

async fn render_metrics(metrics: &Metrics, probe: &QueueProbe) -> Response {
    refresh_queue_gauges(metrics, probe).await;
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics.render()).into_response()
}

/// Updates the queue gauges from the queue (through the probe's cache), at scrape time.
pub async fn refresh_queue_gauges(metrics: &Metrics, probe: &QueueProbe) {
    if let Some(stats) = probe.stats().await {
        for q in chatops_core::Quadrant::ALL {
            let labels = metrics::QuadrantLabels { quadrant: q.as_str() };
            metrics.queue_depth.get_or_create(&labels).set(stats.quadrant(q).ready as i64);
            metrics.jobs_in_flight.get_or_create(&labels).set(stats.quadrant(q).in_flight as i64);
        }
        metrics.dlq_size.set(stats.dead_letters as i64);
    }
}

/// The metrics listener: `/metrics` only.
pub fn metrics_router(metrics: Arc<Metrics>, probe: Arc<QueueProbe>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let (metrics, probe) = (metrics.clone(), probe.clone());
            async move { render_metrics(&metrics, &probe).await }
        }),
    )
}

/// Serves `app` on `listener` until `stop` fires, then lets open connections finish their
/// current request. Open connections are capped (`limits.max_connections`: one more is
/// closed at once); header size and header read time are bounded per connection.
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
    let open_connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
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
        let Ok(open) = open_connections.clone().try_acquire_owned() else {
            // At the cap: closing at once costs less than letting the kernel queue it.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |req: hyper::Request<hyper::body::Incoming>| {
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(PeerAddr(peer));
                req
            },
        ));
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(open);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
