//! Liveness and readiness. `/healthz` says the process answers; `/readyz` says the queue
//! can take work, so a load balancer stops sending commands that could not be stored. Both
//! are on the public listener, so they answer a bare status: why the queue is not ready
//! (addresses, paths) goes to the log, not to whoever asked. Readiness is cached for about
//! a second ([`crate::probe`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::IngressState;

pub(super) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

pub(super) async fn readyz(State(state): State<Arc<IngressState>>) -> (StatusCode, Json<serde_json::Value>) {
    if state.probe.is_ready().await {
        (StatusCode::OK, Json(serde_json::json!({"status": "ready"})))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"status": "not ready"})))
    }
}
