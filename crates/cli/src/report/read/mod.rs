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
use linux_perf_data::{PerfFile, PerfFileReader, PerfFileRecord, PerfRecordIter};
use process::Processes;
use std::io::{BufReader, Read};
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
    /// Each process's parent, where the recording can't tell: processes forked before it
    /// began (a server's workers, when the server's processes are recorded as they run). A
    /// child runs the stubs its parent made before the fork, named in the parent's files.
    pub parents: std::collections::HashMap<i32, i32>,
}

/// Reads `path` into a profile: a perf.data file (repaired first if perf didn't finish it),
/// or a stream perf wrote to a pipe and someone saved (`perf record -o - > f`, `perfpy top
/// --output`).
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
    let unreadable = || format!("{} is not a perf.data file perfpy can read", path.display());
    let bar = progress::bar(opts.progress, path, total);
    if is_pipe_stream(&file) {
        let (counting, pos) = progress::Counting::new(BufReader::with_capacity(1 << 20, file));
        let reader = PerfFileReader::parse_pipe(counting).with_context(unreadable)?;
        let (mut records, mut state) = start(reader, opts, None).with_context(unreadable)?;
        records.measured = Some((pos, total));
        records.bar = bar;
        while records.next(&mut state) {}
        return Ok(state.finish());
    }
    let (file, damage) = repair::open(file, total).with_context(unreadable)?;
    let (counting, pos) = progress::Counting::new(file);
    let reader = PerfFileReader::parse_file(BufReader::with_capacity(1 << 20, counting))
        .with_context(|| format!("{} (a damaged recording?)", unreadable()))?;
    let (mut records, mut state) =
        start(reader, opts, damage).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))?;
    records.measured = Some((pos, total));
    records.bar = bar;
    while records.next(&mut state) {}
    Ok(state.finish())
}

/// Whether `file` holds what perf writes to a pipe: the magic and a 16-byte header, then
/// records (the attributes and features among them), instead of a header with sections.
fn is_pipe_stream(file: &std::fs::File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 16];
    file.read_exact_at(&mut head, 0).is_ok()
        && &head[..8] == b"PERFILE2"
        && u64::from_le_bytes(head[8..].try_into().unwrap_or_default()) == 16
}

/// A recording perf is writing now, read as it comes (`perf record -o -`'s standard output):
/// the records on one side, read without a lock, and the [`Reader`] they go into on the
/// other, which a live view locks to look at what has been read so far.
pub fn stream<R: Read>(input: R, opts: &Options) -> Result<(Records<R>, Reader)> {
    let reader = PerfFileReader::parse_pipe(input)
        .context("perf's output is not a recording perfpy can read")?;
    start(reader, opts, None)
}

/// The records of a recording, read one at a time.
pub struct Records<R: Read> {
    perf_file: PerfFile,
    iter: PerfRecordIter<R>,
    /// For files: how far reading has got, of how many bytes (progress, messages).
    measured: Option<(std::rc::Rc<std::cell::Cell<u64>>, u64)>,
    bar: Option<indicatif::ProgressBar>,
    n: u64,
    /// The stream ended, at its end or at a damaged record.
    done: bool,
}

impl<R: Read> Records<R> {
    /// Reads the next record into `reader`; false at the end (or at a damaged record, which
    /// `reader` then says in its problems).
    pub fn next(&mut self, reader: &mut Reader) -> bool {
        self.next_with(|got| reader.got(got))
    }

    /// As [`Records::next`], with `reader` locked only while the record is taken in (never
    /// while waiting for perf to write it).
    pub fn next_locked(&mut self, reader: &std::sync::Mutex<Reader>) -> bool {
        self.next_with(|got| reader.lock().unwrap_or_else(|e| e.into_inner()).got(got))
    }

