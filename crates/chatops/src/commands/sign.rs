//! `chatops sign`: prints `v0=<hex>` for a body, then the headers to send with it.

use std::process::ExitCode;

use chatops_core::slack::SlackSigner;
use chatops_core::slack::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER};

use crate::cli::SignArgs;
use crate::commands::options;

pub(crate) fn run(args: SignArgs) -> anyhow::Result<ExitCode> {
    let secret = options::client_signing_secret(args.secret_file.as_deref(), args.secret.as_deref())?;
    let timestamp = args.timestamp.unwrap_or_else(chatops_core::time::now_unix_secs).to_string();
    let signature = SlackSigner::new(secret.as_bytes()).sign(&timestamp, args.body.as_bytes());
    println!("{signature}");
    println!("{TIMESTAMP_HEADER}: {timestamp}");
    println!("{SIGNATURE_HEADER}: {signature}");
    Ok(ExitCode::SUCCESS)
}
