//! `/help`: lists the registry, so the answer is always what the bot really runs.

use async_trait::async_trait;
use chatops_core::slack::SlackMessage;
use chatops_core::slack::message::section_block;

use crate::handler::{Handler, HandlerContext, HandlerError};

#[derive(Debug)]
pub struct Help;

#[async_trait]
impl Handler for Help {
    async fn handle(&self, ctx: &HandlerContext) -> Result<(), HandlerError> {
        let mut lines = vec!["*Available commands*".to_owned()];
        for spec in ctx.bot.commands() {
            let usage = spec.usage.as_deref().unwrap_or(&spec.name);
            let approval = if spec.requires_approval() { " · needs approval" } else { "" };
            lines.push(format!("• `{usage}`: {} _({}{approval})_", spec.description, spec.quadrant));
        }
        let text = lines.join("\n");
        ctx.respond(SlackMessage::ephemeral(text.clone()).with_blocks(vec![section_block(&text)])).await
    }
}
