//! Reads a `perf.data` file into a [`Profile`].
//!
//! Per process it keeps the executable mappings (from `MMAP`/`MMAP2` records; cloned on fork,
//! reset on exec) and the Python stubs (from the process's perf map and jitdump). A sample with
//! user registers and stack (`--call-graph dwarf`) is unwound with framehop over modules made of
//! the mapped binaries' CFI and the jitdump's per-stub CFI; an address with no CFI at all — a
//! perf-map stub — is unwound through its frame record. A sample with only a callchain
//! (`-g`, frame pointers) uses that callchain.

use super::elf::{Bytes, Elf};
use super::jit::{self, JitInfo};
use super::{Frame, Kind, Profile, Sample};
use anyhow::{bail, Context, Result};
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};
use linux_perf_data::linux_perf_event_reader::constants::{
    PERF_CONTEXT_KERNEL, PERF_CONTEXT_MAX, PERF_CONTEXT_USER, PERF_REG_X86_BP, PERF_REG_X86_IP,
    PERF_REG_X86_SP,
};
use linux_perf_data::linux_perf_event_reader::{CpuMode, EventRecord, SamplingPolicy};
use linux_perf_data::{PerfFileReader, PerfFileRecord};
use std::cell::Cell;
use std::collections::HashMap;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

/// Deepest stack kept; deeper ones are cut at the root side.
const MAX_DEPTH: usize = 2048;

pub struct Options {
    /// Directories searched first for `perf-<pid>.map` / `jit-<pid>.dump`.
    pub jit_dirs: Vec<PathBuf>,
    /// Show a progress bar (on a terminal, for large inputs).
    pub progress: bool,
}

#[derive(Clone)]
struct Mapping {
    start: u64,
    end: u64,
    base: u64,
    elf: Option<Arc<Elf>>,
    path: Arc<str>,
}

/// A process's address space as far as naming and unwinding need it.
#[derive(Clone, Default)]
struct Space {
    /// Executable file mappings, sorted by start, not overlapping.
    mappings: Vec<Mapping>,
    /// Its own names (`None`: not looked up yet) and those inherited from the parent at fork.
    jit: Option<Arc<JitInfo>>,
    inherited: Vec<Arc<JitInfo>>,
    /// Where the process mapped its jitdump (its marker mapping), if it did.
    marker: Option<PathBuf>,
}

struct Proc {
    space: Space,
    unwinder: Option<UnwinderX86_64<Bytes>>,
    cache: CacheX86_64,
    /// Frame ids by (address, is return address); cleared when the address space changes.
    names: HashMap<(u64, bool), u32>,
    had_unnamed_anon: bool,
}

impl Proc {
    fn new(space: Space) -> Proc {
        Proc {
            space,
            unwinder: None,
            cache: CacheX86_64::new(),
            names: HashMap::new(),
            had_unnamed_anon: false,
        }
    }

