//! `POST /slack/commands`: the only way a command enters the system.
//!
//! Order of checks: a free slot under the concurrency cap (503) → content type (415) →
//! body size (413) and read deadline (408) → signature over the raw bytes (401) → form
//! (400) → response_url allow-list (400) → registry (unknown → 200 with the list) →
//! per-user rate (200 "slow down") → durable enqueue within the ack budget (503 if not) →
//! 200 "Processing...". Every request, refused or not, writes one "Router performance
//! metrics" line and is counted in the metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chatops_core::slack::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use chatops_core::slack::{SlackForm, SlackMessage, SlashCommand, VerifyError};
use chatops_core::time::{now_unix_ns, now_unix_secs, round_ms};
use chatops_core::{CorrelationId, Job, Quadrant, Stage};
use chatops_queue::Enqueued;
use http_body_util::BodyExt;

use tracing::Instrument;

use super::{IngressError, IngressState};
use crate::metrics::{ReasonLabels, UNKNOWN_COMMAND};
use crate::tracing_context;

/// The header a client (or our load generator) may use to choose the correlation id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// What an accepted request turned into.
enum Accepted {
    SslCheck,
    Unknown { command: String },
    SlowDown { command: String, wait: std::time::Duration },
    Queued { command: String, quadrant: Quadrant, enqueue_ms: f64, duplicate: bool },
}

pub async fn handle(State(state): State<Arc<IngressState>>, headers: HeaderMap, body: Body) -> Response {
    let received_ns = now_unix_ns();
    let started = Instant::now();
    let correlation_id = CorrelationId::from_header_or_generate(headers.get(REQUEST_ID_HEADER).map(|v| v.as_bytes()));
    let span = tracing::info_span!(
        "slack_command",
        otel.name = "POST /slack/commands",
        otel.kind = "server",
        correlation_id = %correlation_id,
        command = tracing::field::Empty,
    );
    tracing_context::adopt_incoming_parent(&span, &headers);
    let result = match state.limits.try_enter() {
        Some(_slot) => accept(&state, &headers, body, received_ns, &correlation_id).instrument(span).await,
        None => Err((IngressError::Overloaded, None)),
    };
    let (mut response, command, quadrant, enqueue_ms, error) = match result {
        Ok(Accepted::SslCheck) => (StatusCode::OK.into_response(), None, None, None, None),
        Ok(Accepted::Unknown { command }) => {
            let text =
                format!("Sorry, `{command}` is not a command I know. Available commands: {}", state.registry.names());
            (Json(SlackMessage::ephemeral(text)).into_response(), Some(command), None, None, None)
        }
        Ok(Accepted::SlowDown { command, wait }) => {
            let secs = wait.as_secs().max(1);
            let text = format!(
                "You are sending commands faster than this bot allows. `{command}` was *not* run; \
                 please try again in {secs} s."
            );
            let mut resp = Json(SlackMessage::ephemeral(text)).into_response();
            resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
            state.metrics.throttled.get_or_create(&ReasonLabels { reason: "user_rate" }).inc();
            (resp, Some(command), None, None, Some(("rate_limited", "per-user rate limit".to_owned())))
        }
        Ok(Accepted::Queued { command, quadrant, enqueue_ms, duplicate }) => {
            let text = format!("Processing your `{command}` command...");
            let mut resp = Json(SlackMessage::ephemeral(text)).into_response();
            if duplicate {
                resp.headers_mut().insert("x-chatops-duplicate", header::HeaderValue::from_static("true"));
            }
            (resp, Some(command), Some(quadrant), Some(enqueue_ms), None)
        }
        Err((e, command)) => {
            let (error_type, message) = (e.error_type(), e.to_string());
            match &e {
                IngressError::Signature(v) => {
                    state.metrics.signature_failures.get_or_create(&ReasonLabels { reason: v.reason() }).inc();
                }
                IngressError::Overloaded => {
                    state.metrics.throttled.get_or_create(&ReasonLabels { reason: "concurrency" }).inc();
                }
                _ => {}
            }
            (e.into_response(), command, None, None, Some((error_type, message)))
        }
    };
    if let Ok(v) = header::HeaderValue::from_str(correlation_id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let status = response.status().as_u16();
    let duration = round_ms(started.elapsed().as_secs_f64() * 1000.0);
    let label = metric_command(&state, command.as_deref());
    let outcome = if error.is_some() { "refused" } else { "accepted" };
    state.metrics.observe_stage(Stage::Router, label, quadrant, outcome, duration);
    if let Some(ms) = enqueue_ms {
        state.metrics.observe_stage(Stage::Enqueue, label, quadrant, outcome, ms);
    }
    let success = error.is_none() && (200..300).contains(&status);
    let (error_type, error_message) = error.map_or((None, None), |(t, m)| (Some(t), Some(m)));
    tracing::info!(
        correlationId = %correlation_id,
        command = command.as_deref(),
        statusCode = status,
        duration,
        success,
        errorType = error_type,
        errorMessage = error_message.as_deref(),
        enqueueMs = enqueue_ms,
        quadrant = quadrant.map(Quadrant::as_str),
        "{}",
        chatops_core::contract::ROUTER_METRICS_MESSAGE
    );
    response
}

/// The `command` metric label: registered names only, so a flood of random commands
/// cannot create unbounded label values.
fn metric_command<'a>(state: &'a IngressState, command: Option<&str>) -> &'a str {
    match command.and_then(|c| state.registry.get(c)) {
        Some(spec) => &spec.name,
        None => UNKNOWN_COMMAND,
    }
}

