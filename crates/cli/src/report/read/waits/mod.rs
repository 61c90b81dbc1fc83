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
//!
//! Each thread is a small state machine (running, waiting, not known yet) fed its events in
//! time order. A whole recording is fed to its end ([`Timeline::into_samples`]); a live one
//! ([`Timeline::drain`], `perfpy top --mode wall`) up to a horizon a little behind the newest
//! record, where the intervals still open are cut: their time so far is given out, the rest
//! comes with the next drain.

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

/// What happens to a thread, in the order of equal times: a switch in comes before the
/// samples taken at that instant, which come before a switch out then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    In,
    Cpu { stack: u32, period: u64 },
    Out { preempted: bool },
    Exit,
}

/// Where a thread is, as far as its events so far tell.
#[derive(Debug, Clone, Default)]
enum State {
    /// Nothing seen yet, or only CPU samples (a thread already running when the recording
    /// began): those samples, until a switch says when it ran.
    #[default]
    Unknown,
    /// On the CPU since `since`, with the CPU samples taken since then; `last`: the stack
    /// of the last sample before `since`, in a run a drain cut there (the rest of the run is
    /// its, when no sample comes).
    On {
        since: u64,
        samples: Vec<Point>,
        last: Option<u32>,
    },
    /// Off the CPU since `since`, on `stack` (the stack it left with, and the reason's frame
    /// under it); `left` is when it switched out.
    Off { since: u64, left: u64, stack: u32 },
    /// Exited.
    Gone,
}

