//! The `chatops` command line: wires the library crates into subcommands. Anything with
//! logic of its own lives in a library crate; this crate parses flags, builds settings,
//! starts runtimes and maps outcomes to exit codes.

pub mod cli;
mod commands;

use std::process::ExitCode;

use cli::{Cli, Command};

/// Runs one subcommand. `Err` means "could not run" (exit 2); a subcommand that ran and
/// found problems (a failed threshold, a regression) returns exit code 1 itself.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => commands::serve::serve(args).await,
        Command::Router(args) => commands::serve::router(args).await,
        Command::Worker(args) => commands::serve::worker(args).await,
        Command::Nats(args) => commands::nats::run(args).await,
        Command::Sign(args) => commands::sign::run(args),
        Command::Send(args) => commands::send::run(args).await,
        Command::Dlq(args) => commands::dlq::run(args).await,
        Command::Loadtest(args) => commands::loadtest::run(args).await,
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
