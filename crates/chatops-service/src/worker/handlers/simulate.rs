//! `simulate`: stands in for a real action (deploy, build, report) until one exists, so every
//! quadrant can be exercised and load-tested. It spreads `answers` posts over `work`, and
//! every message says it is a simulation.

use async_trait::async_trait;
use chatops_core::slack::SlackMessage;
use chatops_core::slack::message::escape_mrkdwn;

use super::{Handler, HandlerContext, HandlerError};
use crate::registry::HandlerSpec;

#[derive(Debug)]
pub struct Simulate;

#[async_trait]
impl Handler for Simulate {
    async fn handle(&self, ctx: &HandlerContext) -> Result<(), HandlerError> {
        let HandlerSpec::Simulate { work, answers } = ctx.spec.handler else {
            return Err(HandlerError::Failed(format!("{} is not configured as a simulation", ctx.spec.name)));
        };
        let name = &ctx.spec.name;
        let args = escape_mrkdwn(ctx.text());
        let approval = if ctx.spec.requires_approval { " Approval required: simulated as granted." } else { "" };
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
}
