//! After perf: the program's perf maps and jitdumps, moved out of `/tmp` next to the
//! recording (`<out>.perfpy/`), where `perfpy report` finds them.
//!
//! Whose: every process perf.data names (fork, comm and sample records, sampled or not), and
//! every process on the [`Roster`] (perfpy's trampoline enrols each process that writes a
//! file), which still holds when perf dropped records on a busy machine.

use crate::procfs;
use crate::recording::{collect_jit_files, side_dir};
use crate::say;
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A file the program's processes append their pids to when they create a perf map or jitdump
/// (`PERFPY_ROSTER` in their environment; the extension's `backend/roster.rs`), made before
/// the program starts and removed with this value. Mode 0600: only this user's processes can
/// put a pid on it.
pub(super) struct Roster {
    path: PathBuf,
}

impl Roster {
    /// The environment variable the extension reads.
    pub const VAR: &'static str = "PERFPY_ROSTER";

    /// Makes `$TMPDIR/perfpy-roster-<pid>-<n>`.
    pub fn create() -> Result<Roster> {
        let base = std::env::temp_dir();
        for n in 0..1000u32 {
            let path = base.join(format!("perfpy-roster-{}-{n}", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(_) => return Ok(Roster { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()))
                }
            }
        }
        anyhow::bail!("no free roster name in {}", base.display())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pids on it, if it is still this user's regular file.
    pub fn pids(&self) -> BTreeSet<i32> {
        let mine = std::fs::symlink_metadata(&self.path).is_ok_and(|m| {
            // SAFETY: geteuid has no preconditions.
            m.is_file() && m.uid() == unsafe { libc::geteuid() }
        });
        if !mine {
            return BTreeSet::new();
        }
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .filter(|&p: &i32| p > 0)
            .collect()
    }
}

impl Drop for Roster {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

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

/// Moves the perf maps and jitdumps of `pids` next to the recording, replacing a previous
/// recording's (whose names must not name this one's addresses).
pub(super) fn keep_names(pids: &[i32], output: &Path) -> Result<()> {
    let side = side_dir(output);
    if side.is_dir() {
        for e in std::fs::read_dir(&side)?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let done = collect_jit_files(pids, &side);
    if !done.moved.is_empty() {
        say::note(&format!(
            "moved {} into {}",
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
