//! `perfpy record`'s roster: a file the program's processes append their pids to when they
//! create a perf map or jitdump (`PERFPY_ROSTER` in their environment; the extension's
//! `backend/roster.rs`). perf.data names the program's processes too, but perf drops records
//! when it can't keep up; the roster doesn't.

use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The start of a roster's file name: `perfpy-roster-<perfpy's pid>-<n>`.
pub const PREFIX: &str = "perfpy-roster-";

/// A file the program's processes append their pids to when they create a perf map or jitdump
/// (`PERFPY_ROSTER` in their environment; the extension's `backend/roster.rs`), made before
/// the program starts and removed with this value. Mode 0600: only this user's processes can
/// put a pid on it.
pub struct Roster {
    path: PathBuf,
}

impl Roster {
    /// The environment variable the extension reads.
    pub const VAR: &'static str = "PERFPY_ROSTER";

    /// Makes `$TMPDIR/perfpy-roster-<pid>-<n>`.
    pub fn create() -> Result<Roster> {
        let base = std::env::temp_dir();
        for n in 0..1000u32 {
            let path = base.join(format!("{PREFIX}{}-{n}", std::process::id()));
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
