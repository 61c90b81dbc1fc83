//! Why a thread left the CPU: the `[wait: REASON]` leaf a wait gets. What the kernel and perf
//! say decides, what user space says only refines:
//!
//! 1. the switch record: preempted (still runnable) is [`Reason::Preempted`], whatever the
//!    stack (in [`super::thread`]);
//! 2. the kernel's frames on the stack the thread left with ([`rules::KERNEL`]), where perf
//!    sees the kernel; in `select`/`poll` (and `pselect6`/`ppoll`), the system call's
//!    arguments from the registers perf sampled at the switch: no descriptor is a sleep
//!    (CPython 3.8-3.10's `time.sleep` is `select(0, NULL, NULL, NULL, &tv)`, and a
//!    distribution's stripped interpreter names nothing above it), any is the network;
//! 3. the C library's and the interpreter's frames ([`rules::USER`]) refine the kernel's reason
//!    where it can't tell ([`Verdict::refined_by`]: a futex under `take_gil` is the GIL; a
//!    `select` whose arguments perf didn't sample is a sleep under `time_sleep`), and decide
//!    alone where perf saw no kernel frame (an unprivileged recording), a `select`/`poll`
//!    wrapper of the C library with the sampled arguments first.
//!
//! [`rules`] holds the names each reason is known by; [`syscall`], the system calls that wait
//! for descriptors and what their arguments say.

mod rules;
mod syscall;

use crate::report::read::arch::SyscallArgs;
use crate::report::{Kind, Profile};
use rules::{Rules, KERNEL, USER};
use syscall::{compat, wrapper, DESCRIPTOR_WAITS};

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
    let python = frames
        .iter()
        .rev()
        .map(|&f| &profile.frames[f as usize])
        .find(|f| f.kind == Kind::Python)
        .map(|f| f.python_parts());
    match reason_below(&below, args) {
        // subprocess waits for the child it started to run its program (or fail to) on a pipe
        // the exec closes: waiting for the child.
        Reason::Other
            if python.is_some_and(|(func, file)| {
                func == "py::Popen._execute_child" && file.ends_with("subprocess.py")
            }) =>
        {
            Reason::Child
        }
        r => r,
    }
}

/// [`reason`] from the frames between the leaf and the innermost Python frame (`below`, leaf
/// first).
fn reason_below(below: &[&crate::report::Frame], args: Option<&SyscallArgs>) -> Reason {
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
