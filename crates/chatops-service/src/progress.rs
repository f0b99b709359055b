//! A long command's progress as the user sees it: [`Progress`], started with
//! [`HandlerContext::progress`], fed with [`Progress::step`], ended with [`Progress::finish`].
//! It goes one of two ways:
//!
//! - **One channel message** (a bot token is configured and the command's visibility is
//!   `in_channel`): posted with `chat.postMessage` at the start and edited with
//!   `chat.update` for each step (with the elapsed time) and finally for the result. One
//!   message is edited at most once per [`MIN_EDIT_INTERVAL`]: steps that come faster are
//!   coalesced, and the latest one is sent when the interval is up. The result is always
//!   sent: a 429 delays it, it never drops it, and if the edit still fails the result goes
//!   to `response_url` instead.
//! - **`response_url`** (no token; an ephemeral command, since `chat.postEphemeral` messages
//!   cannot be edited; or the channel message could not be posted, e.g. the bot is not in
//!   the channel): the start text, at most [`MAX_RESPONSE_URL_STEPS`] steps at most one a
//!   second (the latest waiting one when the second is up), then the result, so a command
//!   stays within Slack's five posts per `response_url`.
//!
//! Every post and edit is stamped with the job's responses (`syncResponseMs` is the first
//! one, `asyncResponseMs` and `lastResponseE2eMs` the last): what the user sees is what the
//! E2E breakdown measures, whichever way it went.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatops_core::slack::{ResponseType, SlackMessage};
use chatops_core::time::now_unix_ns;
use tokio::sync::Notify;

use crate::handler::{HandlerContext, HandlerError};
use crate::slack_api::{MessageRef, SlackApi, SlackApiError};

/// A channel message is edited at most this often (Slack allows about one edit per second
/// per message before it answers 429).
pub const MIN_EDIT_INTERVAL: Duration = Duration::from_secs(1);

/// Steps posted to `response_url` per command: with the start message, the result and a
/// failure notice this stays within Slack's five posts.
pub const MAX_RESPONSE_URL_STEPS: usize = 2;

/// A step's text is cut to this many characters: a step is a line, not a log, and Slack
/// refuses messages over 40 000 characters.
pub const MAX_STEP_CHARS: usize = 500;

/// What the handler has asked for and the poster has not sent yet.
#[derive(Default)]
struct Pending {
    step: Option<String>,
    result: Option<SlackMessage>,
    /// The handler went away without a result (timeout, shutdown, panic).
    abandoned: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Notify,
}

impl Shared {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// See the module doc. Dropping it without [`Progress::finish`] (the handler timed out or
/// was stopped) edits a channel message one last time to say it stopped.
pub struct Progress {
    shared: Arc<Shared>,
    poster: Option<tokio::task::JoinHandle<Result<(), SlackApiError>>>,
    channel: Option<MessageRef>,
    ctx: HandlerContext,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").field("channel_message", &self.channel).finish_non_exhaustive()
    }
}

impl Progress {
    /// Posts `start` (on `response_url` only when `announce`) and starts the poster task.
    pub(crate) async fn start(ctx: &HandlerContext, start: String, announce: bool) -> Result<Self, HandlerError> {
        let shared = Arc::new(Shared::default());
        let channel_api = ctx.responder().slack_api().filter(|_| ctx.spec.visibility == ResponseType::InChannel);
        if let Some(api) = channel_api {
            let begun = Instant::now();
            let sent = now_unix_ns();
            match api.post_message(&ctx.job.command.channel_id, &SlackMessage::in_channel(start.clone())).await {
                Ok(at) => {
                    ctx.responder().record_web_api_post(sent, now_unix_ns());
                    let poster = tokio::spawn(edit_channel_message(
                        api.clone(),
                        at.clone(),
                        ctx.clone(),
                        start,
                        begun,
                        shared.clone(),
                    ));
                    return Ok(Progress { shared, poster: Some(poster), channel: Some(at), ctx: ctx.clone() });
                }
                Err(e) => tracing::warn!(
                    correlationId = %ctx.job.correlation_id,
                    error.message = %e,
                    "could not post the progress message in the channel; progress goes to response_url \
                     (is the bot in the channel, or does it have chat:write.public?)"
                ),
            }
        }
        if announce {
            ctx.respond(SlackMessage::ephemeral(start)).await?;
        }
        let poster = tokio::spawn(post_to_response_url(ctx.clone(), shared.clone()));
        Ok(Progress { shared, poster: Some(poster), channel: None, ctx: ctx.clone() })
    }

