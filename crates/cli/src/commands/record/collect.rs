//! After perf: the program's perf maps and jitdumps, moved out of `/tmp` next to the
//! recording (`<out>.perfpy/`), where `perfpy report` finds them.
//!
//! Whose: every process perf.data names (fork, comm and sample records, sampled or not), and
//! every process on the [`crate::roster::Roster`] (perfpy's trampoline enrols each process that writes a
//! file), which still holds when perf dropped records on a busy machine.

use crate::attach::session::Session;
use crate::procfs;
use crate::recording::{self, collect_jit_files, side_dir};
use crate::say;
use anyhow::Result;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the program's processes that outlive it (a pool's workers, a forkserver) get to
/// exit after perf has, so that their names can be moved out of /tmp whole.
const STRAGGLER_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits for the recorded processes that still run; whether there were any.
pub(super) fn wait_for_the_rest(pids: &BTreeSet<i32>) -> bool {
    let alive = || -> Vec<i32> {
        pids.iter()
            .copied()
            .filter(|&p| u32::try_from(p).is_ok_and(procfs::running))
            .collect()
    };
    let mut left = alive();
    if left.is_empty() {
        return false;
    }
    let started = Instant::now();
    while !left.is_empty() && started.elapsed() < STRAGGLER_TIMEOUT {
        std::thread::sleep(Duration::from_millis(50));
        left = alive();
    }
    if !left.is_empty() {
        let one = left.len() == 1;
        let pids: Vec<String> = left.iter().map(i32::to_string).collect();
        say::warn(&format!(
            "{} {} of the program still run{} {} s after it exited; {} perf map/jitdump {} \
             copied, and `perfpy clean` removes {} from /tmp once {} exited",
            if one { "process" } else { "processes" },
            pids.join(", "),
            if one { "s" } else { "" },
            STRAGGLER_TIMEOUT.as_secs(),
            if one { "its" } else { "their" },
            if one { "is" } else { "are" },
            if one { "it" } else { "them" },
            if one { "it has" } else { "they have" },
        ));
    }
    true
}

/// Moves the perf maps and jitdumps of `pids` next to the recording (only copies those of
/// `copy_only`), replacing a previous recording's (whose names must not name this one's
/// addresses).
pub(super) fn keep_names(pids: &[i32], copy_only: &BTreeSet<i32>, output: &Path) -> Result<()> {
    let side = side_dir(output);
    if side.is_dir() {
        for e in std::fs::read_dir(&side)?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let done = collect_jit_files(pids, copy_only, &side);
    if !done.moved.is_empty() {
        say::note(&format!(
            "{} {} into {}",
            if copy_only.is_empty() {
                "moved"
            } else {
                "collected"
            },
            say::count(
                done.moved.len(),
                "perf map/jitdump file",
                "perf map/jitdump files"
            ),
            side.display()
        ));
    }
    for (path, why) in &done.failed {
        say::warn(&format!(
            "{} stays where it is ({why}): perfpy report -i {} --jit-dir {} finds it there; \
             `perfpy clean --delete` removes it once its process has exited",
            path.display(),
            output.display(),
            path.parent().unwrap_or(Path::new("/")).display()
        ));
    }
    Ok(())
}

/// The processes of a recording of running programs, as perfpy found them (command line,
/// interpreter, names), next to the recording for `perfpy report`: perf keeps only their
/// 15-character names.
pub(super) fn keep_processes(session: &Session, output: &Path) {
    let side = side_dir(output);
    let text = serde_json::to_string_pretty(&session.describe()).unwrap_or_default();
    let written = std::fs::create_dir_all(&side)
        .and_then(|()| std::fs::write(side.join(recording::PROCESSES), text));
    if let Err(e) = written {
        say::warn(&format!(
            "cannot write {} ({e}): the report will name processes by perf's short names",
            side.join(recording::PROCESSES).display()
        ));
    }
}
