//! `perf.data` → [`Profile`], in the order the data flows:
//!
//! ```text
//! records (linux-perf-data, in file order)
//!   COMM / FORK / MMAP2 ──► process: each pid's executable mappings and Python names
//!   SAMPLE ──► kernel part: symbolize (kallsyms)
//!              user part:   unwind (framehop: registers + stack copy), or the callchain (-g)
//!              each frame:  symbolize (perf map / jitdump stub, ELF symbol)
//!          ──► Profile: interned stack + sample
//! ```
//!
//! [`header`] reads what the file says of itself, [`events`] which event's samples the
//! report is of (one: samples of different events are never added up), [`process`] keeps the
//! address spaces,
//! [`modules`] and [`unwind`] the per-architecture unwinding, [`symbolize`] the naming,
//! [`progress`] the progress bar.

pub mod cfi;
pub mod events;
pub mod header;
pub mod modules;
pub mod process;
pub mod progress;
pub mod repair;
pub mod sanitize;
pub mod symbolize;
pub mod unwind;
pub mod waits;

use crate::report::{Profile, Sample};
use anyhow::{bail, Context, Result};
use linux_perf_data::linux_perf_event_reader::constants::{
    PERF_CONTEXT_KERNEL, PERF_CONTEXT_MAX, PERF_CONTEXT_USER,
};
use linux_perf_data::linux_perf_event_reader::{CpuMode, EventRecord, RecordType, SampleRecord};
use linux_perf_data::{PerfFileReader, PerfFileRecord};
use process::Processes;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use symbolize::{frame_for, KernelNames};
use unwind::{Arch, MAX_DEPTH};

pub struct Options {
    /// Directories searched first for `perf-<pid>.map` / `jit-<pid>.dump`.
    pub jit_dirs: Vec<PathBuf>,
    /// Show a progress bar (on a terminal, for large inputs).
    pub progress: bool,
    /// The event whose samples to report (`--event`); `None`: the file's first.
    pub event: Option<String>,
}

/// Reads `path` into a profile.
pub fn read(path: &Path, opts: &Options) -> Result<Profile> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    if total == 0 {
        bail!(
            "{} is empty: perf wrote nothing into it (it was stopped before it started, or \
             the disk was full). Record again; `perfpy doctor` checks what perf needs",
            path.display()
        );
    }
    let (file, damage) = repair::open(file, total)
        .with_context(|| format!("{} is not a perf.data file perfpy can read", path.display()))?;
    let (counting, pos) = progress::Counting::new(file);
    let PerfFileReader {
        mut perf_file,
        mut record_iter,
    } = PerfFileReader::parse_file(BufReader::with_capacity(1 << 20, counting)).with_context(
        || {
            format!(
                "{} is not a perf.data file perfpy can read (a pipe-mode or damaged recording?)",
                path.display()
            )
        },
    )?;
    if let Ok(Some(arch)) = perf_file.arch() {
        if arch != unwind::X86_64::NAME {
            bail!(
                "{} was recorded on {arch}; perfpy report unwinds x86_64 recordings only for now \
                 (use perf inject --jit and perf report there)",
                path.display()
            );
        }
    }
    let mut profile = Profile::default();
    if let Some(d) = &damage {
        profile.stats.problems.push(d.describe());
    }
    let descs = perf_file.event_attributes().to_vec();
    let selection = events::selection(&descs, opts.event.as_deref())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    profile.measure = selection.measure;
    let described = selection.samples.or(selection.switches).unwrap_or(0);
    header::describe(&perf_file, described, &mut profile);
    let mut counts = vec![0u64; descs.len()];
    let kernel = KernelNames::new(&mut profile);
    let mut r: Reader<unwind::X86_64> = Reader {
        profile,
        procs: Processes::new(opts.jit_dirs.clone()),
        kernel,
        selection,
        timeline: waits::Timeline::default(),
    };
    let bar = progress::bar(opts.progress, path, total);
    let (mut n, mut damaged) = (0u64, 0u64);
    loop {
        let record = match record_iter.next_record(&mut perf_file) {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) => {
                // A damaged record in the middle: what came before it stands.
                r.profile.stats.problems.push(format!(
                    "stopped reading at a damaged record near byte {} of {total} ({e}); the \
                     report covers the records before it",
                    pos.get()
                ));
                break;
            }
        };
        n += 1;
        if let Some(b) = bar.as_ref().filter(|_| n.is_multiple_of(4096)) {
            b.set_position(pos.get());
        }
        let PerfFileRecord::EventRecord { attr_index, record } = record else {
            continue;
        };
        if record.record_type == RecordType::SAMPLE {
            if let Some(c) = counts.get_mut(attr_index) {
                *c += 1;
            }
            if !selection.reports(attr_index) {
                continue;
            }
        }
        if record.record_type == RecordType::SWITCH && selection.switches.is_some() {
            r.timeline.switch_record(&record);
            continue;
        }
        if sanitize::record_would_panic(&record) {
            damaged += 1;
            continue;
        }
        if let Ok(parsed) = record.parse() {
            r.on_record(parsed, attr_index);
        }
    }
    if damaged > 0 {
        r.profile.stats.problems.push(format!(
            "skipped {damaged} damaged record{} (a mapping whose build id is longer than 20 \
             bytes): the file is damaged there, and the report covers the other records",
            if damaged == 1 { "" } else { "s" }
        ));
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    r.profile.events = events::summary(&descs, &counts, &selection);
    if selection.measure.is_time() {
        std::mem::take(&mut r.timeline).into_samples(&mut r.profile);
    }
    r.profile.stats.pids_without_names = r.procs.without_names();
    let sampled = r.profile.samples.iter().map(|s| s.pid).collect();
    r.profile.stats.names_off = r.procs.python_without_names(&sampled);
    Ok(r.profile)
}

