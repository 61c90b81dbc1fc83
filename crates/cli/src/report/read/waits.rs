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

use crate::report::{Frame, Kind, Measure, Profile, Sample};
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
    /// `[wait: REASON]`).
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

/// Why a thread waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Gil,
    Lock,
    Sleep,
    Network,
    Disk,
    PageFault,
    Child,
    Preempted,
    Other,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::Gil,
        Reason::Lock,
        Reason::Sleep,
        Reason::Network,
        Reason::Disk,
        Reason::PageFault,
        Reason::Child,
        Reason::Preempted,
        Reason::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::Gil => "GIL",
            Reason::Lock => "lock",
            Reason::Sleep => "sleep",
            Reason::Network => "network",
            Reason::Disk => "disk",
            Reason::PageFault => "page fault",
            Reason::Child => "child",
            Reason::Preempted => "preempted",
            Reason::Other => "other",
        }
    }

    /// The leaf frame a wait of this reason gets: `[wait: sleep]`.
    pub fn frame_name(self) -> &'static str {
        match self {
            Reason::Gil => "[wait: GIL]",
            Reason::Lock => "[wait: lock]",
            Reason::Sleep => "[wait: sleep]",
            Reason::Network => "[wait: network]",
            Reason::Disk => "[wait: disk]",
            Reason::PageFault => "[wait: page fault]",
            Reason::Child => "[wait: child]",
            Reason::Preempted => "[wait: preempted]",
            Reason::Other => "[wait: other]",
        }
    }

    /// The reason a `[wait: …]` frame names.
    pub fn of_frame(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.frame_name() == name)
    }
}

/// Function names that say why a thread left the CPU, by reason in order of precedence
/// (a page fault that waits for the disk is a page fault; a lock's futex under the GIL's
/// functions is the GIL), looked for between the stack's leaf (the kernel's scheduler) and
/// its innermost Python frame. Kernel names where perf may see the kernel; the C library's
/// and the interpreter's otherwise (unprivileged recordings have user frames only).
const RULES: &[(Reason, &[&str])] = &[
    // The interpreter waiting for the GIL: a timed wait on its condition variable
    // (Python/ceval_gil.c).
    (
        Reason::Gil,
        &[
            "take_gil",
            "_PyEval_TakeGIL",
            "PyEval_RestoreThread",
            "PyEval_AcquireThread",
        ],
    ),
    (
        Reason::PageFault,
        &[
            "exc_page_fault",
            "asm_exc_page_fault",
            "handle_mm_fault",
            "do_user_addr_fault",
        ],
    ),
    (
        Reason::Child,
        &[
            "do_wait",
            "kernel_wait4",
            "__do_sys_wait4",
            "kernel_waitid",
            "wait4",
            "waitpid",
            "waitid",
            "__wait4",
            "__waitid",
        ],
    ),
    (
        Reason::Disk,
        &[
            "io_schedule",
            "io_schedule_timeout",
            "folio_wait_bit_common",
            "jbd2_log_wait_commit",
            "blkdev_issue_flush",
            "vfs_fsync_range",
            "fsync",
            "fdatasync",
            "sync_file_range",
        ],
    ),
    // time.sleep (time_sleep): clock_nanosleep (3.11+), select() with no descriptors before
    // (pysleep), so before the network's select.
    (
        Reason::Sleep,
        &[
            "hrtimer_nanosleep",
            "do_nanosleep",
            "common_nsleep",
            "clock_nanosleep",
            "__clock_nanosleep",
            "nanosleep",
            "__nanosleep",
            "usleep",
            "pysleep",
            "time_sleep",
        ],
    ),
    (
        Reason::Network,
        &[
            "sk_wait_data",
            "sock_recvmsg",
            "sock_sendmsg",
            "tcp_recvmsg",
            "tcp_sendmsg",
            "unix_stream_read_generic",
            "inet_csk_accept",
            "__sys_accept4",
            "__sys_connect",
            "ep_poll",
            "do_epoll_wait",
            "do_sys_poll",
            "do_select",
            "core_sys_select",
            "epoll_wait",
            "epoll_pwait",
            "poll",
            "ppoll",
            "select",
            "pselect6",
            "recv",
            "recvfrom",
            "recvmsg",
            "accept",
            "accept4",
            "connect",
            "send",
            "sendto",
            "sendmsg",
            "__libc_recv",
            "__libc_recvfrom",
            "__libc_accept",
            "__libc_connect",
            "__libc_send",
        ],
    ),
    (
        Reason::Lock,
        &[
            "PyThread_acquire_lock_timed",
            "PyThread_acquire_lock",
            "_PyMutex_LockTimed",
            "_PyMutex_LockSlow",
            "_PyParkingLot_Park",
            "_PySemaphore_Wait",
            "acquire_timed",
            "lock_PyThread_acquire_lock",
            "rlock_acquire",
            "sem_clockwait",
            "sem_timedwait",
            "sem_wait",
            "__new_sem_wait_slow64",
            "pthread_mutex_lock",
            "__pthread_mutex_lock",
            "pthread_cond_wait",
            "pthread_cond_timedwait",
            "__pthread_cond_wait",
            "__pthread_cond_timedwait",
            "futex_wait",
            "do_futex",
            "__x64_sys_futex",
        ],
    ),
];

