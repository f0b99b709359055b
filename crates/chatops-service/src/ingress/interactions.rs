//! `POST /slack/interactions`: clicks on the Approve / Deny buttons of approval requests
//! (the Slack app's Interactivity request URL).
//!
//! The same defences as `/slack/commands`, in the same order: the cheap header checks, the
//! unverified-body budget, the body within its deadline and size (larger than a command's:
//! the payload carries the whole message), the v0 signature, then a slot under the
//! concurrency cap. Only then is the payload parsed (400 if it is not an interaction), the
//! click's `response_url` checked against the allow-list, and the vote decided, within the
//! ack budget. Slack ignores the body of the answer to a `block_actions` payload, so every
//! accepted click is answered 200 with no body, and what the clicker sees is posted to the
//! click's `response_url`. Other interaction types and unknown action ids are acknowledged
//! and ignored.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chatops_core::CorrelationId;
use chatops_core::slack::interaction::{Interaction, parse_interaction};
use chatops_core::time::round_ms;

use super::slack_commands::verify;
use super::{IngressError, IngressState, PeerAddr};

pub(super) async fn handle(
    State(state): State<Arc<IngressState>>,
    peer: Option<axum::Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0.0.ip());
    let result = match verify(&state, &headers, body, peer, state.max_interaction_bytes).await {
        Ok((body, _signed)) => match state.limits.try_enter() {
            Some(_slot) => decide(&state, &body).await,
            None => Err(IngressError::Overloaded),
        },
        Err(e) => Err(e),
    };
    let duration = round_ms(started.elapsed().as_secs_f64() * 1000.0);
    match result {
        Ok(what) => {
            tracing::info!(interaction = what, duration, "Slack interaction");
            StatusCode::OK.into_response()
        }
        Err(e) => {
            if let IngressError::Signature(v) = &e {
                let labels = crate::metrics::ReasonLabels { reason: v.reason() };
                state.metrics.signature_failures.get_or_create(&labels).inc();
            }
            let id = CorrelationId::generate();
            tracing::info!(
                correlationId = %id,
                statusCode = e.status().as_u16(),
                errorType = e.error_type(),
                errorMessage = %e,
                duration,
                "Slack interaction refused"
            );
            e.into_response()
        }
    }
}

/// Parses the trusted body and decides the click; returns what it was, for the log.
async fn decide(state: &Arc<IngressState>, body: &[u8]) -> Result<&'static str, IngressError> {
    let action = match parse_interaction(body)? {
        Interaction::Other { .. } => return Ok("ignored"),
        Interaction::BlockAction(action) => action,
    };
    let reply_to = state.allowed_hosts.check(&action.response_url)?;
    let vote = state.approvals.click(action, reply_to);
    match tokio::time::timeout(state.ack_budget, vote).await {
        Ok(Ok(())) => Ok("block_actions"),
        Ok(Err(e)) => Err(IngressError::ApprovalUnavailable(e)),
        // The vote may still be recorded; Slack shows the clicker an error and they can
        // click again (a second vote by the same user is not counted twice).
        Err(_) => Err(IngressError::QueueTimeout),
    }
}
