//! `perfpy clean`: the files perf's Python support leaves in /tmp, for processes that are gone.
//!
//! `perf-<pid>.map` and `jit-<pid>.dump` are written by the profiled process; `jitted-<pid>-<n>.so`
//! by `perf inject --jit`, one per function (and copied into perf's build-id cache under
//! `~/.debug`). None is removed when the process exits, since perf needs them afterwards.
//! `perfpy-switch-<perfpy pid>-<pid>-<n>.py` is a switch `perfpy record --pid` sent a process
//! that ended before running it. `perfpy-lend-<pid>-<n>/` is the start-up hook directory `perfpy record` lends perfpy
//! through, and `perfpy-roster-<pid>-<n>` the roster of the processes it recorded, left only
//! if that command was killed. A file is listed only if its pid is not running.

use crate::cli::CleanArgs;
use crate::lend;
use crate::procfs::running;
use crate::roster;
use anyhow::{Context, Result};
use perfpy_format::files;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A leftover file and the pid it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub path: PathBuf,
    pub pid: u32,
    pub bytes: u64,
}

/// The pid a file name belongs to, if it is one of ours.
pub fn pid_of(name: &str) -> Option<u32> {
    if let Some((_, pid)) = files::parse_file_name(name) {
        return Some(pid);
    }
    // perf inject --jit's own files, and perfpy record's hook directories.
    let digits = if let Some(rest) = name.strip_prefix("perfpy-switch-") {
        // perfpy-switch-<perfpy's pid>-<target pid>-<n>.py (and its .json marker, and the
        // .json.abandoned note of a marker nobody waits for): the target's pid counts.
        let rest = rest
            .strip_suffix(".py")
            .or_else(|| rest.strip_suffix(".json"))
            .or_else(|| rest.strip_suffix(".json.abandoned"))?;
        let mut parts = rest.split('-');
        parts.next()?.parse::<u32>().ok()?;
        let pid = parts.next()?;
        parts.next()?.parse::<u32>().ok()?;
        pid
    } else if let Some(rest) = name
        .strip_prefix(lend::HOOK_PREFIX)
        .or_else(|| name.strip_prefix(roster::PREFIX))
    {
        let (pid, n) = rest.split_once('-')?;
        n.parse::<u32>().ok()?;
        pid
    } else if let Some(rest) = name.strip_prefix("jitted-") {
        let rest = rest.strip_suffix(".so")?;
        let (pid, n) = rest.split_once('-')?;
        n.parse::<u64>().ok()?;
        pid
    } else {
        return None;
    };
    digits.parse().ok()
}

/// Leftovers in `dir` whose process no longer exists, sorted by path.
pub fn find(dir: &Path) -> Result<Vec<Leftover>> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(pid_of) else {
            continue;
        };
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let hook_dir = meta.is_dir() && name.to_string_lossy().starts_with(lend::HOOK_PREFIX);
        if !(meta.file_type().is_file() || hook_dir) || running(pid) {
            continue;
        }
        out.push(Leftover {
            path: entry.path(),
            pid,
            bytes: meta.len(),
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Build-id cache directories perf made for jitted files of dead processes:
/// `$HOME/.debug/<dir>/jitted-<pid>-<n>.so/`.
fn cache_entries(dir: &Path) -> Vec<PathBuf> {
    let Some(home) = std::env::var_os("HOME") else {
        return Vec::new();
    };
    let rel = dir.strip_prefix("/").unwrap_or(dir);
    let cache = Path::new(&home).join(".debug").join(rel);
    let Ok(entries) = fs::read_dir(&cache) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("jitted-") && pid_of(&name).is_some_and(|p| !running(p))
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

pub fn run(args: &CleanArgs) -> Result<ExitCode> {
    let files = find(&args.dir)?;
    let caches = if args.build_id_cache {
        cache_entries(&args.dir)
    } else {
        Vec::new()
    };
    if files.is_empty() && caches.is_empty() {
        println!("nothing to clean in {}", args.dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let total: u64 = files.iter().map(|f| f.bytes).sum();
    for f in &files {
        println!(
            "{}\t{} bytes\tpid {} is not running",
            f.path.display(),
            f.bytes,
            f.pid
        );
    }
    for c in &caches {
        println!("{}\tbuild-id cache entry", c.display());
    }
    let mut pids: Vec<u32> = files.iter().map(|f| f.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    let summary = format!(
        "{} files, {} bytes, from {} processes{}",
        files.len(),
        total,
        pids.len(),
        if caches.is_empty() {
            String::new()
        } else {
            format!("; {} build-id cache entries", caches.len())
        }
    );
    if !args.delete {
        println!("{summary}; run `perfpy clean --delete` to remove them");
        return Ok(ExitCode::SUCCESS);
    }
    for f in &files {
        if f.path.is_dir() {
            fs::remove_dir_all(&f.path)
        } else {
            fs::remove_file(&f.path)
        }
        .with_context(|| format!("cannot remove {}", f.path.display()))?;
    }
    for c in &caches {
        fs::remove_dir_all(c).with_context(|| format!("cannot remove {}", c.display()))?;
    }
    println!("removed {summary}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_our_names() {
        assert_eq!(pid_of("perf-123.map"), Some(123));
        assert_eq!(pid_of("jit-77.dump"), Some(77));
        assert_eq!(pid_of("jitted-77-12.so"), Some(77));
        assert_eq!(pid_of("perfpy-lend-4242-0"), Some(4242));
        assert_eq!(pid_of("perfpy-roster-4242-3"), Some(4242));
        assert_eq!(pid_of("perfpy-switch-10-4242-0.py"), Some(4242));
        assert_eq!(pid_of("perfpy-switch-10-4242-0.json.abandoned"), Some(4242));
        for other in [
            "perf-abc.map",
            "perf-1.map.bak",
            "jit-1.dmp",
            "jitted-1.so",
            "x-1.map",
            "perf.data",
            "perfpy-lend-4242",
            "perfpy-lend-x-0",
            "perfpy-roster-4242",
        ] {
            assert_eq!(pid_of(other), None, "{other}");
        }
    }
}
