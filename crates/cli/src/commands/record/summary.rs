//! What `record` tells the user: before, what it records, how and why; after, the number
//! of samples, the hottest Python functions, and what to run next.

use super::Setup;
use crate::cli::{Mode, RecordArgs};
use crate::plan::{Backend, CallGraph, Plan};
use crate::report::output::wall::duration;
use crate::report::profile::tables::{pct, process_rows, process_weights, python_table};
use crate::report::{Measure, Profile};
use crate::sampling::Writing;
use std::path::Path;

/// `arg` as a shell would need it typed (for messages).
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// Tells the user what is recorded, how, and why.
pub(super) fn announce(args: &RecordArgs, setup: &Setup, writing: &Writing) {
    let what = match args.pid.as_slice() {
        _ if args.all => "every process on this machine (perf record -a)".to_string(),
        [pid] => format!("pid {pid}"),
        [] => args
            .command
            .iter()
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" "),
        pids => format!(
            "pids {}",
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let sampling = match args.mode {
        Mode::Cpu => format!("{} Hz", args.frequency),
        Mode::Wall => format!(
            "wall clock: {} Hz of CPU samples and every context switch",
            args.frequency
        ),
        Mode::OffCpu => "off CPU: every context switch".to_string(),
    };
    crate::eline!(
        "perfpy: recording {what}{}, {} call graphs{}, {sampling}{}",
        match setup.plan.as_ref().map(|p| p.backend) {
            Some(Backend::PerfMap) => ", perf map",
            Some(Backend::Jitdump) => ", jitdump",
            None => "",
        },
        match setup.call_graph {
            CallGraph::FramePointers => "frame-pointer",
            CallGraph::Dwarf => "DWARF",
        },
        match setup.call_graph {
            CallGraph::FramePointers => String::new(),
            CallGraph::Dwarf => format!(" ({} bytes of stack)", writing.stack_size),
        },
        if writing.compress { ", compressed" } else { "" }
    );
    for r in setup.reasons.iter().chain(&writing.reasons) {
        crate::eline!("perfpy:   because: {r}");
    }
    if let Some((k, v)) = setup.plan.as_ref().map(Plan::env) {
        match &setup.hook {
            Some(dir) => crate::eline!(
                "perfpy:   switched on with {k}={v}, and PYTHONPATH={} for perfpy",
                dir.path().display()
            ),
            None => crate::eline!("perfpy:   switched on with {k}={v}"),
        }
    }
    crate::eline!(
        "perfpy: Ctrl-C stops the {} and keeps the profile",
        if args.attaching() {
            "recording"
        } else {
            "program"
        }
    );
}

pub(super) fn summary(profile: &Profile, top: usize, output: &Path) {
    let total: u64 = profile.samples.iter().map(|s| s.weight).sum();
    let off: u64 = profile
        .samples
        .iter()
        .filter(|s| profile.is_wait(s.stack))
        .map(|s| s.weight)
        .sum();
    crate::eline!();
    crate::eline!(
        "{}{}",
        match profile.measure {
            Measure::Samples => format!("{total} samples"),
            Measure::Wall => format!(
                "{} of wall time ({} off CPU)",
                duration(total),
                duration(off)
            ),
            Measure::OffCpu => format!("{} off CPU", duration(total)),
        },
        if profile.stats.lost_events > 0 {
            format!(" ({} events lost)", profile.stats.lost_events)
        } else {
            String::new()
        }
    );
    let procs = process_rows(profile, &process_weights(profile));
    if profile.system_wide && !procs.is_empty() {
        crate::eline!("busiest processes:");
        crate::eline!("  {:>6}  {:>8}  command", "share", "pid");
        for r in procs.iter().take(top.max(5)) {
            crate::eline!("  {:>5.1}%  {:>8}  {}", pct(r.weight, total), r.pid, r.name);
        }
    }
    let several = procs.iter().filter(|r| r.pid != 0).count() > 1;
    let rows = python_table(profile);
    if rows.is_empty() {
        crate::eline!("no sample ran Python code with a name (see the warnings above)");
    } else {
        crate::eline!(
            "{}",
            if profile.measure.is_time() {
                "Python functions taking the most time:"
            } else {
                "hottest Python functions:"
            }
        );
        crate::eline!("  {:>6}  {:>6}  function", "self", "total");
        // Functions under 1% of the samples are noise here; perfpy report lists them all.
        for r in rows
            .iter()
            .filter(|r| r.total_samples * 100 >= total)
            .take(top)
        {
            let frame = &profile.frames[r.frame as usize];
            let (func, file) = frame.python_parts();
            let line = frame.line.map(|l| format!(":{l}")).unwrap_or_default();
            let pids = if several {
                let mut pids: Vec<i32> = profile
                    .samples
                    .iter()
                    .filter(|s| profile.stacks[s.stack as usize].contains(&r.frame))
                    .map(|s| s.pid)
                    .collect();
                pids.sort_unstable();
                pids.dedup();
                let shown: Vec<String> = pids.iter().take(3).map(i32::to_string).collect();
                format!(
                    "  (pid {}{})",
                    shown.join(", "),
                    if pids.len() > 3 { ", ..." } else { "" }
                )
            } else {
                String::new()
            };
            crate::eline!(
                "  {:>5.1}%  {:>5.1}%  {func}  {file}{line}{pids}",
                pct(r.self_samples, total),
                pct(r.total_samples, total)
            );
        }
    }
    let input = if output == Path::new("perf.data") {
        String::new()
    } else {
        format!(" -i {}", output.display())
    };
    crate::eline!();
    crate::eline!(
        "next: perfpy report{input}                      (all functions{})",
        if profile.measure.is_time() {
            ", the waits' reasons"
        } else {
            ""
        }
    );
    crate::eline!("      perfpy report{input} --format flamegraph  (flamegraph.svg)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_a_shell_would_need_quoted() {
        assert_eq!(shell_quote("app.py"), "app.py");
        assert_eq!(
            shell_quote("import time; time.sleep(1)"),
            "'import time; time.sleep(1)'"
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
