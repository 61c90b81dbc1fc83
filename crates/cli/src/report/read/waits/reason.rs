//! Why a thread left the CPU: the `[wait: REASON]` leaf a wait gets, from the preempted flag
//! of its switch record, else from the function names on its stack.

use crate::report::{Kind, Profile};

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
