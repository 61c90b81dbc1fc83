//! Which processes run Python, found in `/proc`: for `record -a` and `top -a`, every one on
//! the host (in containers too: their binaries are read through `/proc/<pid>/root`), and for
//! the others the processes a target forks while it is recorded.
//!
//! A process runs Python when it maps a `libpython*` (an interpreter built shared, or a
//! program that embeds one: uWSGI, mod_wsgi), or its executable is a `python*` or has the
//! section `.PyRuntime` (a statically linked interpreter under another name). Reading its
//! mappings takes ptrace's read permission: a process this user may not look into is listed
//! as such when its command line names a Python, never touched.

use super::process;
use crate::procfs::{self, Stat};
use object::Object;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A process found running Python, or looking like it.
#[derive(Debug, Clone)]
pub struct Found {
    pub pid: u32,
    pub stat: Stat,
    /// Its command line (its name in brackets when it has none left).
    pub cmdline: String,
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// It runs the interpreter in `binary` (as the process names it), of this version when
    /// the file name says it.
    Python {
        binary: PathBuf,
        version: Option<(u32, u32)>,
    },
    /// Its command line names a Python, but this user may not look into it: why.
    Hidden(String),
}

impl Found {
    /// `CPython 3.12`, or `CPython` when the version isn't known, for listings.
    pub fn interpreter(&self) -> String {
        match &self.what {
            What::Python {
                version: Some((a, b)),
                ..
            } => format!("CPython {a}.{b}"),
            _ => "CPython".to_string(),
        }
    }
}

/// Every process running Python now, but those in `skip` (perfpy itself, perf).
pub fn all(skip: &[u32]) -> Vec<Found> {
    procfs::pids()
        .into_iter()
        .filter(|pid| !skip.contains(pid))
        .filter_map(examine)
        .collect()
}

/// Whether process `pid` runs Python, and what it is.
pub fn examine(pid: u32) -> Option<Found> {
    let stat = Stat::of(pid)?;
    if matches!(stat.state, 'Z' | 'X') {
        return None;
    }
    let cmdline = procfs::cmdline(pid).unwrap_or_else(|| format!("[{}]", stat.comm));
    let what = match process::mapped_files(pid) {
        Ok(files) if files.is_empty() => return None, // a kernel thread
        Ok(files) => python_in(pid, &files)?,
        Err(process::Refusal::Permission(why)) if names_python(&cmdline) => What::Hidden(why),
        Err(_) => return None,
    };
    Some(Found {
        pid,
        stat,
        cmdline,
        what,
    })
}

/// The interpreter among a process's mapped files, if it has one.
fn python_in(pid: u32, files: &[(PathBuf, u64)]) -> Option<What> {
    let lib = files.iter().find(|(p, _)| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("libpython"))
    });
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    if exe.file_name().is_some_and(is_perf) {
        // perf links libpython for its scripts: not a Python program.
        return None;
    }
    let binary = match lib {
        Some((p, _)) => p.clone(),
        None if is_python_name(&exe) || has_runtime(&process::on_disk(pid, &exe)) => exe,
        None => return None,
    };
    let version = crate::python::interpreter_file_version(&binary.to_string_lossy()).flatten();
    Some(What::Python { binary, version })
}

/// perf's own executable: `perf`, or the versioned binary Debian's `perf` wrapper runs
/// (`perf_5.10`, `perf_6.1`).
fn is_perf(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name == "perf"
        || name
            .strip_prefix("perf_")
            .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
}

fn is_python_name(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("python"))
}

/// Whether a command line's program is a Python (`python3.11 app.py`, `/venv/bin/python`).
fn names_python(cmdline: &str) -> bool {
    cmdline
        .split(' ')
        .next()
        .is_some_and(|w| is_python_name(Path::new(w)))
}

/// Whether the executable at `path` holds a CPython runtime (`.PyRuntime`), remembered per
/// file (a host runs many processes of few executables).
fn has_runtime(path: &Path) -> bool {
    static SEEN: Mutex<Option<HashMap<PathBuf, bool>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let seen = seen.get_or_insert_with(HashMap::new);
    if let Some(&known) = seen.get(path) {
        return known;
    }
    let found = std::fs::File::open(path)
        .ok()
        // SAFETY: the mapping is read-only and private; a binary changed on disk while it is
        // read gives wrong answers, never memory unsafety in safe code reading a `&[u8]`
        // (object's parser checks every offset against the slice).
        .and_then(|f| unsafe { memmap2::Mmap::map(&f) }.ok())
        .is_some_and(|data| {
            object::File::parse(&*data).is_ok_and(|f| f.section_by_name(".PyRuntime").is_some())
        });
    seen.insert(path.to_path_buf(), found);
    found
}

/// Whether `pid` descends from one of `ancestors` (its parent, its parent's parent, ...), as
/// `/proc` says now.
pub fn descends_from(pid: u32, ancestors: &dyn Fn(u32) -> bool) -> Option<u32> {
    let mut at = pid;
    for _ in 0..64 {
        let parent = Stat::of(at)?.ppid;
        if parent <= 1 {
            return None;
        }
        if ancestors(parent) {
            return Some(parent);
        }
        at = parent;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_is_not_python_though_it_links_libpython() {
        use std::ffi::OsStr;
        for name in ["perf", "perf_5.10", "perf_6.1"] {
            assert!(is_perf(OsStr::new(name)), "{name}");
        }
        for name in ["perfpy", "perf_tool", "python3", "perf-6.1"] {
            assert!(!is_perf(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn python_is_told_by_name_or_runtime() {
        assert!(names_python("/venv/bin/python app.py"));
        assert!(names_python("python3.11 -m gunicorn"));
        assert!(!names_python("gzip -9"));
        // This test binary has no CPython runtime, and runs none.
        let me = std::env::current_exe().unwrap();
        assert!(!has_runtime(&me));
        assert!(examine(std::process::id()).is_none());
        assert!(all(&[]).iter().all(|f| f.pid != std::process::id()));
    }
}
