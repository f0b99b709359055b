//! `webhook`, `github-workflow` and `github-repository-dispatch`: one HTTP request to a
//! configured URL ([`crate::actions::webhook`]). The host comes only from the
//! configuration and must be on its allow-list; values fill only the path, query and body.
//! Retries on 5xx and timeouts; a 4xx fails at once with the API's message. With the Web
//! API in use ([`crate::progress`]) a channel message says it is running and then shows
//! the result; on `response_url` only the result is posted.

use async_trait::async_trait;
use chatops_core::slack::SlackMessage;

use super::actions::{label, names, values};
use crate::actions::mrkdwn_escape;
use crate::actions::webhook::{GithubRepositoryDispatch, GithubTarget, GithubWorkflow, WebhookError, WebhookSpec};
use crate::handler::{Handler, HandlerContext, HandlerError, parse_params};
use crate::spec::CommandSpec;

/// Which kind of request.
#[derive(Debug, Clone, Copy)]
pub enum Webhook {
    /// `params` are a [`WebhookSpec`].
    Generic,
    /// `params` are a [`GithubWorkflow`].
    GithubWorkflow,
    /// `params` are a [`GithubRepositoryDispatch`].
    GithubDispatch,
}

impl Webhook {
    /// The request, and for the GitHub presets the target whose Actions page the answer
    /// links.
    fn spec(self, params: &toml::Table) -> Result<(WebhookSpec, Option<GithubTarget>), String> {
        Ok(match self {
            Webhook::Generic => (parse_params::<WebhookSpec>(params)?, None),
            Webhook::GithubWorkflow => {
                let w: GithubWorkflow = parse_params(params)?;
                (w.spec(), Some(w.target()))
            }
            Webhook::GithubDispatch => {
                let d: GithubRepositoryDispatch = parse_params(params)?;
                (d.spec(), Some(d.target()))
            }
        })
    }
}

#[async_trait]
impl Handler for Webhook {
    async fn handle(&self, ctx: &HandlerContext) -> Result<(), HandlerError> {
        let bad = |message: String| HandlerError::BadParams { command: ctx.spec.name.clone(), message };
        let (spec, github) = self.spec(&ctx.spec.handler.params).map_err(bad)?;
        let plan = spec.compile(&names(&ctx.spec)).map_err(|e| bad(e.to_string()))?;
        let values = values(ctx);
        let label = mrkdwn_escape(&label(ctx));
        // Usually quick: on response_url only the result is posted.
        let progress = ctx.progress_quiet(format!(":gear: Running `{label}`...")).await?;
        match plan.run(&values).await {
            Ok(outcome) => {
                let link = github.map(|t| format!(" <{}|Actions>", t.actions_url(&values))).unwrap_or_default();
                let text = format!(
                    ":white_check_mark: `{label}`: HTTP {} after {} attempt(s) in {:.1}s.{link}",
                    outcome.status,
                    outcome.attempts,
                    outcome.duration.as_secs_f64()
                );
                progress.finish(SlackMessage::ephemeral(text)).await
            }
            Err(e) => {
                let text = format!(":x: `{label}` failed: {}", mrkdwn_escape(&e.to_string()));
                progress.finish(SlackMessage::ephemeral(text)).await?;
                Err(match e {
                    WebhookError::NotSent(_) => HandlerError::Failed(format!("not sent: {e}")),
                    e => HandlerError::Failed(e.to_string()),
                })
            }
        }
    }

    fn check_params(&self, spec: &CommandSpec) -> Result<(), String> {
        let (webhook, _) = self.spec(&spec.handler.params)?;
        webhook.compile(&names(spec)).map(drop).map_err(|e| e.to_string())
    }

    fn has_external_effect(&self) -> bool {
        true
    }
}
