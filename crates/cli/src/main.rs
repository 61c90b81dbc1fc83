//! `perfpy`: profiling Python with Linux perf, without a recipe to remember.
//!
//! One module per subcommand under `commands/`; `main` is the single exit point: it prints
//! an error's whole cause chain on one line and exits 2 (1 is reserved for "the checks found
//! a problem").

use clap::Parser;
use perfpy_cli::{cli, commands};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let result = match args.command {
        cli::Command::Record(a) => commands::record::run(&a),
        cli::Command::Report(a) => commands::report::run(&a),
        cli::Command::Doctor(a) => commands::doctor::run(&a),
        cli::Command::Clean(a) => commands::clean::run(&a),
        cli::Command::Top(a) => commands::top::run(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            perfpy_cli::eline!("perfpy: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes on one line, each cause once: some errors repeat their source's
/// message in their own (`failed to fill whole buffer: failed to fill whole buffer`).
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_that_repeats_its_error_is_said_once() {
        let io = std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "failed to fill whole buffer",
        );
        #[derive(Debug)]
        struct Wraps(std::io::Error);
        impl std::fmt::Display for Wraps {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
        impl std::error::Error for Wraps {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = anyhow::Error::new(Wraps(io)).context("reading perf.data");
        assert_eq!(
            super::one_line(&e),
            "reading perf.data: failed to fill whole buffer"
        );
    }
}
