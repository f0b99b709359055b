//! `chatops dlq list | redrive | purge`: the dead-letter queue of a data directory. Works
//! while the bot runs (it opens the queue file without taking the owner's lock).

use std::process::ExitCode;

use std::path::PathBuf;

use anyhow::Context;
use chatops_queue::nats::{NatsQueue, NatsSettings};
use chatops_queue::sqlite::{OpenMode, SqliteQueue, SqliteSettings};
use chatops_queue::{Queue, Redrive};

use crate::cli::{DlqAction, DlqArgs};

/// Opens the queue for administration: without the owner's lock (SQLite) or without
/// touching stream and consumer settings (NATS).
async fn open(args: &DlqArgs) -> anyhow::Result<Box<dyn Queue>> {
    match args.queue.as_deref() {
        Some(url) if url.starts_with("nats://") => {
            let mut settings = NatsSettings::new(NatsSettings::parse_servers(url).map_err(anyhow::Error::msg)?);
            settings.prefix = args.nats_prefix.clone();
            Ok(Box::new(NatsQueue::connect_existing(&settings).await?))
        }
        other => {
            let path = match other {
                Some(url) => PathBuf::from(
                    url.strip_prefix("sqlite://").context("--queue must be sqlite://PATH or nats://HOST:PORT")?,
                ),
                None => args.data_dir.join("queue.db"),
            };
            anyhow::ensure!(path.exists(), "no queue at {} (is --data-dir right?)", path.display());
            let queue = SqliteQueue::open(SqliteSettings::new(&path), OpenMode::Admin)
                .with_context(|| format!("opening {}", path.display()))?;
            Ok(Box::new(queue))
        }
    }
}

pub async fn run(args: DlqArgs) -> anyhow::Result<ExitCode> {
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
