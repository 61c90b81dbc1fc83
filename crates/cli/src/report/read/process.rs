//! The profiled processes as the recording describes them: each one's executable mappings
//! (from `MMAP`/`MMAP2`; cloned on fork, reset on exec) and the Python names of its stubs
//! (its perf map and jitdump, looked up on its first sample).

use super::arch::Arch;
use crate::report::elf::Elf;
use crate::report::jit::JitInfo;
use crate::report::Stats;
use perfpy_format::files;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// One executable file mapping.
#[derive(Clone)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// The address the file's first byte would have (`avma = svma + base`).
    pub base: u64,
    pub elf: Option<Arc<Elf>>,
    pub path: Arc<str>,
}

/// A process's address space as far as naming and unwinding need it.
#[derive(Clone, Default)]
pub struct Space {
    /// Executable file mappings, sorted by start, not overlapping.
    pub mappings: Vec<Mapping>,
    /// Its own names (`None`: not looked up yet) and those inherited from the parent at fork.
    pub jit: Option<Arc<JitInfo>>,
    pub inherited: Vec<Arc<JitInfo>>,
    /// Where the process mapped its jitdump (its marker mapping), if it did.
    pub marker: Option<PathBuf>,
    /// Anonymous executable mappings (JIT code: the stubs' arenas), sorted by start.
    pub anon_code: Vec<(u64, u64)>,
}

impl Space {
    /// A forked child's space: the parent's mappings, and the parent's names kept as
    /// inherited (the child runs the parent's stubs until it makes its own). The parent's
    /// jitdump marker is not the child's: the child's own names are in its own file, and
    /// taking the parent's as the child's would name the child's new stubs after whatever the
    /// parent put at the same addresses after the fork.
    fn forked(&self) -> Space {
        let mut s = self.clone();
        let own = s.jit.take();
        s.inherited.splice(0..0, own);
        s.marker = None;
        s
    }

    /// Whether `addr` is in one of the anonymous executable mappings.
    pub fn in_anon_code(&self, addr: u64) -> bool {
        let j = self.anon_code.partition_point(|&(s, _)| s <= addr);
        j > 0 && addr < self.anon_code[j - 1].1
    }

    pub fn jit_infos(&self) -> impl Iterator<Item = &Arc<JitInfo>> {
        self.jit.iter().chain(self.inherited.iter())
    }

    /// Whether a perf map or jitdump names its stubs (its own, or its parent's).
    pub fn has_names(&self) -> bool {
        self.jit_infos().any(|j| !j.files.is_empty())
    }
}

/// One process: its space, and what is derived from it (rebuilt when the space changes).
pub struct Proc<A: Arch> {
    pub space: Space,
    /// framehop's unwinder over the space (`None`: to be built).
    pub unwinder: Option<A::Unwinder>,
    pub cache: A::Cache,
    /// Frame ids by (address, is return address), and whether the address is anonymous
    /// code that no stub names.
    pub names: HashMap<(u64, bool), (u32, bool)>,
    /// Whether a frame of this process was in anonymous executable code that no stub names,
    /// and how many such frames were looked up.
    pub had_unnamed_anon: bool,
    pub unnamed: u64,
    /// When its names were last read again because they had grown (followed names).
    pub(super) reread: Option<Instant>,
}

impl<A: Arch> Proc<A> {
    pub(super) fn new(space: Space) -> Proc<A> {
        Proc {
            space,
            unwinder: None,
            cache: A::Cache::default(),
            names: HashMap::new(),
            had_unnamed_anon: false,
            unnamed: 0,
            reread: None,
        }
    }

    /// Forgets what was derived from the space.
    pub(super) fn changed(&mut self) {
        self.unwinder = None;
        self.names.clear();
    }

    fn add_mapping(&mut self, m: Mapping) {
        let maps = &mut self.space.mappings;
        maps.retain(|o| o.end <= m.start || o.start >= m.end);
        let at = maps.partition_point(|o| o.start < m.start);
        maps.insert(at, m);
        self.changed();
    }
}

/// Every process of the recording, and the binaries they map (each read once).
pub struct Processes<A: Arch> {
    pub(super) procs: HashMap<i32, Proc<A>>,
    elves: HashMap<String, Option<Arc<Elf>>>,
    /// Directories searched first for `perf-<pid>.map` / `jit-<pid>.dump`.
    pub(super) jit_dirs: Vec<PathBuf>,
    /// The recording is read while its programs run: their names grow all along.
    pub follow: bool,
    /// Parents the recording has no fork record of (see [`super::Options::parents`]).
    pub(super) parents: HashMap<i32, i32>,
    /// Where the recorded machine's files are (see [`super::Options::sysroot`]).
    sysroot: Vec<PathBuf>,
}

fn is_jit_marker(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    matches!(
        files::parse_file_name(name),
        Some((files::Kind::Jitdump, _))
    )
}

impl<A: Arch> Processes<A> {
    pub fn new(
        jit_dirs: Vec<PathBuf>,
        parents: HashMap<i32, i32>,
        sysroot: Vec<PathBuf>,
    ) -> Processes<A> {
        Processes {
            procs: HashMap::new(),
            elves: HashMap::new(),
            jit_dirs,
            follow: false,
            parents,
            sysroot,
        }
    }

    pub fn get(&mut self, pid: i32) -> &mut Proc<A> {
        self.procs
            .entry(pid)
            .or_insert_with(|| Proc::new(Space::default()))
    }

