//! The timeline and the reasons on hand-built profiles: no perf, no recording.

use super::*;
use crate::report::read::arch::SyscallArgs;
use crate::report::{Frame, Kind, Measure};

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
    t.switch_stack(7, 7, 3 * MS, nap, None);
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

/// Each leaf's total weight.
fn totals(p: &Profile) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for (leaf, w) in leaves(p) {
        *out.entry(leaf).or_default() += w;
    }
    out
}

#[test]
fn a_live_timeline_drained_as_it_goes_gives_the_same_time() {
    let events = |p: &mut Profile| {
        let spin = stack(p, &[(Kind::Python, "py::spin:x"), (Kind::Native, "add")]);
        let nap = stack(
            p,
            &[
                (Kind::Python, "py::nap:x"),
                (Kind::Native, "clock_nanosleep"),
            ],
        );
        let mut t = Timeline::default();
        t.switch(7, 7, 0, false, false);
        t.cpu_sample(7, 7, MS, spin, MS);
        t.cpu_sample(7, 7, 2 * MS, spin, MS);
        t.switch_stack(7, 7, 3 * MS, nap, None);
        t.switch(7, 7, 3 * MS, true, false);
        t.switch(7, 7, 13 * MS, false, false);
        t.cpu_sample(7, 7, 14 * MS, spin, MS);
        t.switch(7, 7, 15 * MS, true, true);
        t.switch(7, 7, 16 * MS, false, false);
        t.cpu_sample(7, 7, 16 * MS + MS / 2, spin, MS);
        t.seen(20 * MS);
        t
    };
    let mut whole = Profile::default();
    whole.measure = Measure::Wall;
    events(&mut whole).into_samples(&mut whole);
    let mut live = Profile::default();
    live.measure = Measure::Wall;
    let mut t = events(&mut live);
    // Cut mid-wait, mid-run and past the last event; the rest at the end.
    let mut taken = Vec::new();
    for horizon in [5 * MS, 8 * MS, 14 * MS + MS / 2, 19 * MS] {
        t.drain(&mut live, horizon);
        taken.append(&mut live.samples);
        let so_far: u64 = taken.iter().map(|s| s.weight).sum();
        assert_eq!(so_far, horizon, "all the time up to {horizon}, and no more");
    }
    t.into_samples(&mut live);
    live.samples.append(&mut taken);
    assert_eq!(totals(&live), totals(&whole));
    assert_eq!(totals(&whole)["[wait: sleep]"], 10 * MS);
    assert_eq!(totals(&whole)["add"], 3 * MS + 2 * MS + 4 * MS);
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
    t.switch_stack(7, 8, 2 * MS, wait, None);
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
        // Debian's 3.15: take_gil unnamed, its caller exported.
        (
            &[
                py,
                (Kind::Native, "_Py_HandlePending"),
                (Kind::Native, "[python3.15]"),
                (Kind::Native, "pthread_cond_wait"),
                (Kind::Kernel, "futex_wait"),
            ],
            Reason::Gil,
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
        assert_eq!(reason(&p, &ids, None), *want, "{frames:?}");
    }
}

