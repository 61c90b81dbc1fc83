//! What the records make: each one taken in ([`Reading::take`]), the samples unwound and
//! named, the wall-clock timeline, and the profile at the end.

use super::arch::Arch;
use super::events;
use super::process::Processes;
use super::records::Got;
use super::sanitize;
use super::symbolize::{frame_for, KernelNames};
use super::unwind::{self, MAX_DEPTH};
use super::waits;
use crate::report::{Profile, Sample};
use linux_perf_data::linux_perf_event_reader::constants::{
    PERF_CONTEXT_KERNEL, PERF_CONTEXT_MAX, PERF_CONTEXT_USER,
};
use linux_perf_data::linux_perf_event_reader::{CpuMode, EventRecord, RecordType, SampleRecord};
use linux_perf_data::PerfFileRecord;

impl<A: Arch> Reading<A> {
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

    pub(super) fn got(&mut self, got: Got<'_>) {
        match got {
            Got::Record(record) => self.take(record),
            Got::Problem(problem) => self.profile.stats.problems.push(problem),
        }
    }

    /// The profile so far: its frames, stacks and counters (its samples are taken out by
    /// [`Reading::take_samples`] in a live view).
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
        self.profile.stats.stripped = self.procs.stripped(&self.profile);
        self.profile
    }
}

/// The state of one pass over the records of a recording made on `A`. The reading of a
/// recording perf is still writing (`perfpy top`) looks at it now and then; a whole
/// recording's is [`Reading::finish`]ed.
pub struct Reading<A: Arch> {
    pub(super) descs: Vec<linux_perf_data::AttributeDescription>,
    /// Samples per event.
    pub(super) counts: Vec<u64>,
    /// Records skipped as damaged.
    pub(super) damaged: u64,
    pub(super) profile: Profile,
    pub(super) procs: Processes<A>,
    pub(super) kernel: KernelNames,
    pub(super) selection: events::Selection,
    /// Wall-clock and off-CPU recordings: the threads' switches.
    pub(super) timeline: waits::Timeline,
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
        if let Some(symbol) = path.strip_prefix("[kernel.kallsyms]").filter(|_| pid == -1) {
            let symbol = if symbol.is_empty() { "_text" } else { symbol };
            self.kernel.text = Some((start, symbol.to_string()));
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
            // Taken in the kernel as the thread switches out: its user registers are those it
            // entered the kernel with (a system call's arguments, when it made one).
            let args = s.user_regs.as_ref().and_then(A::syscall_args);
            self.timeline.switch_stack(pid, tid, time, stack, args);
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
