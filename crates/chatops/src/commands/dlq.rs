//! `chatops dlq list | redrive | purge`: the dead-letter queue of the bot's queue, named by
//! the same options (and `--config` file) as `serve`. Works while the bot runs (it opens the
//! queue file without taking the owner's lock, or NATS without changing its streams).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chatops_queue::engine::{self, OpenMode};
use chatops_queue::{Queue, Redrive};
use chatops_service::config::Overrides;
use chatops_service::startup::engine_settings;

use crate::cli::{DlqAction, DlqArgs};
use crate::commands::options;

/// Opens the queue the bot's options name, for administration: without the owner's lock
/// (SQLite) or without touching stream and consumer settings (NATS).
async fn open(args: &DlqArgs) -> anyhow::Result<Arc<dyn Queue>> {
    let settings = options::load_settings(&args.queue, Overrides::default())?;
    let engine = engine_settings(&settings);
    let opened = engine::open(&engine, OpenMode::ADMIN).await.with_context(|| format!("opening the queue {engine}"))?;
    Ok(opened.queue)
}

pub(crate) async fn run(args: DlqArgs) -> anyhow::Result<ExitCode> {
    let queue = open(&args).await?;
    match args.action {
        DlqAction::List { limit, json } => {
            let dead = queue.dlq_list(limit).await?;
            if json {
                for d in &dead {
                    let line = serde_json::json!({
                        "id": d.id,
                        "jobId": d.job.job_id,
                        "correlationId": d.job.correlation_id,
                        "command": d.job.command.command,
                        "quadrant": d.job.quadrant,
                        "attempts": d.attempts,
                        "lastError": d.last_error,
                        "failedAtMs": d.failed_at_ms,
                    });
                    println!("{line}");
                }
            } else if dead.is_empty() {
                println!("The dead-letter queue is empty.");
            } else {
                println!(
                    "{:<8} {:<16} {:<12} {:>8}  {:<24} LAST ERROR",
                    "ID", "COMMAND", "QUADRANT", "ATTEMPTS", "FAILED AT"
                );
                for d in &dead {
                    println!(
                        "{:<8} {:<16} {:<12} {:>8}  {:<24} {}",
                        d.id,
                        d.job.command.command,
                        d.job.quadrant.as_str(),
                        d.attempts,
                        chatops_core::time::format_rfc3339_ms(d.failed_at_ms),
                        d.last_error
                    );
                }
            }
        }
        DlqAction::Redrive { id, all } => {
            let which = match (id, all) {
                (Some(id), false) => Redrive::One(id),
                _ => Redrive::All,
            };
            let n = queue.dlq_redrive(which).await?;
            println!("Redrove {n} job(s); running workers pick them up within a second.");
        }
        DlqAction::Purge { yes } => {
            anyhow::ensure!(yes, "purge deletes every dead letter for good; add --yes to confirm");
            let n = queue.dlq_purge().await?;
            println!("Purged {n} dead letter(s).");
        }
    }
    Ok(ExitCode::SUCCESS)
}
