//! The handler API: the [`Handler`] trait, the [`HandlerContext`] a handler gets, the
//! [`HandlerError`] it may return, and [`BotView`], the narrow view of the running bot that
//! handlers may read (the command list for `/help`, queue statistics and the E2E window for
//! `/check-status`), instead of the bot's whole state with its queue.
//!
//! A handler answers only through its context: [`HandlerContext::respond`] posts to the
//! command's `response_url`, and [`HandlerContext::progress`] reports a long command's
//! progress (one channel message kept up to date through Slack's Web API when a bot token is
//! configured and the command is `in_channel`, else `response_url` posts within their
//! limit). Either way the command's `visibility` decides who sees the messages. Closures
//! are handlers too: see [`handler_fn`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chatops_core::slack::SlackMessage;
use chatops_core::stats::LatencySummary;
use chatops_core::{Job, Quadrant};
use chatops_queue::{QueueError, QueueStats};
use serde::de::DeserializeOwned;

use crate::progress::Progress;
use crate::respond::{RespondError, Responder};
use crate::spec::CommandSpec;
use crate::status::E2eWindow;

/// Runs one command. Implement it for a struct (with `#[async_trait]`), or pass a closure
/// `|ctx| async move { .. }` where a handler is expected (see [`handler_fn`]).
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, ctx: &HandlerContext) -> Result<(), HandlerError>;

    /// Checks a command's `params` (and how they fit its declared arguments) once, at
    /// startup, so a bad configuration stops the bot instead of failing every command. The
    /// default accepts anything (the handler then reports a bad parameter when it reads it
    /// with [`HandlerContext::params`]).
    fn check_params(&self, spec: &CommandSpec) -> Result<(), String> {
        let _ = spec;
        Ok(())
    }

    /// Whether running this handler starts an effect outside the bot (a program, an HTTP
    /// call). For such handlers in a write quadrant the worker records durably that the
    /// effect started before running it, and does not run it again on a redelivery after
    /// a crash (unless the command sets `rerun_interrupted`).
    fn has_external_effect(&self) -> bool {
        false
    }
}

/// A closure as a [`Handler`]: `handler_fn(|ctx| async move { ctx.respond(..).await })`.
/// The closure gets its own (cheap) clone of the context, so its future owns what it uses.
pub fn handler_fn<F, Fut>(f: F) -> HandlerFn<F>
where
    F: Fn(HandlerContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    HandlerFn(f)
}

/// See [`handler_fn`].
pub struct HandlerFn<F>(F);

impl<F> std::fmt::Debug for HandlerFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandlerFn")
    }
}

#[async_trait]
impl<F, Fut> Handler for HandlerFn<F>
where
    F: Fn(HandlerContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    async fn handle(&self, ctx: &HandlerContext) -> Result<(), HandlerError> {
        (self.0)(ctx.clone()).await
    }
}

/// Where [`BotView`] gets queue statistics: the queue, seen only through its statistics.
#[async_trait]
pub trait QueueStatsSource: Send + Sync + 'static {
    async fn stats(&self) -> Result<QueueStats, QueueError>;
}

/// What handlers may see of the running bot.
pub struct BotView {
    started: Instant,
    commands: Vec<Arc<CommandSpec>>,
    queue: Arc<dyn QueueStatsSource>,
    e2e: Arc<E2eWindow>,
}

impl std::fmt::Debug for BotView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotView").field("started", &self.started).field("commands", &self.commands.len()).finish()
    }
}

impl BotView {
    pub fn new(
        started: Instant,
        commands: Vec<Arc<CommandSpec>>,
        queue: Arc<dyn QueueStatsSource>,
        e2e: Arc<E2eWindow>,
    ) -> Self {
        BotView { started, commands, queue, e2e }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Every registered command, sorted by name.
    pub fn commands(&self) -> &[Arc<CommandSpec>] {
        &self.commands
    }

    /// The queue's statistics, asked now (not cached).
    pub async fn queue_stats(&self) -> Result<QueueStats, QueueError> {
        self.queue.stats().await
    }

    /// E2E latency of the jobs completed in the window ending at `now_unix_secs`.
    pub fn e2e_summary(&self, now_unix_secs: u64) -> LatencySummary {
        self.e2e.summary(now_unix_secs)
    }
}

/// What a handler gets: the job, its registry entry, the attempt, a way to answer, and a
/// read-only view of the bot. Cloning is cheap (shared pointers), and clones answer through
/// the same `response_url` budget.
#[derive(Clone)]
pub struct HandlerContext {
    pub job: Arc<Job>,
    pub spec: Arc<CommandSpec>,
    pub attempt: u32,
    pub bot: Arc<BotView>,
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
    pub fn new(job: Arc<Job>, spec: Arc<CommandSpec>, attempt: u32, bot: Arc<BotView>, responder: Responder) -> Self {
        HandlerContext { job, spec, attempt, bot, responder }
    }

