//! The timeline and the reasons on hand-built profiles: no perf, no recording.
//!
//! * [`timeline`]: each thread's time on and off the CPU, whole or drained as it goes;
//! * [`names`]: the reason the frames' names give;
//! * [`args`]: the reason a `select`/`poll`'s sampled arguments give.

mod args;
mod names;
mod timeline;

use super::*;
use crate::report::read::arch::SyscallArgs;
use crate::report::{Frame, Kind};

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

/// Each leaf's total weight.
fn totals(p: &Profile) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for (leaf, w) in leaves(p) {
        *out.entry(leaf).or_default() += w;
    }
    out
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
