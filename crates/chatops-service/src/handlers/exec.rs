//! `exec`: runs a program with an argv built from templates, never through a shell
//! ([`crate::actions::exec`]). Its `params` are an [`ExecSpec`]: `argv`, `cwd`, `env`,
//! `env_allow`, `secret_env`, `timeout`, `grace`, `max_output_bytes`, `progress_prefix`.
//!
//! Messages ([`crate::progress`]): a start message, progress lines the program marks, then
//! the result with the exit code, the duration and the output's last lines: one channel
//! message edited in place when the Web API is in use, else `response_url` posts. A
//! non-zero exit fails the command (not retried: the program may have had its effect).

use async_trait::async_trait;
use chatops_core::slack::SlackMessage;

use super::actions::{label, names, values};
use crate::actions::exec::{ExecError, ExecSpec, format_outcome_for_slack};
use crate::actions::mrkdwn_escape;
use crate::handler::{Handler, HandlerContext, HandlerError, parse_params};
use crate::spec::CommandSpec;

/// Output lines shown in the result message.
const RESULT_LINES: usize = 15;

#[derive(Debug)]
pub struct Exec;

#[async_trait]
impl Handler for Exec {
    async fn handle(&self, ctx: &HandlerContext) -> Result<(), HandlerError> {
        let spec: ExecSpec = ctx.params()?;
        let plan = spec
            .compile(&names(&ctx.spec))
            .map_err(|e| HandlerError::BadParams { command: ctx.spec.name.clone(), message: e.to_string() })?;
        let label = label(ctx);
        let progress = ctx.progress(format!(":gear: Running `{}`...", mrkdwn_escape(&label))).await?;
        let run = plan
            .run(&values(ctx), |line| progress.step(format!(":hourglass_flowing_sand: {}", mrkdwn_escape(&line))))
            .await;
        let outcome = match run {
            Ok(outcome) => outcome,
            Err(e) => {
                // The worker tells the user on response_url; a channel message must not go
                // on saying "Running".
                if progress.channel_message().is_some() {
                    let text = format!(":x: `{}` failed: {}", mrkdwn_escape(&label), mrkdwn_escape(&e.to_string()));
                    progress.finish(SlackMessage::in_channel(text)).await?;
                }
                return Err(match e {
                    // Nothing was spawned: say so; a retry would only repeat the same mistake.
                    e @ ExecError::NotStarted(_) => HandlerError::Failed(format!("did not start: {e}")),
                    e => HandlerError::Failed(e.to_string()),
                });
            }
        };
        progress.finish(SlackMessage::ephemeral(format_outcome_for_slack(&label, &outcome, RESULT_LINES))).await?;
        if outcome.success() {
            Ok(())
        } else if outcome.timed_out {
            Err(HandlerError::Failed(format!("timed out after {:.1}s", outcome.duration.as_secs_f64())))
        } else {
            Err(HandlerError::Failed(match outcome.exit_code {
                Some(code) => format!("exit code {code}"),
                None => format!("killed by signal {}", outcome.signal.unwrap_or(0)),
            }))
        }
    }

    fn check_params(&self, spec: &CommandSpec) -> Result<(), String> {
        let exec: ExecSpec = parse_params(&spec.handler.params)?;
        exec.compile(&names(spec)).map(drop).map_err(|e| e.to_string())
    }

    fn has_external_effect(&self) -> bool {
        true
    }
}