/// The state of one pass over the records.
struct Reader<A: Arch> {
    profile: Profile,
    procs: Processes<A>,
    kernel: KernelNames,
    selection: events::Selection,
    /// Wall-clock and off-CPU recordings: the threads' switches.
    timeline: waits::Timeline,
}

impl<A: Arch> Reader<A> {
    fn on_record(&mut self, record: EventRecord<'_>, attr_index: usize) {
        match record {
            EventRecord::Sample(s) => self.on_sample(&s, attr_index),
            EventRecord::Exit(e) => self.timeline.exit(e.tid, e.timestamp),
            EventRecord::Mmap2(m) => {
                let path = String::from_utf8_lossy(&m.path.as_slice()).into_owned();
                let exec = m.protection & libc::PROT_EXEC as u32 != 0;
                self.on_mmap(m.pid, m.address, m.length, m.page_offset, exec, &path);
            }
            EventRecord::Mmap(m) => {
                let path = String::from_utf8_lossy(&m.path.as_slice()).into_owned();
                self.on_mmap(
                    m.pid,
                    m.address,
                    m.length,
                    m.page_offset,
                    m.is_executable,
                    &path,
                );
            }
            EventRecord::Comm(c) => {
                self.profile.pids.insert(c.pid);
                let name = String::from_utf8_lossy(&c.name.as_slice()).into_owned();
                if c.is_execve {
                    self.procs.exec(c.pid);
                }
                if c.pid == c.tid {
                    self.profile.process_names.insert(c.pid, name.clone());
                }
                self.profile.thread_names.insert(c.tid, name);
            }
            EventRecord::Fork(f) => {
                self.profile.pids.insert(f.pid);
                self.procs.fork(f.pid, f.ppid, &mut self.profile.stats);
                if let Some(name) = self.profile.process_names.get(&f.ppid).cloned() {
                    self.profile.thread_names.entry(f.tid).or_insert(name);
                }
            }
            EventRecord::Lost(l) => self.profile.stats.lost_events += l.count,
            _ => {}
        }
    }

    fn on_mmap(&mut self, pid: i32, start: u64, len: u64, pgoff: u64, exec: bool, path: &str) {
        if pid == -1 && path.starts_with("[kernel.kallsyms]") {
            self.kernel.text = Some(start);
        } else if pid > 0 && exec && len > 0 {
            self.procs
                .mmap(pid, start, len, pgoff, path, &mut self.profile.stats);
        }
    }

    fn on_sample(&mut self, s: &SampleRecord<'_>, attr_index: usize) {
        let (Some(pid), Some(tid)) = (s.pid, s.tid) else {
            return;
        };
        self.profile.stats.samples += 1;
        let (mut kernel, user) = split_callchain(s);
        if kernel.is_empty() && s.cpu_mode == CpuMode::Kernel {
            kernel.extend(s.ip);
        }
        // Leaf first.
        let mut leaf_first = self.kernel.frames(&mut self.profile, &kernel);
        let proc = self.procs.with_names(pid, &mut self.profile.stats);
        let unwound = match (&s.user_regs, &s.user_stack) {
            (Some(regs), Some((stack, dyn_size))) => {
                unwind::unwind(proc, regs, &stack.as_slice(), *dyn_size as usize)
            }
            _ => None,
        };
        let user: Vec<(u64, bool)> = match unwound {
            Some(u) => {
                let stats = &mut self.profile.stats;
                stats.truncated += u.truncated as u64;
                match u.end {
                    unwind::End::Root { used } => stats.stack.whole(used),
                    unwind::End::CopyRanOut => stats.stack.cut += 1,
                    unwind::End::Lost => {}
                }
                u.frames
            }
            None if user.is_empty() => s.ip.map(|ip| (ip, false)).into_iter().collect(),
            None => user
                .into_iter()
                .take(MAX_DEPTH)
                .enumerate()
                .map(|(i, a)| (a, i > 0))
                .collect(),
        };
        for (addr, is_return) in user {
            leaf_first.push(frame_for(proc, &mut self.profile, addr, is_return));
        }
        leaf_first.reverse();
        let stack = self.profile.intern_stack(&leaf_first);
        let time = s.timestamp.unwrap_or(0);
        if self.selection.switches == Some(attr_index) {
            self.timeline.switch_stack(pid, tid, time, stack);
            return;
        }
        if self.profile.measure.is_time() {
            // cpu-clock's period is the CPU time the sample stands for, in nanoseconds; the
            // timeline measures it from the switches where it can.
            let period = s
                .period
                .filter(|&p| p > 0)
                .unwrap_or(1_000_000_000 / self.profile.frequency.unwrap_or(1000).max(1));
            self.timeline.cpu_sample(pid, tid, time, stack, period);
            return;
        }
        self.profile.samples.push(Sample {
            time,
            pid,
            tid,
            stack,
            weight: 1,
        });
    }
}

/// A sample's callchain (`-g`), split into its kernel and user addresses, leaf first.
fn split_callchain(s: &SampleRecord<'_>) -> (Vec<u64>, Vec<u64>) {
    let (mut kernel, mut user) = (Vec::new(), Vec::new());
    if let Some(chain) = &s.callchain {
        let mut ctx = 0u64;
        for i in 0..chain.len() {
            let Some(a) = chain.get(i) else { break };
            if a >= PERF_CONTEXT_MAX {
                ctx = a;
            } else if ctx == PERF_CONTEXT_KERNEL {
                kernel.push(a);
            } else if ctx == PERF_CONTEXT_USER {
                user.push(a);
            }
        }
    }
    (kernel, user)
}
