//! The reason the frames' names give: the first rule any frame below the innermost Python
//! frame matches, the kernel's refined by user space's, never contradicted.

use super::*;

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
        // subprocess reading the pipe the child's exec closes: waiting for the child.
        (
            &[
                (
                    Kind::Python,
                    "py::Popen._execute_child:/usr/lib/python3.9/subprocess.py",
                ),
                (Kind::Native, "_Py_read"),
                (Kind::Native, "read"),
                (Kind::Kernel, "pipe_read"),
                (Kind::Kernel, "schedule"),
            ],
            Reason::Child,
        ),
        // Rescheduled on the way back to user space (here after waking a thread up):
        // runnable, whatever user space was doing.
        (
            &[
                py,
                (Kind::Native, "PyEval_SaveThread"),
                (Kind::Native, "pthread_cond_signal"),
                (Kind::Kernel, "entry_SYSCALL_64_after_hwframe"),
                (Kind::Kernel, "syscall_exit_to_user_mode"),
                (Kind::Kernel, "exit_to_user_mode_prepare"),
                (Kind::Kernel, "schedule"),
            ],
            Reason::Preempted,
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
