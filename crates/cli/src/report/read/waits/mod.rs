//! Wall-clock and off-CPU recordings (`perfpy record --mode wall|off-cpu`): each thread's
//! timeline from perf's switch records, on the CPU and off it, to the nanosecond.
//!
//! ```text
//!            SWITCH in ─── on CPU ─── SWITCH out ─── off CPU ─── SWITCH in
//! CPU samples:   ·    ·    ·    ·         │
//! cs sample:                         the stack it left with
//!
//! on CPU:  the interval's length, shared by the CPU samples taken in it (none: the stack
//!          it left with)
//! off CPU: the interval's length, on the stack it left with + [wait: REASON]
//! ```
//!
//! A thread that exits after its last switch-out waits no more; one still off the CPU when
//! the recording ends waits until its end. CPU samples of a thread perf saw no switch of
//! keep the CPU time their period stands for.

mod reason;
#[cfg(test)]
mod tests;

pub use reason::{reason, Reason};

use crate::report::{Frame, Kind, Measure, Profile, Sample};
use linux_perf_data::linux_perf_event_reader::{
    ContextSwitchRecord, EventRecord, RawEventRecord, TaskWasPreempted,
};
use std::collections::HashMap;

/// A cs sample taken this long after its switch record still belongs to it (perf writes the
/// sample and the record from the same switch, microseconds apart, in either order).
const SAME_SWITCH_NS: u64 = 2_000_000;

/// A sample gathered while reading: (time, pid, interned stack, weight: the CPU sample's
/// period in nanoseconds).
type Point = (u64, i32, u32, u64);

/// What the records say of the threads' comings and goings, gathered while reading.
#[derive(Default)]
pub struct Timeline {
    /// By tid: (time, switched out?, preempted?).
    switches: HashMap<i32, Vec<(u64, bool, bool)>>,
    /// By tid: each context-switch sample (the stack a thread left the CPU with).
    stacks: HashMap<i32, Vec<Point>>,
    /// By tid: each CPU sample (wall mode).
    cpu: HashMap<i32, Vec<Point>>,
    exits: HashMap<i32, u64>,
    pids: HashMap<i32, i32>,
    end: u64,
}

/// What [`Timeline::into_samples`] couldn't place.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unplaced {
    /// Waits whose stack perf lost (charged to their reason alone).
    pub waits_without_stack: u64,
    /// Waits with a stack, and those of them with kernel frames (none: perf didn't see the
    /// kernel, and the reasons come from user-space frames).
    pub waits_with_stack: u64,
    pub waits_with_kernel: u64,
}

impl Timeline {
    pub fn switch(&mut self, pid: i32, tid: i32, time: u64, out: bool, preempted: bool) {
        self.switches
            .entry(tid)
            .or_default()
            .push((time, out, preempted));
        self.pids.insert(tid, pid);
        self.seen(time);
    }

    /// A switch record (`--switch-events`): when a thread left the CPU or came back.
    pub fn switch_record(&mut self, record: &RawEventRecord<'_>) {
        let (Ok(common), Ok(EventRecord::ContextSwitch(switch))) =
            (record.common_data(), record.parse())
        else {
            return;
        };
        let (Some(pid), Some(tid), Some(time)) = (common.pid, common.tid, common.timestamp) else {
            return;
        };
        let (out, preempted) = match switch {
            ContextSwitchRecord::Out { preempted, .. } => {
                (true, preempted == TaskWasPreempted::Yes)
            }
            ContextSwitchRecord::In { .. } => (false, false),
        };
        self.switch(pid, tid, time, out, preempted);
    }

    pub fn switch_stack(&mut self, pid: i32, tid: i32, time: u64, stack: u32) {
        self.stacks
            .entry(tid)
            .or_default()
            .push((time, pid, stack, 0));
        self.seen(time);
    }

    /// A CPU sample, standing for `period` nanoseconds of CPU time.
    pub fn cpu_sample(&mut self, pid: i32, tid: i32, time: u64, stack: u32, period: u64) {
        self.cpu
            .entry(tid)
            .or_default()
            .push((time, pid, stack, period));
        self.seen(time);
    }

    pub fn exit(&mut self, tid: i32, time: u64) {
        self.exits.insert(tid, time);
        self.seen(time);
    }

    /// Any record's time: the recording ends at the last.
    pub fn seen(&mut self, time: u64) {
        self.end = self.end.max(time);
    }

