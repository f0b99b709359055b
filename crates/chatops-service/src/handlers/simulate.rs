//! `simulate`: stands in for a real action (deploy, build, report) until one exists, so every
//! quadrant can be exercised and load-tested. It spreads `answers` posts over `work` (its
//! parameters, e.g. `params = { work = "3s", answers = 3 }`), and every message says it is
//! a simulation.

use std::time::Duration;

use async_trait::async_trait;
use chatops_core::slack::SlackMessage;
use chatops_core::slack::message::escape_mrkdwn;
use serde::Deserialize;

use crate::handler::{Handler, HandlerContext, HandlerError, parse_params};
use crate::spec::HumanDuration;

#[derive(Debug)]
pub struct Simulate;

/// The parameters of `simulate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateParams {
    /// Total simulated work.
    #[serde(default = "SimulateParams::default_work")]
    pub work: HumanDuration,
    /// Posts to `response_url`, 1 to 5 (Slack's limit).
    #[serde(default = "SimulateParams::default_answers")]
    pub answers: u32,
}

impl SimulateParams {
    fn default_work() -> HumanDuration {
        HumanDuration(Duration::from_secs(1))
    }

    fn default_answers() -> u32 {
        2
    }
}

#[async_trait]
impl Handler for Simulate {
    async fn handle(&self, ctx: &HandlerContext) -> Result<(), HandlerError> {
        let params: SimulateParams = ctx.params()?;
        let (work, answers) = (params.work.0, params.answers.clamp(1, 5));
        let name = &ctx.spec.name;
        let args = escape_mrkdwn(ctx.text());
        let approval = match &ctx.job.approval {
            Some(a) => format!(" Approved by {}.", crate::guard::approvals::mentions(&a.approvers)),
            None => String::new(),
        };
        ctx.respond(SlackMessage::ephemeral(format!(
            "[simulation] {name} {args}: started (about {}).{approval}",
            humantime::format_duration(work)
        )))
        .await?;
        let steps = answers.saturating_sub(1);
        for step in 1..=steps {
            tokio::time::sleep(work / steps.max(1)).await;
            let text = if step == steps {
                format!("[simulation] {name} {args}: done (step {step}/{steps}). Nothing was changed.")
            } else {
                format!("[simulation] {name} {args}: step {step}/{steps} done")
            };
            ctx.respond(SlackMessage::ephemeral(text)).await?;
        }
        if steps == 0 {
            tokio::time::sleep(work).await;
        }
        Ok(())
    }

    fn check_params(&self, spec: &crate::spec::CommandSpec) -> Result<(), String> {
        check(&spec.handler.params)
    }
}

fn check(params: &toml::Table) -> Result<(), String> {
    parse_params::<SimulateParams>(params).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_with_their_defaults() {
        assert!(check(&toml::Table::new()).is_ok(), "both keys have defaults");
        let ok: toml::Table = toml::from_str("work = \"3s\"\nanswers = 3").unwrap();
        assert!(check(&ok).is_ok());
        let bad: toml::Table = toml::from_str("work = \"soon\"").unwrap();
        assert!(check(&bad).unwrap_err().contains("not a duration"));
        let unknown: toml::Table = toml::from_str("wrok = \"3s\"").unwrap();
        assert!(check(&unknown).unwrap_err().contains("wrok"));
    }
}
