//! Switching Python names on in running processes for the length of a recording, and off
//! again after: what `perfpy record --pid` does in each process before perf attaches. The
//! ways, tried in this order:
//!
//! 1. CPython 3.14+: [`pep768`], CPython's remote execution, runs a [`script`] on the
//!    process's main thread that switches a trampoline on (perfpy's if the process can
//!    import perfpy, else CPython's own) and writes back what it did.
//! 2. CPython 3.8–3.13 started with perfpy installed and `PERFPY_ATTACH=1`: perfpy's
//!    [`dormant`] control block, a word the CLI writes that a sleeping thread in the process
//!    turns into an activation on the main thread.
//! 3. Otherwise the process is recorded as it is: with names, if it writes a perf map or a
//!    jitdump already, else without them and with a warning saying how to make it switchable.
//!
//! All three read and write the process only through [`process`] (its mappings, and
//! `process_vm_readv`/`process_vm_writev`).

pub mod discover;
pub mod dormant;
pub mod pep768;
pub mod process;
pub mod script;
pub mod session;
mod switch;

pub use switch::{switch_on, Attached, Names};

use crate::procfs;
use crate::say;
use anyhow::{bail, Result};
use perfpy_format::files;
use std::path::PathBuf;
use std::time::Duration;

/// The file holding process `pid`'s interpreter code, as found from here: the `libpython`
/// it maps, else its executable.
pub fn interpreter_binary(pid: u32) -> Result<PathBuf> {
    let exe = match std::fs::read_link(format!("/proc/{pid}/exe")) {
        Ok(exe) => exe,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
            "not allowed to look into process {pid} ({e}). {}",
            process::ptrace_fix()
        ),
        Err(e) => bail!("no process {pid} ({e})"),
    };
    let lib = process::mapped_files(pid).ok().and_then(|files| {
        files.into_iter().find_map(|(path, _)| {
            let name = path.file_name()?.to_string_lossy().into_owned();
            name.starts_with("libpython").then_some(path)
        })
    });
    let binary = lib.unwrap_or(exe);
    let on_disk = process::on_disk(pid, &binary);
    Ok(if on_disk.exists() { on_disk } else { binary })
}

/// How long a running process gets to reach a safe point and run a switch.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether process `pid` already announces Python names (a perf map or jitdump of its own,
/// written since it started: a file an earlier process with the same pid left is not its).
pub fn names_on(pid: u32) -> bool {
    let inner = procfs::namespace_pid(pid as i32).unwrap_or(pid as i32) as u32;
    let root = PathBuf::from(format!("/proc/{pid}/root{}", files::DIR));
    let started = procfs::started_at(pid);
    [files::Kind::PerfMap, files::Kind::Jitdump]
        .iter()
        .any(|k| {
            std::fs::metadata(root.join(k.file_name(inner))).is_ok_and(|m| {
                let written = m.modified().ok();
                match (written, started) {
                    (Some(w), Some(s)) => w + Duration::from_secs(1) >= s,
                    _ => true,
                }
            })
        })
}

/// Which file names a process's stubs, for messages: `a perf map`, `a jitdump`.
pub(crate) fn names_file(pid: u32) -> &'static str {
    let inner = procfs::namespace_pid(pid as i32).unwrap_or(pid as i32) as u32;
    let root = PathBuf::from(format!("/proc/{pid}/root{}", files::DIR));
    if root.join(files::Kind::Jitdump.file_name(inner)).exists() {
        "a jitdump"
    } else {
        "a perf map"
    }
}

/// Names perfpy switched on in a running process, to switch off after the recording.
pub enum Switched {
    /// Through PEP 768 (3.14+).
    Remote {
        rt: pep768::Runtime,
        backend: String,
        /// The switch-on, if it had not run yet.
        pending: Option<script::Switch>,
        /// The switch-off also closes and removes the files perfpy's trampoline wrote.
        release: bool,
    },
    /// Through perfpy's dormant attach (`PERFPY_ATTACH=1`).
    Dormant { pid: u32, block: u64 },
}

