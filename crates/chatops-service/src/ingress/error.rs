//! Every way the router refuses a request, with its HTTP status and JSON body.
//!
//! Input errors are answered as `{"ok":false,"error":"<kind>","message":"..."}` (Slack shows
//! non-200 answers as a generic failure, so these are for whoever sent the bad request).
//! A queue that cannot take the command is answered 503 with `Retry-After` and a Slack-
//! shaped message telling the user the command was *not* queued.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chatops_core::slack::interaction::InteractionParseError;
use chatops_core::slack::{CommandParseError, ResponseUrlError, VerifyError};
use chatops_queue::QueueError;

/// Seconds a client should wait after a 503.
pub(super) const RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("Content-Type must be application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("could not read the request body")]
    BodyRead,
    #[error(transparent)]
    Signature(#[from] VerifyError),
    #[error(transparent)]
    Form(#[from] CommandParseError),
    #[error(transparent)]
    ResponseUrl(#[from] ResponseUrlError),
    #[error(transparent)]
    Interaction(#[from] InteractionParseError),
    #[error("approval not recorded: {0}")]
    ApprovalUnavailable(QueueError),
    #[error("command not queued: {0}")]
    QueueUnavailable(QueueError),
    #[error("command not queued: the queue did not confirm within the ack budget")]
    QueueTimeout,
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    #[error("too many requests in progress")]
    Overloaded,
    #[error("too many unauthenticated request bodies are being read")]
    UnverifiedBodies,
}

impl IngressError {
    pub fn status(&self) -> StatusCode {
        match self {
            IngressError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngressError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IngressError::BodyRead
            | IngressError::Form(_)
            | IngressError::ResponseUrl(_)
            | IngressError::Interaction(_) => StatusCode::BAD_REQUEST,
            IngressError::Signature(_) => StatusCode::UNAUTHORIZED,
            IngressError::QueueUnavailable(_)
            | IngressError::ApprovalUnavailable(_)
            | IngressError::QueueTimeout
            | IngressError::Overloaded
            | IngressError::UnverifiedBodies => StatusCode::SERVICE_UNAVAILABLE,
            IngressError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// `errorType` in the router's metrics line; also the `error` field of the JSON body.
    pub fn error_type(&self) -> &'static str {
        match self {
            IngressError::UnsupportedMediaType => "unsupported_media_type",
            IngressError::PayloadTooLarge(_) => "payload_too_large",
            IngressError::BodyRead => "body_read_failed",
            IngressError::Signature(e) => e.reason(),
            IngressError::Form(_) => "invalid_form",
            IngressError::ResponseUrl(_) => "response_url_not_allowed",
            IngressError::Interaction(_) => "invalid_interaction",
            IngressError::ApprovalUnavailable(_) => "approval_store_unavailable",
            IngressError::QueueUnavailable(QueueError::Full { .. }) => "queue_full",
            IngressError::QueueUnavailable(_) => "queue_unavailable",
            IngressError::QueueTimeout => "queue_timeout",
            IngressError::BodyTimeout(_) => "body_timeout",
            IngressError::Overloaded => "overloaded",
            IngressError::UnverifiedBodies => "unverified_bodies",
        }
    }
}

impl IntoResponse for IngressError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let body = serde_json::json!({
                "response_type": "ephemeral",
                "text": "The bot is overloaded right now and your command was *not* queued. Please try again in a few seconds.",
                "error": self.error_type(),
            });
            let mut resp = (status, Json(body)).into_response();
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            return resp;
        }
        let body = serde_json::json!({"ok": false, "error": self.error_type(), "message": self.to_string()});
        (status, Json(body)).into_response()
    }
}