    fn changed(&mut self) {
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

    fn jit_infos(&self) -> impl Iterator<Item = &Arc<JitInfo>> {
        self.space.jit.iter().chain(self.space.inherited.iter())
    }

    fn unwinder(&mut self) -> &UnwinderX86_64<Bytes> {
        if self.unwinder.is_none() {
            let mut modules: Vec<Module<Bytes>> = Vec::new();
            for m in &self.space.mappings {
                let info = match &m.elf {
                    Some(elf) => elf.section_info(),
                    None => ExplicitModuleSectionInfo::default(),
                };
                modules.push(Module::new(
                    m.path.to_string(),
                    m.start..m.end,
                    m.base,
                    info,
                ));
            }
            let mut seen = std::collections::HashSet::new();
            for info in self.jit_infos() {
                for u in &info.unwind {
                    if seen.insert(u.start) {
                        modules.push(stub_module(
                            u.start,
                            u.code_size,
                            &u.eh_frame,
                            &u.eh_frame_hdr,
                        ));
                    }
                }
            }
            // Perf-map stubs of CPython's own trampoline keep no frame record: give each the
            // CFI derived from the template in the interpreter's binary. They are told apart
            // by size: a copy of the template is exactly as long as it (perfpy's stubs, which
            // do keep a frame record, are 8 bytes; CPython's `sub`/`add` template is 11 or 15;
            // a template that builds a frame record gets no derived CFI at all).
            let cpython = self
                .space
                .mappings
                .iter()
                .find_map(|m| m.elf.as_ref().and_then(|e| e.cpython_trampoline.clone()));
            if let Some(cfi) = cpython {
                for info in self.jit_infos() {
                    for stub in &info.stubs {
                        if stub.end - stub.start == cfi.code_size && seen.insert(stub.start) {
                            modules.push(stub_module(
                                stub.start,
                                cfi.code_size,
                                &cfi.eh_frame,
                                &cfi.eh_frame_hdr,
                            ));
                        }
                    }
                }
            }
            // Adding in address order keeps framehop's sorted insert at the end: linear in
            // the number of modules even with tens of thousands of stubs.
            modules.sort_by_key(|m| m.avma_range().start);
            let mut unwinder = UnwinderX86_64::new();
            let mut last_end = 0;
            for m in modules {
                if m.avma_range().start < last_end {
                    continue; // a stub inside a file mapping: the file wins
                }
                last_end = m.avma_range().end;
                unwinder.add_module(m);
            }
            self.unwinder = Some(unwinder);
            self.cache = CacheX86_64::new();
        }
        self.unwinder.as_ref().expect("just built")
    }
}

/// A module for one stub whose CFI is laid out as in perf's `jitted-*.so`: code at 0, its
/// `.eh_frame` at the next multiple of 8, the header after it.
fn stub_module(
    start: u64,
    code_size: u64,
    eh_frame: &Bytes,
    eh_frame_hdr: &Bytes,
) -> Module<Bytes> {
    let eh_start = code_size.div_ceil(8) * 8;
    let hdr_start = eh_start + eh_frame.len() as u64;
    let section_info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: Some(0..code_size),
        eh_frame_svma: Some(eh_start..hdr_start),
        eh_frame: Some(eh_frame.clone()),
        eh_frame_hdr_svma: Some(hdr_start..hdr_start + eh_frame_hdr.len() as u64),
        eh_frame_hdr: Some(eh_frame_hdr.clone()),
        ..Default::default()
    };
    Module::new(String::new(), start..start + code_size, start, section_info)
}

/// Counts the bytes read, for the progress bar.
struct Counting<R> {
    inner: R,
    pos: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos.set(self.pos.get() + n as u64);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let p = self.inner.seek(to)?;
        self.pos.set(p);
        Ok(p)
    }
}

struct Reader<'o> {
    opts: &'o Options,
    profile: Profile,
    procs: HashMap<i32, Proc>,
    elves: HashMap<String, Option<Arc<Elf>>>,
    kernel_frame: u32,
    /// Where the recording says the kernel's text starts (its `[kernel.kallsyms]` mapping).
    kernel_text: Option<u64>,
    /// This machine's kernel symbols, when they belong to the recorded kernel (`None`: not
    /// looked at yet).
    kallsyms: Option<Option<Kallsyms>>,
    /// Kernel frames by address.
    kernel_names: HashMap<u64, u32>,
}

/// `/proc/kallsyms`' text symbols, sorted.
struct Kallsyms {
    symbols: Vec<(u64, Arc<str>)>,
}

impl Kallsyms {
    /// This machine's kernel symbols, if readable (not hidden by `kptr_restrict`) and if the
    /// kernel's text starts at `text` as in the recording: the same boot (KASLR moves it).
    fn load(text: u64) -> Option<Kallsyms> {
        let data = std::fs::read_to_string("/proc/kallsyms").ok()?;
        let mut symbols = Vec::new();
        let mut text_here = None;
        for line in data.lines() {
            let mut f = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if !matches!(kind, "t" | "T" | "w" | "W") {
                continue;
            }
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            if name == "_text" {
                text_here = Some(addr);
            }
            if addr != 0 {
                symbols.push((addr, Arc::from(name)));
            }
        }
        if text_here != Some(text) || symbols.is_empty() {
            return None;
        }
        symbols.sort_by_key(|s| s.0);
        Some(Kallsyms { symbols })
    }

