//! Command handlers: the [`Handler`] trait and the built-in kinds (`echo`, `help`,
//! `check-status`, `simulate`). A handler answers only through its [`HandlerContext`]'s
//! `respond`, which goes to the command's `response_url`.

pub mod check_status;
pub mod echo;
pub mod help;
pub mod simulate;

use std::sync::Arc;

use async_trait::async_trait;
use chatops_core::Job;
use chatops_core::slack::SlackMessage;

use crate::registry::CommandSpec;
use crate::status::BotState;
use crate::worker::respond::{RespondError, Responder};

/// Runs one command. Implement this to add a command kind from Rust, then register it with
/// [`crate::registry::RegistryBuilder::handler`].
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, ctx: &HandlerContext) -> Result<(), HandlerError>;
}

/// What a handler gets: the job, its registry entry, the attempt, a way to answer, and a
/// read-only view of the bot.
pub struct HandlerContext {
    pub job: Arc<Job>,
    pub spec: Arc<CommandSpec>,
    pub attempt: u32,
    pub bot: Arc<BotState>,
    responder: Responder,
}

impl std::fmt::Debug for HandlerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerContext")
            .field("command", &self.spec.name)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl HandlerContext {
    pub fn new(job: Arc<Job>, spec: Arc<CommandSpec>, attempt: u32, bot: Arc<BotState>, responder: Responder) -> Self {
        HandlerContext { job, spec, attempt, bot, responder }
    }

    /// Posts a message to the command's `response_url`.
    pub async fn respond(&self, message: SlackMessage) -> Result<(), HandlerError> {
        self.responder.post(&message).await.map_err(HandlerError::Respond)
    }

    /// The text after the command name.
    pub fn text(&self) -> &str {
        &self.job.command.text
    }

    pub fn user_id(&self) -> &str {
        &self.job.command.user_id
    }
}

/// Why a handler failed. Failures are data: the worker reports them to the user and in the
/// metrics line, then retries or dead-letters the job.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Respond(#[from] RespondError),
    /// The command cannot succeed (bad arguments, refused action): not retried.
    #[error("{0}")]
    Failed(String),
    /// Worth another attempt later (a dependency is down).
    #[error("{0}")]
    Transient(String),
    #[error("handler timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("handler panicked: {0}")]
    Panicked(String),
}

impl HandlerError {
    /// `errorType` in the metrics line.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Respond(RespondError::Exhausted { .. }) => "ResponseUrlUnavailable",
            HandlerError::Respond(RespondError::Rejected { .. }) => "ResponseUrlRejected",
            HandlerError::Respond(RespondError::TooManyPosts(_)) => "TooManyResponses",
            HandlerError::Failed(_) => "CommandFailed",
            HandlerError::Transient(_) => "TransientError",
            HandlerError::Timeout(_) => "Timeout",
            HandlerError::Panicked(_) => "Panic",
        }
    }

    /// Whether another attempt may succeed. A timed-out *write* command is not retried: it
    /// may have had its effect, and running it twice is worse than reporting the timeout.
    pub fn is_retryable(&self, quadrant: chatops_core::Quadrant) -> bool {
        match self {
            HandlerError::Respond(e) => e.is_transient(),
            HandlerError::Transient(_) => true,
            HandlerError::Timeout(_) => {
                matches!(quadrant, chatops_core::Quadrant::ShortRead | chatops_core::Quadrant::LongRead)
            }
            HandlerError::Failed(_) | HandlerError::Panicked(_) => false,
        }
    }
}
