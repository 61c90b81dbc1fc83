//! A recording and the files that go with it: `perf.data`, and its side directory
//! `perf.data.perfpy/` where `perfpy record` keeps the program's perf maps and jitdumps (so
//! /tmp keeps nothing and `perfpy report` finds them). Shared by `record` and `report`.

use crate::report::{jit, read, Profile};
use anyhow::{Context, Result};
use perfpy_format::files;
use std::path::{Path, PathBuf};

/// Where `perfpy record` keeps a recording's perf maps and jitdumps: next to it.
pub fn side_dir(data: &Path) -> PathBuf {
    let mut name = data.as_os_str().to_owned();
    name.push(".perfpy");
    PathBuf::from(name)
}

/// Reads `input` with the side directory and `extra_dirs` searched first for the Python names.
pub fn load(input: &Path, extra_dirs: &[PathBuf], progress: bool) -> Result<Profile> {
    if !input.exists() {
        anyhow::bail!(
            "{} does not exist; record one with `perfpy record -- python app.py` \
             (or pass -i PATH)",
            input.display()
        );
    }
    let mut jit_dirs = extra_dirs.to_vec();
    jit_dirs.push(side_dir(input));
    read::read(input, &read::Options { jit_dirs, progress })
}

/// Tells on stderr what could make the report incomplete, each with what to do.
pub fn warn_about(profile: &Profile) {
    let s = &profile.stats;
    if !s.pids_without_names.is_empty() {
        let pids: Vec<String> = s.pids_without_names.iter().map(|p| p.to_string()).collect();
        eprintln!(
            "perfpy: warning: no perf map or jitdump found for pid {}: their JIT code shows as \
             [unknown]. Record with `perfpy record`, or pass --jit-dir with the \
             perf-<pid>.map / jit-<pid>.dump files.",
            pids.join(", ")
        );
    }
    if !s.missing_binaries.is_empty() {
        let shown: Vec<&str> = s
            .missing_binaries
            .iter()
            .take(3)
            .map(String::as_str)
            .collect();
        eprintln!(
            "perfpy: warning: {} binar{} of the recording can't be read ({}{}): their frames \
             are unnamed and stacks through them may be cut. Report on the machine that recorded.",
            s.missing_binaries.len(),
            if s.missing_binaries.len() == 1 {
                "y"
            } else {
                "ies"
            },
            shown.join(", "),
            if s.missing_binaries.len() > 3 {
                ", ..."
            } else {
                ""
            }
        );
    }
    for p in &s.problems {
        eprintln!("perfpy: warning: {p}");
    }
    if s.lost_events > 0 {
        eprintln!(
            "perfpy: warning: perf lost {} events (the recording couldn't keep up); \
             lower the frequency with -F",
            s.lost_events
        );
    }
    if s.samples > 0 && s.truncated * 10 > s.samples {
        eprintln!(
            "perfpy: warning: {} of {} samples couldn't be unwound past their first frame",
            s.truncated, s.samples
        );
    }
}

/// Moves (or copies, for a process that still runs) the maps and dumps of `pids` into `dir`.
pub fn collect_jit_files(pids: &[i32], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut moved = Vec::new();
    for &pid in pids {
        let alive = u32::try_from(pid).is_ok_and(crate::procfs::running);
        for src in jit::candidates(pid, &[], None) {
            let Ok(meta) = std::fs::symlink_metadata(&src) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let kind = if src.extension().is_some_and(|e| e == "map") {
                files::Kind::PerfMap
            } else {
                files::Kind::Jitdump
            };
            let dst = dir.join(kind.file_name(pid as u32));
            if dst.exists() {
                continue; // the namespace path and /tmp were the same file
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            if alive || std::fs::rename(&src, &dst).is_err() {
                std::fs::copy(&src, &dst).with_context(|| {
                    format!("cannot copy {} to {}", src.display(), dst.display())
                })?;
                if !alive {
                    let _ = std::fs::remove_file(&src);
                }
            }
            moved.push(src);
        }
    }
    Ok(moved)
}