/// A thread of a stripped CPython 3.9 (no name above the C library's `select`) in the
/// kernel's `select`, as perf 6.1 unwinds it on x86_64 (glibc 2.36 makes it `pselect6`).
fn in_select(p: &mut Profile, user: &[(Kind, &'static str)]) -> Vec<u32> {
    let mut frames = vec![
        (Kind::Python, "py::nap:x"),
        (Kind::Native, "_PyEval_EvalFrameDefault"),
        (Kind::Native, "[libpython3.9.so.1.0]"),
    ];
    frames.extend_from_slice(user);
    frames.extend([
        (Kind::Native, "select"),
        (Kind::Kernel, "entry_SYSCALL_64_after_hwframe"),
        (Kind::Kernel, "do_syscall_64"),
        (Kind::Kernel, "__x64_sys_pselect6"),
        (Kind::Kernel, "do_pselect.constprop.0"),
        (Kind::Kernel, "core_sys_select"),
        (Kind::Kernel, "do_select"),
        (Kind::Kernel, "poll_schedule_timeout.constprop.0"),
        (Kind::Kernel, "schedule_hrtimeout_range_clock"),
        (Kind::Kernel, "schedule"),
    ]);
    let s = stack(p, &frames);
    p.stacks[s as usize].clone()
}

const NULL: u64 = 0;
const SET: u64 = 0x7ffd_1234_5670;

#[test]
fn a_select_of_no_descriptor_is_a_sleep_by_its_arguments() {
    let mut p = Profile::default();
    let stripped = in_select(&mut p, &[]);
    let args = |a: [u64; 4]| Some(SyscallArgs(a));
    // time.sleep(0.3) on 3.8-3.10: select(0, NULL, NULL, NULL, &tv).
    let sleep = args([0, NULL, NULL, NULL]);
    assert_eq!(reason(&p, &stripped, sleep.as_ref()), Reason::Sleep);
    // select.select([sock], [], [], 0.3): nfds = sock + 1, a read set.
    let socket = args([5, SET, NULL, NULL]);
    assert_eq!(reason(&p, &stripped, socket.as_ref()), Reason::Network);
    // A count with no set to count in waits for nothing either; the count is a C int, the
    // register's upper half anything.
    let no_sets = args([5, NULL, NULL, NULL]);
    assert_eq!(reason(&p, &stripped, no_sets.as_ref()), Reason::Sleep);
    let dirty = args([0xdead_beef_0000_0000, SET, NULL, NULL]);
    assert_eq!(reason(&p, &stripped, dirty.as_ref()), Reason::Sleep);
    // No registers in the recording (an fp recording perf couldn't add them to, an older
    // perfpy's): the network, as the names say, unless the interpreter's names time.sleep.
    assert_eq!(reason(&p, &stripped, None), Reason::Network);
    let named = in_select(&mut p, &[(Kind::Native, "time_sleep")]);
    assert_eq!(reason(&p, &named, None), Reason::Sleep);
    // With them, the arguments decide, not the names above.
    assert_eq!(reason(&p, &named, socket.as_ref()), Reason::Network);
    assert_eq!(reason(&p, &named, sleep.as_ref()), Reason::Sleep);
}

#[test]
fn a_poll_of_no_descriptor_is_a_sleep_on_either_architecture() {
    let mut p = Profile::default();
    let py = (Kind::Python, "py::f:x");
    let x86 = stack(
        &mut p,
        &[
            py,
            (Kind::Native, "[python3.10]"),
            (Kind::Native, "poll"),
            (Kind::Kernel, "do_syscall_64"),
            (Kind::Kernel, "__x64_sys_poll"),
            (Kind::Kernel, "do_sys_poll"),
            (Kind::Kernel, "schedule"),
        ],
    );
    // aarch64 has no poll nor select: glibc makes ppoll and pselect6.
    let arm = stack(
        &mut p,
        &[
            py,
            (Kind::Native, "[python3.10]"),
            (Kind::Native, "ppoll"),
            (Kind::Kernel, "el0_svc"),
            (Kind::Kernel, "__arm64_sys_ppoll"),
            (Kind::Kernel, "do_sys_poll"),
            (Kind::Kernel, "schedule"),
        ],
    );
    let arm_select = stack(
        &mut p,
        &[
            py,
            (Kind::Native, "select"),
            (Kind::Kernel, "__arm64_sys_pselect6"),
            (Kind::Kernel, "core_sys_select"),
            (Kind::Kernel, "do_select"),
        ],
    );
    for s in [x86, arm] {
        let ids = p.stacks[s as usize].clone();
        // poll(fds, nfds, timeout): the count is the second argument.
        let none = SyscallArgs([SET, 0, 300, 0]);
        let one = SyscallArgs([SET, 1, 300, 0]);
        assert_eq!(reason(&p, &ids, Some(&none)), Reason::Sleep);
        assert_eq!(reason(&p, &ids, Some(&one)), Reason::Network);
        assert_eq!(reason(&p, &ids, None), Reason::Network);
    }
    let ids = p.stacks[arm_select as usize].clone();
    assert_eq!(
        reason(&p, &ids, Some(&SyscallArgs([0, NULL, NULL, NULL]))),
        Reason::Sleep
    );
}

#[test]
fn without_the_kernel_the_c_librarys_select_names_the_call_its_arguments_say() {
    let mut p = Profile::default();
    let py = (Kind::Python, "py::f:x");
    let plain = stack(
        &mut p,
        &[py, (Kind::Native, "[python3.9]"), (Kind::Native, "select")],
    );
    // glibc 2.41 makes a cancellable call through helpers below the wrapper.
    let helped = stack(
        &mut p,
        &[
            py,
            (Kind::Native, "[python3.9]"),
            (Kind::Native, "__select"),
            (Kind::Native, "__syscall_cancel"),
            (Kind::Native, "__internal_syscall_cancel"),
            (Kind::Native, "__syscall_cancel_arch"),
        ],
    );
    for s in [plain, helped] {
        let ids = p.stacks[s as usize].clone();
        let sleep = SyscallArgs([0, NULL, NULL, NULL]);
        let socket = SyscallArgs([5, SET, NULL, NULL]);
        assert_eq!(reason(&p, &ids, Some(&sleep)), Reason::Sleep);
        assert_eq!(reason(&p, &ids, Some(&socket)), Reason::Network);
        assert_eq!(reason(&p, &ids, None), Reason::Network);
    }
    // The registers are a system call's only where the wrapper is innermost: under another
    // function (an unnamed one of the C library), the names decide.
    let deeper = stack(
        &mut p,
        &[py, (Kind::Native, "select"), (Kind::Native, "[libc.so.6]")],
    );
    let ids = p.stacks[deeper as usize].clone();
    let sleep = SyscallArgs([0, NULL, NULL, NULL]);
    assert_eq!(reason(&p, &ids, Some(&sleep)), Reason::Network);
}

#[test]
fn user_frames_refine_the_kernels_reason_and_never_contradict_it() {
    let mut p = Profile::default();
    let py = (Kind::Python, "py::f:x");
    let cases: &[(&[(Kind, &str)], Reason)] = &[
        // A futex is a lock to the kernel; under take_gil, the GIL.
        (
            &[
                py,
                (Kind::Native, "take_gil"),
                (Kind::Kernel, "do_futex"),
                (Kind::Kernel, "futex_wait"),
            ],
            Reason::Gil,
        ),
        (
            &[
                py,
                (Kind::Native, "[python3.9]"),
                (Kind::Kernel, "do_futex"),
                (Kind::Kernel, "futex_wait"),
            ],
            Reason::Lock,
        ),
        // A name doesn't make a futex a sleep, nor a nanosleep the GIL.
        (
            &[
                py,
                (Kind::Native, "time_sleep"),
                (Kind::Kernel, "futex_wait"),
            ],
            Reason::Lock,
        ),
        (
            &[
                py,
                (Kind::Native, "_Py_HandlePending"),
                (Kind::Native, "clock_nanosleep"),
                (Kind::Kernel, "hrtimer_nanosleep"),
            ],
            Reason::Sleep,
        ),
        // A page fault in a system call is the page fault.
        (
            &[
                py,
                (Kind::Native, "recv"),
                (Kind::Kernel, "tcp_recvmsg"),
                (Kind::Kernel, "asm_exc_page_fault"),
                (Kind::Kernel, "io_schedule"),
            ],
            Reason::PageFault,
        ),
        // Kernel frames that say nothing known: the user frames decide.
        (
            &[
                py,
                (Kind::Native, "PyThread_acquire_lock_timed"),
                (Kind::Kernel, "some_new_wait"),
                (Kind::Kernel, "schedule"),
            ],
            Reason::Lock,
        ),
    ];
    for (frames, want) in cases {
        let s = stack(&mut p, frames);
        let ids = p.stacks[s as usize].clone();
        assert_eq!(reason(&p, &ids, None), *want, "{frames:?}");
    }
    // The registers of a 32-bit process hold its arguments elsewhere: not read.
    let compat = stack(
        &mut p,
        &[
            py,
            (Kind::Native, "select"),
            (Kind::Kernel, "__ia32_compat_sys_select"),
            (Kind::Kernel, "compat_core_sys_select"),
            (Kind::Kernel, "do_select"),
        ],
    );
    let ids = p.stacks[compat as usize].clone();
    let zeros = SyscallArgs([0, 0, 0, 0]);
    assert_eq!(reason(&p, &ids, Some(&zeros)), Reason::Network);
}

#[test]
fn a_switch_samples_registers_reach_its_waits_reason() {
    let mut p = Profile::default();
    p.measure = Measure::OffCpu;
    let mut t = Timeline::default();
    let nap = in_select(&mut p, &[]);
    let nap = p.intern_stack(&nap);
    t.switch(7, 7, 0, false, false);
    t.switch_stack(7, 7, MS, nap, Some(SyscallArgs([0, NULL, NULL, NULL])));
    t.switch(7, 7, MS, true, false);
    t.switch(7, 7, 301 * MS, false, false);
    t.switch_stack(7, 7, 302 * MS, nap, Some(SyscallArgs([5, SET, NULL, NULL])));
    t.switch(7, 7, 302 * MS, true, false);
    t.switch(7, 7, 402 * MS, false, false);
    // Preempted: the switch record decides, whatever the registers.
    t.switch_stack(
        7,
        7,
        403 * MS,
        nap,
        Some(SyscallArgs([0, NULL, NULL, NULL])),
    );
    t.switch(7, 7, 403 * MS, true, true);
    t.switch(7, 7, 404 * MS, false, false);
    t.into_samples(&mut p);
    assert_eq!(
        leaves(&p),
        [
            ("[wait: sleep]".to_string(), 300 * MS),
            ("[wait: network]".to_string(), 100 * MS),
            ("[wait: preempted]".to_string(), MS),
        ]
    );
}
