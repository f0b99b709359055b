//! `POST /slack/commands`: the only way a command enters the system.
//!
//! Order of checks, cheapest first, so that an unauthenticated client costs as little as
//! possible and cannot hold what verified commands need:
//!
//! 1. headers only: content type (415) → declared length (413) → a fresh timestamp and a
//!    well-formed signature header (401);
//! 2. a permit to read an unverified body, per client address and in total (503) → the
//!    body within its deadline (408, 413) → the signature over the raw bytes (401);
//! 3. only now is the request trusted: its `X-Request-Id` and `traceparent` are adopted, it
//!    takes a slot under the concurrency cap (503) → form (400) → response_url allow-list
//!    (400) → registry (unknown → 200 with the list) → per-user rate (200 "slow down") →
//!    typed arguments (200 with what was wrong and the usage) → durable enqueue within the
//!    ack budget (503 if not) → 200 "Processing...".
//!
//! Every request, refused or not, writes one "Router performance metrics" line and is
//! counted in the metrics.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chatops_core::slack::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, Verified};
use chatops_core::slack::{SlackForm, SlackMessage, SlashCommand, VerifyError};
use chatops_core::time::{now_unix_ns, now_unix_secs, round_ms};
use chatops_core::{CorrelationId, Job, Metric, Quadrant, Stage};
use chatops_queue::Enqueued;
use http_body_util::BodyExt;

use tracing::Instrument;

use super::{IngressError, IngressState, PeerAddr};
use crate::guard::access::Refusal as AccessRefusal;
use crate::metrics::{ReasonLabels, RefusalLabels, UNKNOWN_COMMAND};
use crate::tracing_context;

/// The header a client (or our load generator) may use to choose the correlation id.
pub(super) const REQUEST_ID_HEADER: &str = "x-request-id";

/// What an accepted request turned into.
enum Accepted {
    SslCheck,
    Unknown {
        command: String,
    },
    SlowDown {
        command: String,
        wait: std::time::Duration,
    },
    /// The text does not fit the command's declared arguments; nothing was queued.
    BadArguments {
        command: String,
        problem: String,
        usage: String,
    },
    Queued {
        command: String,
        quadrant: Quadrant,
        enqueue_ms: f64,
        duplicate: bool,
    },
    /// Access control refused it; nothing was stored (the refusal is audited).
    Refused {
        command: String,
        refusal: AccessRefusal,
    },
    /// Stored as pending approval; the request message is being posted.
    AwaitingApproval {
        command: String,
        quadrant: Quadrant,
        enqueue_ms: f64,
        duplicate: bool,
    },
}

/// When the router received the request: one wall-clock reading, and the monotonic clock
/// that every later stage of this process is measured with (a wall clock may step).
#[derive(Clone, Copy)]
struct Received {
    unix_ns: u64,
    at: Instant,
}

impl Received {
    /// The wall-clock stamp of `later`, derived from the receive stamp and monotonic time,
    /// so stamps taken in this process never run backwards.
    fn unix_ns_at(&self, later: Instant) -> u64 {
        self.unix_ns + later.saturating_duration_since(self.at).as_nanos() as u64
    }
}

