//! `perfpy record`: one command from "my program is slow" to a profile, in the order it
//! happens:
//!
//! 1. the plan: [`launch`] works out the interpreter the command runs and what it can do
//!    (perfpy importable? built-in support? frame pointers?) and picks the backend and the
//!    call graphs; [`attach`] instead switches names on in running processes (`--pid`, or
//!    every Python process on the machine with `-a`), and watches for new ones meanwhile;
//! 2. [`perf_record`] runs `perf record` with the flags that takes; Ctrl-C / SIGTERM / SIGHUP
//!    go to perf, which stops the program and still writes the recording;
//! 3. [`collect`] moves the program's perf maps and jitdumps next to the recording
//!    (`<out>.perfpy/`), so /tmp keeps nothing and `perfpy report` finds them (of running
//!    programs whose names were on before perfpy came, it copies them); names switched on in
//!    running processes are switched off;
//! 4. [`summary`] reads the recording and prints the hottest Python functions.

mod attach;
mod collect;
mod launch;
mod perf_record;
mod summary;

use crate::attach::session::Session;
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
pub(crate) struct Setup {
    pub cmd: Command,
    /// `None` when attaching to a running process (its switches were set when it started).
    pub plan: Option<Plan>,
    pub call_graph: CallGraph,
    pub reasons: Vec<String>,
    /// The start-up hook lending perfpy to the program, removed after the recording.
    pub hook: Option<lend::HookDir>,
    /// Running processes recorded, with the names switched on in them, to switch off after.
    pub session: Option<Session>,
}

/// Steps 1 of `record` for another command that runs perf the same way (`perfpy top`): the
/// program launched with names on, or names switched on in running processes, and perf's
/// command line.
pub(crate) fn prepare(
    args: &RecordArgs,
    perf: &std::path::Path,
    writing: &crate::sampling::Writing,
    roster: Option<&Roster>,
) -> Result<Setup> {
    if args.attaching() {
        attach::attach(args, perf, writing)
    } else {
        let version = perf::version_text(perf)
            .ok()
            .and_then(|t| perf::Version::parse(&t));
        launch::launch(args, perf, version, writing, roster)
    }
}

/// What perf at `perf` samples, as `args` ask, with `call_graph`; what it can't that the
/// user should know, in `reasons`.
fn sampling(
    args: &RecordArgs,
    perf: &std::path::Path,
    call_graph: CallGraph,
    reasons: &mut Vec<String>,
) -> crate::sampling::Sampling {
    let waits = args.mode != Mode::Cpu && call_graph == CallGraph::FramePointers;
    let syscall_regs = waits && crate::sampling::samples_syscall_regs(perf);
    if waits && !syscall_regs {
        reasons.push(
            "the waits' reasons from function names only: this perf can't sample the registers \
             of a system call's arguments with frame-pointer call graphs (--user-regs), so a \
             select() of no descriptor (time.sleep on CPython 3.8-3.10) may show as the \
             network; --call-graph dwarf samples them"
                .to_string(),
        );
    }
    crate::sampling::Sampling {
        mode: args.mode,
        frequency: args.frequency,
        event: args.event.clone(),
        streaming: args.streaming,
        system_wide: args.all,
        syscall_regs,
    }
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
    let writing = crate::sampling::writing(
        args.no_compress,
        args.keep_jit_files,
        args.stack_size,
        &perf,
    );
    // From here on, Ctrl-C, SIGTERM and SIGHUP stop the recording, never perfpy before it
    // has switched off what it switched on.
    let _signals = crate::signals::Guard::install();
    let roster = if !args.attaching() && !args.keep_jit_files {
        Some(Roster::create()?)
    } else {
        None
    };
    let mut setup = if args.attaching() {
        attach::attach(args, &perf, &writing)?
    } else {
        launch::launch(args, &perf, perf_version, &writing, roster.as_ref())?
    };
    summary::announce(args, &setup, &writing);
    let watching = setup.session.take().map(|s| s.watch(attach::tell_new));
    let status = if crate::signals::caught_signal().is_some() {
        Err(anyhow::anyhow!("stopped before perf started"))
    } else {
        perf_record::run(setup.cmd, &perf, &args.output)
    };
    drop(setup.hook);
    let mut session = watching.map(|w| w.stop());
    // Names switched on in running processes go off now (perf has stopped, so nothing they
    // announce later is in the recording), except perfpy's own, which go off once collected:
    // switching off, perfpy's trampoline closes and removes its files there.
    if let Some(s) = session.as_mut() {
        s.stop_first();
    }
    let progress = std::io::stderr().is_terminal();
    // The program's files are collected even when perf wrote no recording or it can't be
    // read: nothing of the program stays in /tmp either way.
    let mut loaded = match &status {
        Ok(_) => recording::load(&args.output, &[], None, progress, &Default::default()),
        Err(_) => Err(anyhow::anyhow!("no recording")),
    };
    let program = |loaded: &Result<Profile>| -> BTreeSet<i32> {
        // The attached processes count even when the recording can't be read.
        let mut enrolled = roster.as_ref().map(Roster::pids).unwrap_or_default();
        enrolled.extend(args.pid.iter().map(|&p| p as i32));
        if let Some(s) = &session {
            enrolled.extend(s.targets.keys().map(|&p| p as i32));
        }
        match loaded {
            Ok(profile) => profile.pids.union(&enrolled).copied().collect(),
            Err(_) => enrolled,
        }
    };
    if status.is_ok() && !args.attaching() && collect::wait_for_the_rest(&program(&loaded)) {
        // Their names are complete now (an interpreter may buffer its jitdump until exit).
        loaded = recording::load(&args.output, &[], None, progress, &Default::default());
    }
    let kept = if args.keep_jit_files {
        Ok(())
    } else {
        let pids: Vec<i32> = program(&loaded).into_iter().collect();
        // Of running programs, only the files perfpy's switches made are moved; the others
        // (names on before perfpy came) are copied, and stay their programs'.
        let copy_only: BTreeSet<i32> = match &session {
            Some(s) => {
                let owned = s.owned();
                let forked = loaded
                    .as_ref()
                    .map(|p| p.descendants(&owned))
                    .unwrap_or_default();
                pids.iter()
                    .copied()
                    .filter(|p| !owned.contains(p) && !forked.contains(p))
                    .collect()
            }
            None => BTreeSet::new(),
        };
        let kept = collect::keep_names(&pids, &copy_only, &args.output);
        if let Some(s) = &session {
            collect::keep_processes(s, &args.output);
            if let Ok(p) = loaded.as_mut() {
                p.processes = recording::processes(&recording::side_dir(&args.output));
            }
        }
        kept
    };
    if let Some(s) = session.as_mut() {
        s.stop_rest(!args.keep_jit_files);
    }
    kept?;
    drop(roster);
    let status = status?;
    let profile = loaded?;
    let mut profile = profile.with_view(NativeView::Leaf);
    if args.all {
        // Listed with the fix for each when the recording began.
        profile.stats.names_off.clear();
    }
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
pub(crate) fn switch_samples_allowed() -> Result<()> {
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
