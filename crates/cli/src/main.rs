//! `perfpy`: profiling Python with Linux perf, without a recipe to remember.
//!
//! One module per subcommand under `commands/`; `main` is the single exit point: it prints
//! an error's whole cause chain on one line and exits 2 (1 is reserved for "the checks found
//! a problem").

mod cli;
mod commands;
mod dormant;
mod lend;
mod perf;
mod plan;
mod procfs;
mod python;
mod recording;
mod remote;
mod report;
mod switch;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let result = match args.command {
        cli::Command::Record(a) => commands::record::run(&a),
        cli::Command::Report(a) => commands::report::run(&a),
        cli::Command::Doctor(a) => commands::doctor::run(&a),
        cli::Command::Clean(a) => commands::clean::run(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            eprintln!("perfpy: {e:#}");
            ExitCode::from(2)
        }
    }
}
