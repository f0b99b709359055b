//! `chatops audit list | export`: the audit trail of the bot's queue, named by the same
//! options (and `--config` file) as `serve`, readable while the bot runs.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use chatops_queue::audit::{AuditFilter, AuditRecord};
use chatops_queue::engine::{self, OpenMode};
use chatops_service::config::Overrides;
use chatops_service::startup::engine_settings;

use crate::cli::{AuditAction, AuditArgs, AuditFilterArgs};
use crate::commands::options;

fn filter(args: &AuditFilterArgs, limit: Option<usize>) -> AuditFilter {
    let now_ms = chatops_core::time::now_unix_ms();
    AuditFilter {
        since_ms: args.since.map(|d| now_ms - d.as_millis() as i64),
        user_id: args.user.clone(),
        command: args.command.clone(),
        limit,
    }
}

pub(crate) async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let settings = options::load_settings(&args.queue, Overrides::default())?;
    let engine = engine_settings(&settings);
    let opened = engine::open(&engine, OpenMode::ADMIN).await.with_context(|| format!("opening the queue {engine}"))?;
    let mut out = std::io::stdout().lock();
    match args.action {
        AuditAction::List { filter: f, limit, json } => {
            let records = opened.audit.audit_list(&filter(&f, Some(limit))).await?;
            if json {
                for r in &records {
                    writeln!(out, "{}", serde_json::to_string(r)?)?;
                }
            } else if records.is_empty() {
                writeln!(out, "No audit records match.")?;
            } else {
                write_table(&mut out, &records)?;
            }
        }
        AuditAction::Export { filter: f } => {
            for r in opened.audit.audit_list(&filter(&f, None)).await? {
                writeln!(out, "{}", serde_json::to_string(&r)?)?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn write_table(out: &mut impl Write, records: &[AuditRecord]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<24} {:<12} {:<12} {:<14} {:<30} {:<18} {:<14} {:>9}  APPROVED BY",
        "RECEIVED", "USER", "CHANNEL", "COMMAND", "ARGUMENTS", "DECISION", "OUTCOME", "DURATION"
    )?;
    for r in records {
        let args: Vec<String> = r.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = args.join(" ");
        if args.chars().count() > 30 {
            args = args.chars().take(29).collect::<String>() + "…";
        }
        let decision = match &r.refused_by {
            Some(rule) => format!("refused ({rule})"),
            None => r.decision.clone(),
        };
        let duration = r.duration_ms.map_or_else(|| "-".to_owned(), |ms| format!("{:.1}s", ms / 1000.0));
        let approvers: Vec<&str> = r.approvals.iter().filter(|v| v.approve).map(|v| v.user_id.as_str()).collect();
        writeln!(
            out,
            "{:<24} {:<12} {:<12} {:<14} {:<30} {:<18} {:<14} {:>9}  {}",
            chatops_core::time::format_rfc3339_ms(r.received_ms),
            r.user_id,
            r.channel_id,
            r.command,
            args,
            decision,
            r.outcome,
            duration,
            approvers.join(",")
        )?;
    }
    Ok(())
}
