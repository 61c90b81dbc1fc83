//! The Python names of the recorded processes: each one's perf map and jitdump, looked up on
//! its first sample (and its parent's, for a process forked before the recording), read again
//! as they grow when the recording is read while the programs run, and which processes ran
//! Python with no names at all.

use super::arch::Arch;
use super::process::{Proc, Processes, Space};
use crate::report::jit;
use crate::report::{NamesOff, Stats};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Followed names are read again at most this often per process for each MB of their files
/// (a program that makes new code all the time would otherwise have them read for every
/// sample): small files at once, a 10 MB dump ten times a second.
const REREAD_PER_MB: Duration = Duration::from_millis(10);

impl<A: Arch> Processes<A> {
    /// The process of a sample, with its Python names looked up (once).
    pub fn with_names(&mut self, pid: i32, stats: &mut Stats) -> &mut Proc<A> {
        let dirs = &self.jit_dirs;
        let p = self
            .procs
            .entry(pid)
            .or_insert_with(|| Proc::new(Space::default()));
        if p.space.jit.is_none() && p.space.inherited.is_empty() {
            // Forked before the recording: its parent's names, as a fork record would give.
            let mut at = pid;
            while let Some(&parent) = self.parents.get(&at) {
                let info = jit::load(&jit::candidates(parent, dirs, None));
                if !info.files.is_empty() {
                    p.space.inherited.push(Arc::new(info));
                }
                at = parent;
                if p.space.inherited.len() > 8 {
                    break;
                }
            }
        }
        if p.space.jit.is_none() {
            let info = Arc::new(jit::load(&jit::candidates(
                pid,
                dirs,
                p.space.marker.as_deref(),
            )));
            for f in &info.files {
                if !stats.jit_files.contains(f) {
                    stats.jit_files.push(f.clone());
                }
            }
            for problem in &info.problems {
                if !stats.problems.contains(problem) {
                    stats.problems.push(problem.clone());
                }
            }
            p.space.jit = Some(info);
            p.changed();
        }
        p
    }

    /// With followed names: whether `pid`'s perf map or jitdump has grown since it was read
    /// (or appeared), in which case the names are dropped, to be read again by
    /// [`Processes::with_names`].
    pub fn names_grew(&mut self, pid: i32) -> bool {
        if !self.follow {
            return false;
        }
        let dirs = &self.jit_dirs;
        let Some(p) = self.procs.get_mut(&pid) else {
            return false;
        };
        let Some(info) = &p.space.jit else {
            return false;
        };
        let mb = info.sizes.iter().sum::<u64>() as f64 / 1e6;
        if p.reread
            .is_some_and(|t| t.elapsed() < REREAD_PER_MB.mul_f64(mb))
        {
            return false;
        }
        let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).ok();
        let grew = if info.files.is_empty() {
            jit::candidates(pid, dirs, p.space.marker.as_deref())
                .iter()
                .any(|c| size(c).is_some())
        } else {
            info.files
                .iter()
                .zip(&info.sizes)
                .any(|(f, &was)| size(f).is_some_and(|now| now != was))
        };
        if grew {
            p.reread = Some(Instant::now());
            p.space.jit = None;
            p.changed();
        }
        grew
    }

    /// pids that had unnamed frames in anonymous executable code (JIT code) but no perf map or
    /// jitdump, sorted. An address outside every mapping (a wrong return address in a frame
    /// that was unwound by guesswork) is not JIT code and doesn't count.
    pub fn without_names(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .procs
            .iter()
            .filter(|(_, p)| p.had_unnamed_anon && !p.space.has_names())
            .map(|(&pid, _)| pid)
            .collect();
        pids.sort_unstable();
        pids
    }

    /// Of the `sampled` pids, those that ran a Python interpreter with its names off: they
    /// map an interpreter (`python*`, `libpython*`), have no perf map or jitdump (nor a
    /// parent's), and ran no anonymous code (stubs) that would have needed one. Sorted, each
    /// with the interpreter's version when its file name says it (`libpython3.11.so.1.0`).
    pub fn python_without_names(&self, sampled: &BTreeSet<i32>) -> Vec<NamesOff> {
        let mut off: Vec<NamesOff> = sampled
            .iter()
            .filter_map(|&pid| {
                let p = self.procs.get(&pid)?;
                if p.had_unnamed_anon || p.space.has_names() {
                    return None;
                }
                let interpreter = p
                    .space
                    .mappings
                    .iter()
                    .find_map(|m| crate::python::interpreter_file_version(&m.path))?;
                Some(NamesOff {
                    pid,
                    version: interpreter,
                })
            })
            .collect();
        off.sort_unstable_by_key(|o| o.pid);
        off
    }
}
