//! The system calls that wait for descriptors (`select`, `poll` and their kin): the kernel's
//! functions and the C library's wrappers that make them, and what their arguments, sampled
//! at the switch, say: no descriptor is a sleep, any is the network.

use super::Reason;
use crate::report::read::arch::SyscallArgs;

/// A system call that waits for descriptors, which its arguments name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Descriptors {
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
    pub(super) fn reason(self, args: &SyscallArgs) -> Reason {
        if self.any(args) {
            Reason::Network
        } else {
            Reason::Sleep
        }
    }
}

/// The kernel's functions of the system calls that wait for descriptors (x86_64's and
/// arm64's entry points, and the functions under them that every such call passes through).
pub(super) const DESCRIPTOR_WAITS: &[(Descriptors, &[&str])] = &[
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
pub(super) fn compat(name: &str) -> bool {
    ["compat_", "__ia32_", "__do_compat_", "__arm64_compat_"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Where perf saw no kernel frame: a `select`/`poll` of the C library (the innermost frame
/// past its cancellation helpers) whose arguments perf sampled.
pub(super) fn wrapper(names: &[&str], args: Option<&SyscallArgs>) -> Option<Reason> {
    let args = args?;
    let leaf = names.iter().find(|n| !SYSCALL_HELPERS.contains(n))?;
    DESCRIPTOR_WRAPPERS
        .iter()
        .find(|(_, rule)| rule.contains(leaf))
        .map(|(call, _)| call.reason(args))
}
