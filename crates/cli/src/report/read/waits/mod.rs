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
//! The reason ([`reason`]): preempted if the switch record says so; else the kernel's frames
//! of the cs sample's stack, and the system call's arguments in the user registers perf
//! sampled with it (a `select` of no descriptor is a sleep); the C library's and the
//! interpreter's frames refine that, or decide where perf saw no kernel.
//!
//! A thread that exits after its last switch-out waits no more; one still off the CPU when
//! the recording ends waits until its end. CPU samples of a thread perf saw no switch of
//! keep the CPU time their period stands for.
//!
//! Each thread is a small state machine (running, waiting, not known yet) fed its events in
//! time order. A whole recording is fed to its end ([`Timeline::into_samples`]); a live one
//! ([`Timeline::drain`], `perfpy top --mode wall`) up to a horizon a little behind the newest
//! record, where the intervals still open are cut: their time so far is given out, the rest
//! comes with the next drain.

mod reason;
#[cfg(test)]
mod tests;
mod thread;

use thread::{Event, Left, Out, State, Thread};

pub use reason::{reason, Reason};

use crate::report::read::arch::SyscallArgs;
use crate::report::Profile;
use linux_perf_data::linux_perf_event_reader::{
    ContextSwitchRecord, EventRecord, RawEventRecord, TaskWasPreempted,
};
use std::collections::HashMap;

/// A cs sample taken this long after its switch record still belongs to it (perf writes the
/// sample and the record from the same switch, microseconds apart, in either order).
pub(super) const SAME_SWITCH_NS: u64 = 2_000_000;

/// What the records say of the threads' comings and goings, gathered while reading.
#[derive(Default)]
pub struct Timeline {
    threads: HashMap<i32, Thread>,
    end: u64,
    unplaced: Unplaced,
}

/// What [`Timeline::into_samples`] couldn't place.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unplaced {
    /// Waits whose stack perf lost (charged to their reason alone).
    pub waits_without_stack: u64,
    /// Waits with a stack, and those of them with kernel frames (none: perf didn't see the
    /// kernel, and the reasons come from user-space frames).
    pub waits_with_stack: u64,
    pub waits_with_kernel: u64,
}

impl Timeline {
    fn thread(&mut self, pid: i32, tid: i32) -> &mut Thread {
        let t = self.threads.entry(tid).or_default();
        t.pid.get_or_insert(pid);
        t
    }

    pub fn switch(&mut self, pid: i32, tid: i32, time: u64, out: bool, preempted: bool) {
        let event = if out {
            Event::Out { preempted }
        } else {
            Event::In
        };
        let t = self.thread(pid, tid);
        t.pid = Some(pid);
        t.events.push((time, event));
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

    /// A context-switch sample: the stack the thread left the CPU with, and the arguments of
    /// the system call it was in, from the registers perf sampled (`None`: none sampled).
    pub fn switch_stack(
        &mut self,
        pid: i32,
        tid: i32,
        time: u64,
        stack: u32,
        args: Option<SyscallArgs>,
    ) {
        self.thread(pid, tid)
            .stacks
            .push(Left { time, stack, args });
        self.seen(time);
    }

    /// A CPU sample, standing for `period` nanoseconds of CPU time.
    pub fn cpu_sample(&mut self, pid: i32, tid: i32, time: u64, stack: u32, period: u64) {
        self.thread(pid, tid)
            .events
            .push((time, Event::Cpu { stack, period }));
        self.seen(time);
    }

    pub fn exit(&mut self, tid: i32, time: u64) {
        if let Some(t) = self.threads.get_mut(&tid) {
            t.events.push((time, Event::Exit));
        }
        self.seen(time);
    }

    /// Any record's time: the recording ends at the last.
    pub fn seen(&mut self, time: u64) {
        self.end = self.end.max(time);
    }

    /// The time of the newest record.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Gives out, as samples of `profile`, every thread's time up to `horizon`: each event up
    /// to it fed to the thread's state, then the intervals still open cut at the horizon (a
    /// wait's time so far on its stack, a run's shared by its samples so far).
    pub fn drain(&mut self, profile: &mut Profile, horizon: u64) {
        let mut tids: Vec<i32> = self.threads.keys().copied().collect();
        tids.sort_unstable();
        for tid in tids {
            let Some(mut t) = self.threads.remove(&tid) else {
                continue;
            };
            t.feed(profile, tid, &mut self.unplaced, horizon);
            let pid = t.pid.unwrap_or(tid);
            let mut out = Out {
                profile,
                pid,
                tid,
                unplaced: &mut self.unplaced,
            };
            match &mut t.state {
                State::On {
                    since,
                    samples,
                    last,
                } if !samples.is_empty() && *since < horizon => {
                    out.run(*since, horizon, samples, None, None);
                    *since = horizon;
                    *last = samples.last().map(|p| p.2);
                    samples.clear();
                }
                State::Off { since, stack, .. } if *since < horizon => {
                    out.push(*since, *stack, horizon - *since);
                    *since = horizon;
                }
                State::Unknown => {
                    for p in t.pending.drain(..) {
                        out.push(p.0, p.2, p.3);
                    }
                }
                _ => {}
            }
            // Stacks older than any switch still to come can go.
            t.stacks.retain(|s| s.time + SAME_SWITCH_NS >= horizon);
            self.threads.insert(tid, t);
        }
    }

    /// The profile's samples, in nanoseconds: each thread's time on the CPU shared among its
    /// CPU samples, and a sample per wait (the stack the thread left the CPU with, then
    /// `[wait: REASON]`). What couldn't be placed is said in the profile's problems too.
    pub fn into_samples(mut self, profile: &mut Profile) -> Unplaced {
        let end = self.end;
        let mut tids: Vec<i32> = self.threads.keys().copied().collect();
        tids.sort_unstable();
        for tid in tids {
            let Some(mut t) = self.threads.remove(&tid) else {
                continue;
            };
            t.feed(profile, tid, &mut self.unplaced, u64::MAX);
            let mut out = Out {
                profile,
                pid: t.pid.unwrap_or(tid),
                tid,
                unplaced: &mut self.unplaced,
            };
            match std::mem::take(&mut t.state) {
                // Still running, or still waiting, when the recording ended.
                State::On {
                    since,
                    samples,
                    last,
                } => out.run(since, end.max(since), &samples, None, last),
                State::Off { since, stack, .. } => {
                    out.push(since, stack, end.saturating_sub(since))
                }
                State::Unknown => {
                    for p in t.pending {
                        out.push(p.0, p.2, p.3);
                    }
                }
                State::Gone => {}
            }
        }
        let unplaced = self.unplaced;
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
}
