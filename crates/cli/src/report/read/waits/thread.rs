//! One thread of the timeline: its events not fed yet, and the state machine they are fed
//! to in time order (not known yet, on the CPU, off it, gone), which gives out its time as
//! samples ([`Out`]).

use super::{reason, Reason, Unplaced, SAME_SWITCH_NS};
use crate::report::read::arch::SyscallArgs;
use crate::report::{Frame, Kind, Measure, Profile, Sample};

/// A sample gathered while reading: (time, pid, interned stack, weight: the CPU sample's
/// period in nanoseconds).
type Point = (u64, i32, u32, u64);

/// What happens to a thread, in the order of equal times: a switch in comes before the
/// samples taken at that instant, which come before a switch out then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Event {
    In,
    Cpu { stack: u32, period: u64 },
    Out { preempted: bool },
    Exit,
}

/// A context-switch sample: the stack a thread left the CPU with, and the arguments of the
/// system call it was in when perf sampled its registers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Left {
    pub(super) time: u64,
    pub(super) stack: u32,
    pub(super) args: Option<SyscallArgs>,
}

/// Where a thread is, as far as its events so far tell.
#[derive(Debug, Clone, Default)]
pub(super) enum State {
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
pub(super) struct Thread {
    pub(super) pid: Option<i32>,
    pub(super) events: Vec<(u64, Event)>,
    /// The stacks it left the CPU with (context-switch samples), by time.
    pub(super) stacks: Vec<Left>,
    /// CPU samples before its first switch (state `Unknown`).
    pub(super) pending: Vec<Point>,
    pub(super) state: State,
}

impl Thread {
    /// Feeds thread `tid`'s events up to `horizon` to its state, in time order.
    pub(super) fn feed(
        &mut self,
        profile: &mut Profile,
        tid: i32,
        unplaced: &mut Unplaced,
        horizon: u64,
    ) {
        self.events.sort_by_key(|&(time, e)| (time, e));
        self.stacks.sort_by_key(|s| s.time);
        let n = self.events.partition_point(|e| e.0 <= horizon);
        let events: Vec<(u64, Event)> = self.events.drain(..n).collect();
        let pid = self.pid.unwrap_or(tid);
        let mut out = Out {
            profile,
            pid,
            tid,
            unplaced,
        };
        for (time, event) in events {
            let mut state = std::mem::take(&mut self.state);
            if matches!(state, State::Gone) && event != Event::Exit {
                // A thread id seen again (pids are reused): a new thread.
                state = State::Unknown;
            }
            self.state = match (state, event) {
                (State::Gone, _) => State::Gone,
                (State::Unknown, Event::Cpu { stack, period }) => {
                    self.pending.push((time, pid, stack, period));
                    State::Unknown
                }
                (State::Unknown, Event::In) => {
                    // Samples before it: outside every interval, each its own period.
                    for p in self.pending.drain(..) {
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
                    let pending = std::mem::take(&mut self.pending);
                    match pending.first().map(|p| p.0.saturating_sub(p.3)) {
                        Some(start) if start < time => {
                            out.run(start, time, &pending, Some(&self.stacks), None)
                        }
                        _ => {
                            for p in pending {
                                out.push(p.0, p.2, p.3);
                            }
                        }
                    }
                    out.leave(time, preempted, &self.stacks)
                }
                (State::Unknown, Event::Exit) => {
                    for p in self.pending.drain(..) {
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
                    out.run(since, time, &samples, Some(&self.stacks), last);
                    out.leave(time, preempted, &self.stacks)
                }
                (
                    State::On {
                        since,
                        samples,
                        last,
                    },
                    Event::Exit,
                ) => {
                    out.run(since, time, &samples, Some(&self.stacks), last);
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
                    out.leave(time, preempted, &self.stacks)
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
}

/// Where a thread's time goes: samples of the profile.
pub(super) struct Out<'a> {
    pub(super) profile: &'a mut Profile,
    pub(super) pid: i32,
    pub(super) tid: i32,
    pub(super) unplaced: &'a mut Unplaced,
}

impl Out<'_> {
    pub(super) fn push(&mut self, time: u64, stack: u32, weight: u64) {
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
    pub(super) fn run(
        &mut self,
        start: u64,
        end: u64,
        samples: &[Point],
        stacks: Option<&[Left]>,
        last: Option<u32>,
    ) {
        if self.profile.measure != Measure::Wall {
            return;
        }
        let length = end.saturating_sub(start);
        if samples.is_empty() {
            let left = || stacks.and_then(|s| left_at(s, end)).map(|l| l.stack);
            if let Some(stack) = last.or_else(left) {
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
    pub(super) fn leave(&mut self, time: u64, preempted: bool, stacks: &[Left]) -> State {
        let left = left_at(stacks, time);
        let stack = left.map(|l| l.stack);
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
            reason(profile, &frames, left.and_then(|l| l.args).as_ref())
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

/// The switch sample nearest `t0` (perf writes it microseconds from its switch record).
fn left_at(stacks: &[Left], t0: u64) -> Option<Left> {
    let i = stacks.partition_point(|s| s.time < t0);
    [i.checked_sub(1), Some(i)]
        .into_iter()
        .flatten()
        .filter_map(|j| stacks.get(j))
        .filter(|s| s.time.abs_diff(t0) <= SAME_SWITCH_NS)
        .min_by_key(|s| s.time.abs_diff(t0))
        .copied()
}
