//! The text report of a wall-clock or off-CPU profile (`perfpy record --mode wall|off-cpu`):
//! where the time went, on the CPU and off it, and why each wait was.
//!
//! ```text
//! 2.41 s of wall time in 3 threads of 1 process (0.62 s on CPU, 1.79 s off CPU), ...
//!
//! Python functions (self: the innermost Python function)
//!     self   total    wall ms  on-CPU ms  off-CPU ms  function  file  waiting on
//!    24.9%   24.9%      600.1        0.0       600.1  py::nap   x.py  sleep 100%
//! ...
//! off CPU, by reason
//! threads
//! native code
//! ```

use super::{other_events, Meta};
use crate::report::profile::tables::{native_table, pct, python_table, waits_by_function};
use crate::report::read::waits::Reason;
use crate::report::{Measure, Profile};
use anyhow::Result;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// A length of time as people read it: "1.85 s", "5.5 ms".
pub fn duration(ns: u64) -> String {
    if ns >= 1_000_000_000 {
        format!("{:.2} s", ns as f64 / 1e9)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

/// "sleep 90%, lock 10%": the reasons of `waits`, largest first, as shares of their sum.
pub fn reasons(waits: &HashMap<Reason, u64>) -> String {
    let all: u64 = waits.values().sum();
    let mut v: Vec<(&Reason, &u64)> = waits.iter().filter(|(_, &w)| w > 0).collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(r, &w)| format!("{} {:.0}%", r.name(), pct(w, all)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn text(profile: &Profile, meta: &Meta, out: &mut dyn Write) -> Result<()> {
    let total: u64 = profile.samples.iter().map(|s| s.weight).sum();
    let off: u64 = profile
        .samples
        .iter()
        .filter(|s| profile.is_wait(s.stack))
        .map(|s| s.weight)
        .sum();
    let pids: HashSet<i32> = profile.samples.iter().map(|s| s.pid).collect();
    let tids: HashSet<i32> = profile.samples.iter().map(|s| s.tid).collect();
    let what = match profile.measure {
        Measure::OffCpu => "off-CPU time",
        _ => "wall time",
    };
    writeln!(
        out,
        "{} of {what} in {} thread{} of {} process{} ({} on CPU, {} off CPU){}{}",
        duration(total),
        tids.len(),
        if tids.len() == 1 { "" } else { "s" },
        pids.len(),
        if pids.len() == 1 { "" } else { "es" },
        duration(total - off),
        duration(off),
        profile
            .perf_version
            .as_deref()
            .map(|v| format!(", perf {v}"))
            .unwrap_or_default(),
        if meta.title.is_empty() {
            String::new()
        } else {
            format!(": {}", meta.title)
        }
    )?;
    if let Some(others) = other_events(profile) {
        writeln!(out, "  {others}")?;
    }

    let waits = waits_by_function(profile);
    writeln!(
        out,
        "\nPython functions (self: the innermost Python function)"
    )?;
    writeln!(
        out,
        "  {:>6}  {:>6}  {:>9}  {:>9}  {:>10}  function  file  waiting on",
        "self", "total", "wall ms", "on-CPU ms", "off-CPU ms"
    )?;
    let py = python_table(profile);
    for r in py.iter().take(meta.top) {
        let frame = &profile.frames[r.frame as usize];
        let (func, file) = frame.python_parts();
        let own = waits.get(&Some(r.frame));
        let off: u64 = own.map_or(0, |w| w.values().sum());
        writeln!(
            out,
            "  {:>5.1}%  {:>5.1}%  {:>9.1}  {:>9.1}  {:>10.1}  {func}  {file}  {}",
            pct(r.self_samples, total),
            pct(r.total_samples, total),
            ms(r.self_samples),
            ms(r.self_samples.saturating_sub(off)),
            ms(off),
            own.map(reasons).unwrap_or_default()
        )?;
    }
    if py.is_empty() {
        writeln!(out, "  (none: no sample has a Python frame)")?;
    }

    let mut by_reason: BTreeMap<Reason, u64> = BTreeMap::new();
    for w in waits.values() {
        for (r, n) in w {
            *by_reason.entry(*r).or_default() += n;
        }
    }
    writeln!(out, "\noff CPU, by reason")?;
    let mut reasons_sorted: Vec<_> = by_reason.into_iter().collect();
    reasons_sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (r, n) in &reasons_sorted {
        writeln!(
            out,
            "  {:>5.1}%  {:>10.1} ms  {}",
            pct(*n, total),
            ms(*n),
            r.frame_name()
        )?;
    }
    if reasons_sorted.is_empty() {
        writeln!(out, "  (none: no thread left the CPU)")?;
    }

    threads(profile, out)?;

    let native = native_table(profile);
    writeln!(
        out,
        "\nnative code (self: the sampled instruction was there)"
    )?;
    writeln!(
        out,
        "  {:>6}  {:>6}  {:>9}  function",
        "self", "total", "ms"
    )?;
    for r in native.iter().filter(|r| r.self_samples > 0).take(meta.top) {
        let f = &profile.frames[r.frame as usize];
        writeln!(
            out,
            "  {:>5.1}%  {:>5.1}%  {:>9.1}  {}  {}",
            pct(r.self_samples, total),
            pct(r.total_samples, total),
            ms(r.self_samples),
            f.name,
            f.module.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}

/// Each thread's time on and off the CPU, the busiest first.
fn threads(profile: &Profile, out: &mut dyn Write) -> Result<()> {
    let mut by: HashMap<(i32, i32), (u64, u64)> = HashMap::new();
    for s in &profile.samples {
        let t = by.entry((s.pid, s.tid)).or_default();
        if profile.is_wait(s.stack) {
            t.1 += s.weight;
        } else {
            t.0 += s.weight;
        }
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by(|a, b| {
        (b.1 .0 + b.1 .1)
            .cmp(&(a.1 .0 + a.1 .1))
            .then(a.0.cmp(&b.0))
    });
    writeln!(out, "\nthreads")?;
    writeln!(
        out,
        "  {:>9}  {:>9}  {:>10}  thread",
        "wall ms", "on-CPU ms", "off-CPU ms"
    )?;
    for ((pid, tid), (on, off)) in v {
        writeln!(
            out,
            "  {:>9.1}  {:>9.1}  {:>10.1}  {}",
            ms(on + off),
            ms(on),
            ms(off),
            super::thread_label(profile, pid, tid)
        )?;
    }
    Ok(())
}
