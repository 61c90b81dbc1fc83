//! The function names that say why a thread left the CPU, the kernel's and user space's, by
//! reason in order of precedence.

use super::Reason;

/// Function names that say why a thread left the CPU, by reason in order of precedence.
pub(super) type Rules = &'static [(Reason, &'static [&'static str])];

/// The kernel's functions, by reason in order of precedence: a return to user space that
/// reschedules is a preemption; a page fault that waits for the disk is a page fault; a child waited for is a child, whatever it does. `select` and `poll`
/// are [`super::syscall::DESCRIPTOR_WAITS`], between the sleeps and the network.
pub(super) const KERNEL: Rules = &[
    // Rescheduled on its way back to user space (need_resched at a system call's or an
    // interrupt's exit): still runnable, whatever the switch record says (and where the
    // records of its next switches were lost, the wait perfpy sees is that one).
    (
        Reason::Preempted,
        &[
            "exit_to_user_mode_prepare",
            "exit_to_user_mode_loop",
            "prepare_exit_to_usermode",
            "irqentry_exit_to_user_mode",
            "preempt_schedule_irq",
        ],
    ),
    (
        Reason::PageFault,
        &[
            "exc_page_fault",
            "asm_exc_page_fault",
            "handle_mm_fault",
            "do_user_addr_fault",
            "do_page_fault",
        ],
    ),
    (
        Reason::Child,
        &["do_wait", "kernel_wait4", "__do_sys_wait4", "kernel_waitid"],
    ),
    (
        Reason::Disk,
        &[
            "io_schedule",
            "io_schedule_timeout",
            "folio_wait_bit_common",
            "wait_on_page_bit_common",
            "jbd2_log_wait_commit",
            "blkdev_issue_flush",
            "vfs_fsync_range",
        ],
    ),
    (
        Reason::Sleep,
        &["hrtimer_nanosleep", "do_nanosleep", "common_nsleep"],
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
            "__skb_wait_for_more_packets",
            "sk_stream_wait_memory",
            "inet_csk_accept",
            "inet_wait_for_connect",
            "__sys_accept4",
            "__sys_connect",
            "ep_poll",
            "do_epoll_wait",
        ],
    ),
    (
        Reason::Lock,
        &[
            "futex_wait",
            "futex_wait_queue",
            "futex_wait_queue_me",
            "__futex_wait",
            "do_futex",
            "__x64_sys_futex",
            "__arm64_sys_futex",
        ],
    ),
];

/// The user space functions (the C library's and the interpreter's) that say why a thread
/// left the CPU, by reason in order of precedence: the GIL's functions above the lock they
/// wait on; `time_sleep` (`pysleep`) above the `select` it made before 3.11.
pub(super) const USER: Rules = &[
    // The interpreter waiting for the GIL: a timed wait on its condition variable
    // (Python/ceval_gil.c), under take_gil or the functions that call it.
    (
        Reason::Gil,
        &[
            "take_gil",
            "_PyEval_TakeGIL",
            "PyEval_RestoreThread",
            "PyEval_AcquireThread",
            // The eval breaker's handler, which drops the GIL when another thread asks for
            // it and takes it back: exported since 3.12, so named where take_gil isn't
            // (Debian's stripped interpreters).
            "_Py_HandlePending",
            "eval_frame_handle_pending",
            "handle_eval_breaker",
        ],
    ),
    (
        Reason::Child,
        &[
            "wait4",
            "waitpid",
            "waitid",
            "__wait4",
            "__waitpid",
            "__waitid",
        ],
    ),
    (Reason::Disk, &["fsync", "fdatasync", "sync_file_range"]),
    (
        Reason::Sleep,
        &[
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
            "epoll_wait",
            "epoll_pwait",
            "poll",
            "__poll",
            "ppoll",
            "select",
            "__select",
            "pselect",
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
        ],
    ),
];
