//! A bot of your own: every subcommand of `chatops` (serve, router, worker, dlq, loadtest,
//! ...) with the same flags, plus a `/greet` command whose greeting comes from the config.
//!
//! ```sh
//! printf '[[commands]]\nname = "/greet"\nparams = { greeting = "Howdy" }\n' > greet.toml
//! SLACK_SIGNING_SECRET=... cargo run --example custom_command -- serve --config greet.toml
//! ```
//!
//! `/greet` needs no config entry (it runs in the short-read quadrant, with the default
//! greeting); the entry above only sets its parameter. The test
//! `tests/it/custom_command.rs` runs this file's [`app`] end to end.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failed unwrap is the failure report

use chatops::{App, SlackMessage};
use serde::Deserialize;

/// `/greet`'s parameters: its `params` table in the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GreetParams {
    #[serde(default = "GreetParams::default_greeting")]
    pub greeting: String,
}

impl GreetParams {
    fn default_greeting() -> String {
        "Hello".to_owned()
    }
}

/// The built-in commands plus `/greet`.
pub fn app() -> App {
    App::builder()
        .command("/greet", |ctx| async move {
            let params: GreetParams = ctx.params()?;
            ctx.respond(SlackMessage::ephemeral(format!("{}, <@{}>!", params.greeting, ctx.user_id()))).await
        })
        .build()
}

fn main() -> std::process::ExitCode {
    chatops::run(app())
}
