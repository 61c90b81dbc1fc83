//! Attaching to running programs: perf's `-p`, with the call graphs every target's
//! interpreter supports, and Python names switched on in each ([`crate::attach`]) for the
//! length of the recording.

use super::perf_record::{self, Writing};
use super::Setup;
use crate::attach::{self, Switched};
use crate::cli::RecordArgs;
use crate::plan::{self, CallGraph};
use crate::python::{self, PythonFacts};
use crate::say;
use anyhow::Result;
use std::path::Path;
use std::process::Command;

/// perf attached to running processes: only the call graphs are ours to choose (frame
/// pointers only if every process's interpreter has them).
pub(super) fn attach(
    args: &RecordArgs,
    perf: &Path,
    pids: &[u32],
    writing: &Writing,
) -> Result<Setup> {
    let mut fps = Vec::new();
    for &pid in pids {
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
    let mut reasons = vec![format!(
        "{} frame pointers ({})",
        if fp.present { "has" } else { "no" },
        fp.evidence
    )];
    let backend = match call_graph {
        CallGraph::FramePointers => "perf",
        CallGraph::Dwarf => "perf_jit",
    };
    let mut switched = Vec::new();
    for &pid in pids {
        match attach::switch_on(pid, backend, &mut reasons) {
            Ok(s) => switched.extend(s),
            Err(e) => {
                // Leave the others as they were before failing.
                for s in switched {
                    Switched::off(s, true);
                }
                return Err(e);
            }
        }
    }
    let mut cmd = Command::new(perf);
    cmd.args(perf_record::args(args, call_graph, writing))
        .arg("-p")
        .arg(
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
    if let Some(d) = args.duration {
        cmd.args(["--", "sleep", &format!("{d}")]);
    }
    Ok(Setup {
        cmd,
        plan: None,
        hook: None,
        switched,
        call_graph,
        reasons,
    })
}
