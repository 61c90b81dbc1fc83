//! Why a thread left the CPU: the `[wait: REASON]` leaf a wait gets. What the kernel and perf
//! say decides, what user space says only refines:
//!
//! 1. the switch record: preempted (still runnable) is [`Reason::Preempted`], whatever the
//!    stack (in [`super::thread`]);
//! 2. the kernel's frames on the stack the thread left with ([`KERNEL`]), where perf sees the
//!    kernel; in `select`/`poll` (and `pselect6`/`ppoll`), the system call's arguments from
//!    the registers perf sampled at the switch: no descriptor is a sleep (CPython 3.8-3.10's
//!    `time.sleep` is `select(0, NULL, NULL, NULL, &tv)`, and a distribution's stripped
//!    interpreter names nothing above it), any is the network;
//! 3. the C library's and the interpreter's frames ([`USER`]) refine the kernel's reason
//!    where it can't tell ([`Verdict::refined_by`]: a futex under `take_gil` is the GIL; a
//!    `select` whose arguments perf didn't sample is a sleep under `time_sleep`), and decide
//!    alone where perf saw no kernel frame (an unprivileged recording), a `select`/`poll`
//!    wrapper of the C library with the sampled arguments first.

use crate::report::read::arch::SyscallArgs;
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

/// Function names that say why a thread left the CPU, by reason in order of precedence.
type Rules = &'static [(Reason, &'static [&'static str])];

/// The kernel's functions, by reason in order of precedence: a page fault that waits for the
/// disk is a page fault; a child waited for is a child, whatever it does. `select` and `poll`
/// are [`DESCRIPTOR_WAITS`], between the sleeps and the network.
const KERNEL: Rules = &[
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

/// A system call that waits for descriptors, which its arguments name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Descriptors {
    /// `select`, `pselect6`: (nfds, readfds, writefds, exceptfds, timeout, …).
    Select,
    /// `poll`, `ppoll`: (fds, nfds, timeout, …).
    Poll,
}

impl Descriptors {
    /// Whether a call with `args` waits for a descriptor at all; without one it only sleeps
    /// out its timeout. The counts are C `int`s (the upper half of the register is anything).
    fn any(self, args: &SyscallArgs) -> bool {
        let [a0, a1, a2, a3] = args.0;
        match self {
            Descriptors::Select => (a0 as u32 as i32) > 0 && (a1 | a2 | a3) != 0,
            Descriptors::Poll => a1 as u32 != 0,
        }
    }

    /// The reason of a wait in this call with `args`.
    fn reason(self, args: &SyscallArgs) -> Reason {
        if self.any(args) {
            Reason::Network
        } else {
            Reason::Sleep
        }
    }
}

/// The kernel's functions of the system calls that wait for descriptors (x86_64's and
/// arm64's entry points, and the functions under them that every such call passes through).
const DESCRIPTOR_WAITS: &[(Descriptors, &[&str])] = &[
    (
        Descriptors::Select,
        &[
            "do_select",
            "core_sys_select",
            "kern_select",
            "do_pselect",
            "__x64_sys_select",
            "__x64_sys_pselect6",
            "__arm64_sys_pselect6",
        ],
    ),
    (
        Descriptors::Poll,
        &[
            "do_sys_poll",
            "__x64_sys_poll",
            "__x64_sys_ppoll",
            "__arm64_sys_ppoll",
        ],
    ),
];

/// The C library's functions that make those system calls, for stacks without the kernel's
/// frames: the innermost frame but for the library's cancellation helpers
/// ([`SYSCALL_HELPERS`]).
const DESCRIPTOR_WRAPPERS: &[(Descriptors, &[&str])] = &[
    (
        Descriptors::Select,
        &["select", "__select", "pselect", "__pselect", "__pselect64"],
    ),
    (Descriptors::Poll, &["poll", "__poll", "ppoll", "__ppoll"]),
];

/// The C library's functions a cancellable system call's wrapper makes it through (glibc
/// 2.41's, musl's), innermost on the stack when perf sees no kernel.
const SYSCALL_HELPERS: &[&str] = &[
    "__syscall_cancel_arch",
    "__internal_syscall_cancel",
    "__syscall_cancel",
    "__syscall_cp_asm",
    "__syscall_cp_c",
    "__syscall_cp",
];

/// The kernel functions of a 32-bit process's system calls, whose arguments are in other
/// registers than a 64-bit one's (the sampled ones are not read there).
fn compat(name: &str) -> bool {
    ["compat_", "__ia32_", "__do_compat_", "__arm64_compat_"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The user space functions (the C library's and the interpreter's) that say why a thread
/// left the CPU, by reason in order of precedence: the GIL's functions above the lock they
/// wait on; `time_sleep` (`pysleep`) above the `select` it made before 3.11.
const USER: Rules = &[
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

/// What the kernel's frames say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Verdict {
    reason: Reason,
    /// The reasons user-space frames may replace it with, where they say one: what the
    /// kernel can't tell apart.
    refined_by: &'static [Reason],
}

impl Verdict {
    fn sure(reason: Reason) -> Verdict {
        Verdict {
            reason,
            refined_by: &[],
        }
    }
}

/// The kernel's reason from its frames (`names`, leaf first), with the system call's
/// arguments where they tell a sleep from a wait for descriptors. `None`: no kernel frame
/// says.
fn kernel(names: &[&str], args: Option<&SyscallArgs>) -> Option<Verdict> {
    let said = |rule: &[&str]| names.iter().any(|n| rule.contains(n));
    for &(reason, rule) in KERNEL {
        if reason == Reason::Network {
            // select and poll, before the other waits for the network.
            if let Some((call, _)) = DESCRIPTOR_WAITS.iter().find(|(_, rule)| said(rule)) {
                return Some(match args.filter(|_| !names.iter().any(|n| compat(n))) {
                    Some(args) => Verdict::sure(call.reason(args)),
                    // Without its arguments: the network, unless the interpreter's frames
                    // say time.sleep made it.
                    None => Verdict {
                        reason: Reason::Network,
                        refined_by: &[Reason::Sleep],
                    },
                });
            }
        }
        if said(rule) {
            return Some(match reason {
                // A futex: a lock, or the GIL (its condition variable's futex).
                Reason::Lock => Verdict {
                    reason,
                    refined_by: &[Reason::Gil],
                },
                _ => Verdict::sure(reason),
            });
        }
    }
    None
}

/// Where perf saw no kernel frame: a `select`/`poll` of the C library (the innermost frame
/// past its cancellation helpers) whose arguments perf sampled.
fn wrapper(names: &[&str], args: Option<&SyscallArgs>) -> Option<Reason> {
    let args = args?;
    let leaf = names.iter().find(|n| !SYSCALL_HELPERS.contains(n))?;
    DESCRIPTOR_WRAPPERS
        .iter()
        .find(|(_, rule)| rule.contains(leaf))
        .map(|(call, _)| call.reason(args))
}

/// The first rule of `rules` that one of `names` matches.
fn first(rules: Rules, names: &[&str]) -> Option<Reason> {
    rules
        .iter()
        .find(|(_, rule)| names.iter().any(|n| rule.contains(n)))
        .map(|(r, _)| *r)
}

/// A function's name as the rules know it: without `@plt`, nor the compiler's suffixes
/// (`do_pselect.constprop.0`, `core_sys_select.cold`).
fn plain(name: &str) -> &str {
    let name = name.strip_suffix("@plt").unwrap_or(name);
    name.split_once('.').map_or(name, |(n, _)| n)
}

/// Why the thread whose stack (root first) is `frames` waited, from the frames between its
/// leaf and its innermost Python frame, and the first four arguments of the system call it
/// was in (`args`: the user registers perf sampled at the switch, when it sampled them).
/// The switch record's preempted flag, which overrides all this, is the caller's.
pub fn reason(profile: &Profile, frames: &[u32], args: Option<&SyscallArgs>) -> Reason {
    let below: Vec<_> = frames
        .iter()
        .rev()
        .map(|&f| &profile.frames[f as usize])
        .take_while(|f| f.kind != Kind::Python)
        .collect();
    let names = |kernel: bool| -> Vec<&str> {
        (below.iter())
            .filter(|f| (f.kind == Kind::Kernel) == kernel)
            .map(|f| plain(&f.name))
            .collect()
    };
    let (kernel_names, user_names) = (names(true), names(false));
    let user = first(USER, &user_names);
    match kernel(&kernel_names, args) {
        Some(v) => match user {
            Some(u) if v.refined_by.contains(&u) => u,
            _ => v.reason,
        },
        None => wrapper(&user_names, args).or(user).unwrap_or(Reason::Other),
    }
}