impl Switched {
    /// Whether switching off also removes the process's files (perfpy's trampoline, which
    /// writes each announcement through at once): collect its names before [`Switched::off`].
    /// The others (CPython's trampoline buffers its jitdump until it is switched off) go off
    /// first.
    pub fn releases(&self) -> bool {
        match self {
            Switched::Remote { release, .. } => *release,
            Switched::Dormant { .. } => true,
        }
    }

    /// Switches the names off again (or cancels a switch-on that never ran). Where perfpy's
    /// trampoline wrote the names, the process closes and removes its files as it switches
    /// off (unless `release_files` is false: `--keep-jit-files`), so they must be collected
    /// before this.
    pub fn off(self, release_files: bool) {
        let (rt, backend, pending, release) = match self {
            Switched::Remote {
                rt,
                backend,
                pending,
                release,
            } => (rt, backend, pending, release),
            Switched::Dormant { pid, block } => {
                let off = dormant::Request::Off {
                    release: release_files,
                };
                match dormant::request(pid, block, off, SWITCH_TIMEOUT) {
                    Ok(Some(dormant::State::Off)) => {
                        say::note(&format!("switched Python names off in pid {pid}"))
                    }
                    Ok(Some(_)) => say::warn(&format!(
                        "pid {pid} could not switch Python names off: still active"
                    )),
                    Ok(None) => say::warn(&format!(
                        "pid {pid} has not run the switch-off yet (main thread blocked); it \
                         will at its next safe point"
                    )),
                    Err(why) => say::warn(&format!(
                        "cannot switch Python names off in pid {pid}: {why}"
                    )),
                }
                return;
            }
        };
        let pid = rt.pid;
        let on_ran = pending
            .as_ref()
            .is_none_or(|p| p.wait(Duration::ZERO).is_some());
        match script::Switch::send(&rt, false, &backend, release && release_files) {
            Ok(off) => {
                if let Some(on) = pending.filter(|_| !on_ran) {
                    on.discard(); // replaced before it ran
                }
                match off.wait(SWITCH_TIMEOUT) {
                    Some(o) if o.error.is_none() && !o.active => {
                        say::note(&format!("switched Python names off in pid {pid}"))
                    }
                    Some(o) => say::warn(&format!(
                        "pid {pid} could not switch Python names off: {}",
                        o.error.unwrap_or_else(|| "still active".into())
                    )),
                    None => {
                        off.abandon();
                        say::warn(&format!(
                            "pid {pid} has not run the switch-off yet (main thread blocked); \
                             it will at its next safe point"
                        ))
                    }
                }
            }
            Err(why) => {
                // Gone, most likely: a switch-on it never ran is removed from its /tmp.
                if let Some(on) = pending.filter(|_| !on_ran) {
                    on.discard();
                }
                if procfs::running(pid) {
                    say::warn(&format!(
                        "cannot switch Python names off in pid {pid}: {why}"
                    ))
                }
            }
        }
    }

    /// The switch-off of a process perfpy didn't switch on itself but that has names on
    /// because of a switch-on: forked during the recording by one perfpy switched on, it
    /// inherited the trampoline. `None` when it can't be switched from outside (before 3.14,
    /// not armed).
    pub fn inherited(pid: u32, backend: &str) -> Option<Switched> {
        match pep768::locate(pid) {
            Ok(rt) if rt.at_least(3, 14) => {
                let release = matches!(dormant::find(pid), Ok(f) if f != dormant::Found::NoPerfpy);
                Some(Switched::Remote {
                    rt,
                    backend: backend.to_string(),
                    pending: None,
                    release,
                })
            }
            _ => match dormant::find(pid) {
                Ok(dormant::Found::Armed(block)) => Some(Switched::Dormant { pid, block }),
                _ => None,
            },
        }
    }

    /// The process it switches.
    pub fn pid(&self) -> u32 {
        match self {
            Switched::Remote { rt, .. } => rt.pid,
            Switched::Dormant { pid, .. } => *pid,
        }
    }
}
