//! `/check-status` (and `/status`, `/health`): the bot's own state, measured, not assumed:
//! uptime, queue depth and in-flight per quadrant, dead letters, and the E2E p50/p95/p99 of
//! the last five minutes. A queue error is logged in full and shown to Slack only as a
//! generic line with the correlation id: its text names file paths and broker addresses,
//! which do not belong in a channel.

use async_trait::async_trait;
use chatops_core::slack::SlackMessage;
use chatops_core::slack::message::section_block;
use chatops_core::time::now_unix_secs;
use chatops_core::{CorrelationId, Quadrant};
use chatops_queue::{QueueError, QueueStats};

use crate::handler::{Handler, HandlerContext, HandlerError};

#[derive(Debug)]
pub struct CheckStatus;

#[async_trait]
impl Handler for CheckStatus {
    async fn handle(&self, ctx: &HandlerContext) -> Result<(), HandlerError> {
        let uptime = humantime::format_duration(std::time::Duration::from_secs(ctx.bot.uptime().as_secs()));
        let mut lines = vec![format!("*chatops {}* · up {uptime}", env!("CARGO_PKG_VERSION"))];
        let stats = ctx.bot.queue_stats().await;
        if let Err(e) = &stats {
            tracing::warn!(
                correlationId = %ctx.job.correlation_id,
                error = %e,
                "/check-status could not read the queue statistics"
            );
        }
        lines.extend(queue_lines(&stats, &ctx.job.correlation_id));
        let e2e = ctx.bot.e2e_summary(now_unix_secs());
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

/// The queue part of the status message. An error becomes a generic line: the detail is in
/// the log, findable by the correlation id the user sees.
fn queue_lines(stats: &Result<QueueStats, QueueError>, correlation_id: &CorrelationId) -> Vec<String> {
    match stats {
        Ok(stats) => {
            let mut lines: Vec<String> = Quadrant::ALL
                .iter()
                .map(|&q| {
                    let s = stats.quadrant(q);
                    format!("• `{q}`: {} waiting, {} running", s.ready, s.in_flight)
                })
                .collect();
            lines.push(format!("• dead letters: {}", stats.dead_letters));
            lines
        }
        Err(_) => vec![format!(
            "• queue: unavailable right now (details are in the bot's log under correlation id `{correlation_id}`)"
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_error_reaches_slack_without_its_detail() {
        let id = CorrelationId::generate();
        let errors = [
            QueueError::Unavailable("connecting to NATS at nats://10.20.30.40:4222: timed out".into()),
            QueueError::Storage("disk I/O error on /srv/chatops/data/queue.db".into()),
        ];
        for e in errors {
            let detail = e.to_string();
            let text = queue_lines(&Err(e), &id).join("\n");
            assert!(!text.contains("10.20.30.40") && !text.contains("/srv/chatops"), "{text}");
            assert!(!text.contains(&detail), "{text}");
            assert!(text.contains("unavailable") && text.contains(id.as_str()), "{text}");
        }
    }

    #[test]
    fn statistics_are_listed_per_quadrant() {
        let mut stats = QueueStats { dead_letters: 2, ..Default::default() };
        stats.quadrants[0].ready = 7;
        let text = queue_lines(&Ok(stats), &CorrelationId::generate()).join("\n");
        assert!(text.contains("`short-read`: 7 waiting") && text.contains("dead letters: 2"), "{text}");
    }
}