    /// Reports a step (mrkdwn; escape program output with
    /// `chatops_core::slack::message::escape_mrkdwn`). Returns at once: the step is sent
    /// when the rate allows, replaced by a later one if that comes first.
    pub fn step(&self, text: impl Into<String>) {
        self.shared.pending().step = Some(cut_step(text.into()));
        self.shared.wake.notify_one();
    }

    /// The message the command's progress lives in, when it is a channel message.
    pub fn channel_message(&self) -> Option<&MessageRef> {
        self.channel.as_ref()
    }

    /// Shows the result: the channel message's last edit (waiting out the edit interval
    /// and any 429), else a `response_url` post. Steps not yet sent are dropped.
    pub async fn finish(mut self, result: SlackMessage) -> Result<(), HandlerError> {
        self.shared.pending().result = Some(result.clone());
        self.shared.wake.notify_one();
        let poster = self.poster.take();
        let delivered = match poster {
            Some(task) => task.await.unwrap_or(Err(SlackApiError::BadAnswer {
                method: "chat.update",
                reason: "the progress task stopped",
            })),
            None => Ok(()),
        };
        match (&self.channel, delivered) {
            (Some(_), Ok(())) => Ok(()),
            (Some(_), Err(e)) => {
                tracing::warn!(
                    correlationId = %self.ctx.job.correlation_id,
                    error.message = %e,
                    "could not show the result in the channel message; posting it to response_url"
                );
                self.ctx.respond(result).await
            }
            (None, _) => self.ctx.respond(result).await,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.poster.is_some() {
            self.shared.pending().abandoned = true;
            self.shared.wake.notify_one();
        }
    }
}

/// A step cut to [`MAX_STEP_CHARS`] characters (on a character boundary).
fn cut_step(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_STEP_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// The text of a step's edit: the start line, then the step and the time so far.
fn step_text(start: &str, step: &str, elapsed: Duration) -> String {
    let elapsed = humantime::format_duration(Duration::from_secs(elapsed.as_secs()));
    format!("{start}\n{step} · {elapsed} elapsed")
}

/// What the poster does next.
enum Next {
    Step(String),
    Result(SlackMessage),
    Abandoned,
}

/// Waits until the handler asked for something, and takes it (the result first).
async fn next(shared: &Shared) -> Next {
    loop {
        {
            let mut pending = shared.pending();
            if let Some(result) = pending.result.take() {
                return Next::Result(result);
            }
            if let Some(step) = pending.step.take() {
                return Next::Step(step);
            }
            if pending.abandoned {
                return Next::Abandoned;
            }
        }
        // `notify_one` keeps a permit when nobody waits, so a wake between the check and
        // this await is not lost.
        shared.wake.notified().await;
    }
}

/// The channel message's poster: edits it at most once per [`MIN_EDIT_INTERVAL`] (counted
/// from the end of the previous call, the post included), the latest step each time, until
/// the result. Returns how the result's edit went.
async fn edit_channel_message(
    api: SlackApi,
    at: MessageRef,
    ctx: HandlerContext,
    start: String,
    begun: Instant,
    shared: Arc<Shared>,
) -> Result<(), SlackApiError> {
    let mut last_call = Instant::now();
    // After Slack refused an edit (the message was deleted, the token lost access), steps
    // stop; the result is still tried, then goes to response_url.
    let mut refused = false;
    loop {
        // The interval first, then whatever is latest: steps that came meanwhile coalesce.
        tokio::time::sleep_until((last_call + MIN_EDIT_INTERVAL).into()).await;
        let (message, is_result) = match next(&shared).await {
            Next::Result(result) => (SlackMessage { response_type: ResponseType::InChannel, ..result }, true),
            Next::Step(_) if refused => continue,
            Next::Step(step) => (SlackMessage::in_channel(step_text(&start, &step, begun.elapsed())), false),
            Next::Abandoned => {
                let label = &ctx.spec.name;
                let text = format!("{start}\n:warning: `{label}` stopped before it reported a result.");
                (SlackMessage::in_channel(text), true)
            }
        };
        let sent = now_unix_ns();
        let outcome = api.update_message(&at, &message).await;
        last_call = Instant::now();
        match &outcome {
            Ok(()) => ctx.responder().record_web_api_post(sent, now_unix_ns()),
            Err(e) => {
                refused |= matches!(e, SlackApiError::Slack { .. } | SlackApiError::Rejected { .. });
                if !is_result {
                    tracing::warn!(
                        correlationId = %ctx.job.correlation_id,
                        error.message = %e,
                        "could not show a progress step in the channel message"
                    );
                }
            }
        }
        if is_result {
            return outcome;
        }
    }
}

/// The `response_url` poster: at most [`MAX_RESPONSE_URL_STEPS`] steps, at most one a
/// second, until the result (which [`Progress::finish`] posts itself).
async fn post_to_response_url(ctx: HandlerContext, shared: Arc<Shared>) -> Result<(), SlackApiError> {
    let (mut posted, mut last) = (0, None::<Instant>);
    loop {
        if let Some(last) = last {
            // A result that arrives while waiting ends the wait: the pending step is dropped.
            tokio::select! {
                _ = tokio::time::sleep_until((last + MIN_EDIT_INTERVAL).into()) => {}
                _ = until_result(&shared) => {}
            }
        }
        match next(&shared).await {
            Next::Result(_) | Next::Abandoned => return Ok(()),
            Next::Step(_) if posted >= MAX_RESPONSE_URL_STEPS => continue,
            Next::Step(step) => {
                if ctx.respond(SlackMessage::ephemeral(step)).await.is_err() {
                    // The result may still fit; steps stop.
                    posted = MAX_RESPONSE_URL_STEPS;
                    continue;
                }
                posted += 1;
                last = Some(Instant::now());
            }
        }
    }
}

/// Resolves once a result (or abandonment) is waiting.
async fn until_result(shared: &Shared) {
    loop {
        {
            let pending = shared.pending();
            if pending.result.is_some() || pending.abandoned {
                return;
            }
        }
        shared.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_shows_under_the_start_line_with_whole_seconds_elapsed() {
        let text = step_text(
            ":gear: Running `/deploy web`...",
            ":hourglass_flowing_sand: migrating",
            Duration::from_millis(65_400),
        );
        assert_eq!(text, ":gear: Running `/deploy web`...\n:hourglass_flowing_sand: migrating · 1m 5s elapsed");
    }

    #[test]
    fn a_long_step_is_cut_on_a_character_boundary() {
        assert_eq!(cut_step("short".into()), "short");
        let long = "é".repeat(MAX_STEP_CHARS + 10);
        let cut = cut_step(long);
        assert_eq!(cut.chars().count(), MAX_STEP_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[tokio::test]
    async fn the_poster_takes_the_result_before_a_waiting_step_and_the_latest_step_only() {
        let shared = Shared::default();
        shared.pending().step = Some("one".into());
        shared.pending().step = Some("two".into());
        assert!(matches!(next(&shared).await, Next::Step(s) if s == "two"));
        shared.pending().step = Some("three".into());
        shared.pending().result = Some(SlackMessage::ephemeral("done"));
        assert!(matches!(next(&shared).await, Next::Result(m) if m.text == "done"));
        shared.pending().abandoned = true;
        assert!(matches!(next(&shared).await, Next::Step(s) if s == "three"), "a step still waiting is next");
        assert!(matches!(next(&shared).await, Next::Abandoned));
    }

    #[tokio::test]
    async fn a_wake_before_the_poster_waits_is_not_lost() {
        let shared = Arc::new(Shared::default());
        shared.pending().step = Some("early".into());
        shared.wake.notify_one();
        let _ = next(&shared).await;
        let waiter = tokio::spawn({
            let shared = shared.clone();
            async move { matches!(next(&shared).await, Next::Result(_)) }
        });
        shared.pending().result = Some(SlackMessage::ephemeral("done"));
        shared.wake.notify_one();
        let took_result = tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("the poster woke").unwrap();
        assert!(took_result);
    }
}