type Refusal = (IngressError, Option<String>);

async fn accept(
    state: &IngressState,
    headers: &HeaderMap,
    body: Body,
    received_ns: u64,
    correlation_id: &CorrelationId,
) -> Result<Accepted, Refusal> {
    let refuse = |e: IngressError| (e, None);
    check_content_type(headers).map_err(refuse)?;
    let body = tokio::time::timeout(state.limits.body_read_timeout, read_limited(headers, body, state.max_body_bytes))
        .await
        .map_err(|_| refuse(IngressError::BodyTimeout(state.limits.body_read_timeout)))?
        .map_err(refuse)?;
    let timestamp =
        single_header(headers, TIMESTAMP_HEADER).map_err(|_| refuse(VerifyError::MalformedTimestamp.into()))?;
    let signature =
        single_header(headers, SIGNATURE_HEADER).map_err(|_| refuse(VerifyError::MalformedSignature.into()))?;
    state.signer.verify(timestamp, signature, &body, now_unix_secs()).map_err(|e| refuse(e.into()))?;
    let cmd = match SlashCommand::parse_form(&body).map_err(|e| refuse(e.into()))? {
        SlackForm::SslCheck => return Ok(Accepted::SslCheck),
        SlackForm::Command(cmd) => cmd,
    };
    let name = cmd.command.clone();
    tracing::Span::current().record("command", name.as_str());
    let with_name = |e: IngressError| (e, Some(name.clone()));
    state.allowed_hosts.check(&cmd.response_url).map_err(|e| with_name(e.into()))?;
    let Some(spec) = state.registry.get(&cmd.command) else {
        return Ok(Accepted::Unknown { command: name });
    };
    if let Err(wait) = state.limits.check_user(&cmd.team_id, &cmd.user_id) {
        return Ok(Accepted::SlowDown { command: name, wait });
    }
    // Both headers were verified above, so they are valid UTF-8 here.
    let timestamp = timestamp.and_then(|t| std::str::from_utf8(t).ok()).unwrap_or_default();
    let signature = signature.and_then(|s| std::str::from_utf8(s).ok()).unwrap_or_default();
    let quadrant = spec.quadrant;
    let enqueue_span = tracing::info_span!("enqueue", correlation_id = %correlation_id, quadrant = quadrant.as_str());
    let enqueue_started_ns = now_unix_ns();
    let job = Job {
        job_id: Job::new_id(),
        correlation_id: correlation_id.clone(),
        idempotency_key: Job::idempotency_key_for(timestamp, signature),
        quadrant,
        command: *cmd,
        max_attempts: spec.max_attempts,
        router_received_ns: received_ns,
        enqueue_started_ns,
        traceparent: tracing_context::traceparent_of(&enqueue_span),
        redrives: 0,
    };
    // The queue enforces the deadline itself: dropping its future here could not tell a
    // stored job from one that was not, so "not queued" could be a lie.
    let deadline = tokio::time::Instant::now() + state.ack_budget;
    let stored = state.queue.enqueue(&job, deadline).instrument(enqueue_span).await.map_err(|e| match e {
        chatops_queue::QueueError::NotStoredInTime => with_name(IngressError::QueueTimeout),
        e => with_name(IngressError::QueueUnavailable(e)),
    })?;
    let enqueue_ms = round_ms((now_unix_ns() - enqueue_started_ns) as f64 / 1e6);
    Ok(Accepted::Queued { command: name, quadrant, enqueue_ms, duplicate: stored == Enqueued::Duplicate })
}

/// The header's value, refusing a header given twice (which of the two would be signed?).
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h [u8]>, ()> {
    let mut values = headers.get_all(name).iter();
    let first = values.next().map(|v| v.as_bytes());
    if values.next().is_some() { Err(()) } else { Ok(first) }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), IngressError> {
    // Two Content-Type headers are ambiguous: refuse rather than pick one.
    if headers.get_all(header::CONTENT_TYPE).iter().count() != 1 {
        return Err(IngressError::UnsupportedMediaType);
    }
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if ok { Ok(()) } else { Err(IngressError::UnsupportedMediaType) }
}

/// Reads the body, refusing it as soon as it is known to exceed the limit: from
/// Content-Length when given, otherwise while streaming.
async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, IngressError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(IngressError::PayloadTooLarge(limit));
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(IngressError::PayloadTooLarge(limit)),
        Err(_) => Err(IngressError::BodyRead),
    }
}