pub(super) async fn handle(
    State(state): State<Arc<IngressState>>,
    peer: Option<axum::Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let received = Received { unix_ns: now_unix_ns(), at: Instant::now() };
    let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0.0.ip());
    let verified = verify(&state, &headers, body, peer, state.max_body_bytes).await;
    // Only a request that proved it comes from Slack (or our signer) may choose its
    // correlation id and trace parent; anyone else gets fresh ones.
    let correlation_id = match &verified {
        Ok(_) => CorrelationId::from_header_or_generate(headers.get(REQUEST_ID_HEADER).map(|v| v.as_bytes())),
        Err(_) => CorrelationId::generate(),
    };
    let span = tracing::info_span!(
        "slack_command",
        otel.name = "POST /slack/commands",
        otel.kind = "server",
        correlation_id = %correlation_id,
        command = tracing::field::Empty,
    );
    let result = match verified {
        Ok((body, signed)) => {
            tracing_context::adopt_incoming_parent(&span, &headers);
            match state.limits.try_enter() {
                Some(_slot) => accept(&state, &body, &signed, received, &correlation_id).instrument(span).await,
                None => Err((IngressError::Overloaded, None)),
            }
        }
        Err(e) => Err((e, None)),
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
        Ok(Accepted::BadArguments { command, problem, usage }) => {
            let text = format!("`{command}` was *not* run: {problem}.\nUsage: `{usage}`");
            let resp = Json(SlackMessage::ephemeral(text)).into_response();
            (resp, Some(command), None, None, Some(("invalid_arguments", problem)))
        }
        Ok(Accepted::Refused { command, refusal }) => {
            let resp = Json(SlackMessage::ephemeral(refusal.message(&command))).into_response();
            let label = metric_command(&state, Some(&command)).to_owned();
            state
                .metrics
                .access_refusals
                .get_or_create(&RefusalLabels { command: label, rule: refusal.as_str() })
                .inc();
            (
                resp,
                Some(command),
                None,
                None,
                Some(("access_denied", format!("refused by the {} rule", refusal.as_str()))),
            )
        }
        Ok(Accepted::AwaitingApproval { command, quadrant, enqueue_ms, duplicate }) => {
            let text = format!(
                "`{command}` needs approval: I have asked its approvers in this channel. It runs once approved."
            );
            let mut resp = Json(SlackMessage::ephemeral(text)).into_response();
            if duplicate {
                resp.headers_mut().insert("x-chatops-duplicate", header::HeaderValue::from_static("true"));
            }
            (resp, Some(command), Some(quadrant), Some(enqueue_ms), None)
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
                IngressError::UnverifiedBodies => {
                    state.metrics.throttled.get_or_create(&ReasonLabels { reason: "unverified_bodies" }).inc();
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
    let duration = round_ms(received.at.elapsed().as_secs_f64() * 1000.0);
    let label = metric_command(&state, command.as_deref());
    let outcome = if error.is_some() { "refused" } else { "accepted" };
    state.metrics.observe_stage(Stage::Router, label, quadrant, outcome, duration);
    if let Some(ms) = enqueue_ms {
        state.metrics.observe_stage(Stage::Enqueue, label, quadrant, outcome, ms);
    }
    let success = error.is_none() && (200..300).contains(&status);
    let (error_type, error_message) = error.map_or((None, None), |(t, m)| (Some(t), Some(m)));
    // The router line's timed fields (`duration`, `enqueueMs`), from the contract's table.
    let timed = |m: Metric| match m {
        Metric::RouterDuration => Some(duration),
        Metric::Enqueue => enqueue_ms,
        _ => None,
    };
    macro_rules! write_router_line {
        ($($metric:ident => $field:literal, $stage:expr, $label:literal;)*) => {
            tracing::info!(
                correlationId = %correlation_id,
                command = command.as_deref(),
                statusCode = status,
                success,
                errorType = error_type,
                errorMessage = error_message.as_deref(),
                quadrant = quadrant.map(Quadrant::as_str),
                $($field = timed(Metric::$metric),)*
                "{}",
                chatops_core::contract::ROUTER_METRICS_MESSAGE
            )
        };
    }
    chatops_core::metric_fields!(write_router_line);
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

/// Steps 1 and 2: everything before the request is trusted. Returns the raw body and what
/// it was signed with. Shared with `/slack/interactions`, whose bodies may be larger.
pub(super) async fn verify(
    state: &IngressState,
    headers: &HeaderMap,
    body: Body,
    peer: IpAddr,
    max_body_bytes: usize,
) -> Result<(Bytes, Verified), IngressError> {
    check_content_type(headers)?;
    let declared = declared_length(headers)?;
    if declared.is_some_and(|n| n > max_body_bytes as u64) {
        return Err(IngressError::PayloadTooLarge(max_body_bytes));
    }
    let timestamp = single_header(headers, TIMESTAMP_HEADER).map_err(|_| VerifyError::MalformedTimestamp)?;
    let signature = single_header(headers, SIGNATURE_HEADER).map_err(|_| VerifyError::MalformedSignature)?;
    let signed = state.signer.check_headers(timestamp, signature, now_unix_secs())?;
    let permit = state.limits.try_read_unverified(peer).ok_or(IngressError::UnverifiedBodies)?;
    let body = tokio::time::timeout(state.limits.body_read_timeout, read_limited(body, max_body_bytes))
        .await
        .map_err(|_| IngressError::BodyTimeout(state.limits.body_read_timeout))??;
    drop(permit);
    let verified = signed.verify_body(&state.signer, &body)?;
    Ok((body, verified))
}

/// Step 3: a verified request becomes a stored job (or a polite refusal).
async fn accept(
    state: &IngressState,
    body: &[u8],
    verified: &Verified,
    received: Received,
    correlation_id: &CorrelationId,
) -> Result<Accepted, Refusal> {
    let refuse = |e: IngressError| (e, None);
    let cmd = match SlashCommand::parse_form(body).map_err(|e| refuse(e.into()))? {
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
    if let Err(refusal) = state.access.check(spec, &cmd) {
        let key = Job::idempotency_key_for(verified);
        state.audit.refused(key, &cmd, spec, correlation_id, received.unix_ns, refusal.as_str());
        return Ok(Accepted::Refused { command: name, refusal });
    }
    let args = match spec.args.parse(&cmd.text) {
        Ok(args) => args,
        Err(problem) => {
            let usage = spec.usage.clone().unwrap_or_else(|| spec.args.usage(&spec.name));
            return Ok(Accepted::BadArguments { command: name, problem: problem.to_string(), usage });
        }
    };
    let quadrant = spec.quadrant;
    let enqueue_span = tracing::info_span!("enqueue", correlation_id = %correlation_id, quadrant = quadrant.as_str());
    let enqueue_started = Instant::now();
    let job = Job {
        job_id: Job::new_id(),
        correlation_id: correlation_id.clone(),
        idempotency_key: Job::idempotency_key_for(verified),
        quadrant,
        command: *cmd,
        max_attempts: spec.max_attempts,
        router_received_ns: received.unix_ns,
        enqueue_started_ns: received.unix_ns_at(enqueue_started),
        traceparent: tracing_context::traceparent_of(&enqueue_span),
        redrives: 0,
        args,
        approval: None,
    };
    // The queue enforces the deadline itself: dropping its future here could not tell a
    // stored job from one that was not, so "not queued" could be a lie. The budget counts
    // from the request's arrival, as Slack's 3 seconds do.
    let deadline = tokio::time::Instant::from_std(received.at) + state.ack_budget;
    if let Some(rule) = &spec.approval {
        let requested =
            state.approvals.request(spec, rule, job, deadline).instrument(enqueue_span).await.map_err(|e| match e {
                chatops_queue::QueueError::NotStoredInTime => with_name(IngressError::QueueTimeout),
                e => with_name(IngressError::ApprovalUnavailable(e)),
            })?;
        let enqueue_ms = round_ms(enqueue_started.elapsed().as_secs_f64() * 1000.0);
        let duplicate = requested == crate::guard::approvals::Requested::Duplicate;
        return Ok(Accepted::AwaitingApproval { command: name, quadrant, enqueue_ms, duplicate });
    }
    let stored = state.queue.enqueue(&job, deadline).instrument(enqueue_span).await.map_err(|e| match e {
        chatops_queue::QueueError::NotStoredInTime => with_name(IngressError::QueueTimeout),
        e => with_name(IngressError::QueueUnavailable(e)),
    })?;
    let enqueue_ms = round_ms(enqueue_started.elapsed().as_secs_f64() * 1000.0);
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

/// The declared Content-Length, refusing one that is given twice or is not a number.
fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, IngressError> {
    match single_header(headers, header::CONTENT_LENGTH.as_str()) {
        Ok(None) => Ok(None),
        Ok(Some(v)) => std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or(IngressError::BodyRead),
        Err(()) => Err(IngressError::BodyRead),
    }
}

/// Reads the body, refusing it as soon as it exceeds the limit while streaming (a declared
/// length over the limit was refused before).
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, IngressError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(IngressError::PayloadTooLarge(limit)),
        Err(_) => Err(IngressError::BodyRead),
    }
}
