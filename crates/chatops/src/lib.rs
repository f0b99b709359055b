//! The `chatops` command line: wires the library crates into subcommands. Anything with
//! logic of its own lives in a library crate; this crate parses flags, builds settings,
//! starts runtimes and maps outcomes to exit codes.
//!
//! It is also the way to build a bot of your own: register commands on an [`App`] and hand
//! it to [`run`], and your binary has every subcommand of `chatops` (serve, router, worker,
//! dlq, loadtest, ...) with the same flags, with your commands registered:
//!
//! ```no_run
//! use chatops::{App, SlackMessage};
//!
//! fn main() -> std::process::ExitCode {
//!     chatops::run(
//!         App::builder()
//!             .command("/greet", |ctx| async move { ctx.respond(SlackMessage::ephemeral("hello")).await })
//!             .build(),
//!     )
//! }
//! ```
//!
//! See `examples/custom_command.rs` and the README's "Writing a command".

pub mod cli;
mod commands;

use std::process::ExitCode;

pub use async_trait::async_trait;
pub use chatops_core::Quadrant;
pub use chatops_core::slack::SlackMessage;
pub use chatops_service::app::{App, AppBuilder, CommandOptions};
pub use chatops_service::handler::{BotView, Handler, HandlerContext, HandlerError, handler_fn};
pub use chatops_service::startup::Roles;
pub use chatops_service::{Settings, config::Overrides};
use clap::Parser;
use cli::{Cli, Command};

/// The whole command line for `app`: parses the arguments, runs the subcommand on a tokio
/// runtime and maps the result to an exit code (0 success, 1 "found problems" such as a
/// failed threshold, 2 "could not run").
pub fn run(app: App) -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run_cli(&app, cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs one parsed subcommand. `Err` means "could not run" (exit 2); a subcommand that ran
/// and found problems (a failed threshold, a regression) returns exit code 1 itself.
pub async fn run_cli(app: &App, cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => commands::serve::serve(app, args).await,
        Command::Router(args) => commands::serve::router(app, args).await,
        Command::Worker(args) => commands::serve::worker(app, args).await,
        Command::Nats(args) => commands::nats::run(app, args).await,
        Command::Sign(args) => commands::sign::run(args),
        Command::Send(args) => commands::send::run(args).await,
        Command::Dlq(args) => commands::dlq::run(args).await,
        Command::Audit(args) => commands::audit::run(args).await,
        Command::Loadtest(args) => commands::loadtest::run(app, args).await,
        Command::MockSlack(args) => {
            chatops_loadtest::run_mock_slack(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Analyze(args) => Ok(ExitCode::from(chatops_analyze::run_analyze(&args)?.exit_code())),
        Command::Compare(args) => Ok(ExitCode::from(chatops_analyze::run_compare(&args)?.exit_code())),
        Command::Report(args) => {
            let outcome = chatops_report::run_report(&args)?;
            println!("report: {}", outcome.html_path.display());
            if let Some(png) = &outcome.png_path {
                println!("png:    {}", png.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
