//! `perfpy record`: one command from "my program is slow" to a profile, in the order it
//! happens:
//!
//! 1. the plan: [`launch`] works out the interpreter the command runs and what it can do
//!    (perfpy importable? built-in support? frame pointers?) and picks the backend and the
//!    call graphs; [`attach`] instead switches names on in running processes;
//! 2. [`perf_record`] runs `perf record` with the flags that takes; Ctrl-C / SIGTERM / SIGHUP
//!    go to perf, which stops the program and still writes the recording;
//! 3. [`collect`] moves the program's perf maps and jitdumps next to the recording
//!    (`<out>.perfpy/`), so /tmp keeps nothing and `perfpy report` finds them;
//! 4. [`summary`] reads the recording and prints the hottest Python functions.

mod attach;
mod collect;
mod launch;
mod perf_record;
mod summary;

use crate::attach::Switched;
use crate::cli::{Mode, RecordArgs};
use crate::lend;
use crate::perf;
use crate::plan::{CallGraph, Plan};
use crate::recording;
use crate::report::output::{self, Format};
use crate::report::{NativeView, Profile};
use crate::roster::Roster;
use crate::say;
use anyhow::{Context, Result};
use clap::ValueEnum;
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::process::{Command, ExitCode};

/// What `record` will do: perf's command line, and what to tell the user about it.
struct Setup {
    cmd: Command,
    /// `None` when attaching to a running process (its switches were set when it started).
    plan: Option<Plan>,
    call_graph: CallGraph,
    reasons: Vec<String>,
    /// The start-up hook lending perfpy to the program, removed after the recording.
    hook: Option<lend::HookDir>,
    /// Names switched on in running processes, to switch off after the recording.
    switched: Vec<Switched>,
}

pub fn run(args: &RecordArgs) -> Result<ExitCode> {
    if let (Some(event), false) = (&args.event, args.mode == Mode::Cpu) {
        anyhow::bail!(
            "--event {event} can't be given with --mode {}: that mode records its own events \
             (CPU-clock samples and context switches); use --mode cpu to sample {event}",
            args.mode
                .to_possible_value()
                .map(|v| v.get_name().to_string())
                .unwrap_or_default()
        );
    }
    if args.mode != Mode::Cpu {
        switch_samples_allowed()?;
    }
    let perf = perf::locate().context(
        "perf is not on PATH; install it (Debian: apt-get install linux-perf; Ubuntu: \
         linux-tools-$(uname -r); Fedora: perf), then check with `perfpy doctor`",
    )?;
    let perf_version = perf::version_text(&perf)
        .ok()
        .and_then(|t| perf::Version::parse(&t));
    let writing = perf_record::writing(args, &perf);
    let roster = if args.pid.is_empty() && !args.keep_jit_files {
        Some(Roster::create()?)
    } else {
        None
    };
    let setup = if args.pid.is_empty() {
        launch::launch(args, &perf, perf_version, &writing, roster.as_ref())?
    } else {
        attach::attach(args, &perf, &args.pid, &writing)?
    };
    summary::announce(args, &setup, &writing);
    let status = perf_record::run(setup.cmd, &perf, &args.output);
    drop(setup.hook);
    // Names switched on in running processes go off now (perf has stopped, so nothing they
    // announce later is in the recording), except perfpy's own, which go off once collected:
    // switching off, perfpy's trampoline closes and removes its files there.
    let (after, now): (Vec<Switched>, Vec<Switched>) = setup
        .switched
        .into_iter()
        .partition(|s| s.releases() && !args.keep_jit_files);
    for s in now {
        s.off(false);
    }
    let progress = std::io::stderr().is_terminal();
    // The program's files are collected even when perf wrote no recording or it can't be
    // read: nothing of the program stays in /tmp either way.
    let mut loaded = match &status {
        Ok(_) => recording::load(&args.output, &[], None, progress),
        Err(_) => Err(anyhow::anyhow!("no recording")),
    };
    let program = |loaded: &Result<Profile>| -> BTreeSet<i32> {
        // The attached processes count even when the recording can't be read.
        let mut enrolled = roster.as_ref().map(Roster::pids).unwrap_or_default();
        enrolled.extend(args.pid.iter().map(|&p| p as i32));
        match loaded {
            Ok(profile) => profile.pids.union(&enrolled).copied().collect(),
            Err(_) => enrolled,
        }
    };
    if status.is_ok() && args.pid.is_empty() && collect::wait_for_the_rest(&program(&loaded)) {
        // Their names are complete now (an interpreter may buffer its jitdump until exit).
        loaded = recording::load(&args.output, &[], None, progress);
    }
    let kept = if args.keep_jit_files {
        Ok(())
    } else {
        let pids: Vec<i32> = program(&loaded).into_iter().collect();
        collect::keep_names(&pids, &args.output)
    };
    for s in after {
        s.off(true);
    }
    kept?;
    drop(roster);
    let status = status?;
    let profile = loaded?;
    let profile = profile.with_view(NativeView::Leaf);
    recording::warn_about(&profile);
    summary::summary(&profile, args.top, &args.output);
    if let Some(svg) = &args.flamegraph {
        if profile.samples.is_empty() {
            say::note("no samples, so no flamegraph");
        } else {
            output::save(&profile, Format::Flamegraph, Some(svg.clone()), args.top)?;
        }
    }
    Ok(match status.code() {
        Some(0) | None => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(c.clamp(1, 255) as u8),
    })
}

/// Whether perf may sample this user's context switches: they happen in the kernel, so a
/// user-only event (what perf falls back to above `perf_event_paranoid` 1) never fires, and
/// every wait would be timed without the stack that says where the program waited.
fn switch_samples_allowed() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    match paranoid {
        Some(p) if p > 1 => anyhow::bail!(
            "--mode wall and --mode off-cpu sample each context switch, which perf allows \
             only as root or with kernel.perf_event_paranoid at 1 or below (it is {p} here): \
             without it, every wait would be timed but have no stack. Run perfpy as root \
             (sudo), or `sudo sysctl kernel.perf_event_paranoid=1` (the kernel's frames then \
             say why each wait was, too), or profile the CPU alone with --mode cpu"
        ),
        _ => Ok(()),
    }
}