    /// `COMM` with the exec flag: a new program, a new address space.
    pub fn exec(&mut self, pid: i32) {
        self.procs.insert(pid, Proc::new(Space::default()));
    }

    /// `FORK`: the child starts with a copy of its parent's space, names included (looked up
    /// now if the parent had no sample yet: the child runs the parent's stubs). A fork record
    /// perf made up for a process that ran before the recording (`synthesized`: no time;
    /// what perf record -a and -p write, followed by the process's own mappings) gives only
    /// the parent's names, for the stubs the child may have inherited: its mappings are its
    /// own (it may have run another program since).
    pub fn fork(&mut self, pid: i32, ppid: i32, synthesized: bool, stats: &mut Stats) {
        if pid == ppid || self.procs.contains_key(&pid) {
            return;
        }
        if self.procs.contains_key(&ppid) {
            self.with_names(ppid, stats);
        }
        let space = self
            .procs
            .get(&ppid)
            .map(|parent| {
                let mut space = parent.space.forked();
                if synthesized {
                    space.mappings.clear();
                    space.anon_code.clear();
                }
                space
            })
            .unwrap_or_default();
        self.procs.insert(pid, Proc::new(space));
    }

    /// `MMAP`/`MMAP2` of a user process: executable file mappings and the jitdump's marker.
    pub fn mmap(
        &mut self,
        pid: i32,
        start: u64,
        len: u64,
        pgoff: u64,
        path: &str,
        stats: &mut Stats,
    ) {
        if is_jit_marker(path) {
            let p = self.get(pid);
            p.space.marker = Some(PathBuf::from(path));
            if p.space.jit.as_ref().is_some_and(|j| j.files.is_empty()) {
                p.space.jit = None; // look again, now knowing where
                p.changed();
            }
            return;
        }
        if !path.starts_with('/') || path.starts_with("//") || path.starts_with("/memfd:") {
            // [vdso], //anon, [heap]: framehop falls back to frame pointers there. Anonymous
            // code is still code, for the unwinder's checks (named or not).
            // A memfd's mapping is code made at run time too (a JIT's, or perfpy's own stubs
            // where anonymous memory may not be made executable), with no file to read.
            if path.starts_with("//anon")
                || path.is_empty()
                || path.starts_with("[anon")
                || path.starts_with("/memfd:")
            {
                let code = &mut self.get(pid).space.anon_code;
                let end = start.saturating_add(len);
                code.retain(|&(s, e)| e <= start || s >= end);
                let at = code.partition_point(|&(s, _)| s < start);
                code.insert(at, (start, end));
            }
            return;
        }
        let elf = self.elf(pid, path, stats);
        let base = elf
            .as_ref()
            .map_or(start.wrapping_sub(pgoff), |e| e.base_avma(start, pgoff));
        self.get(pid).add_mapping(Mapping {
            start,
            end: start.saturating_add(len),
            base,
            elf,
            path: Arc::from(path),
        });
    }

    fn elf(&mut self, pid: i32, path: &str, stats: &mut Stats) -> Option<Arc<Elf>> {
        if let Some(e) = self.elves.get(path) {
            return e.clone();
        }
        // The recorded machine's root first, then this machine's files, then (while the
        // process runs) the same path inside a container's mount namespace or a chroot. Each
        // with the roots whose /usr/lib/debug may hold its debug file: its own first, then the
        // other --sysroots, then this machine's (a debug file is taken only if it is of the
        // very build: its build id, or the CRC the binary names).
        let here = PathBuf::from("/");
        let roots = |first: &Path| {
            let mut roots = vec![first.to_path_buf()];
            for r in self.sysroot.iter().chain([&here]) {
                if !roots.contains(r) {
                    roots.push(r.clone());
                }
            }
            roots
        };
        let mut candidates: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
        for root in &self.sysroot {
            candidates.push((root.join(path.trim_start_matches('/')), roots(root)));
        }
        candidates.push((PathBuf::from(path), roots(&here)));
        let recorded = Path::new(path);
        let mut elf = None;
        let mut foreign = None;
        for (p, roots) in candidates {
            match Elf::load_shared(&p, recorded, &roots) {
                Some(e) if e.machine != A::MACHINE => foreign = Some(p),
                Some(e) => {
                    elf = Some(e);
                    break;
                }
                None => {}
            }
        }
        if elf.is_none() && pid > 0 && self.sysroot.is_empty() {
            let proc_root = PathBuf::from(format!("/proc/{pid}/root"));
            elf = crate::procfs::paths_of(pid as u32, recorded)
                .iter()
                .filter(|p| p.as_path() != recorded)
                .filter_map(|p| Elf::load_shared(p, recorded, &roots(&proc_root)))
                .find(|e| e.machine == A::MACHINE);
        }
        if elf.is_none() {
            if let Some(p) = foreign {
                // A file at the recorded path, built for another CPU: the recording was made
                // on another machine.
                stats.foreign_binaries.push(p.display().to_string());
            } else if recorded.is_absolute() {
                stats.missing_binaries.push(path.to_string());
            }
        }
        self.elves.insert(path.to_string(), elf.clone());
        elf
    }

    /// The binaries read, by their path in the recording (`None`: not found, or not ELF).
    pub fn binaries(&self) -> impl Iterator<Item = (&str, &Arc<Elf>)> {
        self.elves
            .iter()
            .filter_map(|(path, elf)| Some((path.as_str(), elf.as_ref()?)))
    }
}
