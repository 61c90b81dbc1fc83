//! Command-line definitions.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "perfpy",
    version,
    about = "Profile Python with Linux perf: check the machine, clean up perf's files.",
    after_help = "EXAMPLES:\n  \
        perfpy doctor                          can perf profile Python here, and how?\n  \
        perfpy doctor --python ~/venv/bin/python\n  \
        perfpy clean                           list maps, dumps and jitted-*.so of dead processes\n  \
        perfpy clean --delete                  and delete them\n\n\
        Switch profiling on in a program with PYTHONPERFSUPPORT=1 (perf map) or\n\
        PYTHON_PERF_JIT_SUPPORT=1 (jitdump), as with CPython 3.12+; the perfpy package\n\
        brings both to CPython 3.8-3.14."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Checks perf, the kernel settings and a Python interpreter; says what to fix.
    ///
    /// Each line is pass, warn or fail, with the fix. Exits 1 when profiling can't work.
    Doctor(DoctorArgs),
    /// Lists (and with --delete removes) perf-<pid>.map, jit-<pid>.dump and
    /// jitted-<pid>-<n>.so files of processes that no longer exist.
    Clean(CleanArgs),
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// The interpreter to check (default: python3 on PATH).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Skip the one-second test recording.
    #[arg(long)]
    pub no_record: bool,
}

#[derive(Args, Debug)]
pub struct CleanArgs {
    /// Delete the files listed (otherwise only list them).
    #[arg(long)]
    pub delete: bool,
    /// Where the files are (perf only looks in /tmp).
    #[arg(long, value_name = "DIR", default_value = "/tmp")]
    pub dir: PathBuf,
    /// Also remove perf's build-id cache entries of those jitted-*.so files
    /// ($HOME/.debug/<dir>/jitted-<pid>-<n>.so).
    #[arg(long)]
    pub build_id_cache: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn clean_defaults_to_listing_tmp() {
        let cli = Cli::parse_from(["perfpy", "clean"]);
        let Command::Clean(a) = cli.command else {
            panic!("not clean")
        };
        assert!(!a.delete && !a.build_id_cache);
        assert_eq!(a.dir, PathBuf::from("/tmp"));
    }
}
