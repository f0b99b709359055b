//! `chatops nats setup`: creates or updates the JetStream streams and consumers for this
//! configuration and explains what the broker's durability setting survives.

use std::process::ExitCode;

use chatops_queue::engine;
use chatops_service::startup::engine_settings;

use crate::cli::{NatsAction, NatsArgs};

const DURABILITY_NOTE: &str = "\
Durability: JetStream acknowledges a publish (and the router then answers Slack) once the
message is in the server's memory and written to its store files, but the files are fsynced
only every `sync_interval` (2 minutes by default). That survives a crash of the nats-server
process (the OS still has the data), not a power loss or kernel crash of its machine.
Recommended: a 3-node cluster with `--replicas 3` (queue.replicas = 3): a publish is then
acknowledged only when a quorum has it, which survives the loss of one machine; or, on a
single server, `jetstream { sync_interval: always }` in nats-server.conf, which fsyncs
every write (slower, like chatops' SQLite durability = full).";

pub(crate) async fn run(app: &chatops_service::App, args: NatsArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        NatsAction::Setup(bot) => {
            let settings = crate::commands::serve::settings(app, &bot, None, None)?;
            for line in engine::setup_nats(&engine_settings(&settings)).await? {
                println!("{line}");
            }
            println!();
            println!("{DURABILITY_NOTE}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
