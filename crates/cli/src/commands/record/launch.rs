//! Launching the program: which interpreter it runs and what that interpreter can do, the
//! plan ([`crate::plan`]), and perf's command with the plan's switch in the program's
//! environment (and, where perfpy must be lent, the start-up hook directory on its
//! `PYTHONPATH`).

use super::Roster;
use super::Setup;
use crate::cli::RecordArgs;
use crate::lend::{self, Lend};
use crate::perf;
use crate::plan::{self, Trampoline};
use crate::python;
use crate::sampling::{self, Writing};
use crate::say;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// perf running the command, with the plan's switch in its environment.
pub(super) fn launch(
    args: &RecordArgs,
    perf: &Path,
    perf_version: Option<perf::Version>,
    writing: &Writing,
    roster: Option<&Roster>,
) -> Result<Setup> {
    let program = PathBuf::from(&args.command[0]);
    let interpreter = match &args.python {
        Some(p) => p.clone(),
        None => python::interpreter_of(&program).with_context(|| {
            format!(
                "can't tell which Python {} runs (not a python executable, no python \
                 shebang); pass --python PATH",
                program.display()
            )
        })?,
    };
    let facts = python::probe(&interpreter).map_err(anyhow::Error::msg)?;
    let fp = python::frame_pointers(&facts);
    let lend = lend::lend_to(&facts);
    let asked = plan::Asked {
        backend: args.backend,
        trampoline: args.trampoline,
        call_graph: args.call_graph,
    };
    let p = plan::plan(asked, &facts, &lend, &fp, perf_version).map_err(anyhow::Error::msg)?;
    for w in &p.warnings {
        say::warn(w);
    }
    let mut reasons = p.reasons.clone();
    let mut cmd = Command::new(perf);
    cmd.args(sampling::args(
        &super::sampling(args, perf, p.call_graph, &mut reasons),
        p.call_graph,
        writing,
        args.output.as_os_str(),
    ))
    .arg("--")
    .args(&args.wrapper)
    .args(&args.command);
    for var in plan::SWITCHES {
        cmd.env_remove(var);
    }
    let (k, v) = p.env();
    cmd.env(k, v);
    cmd.env_remove(Roster::VAR);
    if let Some(r) = roster {
        cmd.env(Roster::VAR, r.path());
    }
    let hook = match (p.trampoline, &lend) {
        (Trampoline::PerfpyLent, Lend::Yes(package)) => {
            let skipped = lend::options_skipping_the_hook(&args.command[1..]);
            let runs_python = program
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("python"));
            if runs_python && !skipped.is_empty() {
                let opts: Vec<String> = skipped.iter().map(|c| format!("-{c}")).collect();
                bail!(
                    "{} starts the interpreter with {}, so it would skip the start-up hook \
                     perfpy lends it perfpy through (-E and -I ignore PYTHONPATH, -S skips \
                     sitecustomize): drop {}, or install perfpy into {} ({} -m pip install \
                     perfpy)",
                    program.display(),
                    opts.join(" "),
                    if opts.len() == 1 { "it" } else { "them" },
                    facts.executable,
                    facts.executable
                );
            }
            let dir = lend::HookDir::create(package).with_context(|| {
                format!(
                    "cannot make the start-up hook directory in {}",
                    std::env::temp_dir().display()
                )
            })?;
            cmd.env("PYTHONPATH", dir.pythonpath(std::env::var_os("PYTHONPATH")));
            Some(dir)
        }
        _ => None,
    };
    Ok(Setup {
        cmd,
        call_graph: p.call_graph,
        reasons,
        plan: Some(p),
        hook,
        session: None,
    })
}