    /// Posts a message to the command's `response_url`, visible as the command's
    /// `visibility` says (whatever `response_type` the message was built with).
    pub async fn respond(&self, mut message: SlackMessage) -> Result<(), HandlerError> {
        message.response_type = self.spec.visibility;
        self.responder.post(&message).await.map_err(HandlerError::Respond)
    }

    /// Starts reporting a long command's progress with `start` (mrkdwn), e.g. ":gear:
    /// Running `/deploy web production`...". Then [`Progress::step`] for each step and
    /// [`Progress::finish`] with the result. With a bot token and an `in_channel` command
    /// this is one channel message, edited in place at most once a second; otherwise
    /// `start` is posted to `response_url`, then a few steps and the result (see
    /// [`crate::progress`]).
    ///
    /// ```no_run
    /// # use chatops_core::slack::SlackMessage;
    /// # use chatops_service::handler::{HandlerContext, HandlerError};
    /// # async fn deploy(ctx: HandlerContext) -> Result<(), HandlerError> {
    /// let progress = ctx.progress(":gear: Deploying `web`...").await?;
    /// for step in ["building", "migrating", "switching traffic"] {
    ///     progress.step(format!(":hourglass_flowing_sand: {step}"));
    ///     // ... the step's work ...
    /// }
    /// progress.finish(SlackMessage::ephemeral(":white_check_mark: `web` deployed")).await
    /// # }
    /// ```
    pub async fn progress(&self, start: impl Into<String>) -> Result<Progress, HandlerError> {
        Progress::start(self, start.into(), true).await
    }

    /// [`HandlerContext::progress`] for a command that is usually quick: on `response_url`
    /// the start text is not posted (one post saved, only the result is); a channel
    /// message still shows it until the result replaces it.
    pub async fn progress_quiet(&self, start: impl Into<String>) -> Result<Progress, HandlerError> {
        Progress::start(self, start.into(), false).await
    }

    /// The job's `response_url` responder (its Web API client and its stamps).
    pub(crate) fn responder(&self) -> &Responder {
        &self.responder
    }

    /// The command's typed arguments, as the router checked them (empty when the command
    /// declares none).
    pub fn args(&self) -> &chatops_core::args::Args {
        &self.job.args
    }

    /// The text after the command name.
    pub fn text(&self) -> &str {
        &self.job.command.text
    }

    pub fn user_id(&self) -> &str {
        &self.job.command.user_id
    }

    /// The command's parameters (its `params` table in the configuration) as `T`. Missing
    /// keys take `T`'s serde defaults; a wrong type or an unknown key (with
    /// `deny_unknown_fields`) is [`HandlerError::BadParams`], which is not retried.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        parse_params(&self.spec.handler.params)
            .map_err(|message| HandlerError::BadParams { command: self.spec.name.clone(), message })
    }
}

/// Deserialises a parameter table; the error is serde's text (it names the key).
pub fn parse_params<T: DeserializeOwned>(params: &toml::Table) -> Result<T, String> {
    T::deserialize(toml::Value::Table(params.clone())).map_err(|e| e.to_string().trim_end().to_owned())
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
    /// The command's configured `params` do not fit its handler: not retried.
    #[error("bad parameters for {command}: {message}")]
    BadParams { command: String, message: String },
    #[error("handler timed out after {0:?}")]
    Timeout(Duration),
    #[error("handler panicked: {0}")]
    Panicked(String),
    /// An earlier attempt started the command's external effect and the bot stopped before
    /// it finished: the outcome is unknown, so it is not run again (not retried).
    #[error(
        "it was interrupted: attempt {attempt} started it at {at} and the bot stopped before it finished. \
         Its outcome is unknown, so it was not run again; check, then run it again"
    )]
    Interrupted { attempt: u32, at: String },
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
            HandlerError::BadParams { .. } => "BadParameters",
            HandlerError::Timeout(_) => "Timeout",
            HandlerError::Panicked(_) => "Panic",
            HandlerError::Interrupted { .. } => "Interrupted",
        }
    }

    /// Whether another attempt may succeed. A timed-out *write* command is not retried: it
    /// may have had its effect, and running it twice is worse than reporting the timeout.
    pub fn is_retryable(&self, quadrant: Quadrant) -> bool {
        match self {
            HandlerError::Respond(e) => e.is_transient(),
            HandlerError::Transient(_) => true,
            HandlerError::Timeout(_) => matches!(quadrant, Quadrant::ShortRead | Quadrant::LongRead),
            HandlerError::Failed(_)
            | HandlerError::BadParams { .. }
            | HandlerError::Panicked(_)
            | HandlerError::Interrupted { .. } => false,
        }
    }
}
