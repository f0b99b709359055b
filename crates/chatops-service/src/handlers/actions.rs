//! What the `exec` and webhook handler kinds share: the template names a command may use,
//! the values a job renders its templates with, and progress posts within the
//! `response_url` budget.

use std::time::{Duration, Instant};

use chatops_core::slack::SlackMessage;

use crate::actions::{CommandContext, TemplateNames, TemplateValues, template_values};
use crate::handler::HandlerContext;
use crate::spec::CommandSpec;

/// Progress posts per command: with the start message, the result and a failure notice
/// this stays within Slack's five posts per `response_url`.
pub(super) const MAX_PROGRESS_POSTS: usize = 2;
/// Progress is posted at most this often; lines in between are not posted (the result
/// shows the output's tail).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The built-in names and the command's declared arguments.
pub(super) fn names(spec: &CommandSpec) -> TemplateNames {
    TemplateNames::with_args(spec.args.raw().map(|a| a.name.as_str()))
}

/// The job's arguments and who ran it where.
pub(super) fn values(ctx: &HandlerContext) -> TemplateValues {
    let c = &ctx.job.command;
    template_values(
        ctx.args(),
        CommandContext {
            command: &c.command,
            user_id: &c.user_id,
            user_name: &c.user_name,
            channel_id: &c.channel_id,
            team_id: &c.team_id,
            correlation_id: ctx.job.correlation_id.as_str(),
        },
    )
}

/// The command as the user typed it, for messages.
pub(super) fn label(ctx: &HandlerContext) -> String {
    let text = ctx.text().trim();
    if text.is_empty() { ctx.spec.name.clone() } else { format!("{} {text}", ctx.spec.name) }
}

/// Posts progress lines sent to it, rate-limited and capped; returns a sender and the task.
pub(super) fn progress_poster(
    ctx: &HandlerContext,
) -> (tokio::sync::mpsc::UnboundedSender<String>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let ctx = ctx.clone();
    let task = tokio::spawn(async move {
        let (mut posted, mut last) = (0, None::<Instant>);
        while let Some(line) = rx.recv().await {
            if posted >= MAX_PROGRESS_POSTS || last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
                continue;
            }
            let text = format!(":hourglass_flowing_sand: {}", crate::actions::mrkdwn_escape(&line));
            if ctx.respond(SlackMessage::ephemeral(text)).await.is_err() {
                break;
            }
            posted += 1;
            last = Some(Instant::now());
        }
    });
    (tx, task)
}
