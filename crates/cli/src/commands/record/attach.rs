//! Recording running programs: perf's `-p` (or `-a`, the whole machine), with the call graphs
//! the targets' interpreters support, and Python names switched on in each for the length of
//! the recording ([`crate::attach::session`]).

use super::Setup;
use crate::attach::session::{self, Scope, Session};
use crate::attach::{self};
use crate::cli::{CallGraph as Asked, RecordArgs};
use crate::plan::{self, CallGraph};
use crate::python::{self, PythonFacts};
use crate::sampling::{self, Writing};
use crate::say;
use anyhow::Result;
use std::path::Path;
use std::process::Command;

/// perf attached to running processes: only the call graphs are ours to choose (frame
/// pointers only if every process's interpreter has them, and asked for).
pub(super) fn attach(args: &RecordArgs, perf: &Path, writing: &Writing) -> Result<Setup> {
    let mut reasons = Vec::new();
    let call_graph = if args.all {
        system_wide_allowed()?;
        match args.call_graph {
            Asked::Fp => CallGraph::FramePointers,
            Asked::Auto | Asked::Dwarf => CallGraph::Dwarf,
        }
    } else {
        let mut fps = Vec::new();
        for &pid in &args.pid {
            let facts = PythonFacts {
                binary: attach::interpreter_binary(pid)?.display().to_string(),
                ..Default::default()
            };
            fps.push(python::frame_pointers(&facts));
        }
        let fp = fps.iter().find(|f| !f.present).unwrap_or(&fps[0]).clone();
        let (call_graph, warning) = plan::call_graph(args.call_graph, &fp);
        if let Some(w) = warning {
            say::warn(&w);
        }
        reasons.push(format!(
            "{} frame pointers ({})",
            if fp.present { "has" } else { "no" },
            fp.evidence
        ));
        call_graph
    };
    let backend = match call_graph {
        CallGraph::FramePointers => "perf",
        CallGraph::Dwarf => "perf_jit",
    };
    let scope = if args.all {
        Scope::Host
    } else {
        Scope::Pids(args.pid.clone())
    };
    let session = Session::start(scope, backend, &mut reasons)?;
    if args.all {
        list(&session);
    }
    let mut cmd = Command::new(perf);
    cmd.args(sampling::args(
        &super::sampling(args, perf, call_graph, &mut reasons),
        call_graph,
        writing,
        args.output.as_os_str(),
    ));
    if args.all {
        cmd.arg("-a");
    } else {
        cmd.arg("-p").arg(
            args.pid
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    if let Some(d) = args.duration {
        cmd.args(["--", "sleep", &format!("{d}")]);
    }
    Ok(Setup {
        cmd,
        plan: None,
        hook: None,
        session: Some(session),
        call_graph,
        reasons,
    })
}

/// The Python processes of a system-wide recording, one line each.
fn list(session: &Session) {
    let n = session.targets.len();
    if n == 0 {
        say::note(
            "no Python process runs on this machine now; new ones are looked for every second",
        );
        return;
    }
    let named = session.targets.values().filter(|t| t.state.named()).count();
    say::note(&format!(
        "{} on this machine, {named} of them with Python names:",
        say::count(n, "Python process", "Python processes")
    ));
    for t in session.targets.values() {
        crate::eline!("perfpy:   {}", session::line(t));
    }
}

/// What a new process found during the recording is told as.
pub(super) fn tell_new(t: &session::Target) {
    say::note(&format!("new: {}", session::line(t)));
}

/// Whether perf may sample every CPU: root (or CAP_PERFMON), or perf_event_paranoid at 0 or
/// below.
fn system_wide_allowed() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    match paranoid {
        Some(p) if p > 0 => anyhow::bail!(
            "-a records every CPU, which perf allows only as root (or with CAP_PERFMON) or with \
             kernel.perf_event_paranoid at 0 or below (it is {p} here); switching names on in \
             other users' processes takes ptrace permission too. Run perfpy as root (sudo), or \
             record your own programs with --pid"
        ),
        _ => Ok(()),
    }
}
