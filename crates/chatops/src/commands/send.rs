//! `chatops send /cmd text`: one slash command, signed like Slack signs it, with a local
//! receiver standing in for Slack's `response_url`. Prints the ack and each response with
//! its time since the request was sent.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chatops_core::SlashCommand;
use chatops_core::slack::SlackSigner;
use chatops_core::slack::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use chatops_loadtest::receiver::{self, HookSink};
use tokio::sync::mpsc;

use crate::cli::SendArgs;
use crate::commands::options;

/// Forwards every post the receiver gets to the printing loop.
struct Forward(mpsc::UnboundedSender<(Instant, Vec<u8>)>);

impl HookSink for Forward {
    fn on_post(&self, _id: &str, at: Instant, body: &[u8]) -> bool {
        self.0.send((at, body.to_vec())).is_ok()
    }
}

pub(crate) async fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        chatops_core::slack::command::is_valid_command_name(&args.command),
        "`{}` is not a slash command (it must look like /echo)",
        args.command
    );
    let secret = options::client_signing_secret(args.secret_file.as_deref(), args.secret.as_deref())?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind(args.receiver)
        .await
        .with_context(|| format!("binding the response receiver on {}", args.receiver))?;
    // The load generator's receiver, which plays Slack's response_url.
    let receiver = receiver::serve(listener, Arc::new(Forward(tx))).context("starting the response receiver")?;
    let receiver_addr = receiver.addr;

    let request_id = chatops_core::CorrelationId::generate();
    let command = SlashCommand {
        command: args.command.clone(),
        text: args.text.join(" "),
        response_url: format!("http://{receiver_addr}/hook/{request_id}"),
        team_id: "T0LOCAL".into(),
        team_domain: "local".into(),
        channel_id: "C0LOCAL".into(),
        channel_name: "local".into(),
        user_id: args.user_id.clone(),
        user_name: "local-user".into(),
        trigger_id: format!("local.{request_id}"),
        api_app_id: "A0LOCAL".into(),
        ..Default::default()
    };
    let body = command.to_form();
    let timestamp = chatops_core::time::now_unix_secs().to_string();
    let signature = SlackSigner::new(secret.as_bytes()).sign(&timestamp, body.as_bytes());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    println!("→ {} {} (correlation id {request_id})", args.command, command.text);
    let sent = Instant::now();
    let resp = client
        .post(&args.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(TIMESTAMP_HEADER, &timestamp)
        .header(SIGNATURE_HEADER, &signature)
        .header("x-request-id", request_id.as_str())
        .body(body)
        .send()
        .await
        .with_context(|| format!("posting to {}", args.url))?;
    let status = resp.status();
    let ack = resp.text().await.unwrap_or_default();
    println!("← ack {} in {:.1} ms: {ack}", status.as_u16(), ms(sent.elapsed()));
    if !status.is_success() {
        return Ok(ExitCode::from(1));
    }
    let deadline = tokio::time::Instant::now() + args.wait;
    let mut n = 0usize;
    while args.expect.is_none_or(|want| n < want) {
        let Ok(Some((at, body))) = tokio::time::timeout_at(deadline, rx.recv()).await else { break };
        n += 1;
        let shown = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        println!("← response {n} at {:.1} ms: {shown}", ms(at - sent));
    }
    if n == 0 {
        println!(
            "No response within {:?}. Is the bot allowed to post to {} (serve --allow-response-host {})?",
            args.wait,
            receiver_addr,
            receiver_addr.ip()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