/// Why the thread whose stack (root first) is `frames` waited, from the function names
/// between its leaf and its innermost Python frame.
pub fn reason(profile: &Profile, frames: &[u32]) -> Reason {
    let names: Vec<&str> = frames
        .iter()
        .rev()
        .map(|&f| &profile.frames[f as usize])
        .take_while(|f| f.kind != Kind::Python)
        .map(|f| f.name.strip_suffix("@plt").unwrap_or(&f.name))
        .collect();
    RULES
        .iter()
        .find(|(_, rule)| names.iter().any(|n| rule.contains(n)))
        .map_or(Reason::Other, |(r, _)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn stack(p: &mut Profile, names: &[(Kind, &str)]) -> u32 {
        let ids: Vec<u32> = names
            .iter()
            .map(|&(k, n)| p.intern_frame(Frame::named(k, n)))
            .collect();
        p.intern_stack(&ids)
    }

    /// (stack's leaf, weight) of each sample, in time order.
    fn leaves(p: &Profile) -> Vec<(String, u64)> {
        let mut s = p.samples.clone();
        s.sort_by_key(|s| s.time);
        s.iter()
            .map(|s| {
                let leaf = *p.stacks[s.stack as usize].last().unwrap();
                (p.frames[leaf as usize].name.to_string(), s.weight)
            })
            .collect()
    }

    #[test]
    fn a_threads_time_is_its_intervals_on_and_off_the_cpu() {
        let mut p = Profile::default();
        p.measure = Measure::Wall;
        let spin = stack(
            &mut p,
            &[(Kind::Python, "py::spin:x"), (Kind::Native, "add")],
        );
        let nap = stack(
            &mut p,
            &[
                (Kind::Python, "py::nap:x"),
                (Kind::Native, "clock_nanosleep"),
                (Kind::Kernel, "schedule"),
            ],
        );
        let mut t = Timeline::default();
        // Running when the recording starts: two samples, then a sleep of 10 ms.
        t.cpu_sample(7, 7, MS, spin, MS);
        t.cpu_sample(7, 7, 2 * MS, spin, MS);
        t.switch_stack(7, 7, 3 * MS, nap);
        t.switch(7, 7, 3 * MS, true, false);
        t.switch(7, 7, 13 * MS, false, false);
        // 2 ms on the CPU with one sample, then preempted for 1 ms (its stack lost).
        t.cpu_sample(7, 7, 14 * MS, spin, MS);
        t.switch(7, 7, 15 * MS, true, true);
        t.switch(7, 7, 16 * MS, false, false);
        t.cpu_sample(7, 7, 16 * MS + MS / 2, spin, MS);
        t.exit(7, 17 * MS);
        let unplaced = t.into_samples(&mut p);
        assert_eq!(unplaced.waits_without_stack, 1);
        assert_eq!(
            leaves(&p),
            [
                ("add".to_string(), 3 * MS / 2),
                ("add".to_string(), 3 * MS / 2),
                ("[wait: sleep]".to_string(), 10 * MS),
                ("add".to_string(), 2 * MS),
                ("[wait: preempted]".to_string(), MS),
                ("add".to_string(), MS),
            ]
        );
        // The wait keeps the stack the thread left with.
        let sleep = p.samples.iter().find(|s| s.weight == 10 * MS).unwrap();
        assert_eq!(p.stacks[sleep.stack as usize].len(), 4);
    }

    #[test]
    fn off_cpu_profiles_have_only_the_waits() {
        let mut p = Profile::default();
        p.measure = Measure::OffCpu;
        let wait = stack(
            &mut p,
            &[(Kind::Python, "py::get:x"), (Kind::Native, "recv")],
        );
        let mut t = Timeline::default();
        t.switch(7, 8, MS, false, false);
        t.switch_stack(7, 8, 2 * MS, wait);
        t.switch(7, 8, 2 * MS, true, false);
        // Still waiting when the recording ends.
        t.seen(9 * MS);
        t.into_samples(&mut p);
        assert_eq!(leaves(&p), [("[wait: network]".to_string(), 7 * MS)]);
    }

    #[test]
    fn the_reason_is_the_first_rule_any_frame_matches() {
        let mut p = Profile::default();
        let py = (Kind::Python, "py::f:x");
        let cases: &[(&[(Kind, &str)], Reason)] = &[
            (
                &[
                    py,
                    (Kind::Native, "take_gil"),
                    (Kind::Native, "pthread_cond_timedwait"),
                    (Kind::Kernel, "futex_wait"),
                ],
                Reason::Gil,
            ),
            (
                &[
                    py,
                    (Kind::Native, "PyThread_acquire_lock_timed"),
                    (Kind::Native, "sem_clockwait"),
                ],
                Reason::Lock,
            ),
            (
                &[
                    py,
                    (Kind::Native, "time_sleep"),
                    (Kind::Native, "select"),
                    (Kind::Kernel, "do_select"),
                ],
                Reason::Sleep,
            ),
            (
                &[py, (Kind::Native, "epoll_wait"), (Kind::Kernel, "ep_poll")],
                Reason::Network,
            ),
            (
                &[
                    py,
                    (Kind::Kernel, "exc_page_fault"),
                    (Kind::Kernel, "filemap_fault"),
                    (Kind::Kernel, "io_schedule"),
                ],
                Reason::PageFault,
            ),
            (
                &[
                    py,
                    (Kind::Native, "fsync"),
                    (Kind::Kernel, "jbd2_log_wait_commit"),
                ],
                Reason::Disk,
            ),
            (
                &[py, (Kind::Native, "wait4"), (Kind::Kernel, "do_wait")],
                Reason::Child,
            ),
            (
                &[py, (Kind::Native, "read"), (Kind::Kernel, "pipe_read")],
                Reason::Other,
            ),
            // Only the frames below the innermost Python frame count.
            (
                &[(Kind::Native, "time_sleep"), py, (Kind::Native, "read")],
                Reason::Other,
            ),
        ];
        for (frames, want) in cases {
            let s = stack(&mut p, frames);
            let ids = p.stacks[s as usize].clone();
            assert_eq!(reason(&p, &ids), *want, "{frames:?}");
        }
    }
}
