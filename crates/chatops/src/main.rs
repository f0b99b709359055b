//! The `chatops` binary: parse the command line, run the subcommand, map the result to an
//! exit code (0 success, 1 "found problems" such as a failed threshold, 2 "could not run").

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = chatops::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(chatops::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