    fn name(&self, addr: u64) -> Option<&Arc<str>> {
        let i = self.symbols.partition_point(|s| s.0 <= addr);
        Some(&self.symbols.get(i.checked_sub(1)?)?.1)
    }
}

fn is_jit_marker(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("jit-") && name.ends_with(".dump")
}

impl Reader<'_> {
    fn proc(&mut self, pid: i32) -> &mut Proc {
        self.procs
            .entry(pid)
            .or_insert_with(|| Proc::new(Space::default()))
    }

    fn elf(&mut self, pid: i32, path: &str) -> Option<Arc<Elf>> {
        if let Some(e) = self.elves.get(path) {
            return e.clone();
        }
        let mut elf = Elf::load(Path::new(path));
        if elf.is_none() {
            // A binary inside a container's mount namespace, while the process runs.
            elf = Elf::load(
                &Path::new(&format!("/proc/{pid}/root")).join(path.trim_start_matches('/')),
            );
        }
        let elf = elf.map(Arc::new);
        if elf.is_none() && Path::new(path).is_absolute() && !is_jit_marker(path) {
            self.profile.stats.missing_binaries.push(path.to_string());
        }
        self.elves.insert(path.to_string(), elf.clone());
        elf
    }

    fn on_mmap(&mut self, pid: i32, start: u64, len: u64, pgoff: u64, exec: bool, path: &str) {
        if pid == -1 && path.starts_with("[kernel.kallsyms]") {
            self.kernel_text = Some(start);
            return;
        }
        if pid <= 0 || !exec || len == 0 {
            return;
        }
        if is_jit_marker(path) {
            let p = self.proc(pid);
            p.space.marker = Some(PathBuf::from(path));
            if p.space.jit.as_ref().is_some_and(|j| j.files.is_empty()) {
                p.space.jit = None; // look again, now knowing where
                p.changed();
            }
            return;
        }
        if !path.starts_with('/') || path.starts_with("//") {
            return; // [vdso], //anon, [heap]: framehop falls back to frame pointers there
        }
        let elf = self.elf(pid, path);
        let base = elf
            .as_ref()
            .map_or(start.wrapping_sub(pgoff), |e| e.base_avma(start, pgoff));
        self.proc(pid).add_mapping(Mapping {
            start,
            end: start + len,
            base,
            elf,
            path: Arc::from(path),
        });
    }

    fn ensure_jit(&mut self, pid: i32) {
        let dirs = self.opts.jit_dirs.clone();
        let p = self.proc(pid);
        if p.space.jit.is_some() {
            return;
        }
        let info = jit::load(&jit::candidates(pid, &dirs, p.space.marker.as_deref()));
        p.space.jit = Some(Arc::new(info));
        p.changed();
        let info = p.space.jit.clone().expect("set above");
        for f in &info.files {
            if !self.profile.stats.jit_files.contains(f) {
                self.profile.stats.jit_files.push(f.clone());
            }
        }
        for problem in &info.problems {
            if !self.profile.stats.problems.contains(problem) {
                self.profile.stats.problems.push(problem.clone());
            }
        }
    }

    fn frame_for(&mut self, pid: i32, addr: u64, is_return: bool) -> u32 {
        if let Some(&id) = self
            .procs
            .get(&pid)
            .and_then(|p| p.names.get(&(addr, is_return)))
        {
            return id;
        }
        let lookup = if is_return {
            addr.wrapping_sub(1)
        } else {
            addr
        };
        let p = self.procs.get_mut(&pid).expect("process exists");
        let mut frame = None;
        for info in p.jit_infos() {
            if let Some(stub) = jit::find(&info.stubs, lookup) {
                frame = Some(Frame {
                    kind: Kind::Python,
                    name: stub.name.clone(),
                    module: None,
                    line: stub.line,
                });
                break;
            }
        }
        if frame.is_none() {
            let maps = &p.space.mappings;
            let i = maps.partition_point(|m| m.start <= lookup);
            if let Some(m) = i
                .checked_sub(1)
                .map(|i| &maps[i])
                .filter(|m| lookup < m.end)
            {
                let module = m
                    .elf
                    .as_ref()
                    .map(|e| e.short_name.clone())
                    .unwrap_or_else(|| Arc::from(m.path.rsplit('/').next().unwrap_or(&m.path)));
                let name = m
                    .elf
                    .as_ref()
                    .and_then(|e| e.symbol(lookup.wrapping_sub(m.base)).cloned())
                    .unwrap_or_else(|| Arc::from(format!("[{module}]")));
                frame = Some(Frame {
                    kind: Kind::Native,
                    name,
                    module: Some(module),
                    line: None,
                });
            }
        }
        let frame = frame.unwrap_or_else(|| {
            p.had_unnamed_anon = true;
            Frame {
                kind: Kind::Native,
                name: Arc::from("[unknown]"),
                module: None,
                line: None,
            }
        });
        let id = self.profile.intern_frame(frame);
        self.procs
            .get_mut(&pid)
            .expect("process exists")
            .names
            .insert((addr, is_return), id);
        id
    }

    /// A kernel frame: its symbol when this machine's kernel is the recorded one, else one
    /// `[kernel]` frame for the whole kernel part.
    fn kernel_frame_for(&mut self, addr: u64) -> Option<u32> {
        if self.kallsyms.is_none() {
            self.kallsyms = Some(self.kernel_text.and_then(Kallsyms::load));
        }
        let syms = self.kallsyms.as_ref().and_then(Option::as_ref)?;
        if let Some(&id) = self.kernel_names.get(&addr) {
            return Some(id);
        }
        let name = syms.name(addr)?.clone();
        let id = self.profile.intern_frame(Frame {
            kind: Kind::Kernel,
            name,
            module: Some(Arc::from("[kernel]")),
            line: None,
        });
        self.kernel_names.insert(addr, id);
        Some(id)
    }

    fn on_sample(&mut self, s: &linux_perf_data::linux_perf_event_reader::SampleRecord<'_>) {
        let (Some(pid), Some(tid)) = (s.pid, s.tid) else {
            return;
        };
        self.profile.stats.samples += 1;
        self.ensure_jit(pid);
        // Leaf first.
        let mut leaf_first: Vec<u32> = Vec::with_capacity(64);
        let mut callchain_user = Vec::new();
        let mut callchain_kernel = Vec::new();
        if let Some(chain) = &s.callchain {
            let mut ctx = 0u64;
            for i in 0..chain.len() {
                let Some(a) = chain.get(i) else { break };
                if a >= PERF_CONTEXT_MAX {
                    ctx = a;
                    continue;
                }
                if ctx == PERF_CONTEXT_KERNEL {
                    callchain_kernel.push(a);
                } else if ctx == PERF_CONTEXT_USER {
                    callchain_user.push(a);
                }
            }
        }
        if callchain_kernel.is_empty() && s.cpu_mode == CpuMode::Kernel {
            callchain_kernel.extend(s.ip);
        }
        let mut named = Vec::with_capacity(callchain_kernel.len());
        for &a in &callchain_kernel {
            match self.kernel_frame_for(a) {
                Some(f) => named.push(f),
                None => {
                    named.clear();
                    break;
                }
            }
        }
        if named.is_empty() && !callchain_kernel.is_empty() {
            named.push(self.kernel_frame);
        }
        leaf_first.extend(named);
        let regs = s.user_regs.as_ref().and_then(|r| {
            Some((
                r.get(PERF_REG_X86_IP)?,
                r.get(PERF_REG_X86_SP)?,
                r.get(PERF_REG_X86_BP)?,
            ))
        });
        match (regs, &s.user_stack) {
            (Some((ip, sp, bp)), Some((stack, dyn_size))) => {
                let bytes = stack.as_slice();
                let valid = (*dyn_size as usize).min(bytes.len());
                let bytes = &bytes[..valid];
                let mut read_stack = |addr: u64| -> Result<u64, ()> {
                    let off = addr.checked_sub(sp).ok_or(())? as usize;
                    let word = bytes.get(off..off + 8).ok_or(())?;
                    Ok(u64::from_le_bytes(word.try_into().map_err(|_| ())?))
                };
                let mut addrs = Vec::with_capacity(64);
                let truncated = {
                    let p = self.proc(pid);
                    p.unwinder();
                    let Proc {
                        unwinder, cache, ..
                    } = p;
                    let unwinder = unwinder.as_ref().expect("built above");
                    let mut it = unwinder.iter_frames(
                        ip,
                        UnwindRegsX86_64::new(ip, sp, bp),
                        cache,
                        &mut read_stack,
                    );
                    let mut truncated = false;
                    loop {
                        match it.next() {
                            Ok(Some(f)) => {
                                let (a, ret) = match f {
                                    FrameAddress::InstructionPointer(a) => (a, false),
                                    FrameAddress::ReturnAddress(a) => (a.get(), true),
                                };
                                addrs.push((a, ret));
                                if addrs.len() >= MAX_DEPTH {
                                    break;
                                }
                            }
                            Ok(None) => break,
                            Err(_) => {
                                truncated = addrs.len() <= 1;
                                break;
                            }
                        }
                    }
                    truncated
                };
                if truncated {
                    self.profile.stats.truncated += 1;
                }
                for (a, ret) in addrs {
                    let f = self.frame_for(pid, a, ret);
                    leaf_first.push(f);
                }
            }
            _ => {
                for (i, a) in callchain_user.into_iter().enumerate().take(MAX_DEPTH) {
                    let f = self.frame_for(pid, a, i > 0);
                    leaf_first.push(f);
                }
                if leaf_first.is_empty() {
                    if let Some(ip) = s.ip {
                        let f = self.frame_for(pid, ip, false);
                        leaf_first.push(f);
                    }
                }
            }
        }
        leaf_first.reverse();
        let stack = self.profile.intern_stack(&leaf_first);
        self.profile.samples.push(Sample {
            time: s.timestamp.unwrap_or(0),
            pid,
            tid,
            stack,
        });
    }
}