/// One thread's events not fed to its state yet, and its state.
#[derive(Default)]
struct Thread {
    pid: Option<i32>,
    events: Vec<(u64, Event)>,
    /// The stacks it left the CPU with (context-switch samples), by time.
    stacks: Vec<(u64, u32)>,
    /// CPU samples before its first switch (state `Unknown`).
    pending: Vec<Point>,
    state: State,
}

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

    pub fn switch_stack(&mut self, pid: i32, tid: i32, time: u64, stack: u32) {
        self.thread(pid, tid).stacks.push((time, stack));
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
            self.feed(profile, tid, &mut t, horizon);
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
            t.stacks.retain(|s| s.0 + SAME_SWITCH_NS >= horizon);
            self.threads.insert(tid, t);
        }
    }

    /// Feeds thread `tid`'s events up to `horizon` to its state, in time order.
    fn feed(&mut self, profile: &mut Profile, tid: i32, t: &mut Thread, horizon: u64) {
        t.events.sort_by_key(|&(time, e)| (time, e));
        t.stacks.sort_by_key(|s| s.0);
        let n = t.events.partition_point(|e| e.0 <= horizon);
        let events: Vec<(u64, Event)> = t.events.drain(..n).collect();
        let pid = t.pid.unwrap_or(tid);
        let mut out = Out {
            profile,
            pid,
            tid,
            unplaced: &mut self.unplaced,
        };
        for (time, event) in events {
            let mut state = std::mem::take(&mut t.state);
            if matches!(state, State::Gone) && event != Event::Exit {
                // A thread id seen again (pids are reused): a new thread.
                state = State::Unknown;
            }
            t.state = match (state, event) {
                (State::Gone, _) => State::Gone,
                (State::Unknown, Event::Cpu { stack, period }) => {
                    t.pending.push((time, pid, stack, period));
                    State::Unknown
                }
                (State::Unknown, Event::In) => {
                    // Samples before it: outside every interval, each its own period.
                    for p in t.pending.drain(..) {
                        out.push(p.0, p.2, p.3);
                    }
                    State::On {
                        since: time,
                        samples: Vec::new(),
                        last: None,
                    }
                }
                (State::Unknown, Event::Out { preempted }) => {
                    // Running since its first sample's period before it, if that's before.
                    let pending = std::mem::take(&mut t.pending);
                    match pending.first().map(|p| p.0.saturating_sub(p.3)) {
                        Some(start) if start < time => {
                            out.run(start, time, &pending, Some(&t.stacks), None)
                        }
                        _ => {
                            for p in pending {
                                out.push(p.0, p.2, p.3);
                            }
                        }
                    }
                    out.leave(time, preempted, &t.stacks)
                }
                (State::Unknown, Event::Exit) => {
                    for p in t.pending.drain(..) {
                        out.push(p.0, p.2, p.3);
                    }
                    State::Gone
                }
                (
                    State::On {
                        since,
                        mut samples,
                        last,
                    },
                    Event::Cpu { stack, period },
                ) => {
                    samples.push((time, pid, stack, period));
                    State::On {
                        since,
                        samples,
                        last,
                    }
                }
                (on @ State::On { .. }, Event::In) => on,
                (
                    State::On {
                        since,
                        samples,
                        last,
                    },
                    Event::Out { preempted },
                ) => {
                    out.run(since, time, &samples, Some(&t.stacks), last);
                    out.leave(time, preempted, &t.stacks)
                }
                (
                    State::On {
                        since,
                        samples,
                        last,
                    },
                    Event::Exit,
                ) => {
                    out.run(since, time, &samples, Some(&t.stacks), last);
                    State::Gone
                }
                (State::Off { since, stack, .. }, Event::In) => {
                    out.push(since, stack, time.saturating_sub(since));
                    State::On {
                        since: time,
                        samples: Vec::new(),
                        last: None,
                    }
                }
                (off @ State::Off { .. }, Event::Cpu { stack, period }) => {
                    // A sample while off the CPU (a switch record lost): its own period.
                    out.push(time, stack, period);
                    off
                }
                (State::Off { since, stack, .. }, Event::Out { preempted }) => {
                    // A switch in lost: this wait ends where the next begins.
                    out.push(since, stack, time.saturating_sub(since));
                    out.leave(time, preempted, &t.stacks)
                }
                (State::Off { since, left, stack }, Event::Exit) => {
                    // Switched out to die: no wait. Otherwise it waited until it exited.
                    if time > left + SAME_SWITCH_NS {
                        out.push(since, stack, time - since);
                    }
                    State::Gone
                }
            };
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
            self.feed(profile, tid, &mut t, u64::MAX);
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

/// Where a thread's time goes: samples of the profile.
struct Out<'a> {
    profile: &'a mut Profile,
    pid: i32,
    tid: i32,
    unplaced: &'a mut Unplaced,
}

impl Out<'_> {
    fn push(&mut self, time: u64, stack: u32, weight: u64) {
        if weight > 0 {
            self.profile.samples.push(Sample {
                time,
                pid: self.pid,
                tid: self.tid,
                stack,
                weight,
            });
        }
    }

    /// A run on the CPU from `start` to `end`: wall-clock profiles share its length equally
    /// among the CPU samples taken in it (the remainder to the first), or give it to the
    /// stack the thread left the CPU with at `end` (`stacks`, when it did leave then) when no
    /// sample fell in it; the rest of a run a drain cut goes to its `last` sample's stack.
    /// Off-CPU profiles have no runs.
    fn run(
        &mut self,
        start: u64,
        end: u64,
        samples: &[Point],
        stacks: Option<&[(u64, u32)]>,
        last: Option<u32>,
    ) {
        if self.profile.measure != Measure::Wall {
            return;
        }
        let length = end.saturating_sub(start);
        if samples.is_empty() {
            if let Some(stack) = last.or_else(|| stacks.and_then(|s| stack_at(s, end))) {
                self.push(end, stack, length);
            }
            return;
        }
        let n = samples.len() as u64;
        for (k, &(time, _, stack, _)) in samples.iter().enumerate() {
            let share = length / n + if k == 0 { length % n } else { 0 };
            self.push(time, stack, share);
        }
    }

    /// The thread leaves the CPU at `time`: the wait it starts, on the stack it left with
    /// (perf writes the sample microseconds from the switch record) and the reason's frame.
    fn leave(&mut self, time: u64, preempted: bool, stacks: &[(u64, u32)]) -> State {
        let stack = stack_at(stacks, time);
        if stack.is_none() {
            self.unplaced.waits_without_stack += 1;
        }
        let profile = &mut *self.profile;
        let frames = stack
            .map(|s| profile.stacks[s as usize].clone())
            .unwrap_or_default();
        if !frames.is_empty() {
            self.unplaced.waits_with_stack += 1;
            self.unplaced.waits_with_kernel += u64::from(
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
        State::Off {
            since: time,
            left: time,
            stack: profile.intern_stack(&waited),
        }
    }
}

/// The stack of the switch sample nearest `t0` (perf writes them microseconds apart).
fn stack_at(stacks: &[(u64, u32)], t0: u64) -> Option<u32> {
    let i = stacks.partition_point(|s| s.0 < t0);
    [i.checked_sub(1), Some(i)]
        .into_iter()
        .flatten()
        .filter_map(|j| stacks.get(j))
        .filter(|s| s.0.abs_diff(t0) <= SAME_SWITCH_NS)
        .min_by_key(|s| s.0.abs_diff(t0))
        .map(|s| s.1)
}
