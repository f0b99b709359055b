//! `/check-status` (and `/status`, `/health`): the bot's own state, measured, not assumed:
//! uptime, queue depth and in-flight per quadrant, dead letters, and the E2E p50/p95/p99 of
//! the last five minutes.

use async_trait::async_trait;
use chatops_core::Quadrant;
use chatops_core::slack::SlackMessage;
use chatops_core::slack::message::section_block;
use chatops_core::time::now_unix_secs;

use super::{Handler, HandlerContext, HandlerError};

#[derive(Debug)]
pub struct CheckStatus;

#[async_trait]
impl Handler for CheckStatus {
    async fn handle(&self, ctx: &HandlerContext) -> Result<(), HandlerError> {
        let uptime = humantime::format_duration(std::time::Duration::from_secs(ctx.bot.started.elapsed().as_secs()));
        let mut lines = vec![format!("*chatops {}* · up {uptime}", env!("CARGO_PKG_VERSION"))];
        match ctx.bot.queue.stats().await {
            Ok(stats) => {
                for q in Quadrant::ALL {
                    let s = stats.quadrant(q);
                    lines.push(format!("• `{q}`: {} waiting, {} running", s.ready, s.in_flight));
                }
                lines.push(format!("• dead letters: {}", stats.dead_letters));
            }
            Err(e) => lines.push(format!("• queue: unavailable ({e})")),
        }
        let e2e = ctx.bot.e2e.summary(now_unix_secs());
        if e2e.count == 0 {
            lines.push("• E2E (last 5 min): no commands yet".to_owned());
        } else {
            lines.push(format!(
                "• E2E (last 5 min, {} jobs): p50 {:.1} ms · p95 {:.1} ms · p99 {:.1} ms",
                e2e.count, e2e.p50, e2e.p95, e2e.p99
            ));
        }
        let text = lines.join("\n");
        ctx.respond(SlackMessage::ephemeral(text.clone()).with_blocks(vec![section_block(&text)])).await
    }
}
