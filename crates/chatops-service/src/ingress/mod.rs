//! The router (HTTP ingress): `POST /slack/commands`, `GET /healthz`, `GET /readyz`.
//!
//! It only verifies, parses, enqueues and acknowledges. It never runs a handler or calls
//! Slack, so its latency is the signature check, the form parse and one durable write.

mod error;
mod health;
mod slack_commands;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use chatops_core::slack::{AllowedHosts, SlackSigner};
use chatops_queue::Queue;

use crate::registry::Registry;

pub use error::IngressError;

/// What the request handlers share.
pub struct IngressState {
    pub signer: SlackSigner,
    pub allowed_hosts: AllowedHosts,
    pub registry: Arc<Registry>,
    pub queue: Arc<dyn Queue>,
    pub max_body_bytes: usize,
    pub ack_budget: Duration,
}

impl std::fmt::Debug for IngressState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressState").field("max_body_bytes", &self.max_body_bytes).finish_non_exhaustive()
    }
}

/// The ingress routes.
pub fn router(state: Arc<IngressState>) -> Router {
    Router::new()
        .route("/slack/commands", post(slack_commands::handle))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state)
}