/// Reads `path` into a profile.
pub fn read(path: &Path, opts: &Options) -> Result<Profile> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let pos = Rc::new(Cell::new(0u64));
    let reader = BufReader::with_capacity(
        1 << 20,
        Counting {
            inner: file,
            pos: pos.clone(),
        },
    );
    let PerfFileReader {
        mut perf_file,
        mut record_iter,
    } = PerfFileReader::parse_file(reader).with_context(|| {
        format!(
            "{} is not a perf.data file perfpy can read (a pipe-mode or damaged recording?)",
            path.display()
        )
    })?;
    if let Ok(Some(arch)) = perf_file.arch() {
        if arch != "x86_64" {
            bail!(
                "{} was recorded on {arch}; perfpy report unwinds x86_64 recordings only for now \
                 (use perf inject --jit and perf report there)",
                path.display()
            );
        }
    }
    let mut profile = Profile {
        perf_version: perf_file.perf_version().ok().flatten().map(str::to_string),
        ..Default::default()
    };
    profile.command = perf_file.cmdline().ok().flatten().map(|args| {
        // `perf record ... -- python app.py` → `python app.py`.
        let after = args.iter().position(|a| *a == "--").map_or(0, |i| i + 1);
        args[after..].join(" ")
    });
    profile.frequency =
        perf_file
            .event_attributes()
            .iter()
            .find_map(|a| match a.attr.sampling_policy {
                SamplingPolicy::Frequency(f) => Some(f),
                _ => None,
            });
    let kernel_frame = profile.intern_frame(Frame {
        kind: Kind::Kernel,
        name: Arc::from("[kernel]"),
        module: None,
        line: None,
    });
    let mut r = Reader {
        opts,
        profile,
        procs: HashMap::new(),
        elves: HashMap::new(),
        kernel_frame,
        kernel_text: None,
        kallsyms: None,
        kernel_names: HashMap::new(),
    };
    let bar = (opts.progress && total > 32 << 20).then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "reading {msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(path.display().to_string());
        bar
    });
    let mut n = 0u64;
    while let Some(record) = record_iter
        .next_record(&mut perf_file)
        .with_context(|| format!("reading {}", path.display()))?
    {
        n += 1;
        if n.is_multiple_of(4096) {
            if let Some(b) = &bar {
                b.set_position(pos.get());
            }
        }
        let PerfFileRecord::EventRecord { record, .. } = record else {
            continue;
        };
        let Ok(parsed) = record.parse() else {
            continue;
        };
        match parsed {
            EventRecord::Sample(s) => r.on_sample(&s),
            EventRecord::Mmap2(m) => {
                let path = String::from_utf8_lossy(&m.path.as_slice()).into_owned();
                r.on_mmap(
                    m.pid,
                    m.address,
                    m.length,
                    m.page_offset,
                    m.protection & libc::PROT_EXEC as u32 != 0,
                    &path,
                );
            }
            EventRecord::Mmap(m) => {
                let path = String::from_utf8_lossy(&m.path.as_slice()).into_owned();
                r.on_mmap(
                    m.pid,
                    m.address,
                    m.length,
                    m.page_offset,
                    m.is_executable,
                    &path,
                );
            }
            EventRecord::Comm(c) => {
                r.profile.pids.insert(c.pid);
                let name = String::from_utf8_lossy(&c.name.as_slice()).into_owned();
                if c.is_execve {
                    r.procs.insert(c.pid, Proc::new(Space::default()));
                }
                if c.pid == c.tid {
                    r.profile.process_names.insert(c.pid, name.clone());
                }
                r.profile.thread_names.insert(c.tid, name);
            }
            EventRecord::Fork(f) => {
                r.profile.pids.insert(f.pid);
                if f.pid != f.ppid && !r.procs.contains_key(&f.pid) {
                    let space = match r.procs.get(&f.ppid) {
                        Some(parent) => {
                            let mut s = parent.space.clone();
                            // The child runs the parent's stubs: their names stay valid
                            // there, under the child's own names.
                            let own = s.jit.take();
                            s.inherited.splice(0..0, own);
                            s
                        }
                        None => Space::default(),
                    };
                    r.procs.insert(f.pid, Proc::new(space));
                }
                if let Some(name) = r.profile.process_names.get(&f.ppid).cloned() {
                    r.profile.thread_names.entry(f.tid).or_insert(name);
                }
            }
            EventRecord::Lost(l) => r.profile.stats.lost_events += l.count,
            _ => {}
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut without: Vec<i32> = r
        .procs
        .iter()
        .filter(|(_, p)| p.had_unnamed_anon && p.jit_infos().all(|j| j.files.is_empty()))
        .map(|(&pid, _)| pid)
        .collect();
    without.sort_unstable();
    r.profile.stats.pids_without_names = without;
    Ok(r.profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kallsyms_only_for_the_recorded_boot() {
        // A kernel text address no boot of this machine has: never used.
        assert!(Kallsyms::load(0x1234).is_none());
        let text = std::fs::read_to_string("/proc/kallsyms")
            .ok()
            .and_then(|d| {
                d.lines()
                    .find(|l| l.ends_with(" _text"))
                    .and_then(|l| u64::from_str_radix(l.split(' ').next()?, 16).ok())
            })
            .filter(|&a| a != 0);
        if let Some(text) = text {
            let syms = Kallsyms::load(text).expect("this boot's symbols");
            let name = syms.name(text + 1).expect("a symbol at the kernel's start");
            assert!(name.starts_with('_'), "{name}");
        }
    }
}
