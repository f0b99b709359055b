//! Run with `cargo run --release -p chatops-loadtest --example loadtest -- --profile smoke --target URL --signing-secret S`.
//!
//! The load generator alone, with the same arguments as `chatops loadtest` (without
//! `--spawn`), so it can be benchmarked before and apart from the `chatops` binary. Exit
//! codes: 0 thresholds hold, 1 a threshold failed, 2 profile or argument error.
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failed unwrap is the failure report

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "loadtest")]
struct Cli {
    #[command(flatten)]
    args: chatops_loadtest::LoadtestArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = std::env::var("LOADTEST_THREADS").ok().and_then(|t| t.parse().ok());
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n);
    }
    let rt = builder.enable_all().build().expect("a tokio runtime can be built");
    let args = cli.args;
    if args.list_profiles {
        print!("{}", chatops_loadtest::list_profiles());
        return ExitCode::SUCCESS;
    }
    let run = rt.block_on(async { chatops_loadtest::Plan::from_args(&args, None)?.run().await });
    match run.and_then(|run| run.write().map(|json| (run, json))) {
        Ok((run, json)) => {
            eprint!("{}", chatops_loadtest::console::end_of_run(&run, args.quiet));
            if args.json {
                println!("{json}");
            }
            ExitCode::from(run.exit_code())
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
}
