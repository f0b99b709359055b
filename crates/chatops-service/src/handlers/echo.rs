//! `/echo TEXT`: the origin system's latency probe. Two posts, timed separately: first
//! `sync TEXT` (plain), then `async TEXT` with Block Kit (the text, and a context line
//! naming the requester).

use async_trait::async_trait;
use chatops_core::slack::SlackMessage;
use chatops_core::slack::message::{context_block, escape_mrkdwn, section_block};

use crate::handler::{Handler, HandlerContext, HandlerError};

#[derive(Debug)]
pub struct Echo;

#[async_trait]
impl Handler for Echo {
    async fn handle(&self, ctx: &HandlerContext) -> Result<(), HandlerError> {
        let text = ctx.text();
        ctx.respond(SlackMessage::ephemeral(format!("sync {text}"))).await?;
        let user = escape_mrkdwn(ctx.user_id());
        let blocks = vec![
            section_block(&format!("async {}", escape_mrkdwn(text))),
            context_block(&format!("Requested by <@{user}>")),
        ];
        ctx.respond(SlackMessage::ephemeral(format!("async {text}")).with_blocks(blocks)).await
    }
}