    fn next_with(&mut self, take: impl FnOnce(Got<'_>)) -> bool {
        if self.done {
            return false;
        }
        match self.iter.next_record(&mut self.perf_file) {
            Ok(Some(record)) => {
                self.n += 1;
                if let (Some(b), Some((pos, _))) = (&self.bar, &self.measured) {
                    if self.n.is_multiple_of(4096) {
                        b.set_position(pos.get());
                    }
                }
                take(Got::Record(record));
                true
            }
            Ok(None) => {
                self.end();
                false
            }
            Err(e) => {
                // A damaged record in the middle: what came before it stands.
                take(Got::Problem(match &self.measured {
                    Some((pos, total)) => format!(
                        "stopped reading at a damaged record near byte {} of {total} ({e}); \
                         the report covers the records before it",
                        pos.get()
                    ),
                    None => format!(
                        "stopped reading perf's output at a damaged record ({e}); the report \
                         covers the records before it"
                    ),
                }));
                self.end();
                false
            }
        }
    }

    fn end(&mut self) {
        self.done = true;
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// What [`Records::next_with`] read: a record, or where the stream broke.
enum Got<'a> {
    Record(PerfFileRecord<'a>),
    Problem(String),
}

/// Sets up the reading of `reader`'s records: the architecture checked, the event chosen,
/// the header's facts taken.
fn start<R: Read>(
    reader: PerfFileReader<R>,
    opts: &Options,
    damage: Option<repair::Damage>,
) -> Result<(Records<R>, Reader)> {
    let PerfFileReader {
        perf_file,
        record_iter,
    } = reader;
    if let Ok(Some(arch)) = perf_file.arch() {
        if arch != unwind::X86_64::NAME {
            bail!(
                "it was recorded on {arch}; perfpy report unwinds x86_64 recordings only for \
                 now (use perf inject --jit and perf report there)"
            );
        }
    }
    let mut profile = Profile::default();
    if let Some(d) = &damage {
        profile.stats.problems.push(d.describe());
    }
    let descs = perf_file.event_attributes().to_vec();
    let selection =
        events::selection(&descs, opts.event.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
    profile.measure = selection.measure;
    let described = selection.samples.or(selection.switches).unwrap_or(0);
    header::describe(&perf_file, described, &mut profile);
    let kernel = KernelNames::new(&mut profile);
    let reader = Reader {
        counts: vec![0; descs.len()],
        descs,
        profile,
        procs: Processes::new(opts.jit_dirs.clone(), opts.parents.clone()),
        kernel,
        selection,
        timeline: waits::Timeline::default(),
        damaged: 0,
    };
    let records = Records {
        perf_file,
        iter: record_iter,
        measured: None,
        bar: None,
        n: 0,
        done: false,
    };
    Ok((records, reader))
}

/// What the records read so far make: the processes, and the profile. The reading of a
/// recording perf is still writing (`perfpy top`) looks at it now and then; a whole
/// recording's is [`Reader::finish`]ed.
pub type Reader = Reading<unwind::X86_64>;

impl Reading<unwind::X86_64> {
    /// Takes in one record.
    pub fn take(&mut self, record: PerfFileRecord<'_>) {
        let PerfFileRecord::EventRecord { attr_index, record } = record else {
            return;
        };
        if record.record_type == RecordType::SAMPLE {
            if let Some(c) = self.counts.get_mut(attr_index) {
                *c += 1;
            }
            if !self.selection.reports(attr_index) {
                return;
            }
        }
        if record.record_type == RecordType::SWITCH && self.selection.switches.is_some() {
            self.timeline.switch_record(&record);
            return;
        }
        if sanitize::record_would_panic(&record) {
            self.damaged += 1;
            return;
        }
        if let Ok(parsed) = record.parse() {
            self.on_record(parsed, attr_index);
        }
    }

    fn got(&mut self, got: Got<'_>) {
        match got {
            Got::Record(record) => self.take(record),
            Got::Problem(problem) => self.profile.stats.problems.push(problem),
        }
    }

    /// The profile so far: its frames, stacks and counters (its samples are taken out by
    /// [`Reader::take_samples`] in a live view).
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The profile so far, to intern stacks in (a live view's own views of them).
    pub fn profile_mut(&mut self) -> &mut Profile {
        &mut self.profile
    }

    /// Names looked up again when a process's perf map or jitdump has grown since they were
    /// read, for a recording read while the program runs (its new functions are announced
    /// all along).
    pub fn follow_names(&mut self) {
        self.procs.follow = true;
    }

    /// The samples read since the last call. In wall-clock and off-CPU recordings, the time
    /// up to `horizon` (perf's clock, nanoseconds), on the CPU and off it, as far as the
    /// switches read so far tell it; the rest waits for the switches that end it.
    pub fn take_samples(&mut self, horizon: u64) -> Vec<Sample> {
        if self.profile.measure.is_time() {
            self.timeline.drain(&mut self.profile, horizon);
        }
        std::mem::take(&mut self.profile.samples)
    }

    /// The time of the newest record read (perf's clock, ns), in wall-clock and off-CPU
    /// recordings.
    pub fn newest(&self) -> u64 {
        self.timeline.end()
    }

    /// The profile of the whole recording.
    pub fn finish(mut self) -> Profile {
        if self.damaged > 0 {
            self.profile.stats.problems.push(format!(
                "skipped {} damaged record{} (a mapping whose build id is longer than 20 \
                 bytes): the file is damaged there, and the report covers the other records",
                self.damaged,
                if self.damaged == 1 { "" } else { "s" }
            ));
        }
        self.profile.events = events::summary(&self.descs, &self.counts, &self.selection);
        if self.selection.measure.is_time() {
            std::mem::take(&mut self.timeline).into_samples(&mut self.profile);
        }
        self.profile.stats.pids_without_names = self.procs.without_names();
        let sampled = self.profile.samples.iter().map(|s| s.pid).collect();
        self.profile.stats.names_off = self.procs.python_without_names(&sampled);
        // perf links libpython for its scripts; it runs none while it records.
        let names = &self.profile.process_names;
        self.profile
            .stats
            .names_off
            .retain(|o| names.get(&o.pid).is_none_or(|n| n != "perf"));
        self.profile
    }
}

/// The state of one pass over the records.
pub struct Reading<A: Arch> {
    descs: Vec<linux_perf_data::AttributeDescription>,
    /// Samples per event.
    counts: Vec<u64>,
    /// Records skipped as damaged.
    damaged: u64,
    profile: Profile,
    procs: Processes<A>,
    kernel: KernelNames,
    selection: events::Selection,
    /// Wall-clock and off-CPU recordings: the threads' switches.
    timeline: waits::Timeline,
}

impl<A: Arch> Reading<A> {
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
                if f.pid != f.ppid {
                    self.profile.parents.insert(f.pid, f.ppid);
                }
                self.procs
                    .fork(f.pid, f.ppid, f.timestamp == 0, &mut self.profile.stats);
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
        let user = self.user_frames(pid, s, &user);
        leaf_first.extend(user);
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

impl<A: Arch> Reading<A> {
    /// The user-space frames of a sample of `pid` (leaf first), named: unwound from its
    /// registers and stack copy, else its callchain's `user` part, else its address. A
    /// process whose names are followed (a live recording) and that ran code its names don't
    /// cover yet has them read again, once, and the sample unwound again with them.
    fn user_frames(&mut self, pid: i32, s: &SampleRecord<'_>, user: &[u64]) -> Vec<u32> {
        let unnamed = self.procs.get(pid).unnamed;
        let frames = self.unwind_and_name(pid, s, user, true);
        if self.procs.get(pid).unnamed == unnamed || !self.procs.names_grew(pid) {
            return frames;
        }
        self.unwind_and_name(pid, s, user, false)
    }

    fn unwind_and_name(
        &mut self,
        pid: i32,
        s: &SampleRecord<'_>,
        user: &[u64],
        count: bool,
    ) -> Vec<u32> {
        let proc = self.procs.with_names(pid, &mut self.profile.stats);
        let unwound = match (&s.user_regs, &s.user_stack) {
            (Some(regs), Some((stack, dyn_size))) => {
                unwind::unwind(proc, regs, &stack.as_slice(), *dyn_size as usize)
            }
            _ => None,
        };
        let addrs: Vec<(u64, bool)> = match unwound {
            Some(u) => {
                if count {
                    let stats = &mut self.profile.stats;
                    stats.truncated += u.truncated as u64;
                    match u.end {
                        unwind::End::Root { used } => stats.stack.whole(used),
                        unwind::End::CopyRanOut => stats.stack.cut += 1,
                        unwind::End::Lost => {}
                    }
                }
                u.frames
            }
            None if user.is_empty() => s.ip.map(|ip| (ip, false)).into_iter().collect(),
            None => user
                .iter()
                .take(MAX_DEPTH)
                .enumerate()
                .map(|(i, &a)| (a, i > 0))
                .collect(),
        };
        addrs
            .into_iter()
            .map(|(addr, is_return)| frame_for(proc, &mut self.profile, addr, is_return))
            .collect()
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
