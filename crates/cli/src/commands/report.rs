//! `perfpy report`: a perf.data recording → text, folded stacks, flamegraph, speedscope,
//! Firefox Profiler or pprof, with Python frames named and whole stacks unwound by perfpy
//! itself (no `perf inject`, no `perf report`).

use crate::cli::ReportArgs;
use crate::recording::{load, warn_about, Elsewhere};
use crate::report::output;
use anyhow::Result;
use std::io::IsTerminal;
use std::process::ExitCode;

pub fn run(args: &ReportArgs) -> Result<ExitCode> {
    let progress = std::io::stderr().is_terminal();
    let elsewhere = Elsewhere {
        sysroot: args.sysroot.clone(),
        kallsyms: args.kallsyms.clone(),
    };
    let profile = load(
        &args.input,
        &args.jit_dir,
        args.event.as_deref(),
        progress,
        &elsewhere,
    )?;
    let mut profile = profile.with_view(args.native);
    profile.by_process |= args.by_process || profile.system_wide;
    if !args.pid.is_empty() {
        profile.samples.retain(|s| args.pid.contains(&s.pid));
    }
    if args.no_idle {
        let idle = profile.without_idle_threads();
        if !idle.is_empty() {
            crate::say::note(&format!(
                "left out {} (on the CPU for less than 1% of their time; --idle keeps them)",
                crate::say::count(idle.len(), "idle thread", "idle threads")
            ));
        }
    }
    warn_about(&profile);
    if args.format != output::Format::Text {
        if let (Some(e), Some(others)) = (
            profile.events.iter().find(|e| e.reported),
            output::other_events(&profile),
        ) {
            crate::say::note(&format!("this report is of {}'s samples; {others}", e.name));
        }
    }
    if profile.samples.is_empty() {
        let event = profile
            .events
            .iter()
            .find(|e| e.reported)
            .filter(|_| profile.events.len() > 1)
            .map(|e| format!(" of {}", e.name))
            .unwrap_or_default();
        anyhow::bail!(
            "{} has no samples{event}{}",
            args.input.display(),
            if args.pid.is_empty() {
                ""
            } else {
                " for the pids given"
            }
        );
    }
    output::save(&profile, args.format, args.output.clone(), args.top)?;
    Ok(ExitCode::SUCCESS)
}