    /// The profile's samples, in nanoseconds: each thread's time on the CPU shared among its
    /// CPU samples, and a sample per wait (the stack the thread left the CPU with, then
    /// `[wait: REASON]`). What couldn't be placed is said in the profile's problems too.
    pub fn into_samples(mut self, profile: &mut Profile) -> Unplaced {
        let mut unplaced = Unplaced::default();
        let mut tids: Vec<i32> = self
            .switches
            .keys()
            .chain(self.cpu.keys())
            .copied()
            .collect();
        tids.sort_unstable();
        tids.dedup();
        for tid in tids {
            let mut switches = self.switches.remove(&tid).unwrap_or_default();
            switches.sort_by_key(|s| s.0);
            let mut stacks = self.stacks.remove(&tid).unwrap_or_default();
            stacks.sort_by_key(|s| s.0);
            let mut cpu = self.cpu.remove(&tid).unwrap_or_default();
            cpu.sort_by_key(|s| s.0);
            let pid = (self.pids.get(&tid).copied())
                .or(cpu.first().map(|c| c.1))
                .unwrap_or(tid);
            let exit = self.exits.get(&tid).copied();
            let end = exit.unwrap_or(self.end);
            if profile.measure == Measure::Wall {
                self.on_cpu(profile, pid, tid, &switches, &stacks, &cpu, end);
            }
            for (i, &(t0, out, preempted)) in switches.iter().enumerate() {
                if !out {
                    continue;
                }
                let t1 = match switches[i + 1..].iter().find(|s| !s.1) {
                    Some(&(t1, _, _)) => t1,
                    // Its last switch-out: the thread died, or waited until the end.
                    None if exit.is_some_and(|e| e <= t0 + SAME_SWITCH_NS) => continue,
                    None => end.max(t0),
                };
                if t1 <= t0 {
                    continue;
                }
                let stack = stack_at(&stacks, t0);
                if stack.is_none() {
                    unplaced.waits_without_stack += 1;
                }
                let frames = stack
                    .map(|s| profile.stacks[s as usize].clone())
                    .unwrap_or_default();
                if !frames.is_empty() {
                    unplaced.waits_with_stack += 1;
                    unplaced.waits_with_kernel += u64::from(
                        (frames.iter()).any(|&f| profile.frames[f as usize].kind == Kind::Kernel),
                    );
                }
                let reason = if preempted {
                    Reason::Preempted
                } else {
                    reason(profile, &frames)
                };
                let wait = profile.intern_frame(Frame::named(Kind::Wait, reason.frame_name()));
                let mut waited = frames;
                waited.push(wait);
                let stack = profile.intern_stack(&waited);
                profile.samples.push(Sample {
                    time: t0,
                    pid,
                    tid,
                    stack,
                    weight: t1 - t0,
                });
            }
        }
        if unplaced.waits_without_stack > 0 {
            profile.stats.problems.push(format!(
                "{} had no stack (perf lost its context-switch sample): they are charged \
                 to their reason alone",
                crate::say::count(unplaced.waits_without_stack as usize, "wait", "waits")
            ));
        }
        if unplaced.waits_with_stack > 0 && unplaced.waits_with_kernel == 0 {
            profile.stats.problems.push(
                "no wait has the kernel's frames (perf may not see the kernel: not root, and \
                 perf_event_paranoid above 1): their reasons come from the C library's and the \
                 interpreter's frames, and waits for the disk or a page fault show as other. \
                 Record as root, or after `sysctl kernel.perf_event_paranoid=1`, for the kernel's"
                    .to_string(),
            );
        }
        unplaced
    }

    /// One thread's time on the CPU: each interval between a switch in (or the first sample,
    /// for a thread already running when the recording began) and the next switch out (or
    /// its end), shared equally by the CPU samples taken in it, or given to the stack it
    /// left the CPU with when no sample fell in it. Without switches, the samples' periods.
    #[allow(clippy::too_many_arguments)]
    fn on_cpu(
        &self,
        profile: &mut Profile,
        pid: i32,
        tid: i32,
        switches: &[(u64, bool, bool)],
        stacks: &[Point],
        cpu: &[Point],
        end: u64,
    ) {
        let push = |profile: &mut Profile, time: u64, stack: u32, weight: u64| {
            if weight > 0 {
                profile.samples.push(Sample {
                    time,
                    pid,
                    tid,
                    stack,
                    weight,
                });
            }
        };
        if switches.is_empty() {
            for &(time, _, stack, period) in cpu {
                push(profile, time, stack, period);
            }
            return;
        }
        // The intervals on the CPU, in time order.
        let mut intervals: Vec<(u64, u64)> = Vec::new();
        let mut start = match switches.first() {
            // Already running: from its first sample's period before the first switch out.
            Some(&(t, true, _)) => cpu
                .first()
                .map(|c| c.0.saturating_sub(c.3))
                .filter(|&s| s < t),
            _ => None,
        };
        for &(t, out, _) in switches {
            match (out, start) {
                (true, Some(s)) => {
                    intervals.push((s, t));
                    start = None;
                }
                (false, None) => start = Some(t),
                _ => {}
            }
        }
        if let Some(s) = start {
            intervals.push((s, end.max(s)));
        }
        let mut next = 0;
        for (s, e) in intervals {
            while next < cpu.len() && cpu[next].0 < s {
                // A sample outside every interval (a switch record lost): its own period.
                let (time, _, stack, period) = cpu[next];
                push(profile, time, stack, period);
                next += 1;
            }
            let first = next;
            while next < cpu.len() && cpu[next].0 <= e {
                next += 1;
            }
            let inside = &cpu[first..next];
            let length = e - s;
            if inside.is_empty() {
                if let Some(stack) = stack_at(stacks, e) {
                    push(profile, e, stack, length);
                }
                continue;
            }
            let n = inside.len() as u64;
            for (k, &(time, _, stack, _)) in inside.iter().enumerate() {
                // The interval's length shared out, the remainder to the first.
                let share = length / n + if k == 0 { length % n } else { 0 };
                push(profile, time, stack, share);
            }
        }
        for &(time, _, stack, period) in &cpu[next..] {
            push(profile, time, stack, period);
        }
    }
}

/// The stack of the switch sample nearest `t0` (perf writes them microseconds apart).
fn stack_at(stacks: &[Point], t0: u64) -> Option<u32> {
    let i = stacks.partition_point(|s| s.0 < t0);
    [i.checked_sub(1), Some(i)]
        .into_iter()
        .flatten()
        .filter_map(|j| stacks.get(j))
        .filter(|s| s.0.abs_diff(t0) <= SAME_SWITCH_NS)
        .min_by_key(|s| s.0.abs_diff(t0))
        .map(|s| s.2)
}
