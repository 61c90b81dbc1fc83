//! The two tables of the text report (and of `perfpy record`'s summary): Python functions
//! and native functions, with self and total sample counts (or times), and the waits of
//! wall-clock profiles by function and reason.

use super::{Kind, Profile};
use crate::report::read::waits::Reason;
use std::collections::{HashMap, HashSet};

/// One row of a table.
pub struct Row {
    pub frame: u32,
    pub self_samples: u64,
    pub total_samples: u64,
}

/// Python functions by samples: self is the innermost Python frame of a sample (the time in
/// that function and the native code it calls directly), total any frame.
pub fn python_table(profile: &Profile) -> Vec<Row> {
    python_rows(profile, &profile.stack_counts())
}

/// [`python_table`] of some of the samples: `counts`, their weights by stack.
pub fn python_rows(profile: &Profile, counts: &[(u32, u64)]) -> Vec<Row> {
    let mut self_c: HashMap<u32, u64> = HashMap::new();
    let mut total_c: HashMap<u32, u64> = HashMap::new();
    for &(stack, count) in counts {
        let frames = &profile.stacks[stack as usize];
        let py = |f: &&u32| profile.frames[**f as usize].kind == Kind::Python;
        if let Some(&inner) = frames.iter().rev().find(py) {
            *self_c.entry(inner).or_default() += count;
        }
        let distinct: HashSet<u32> = frames.iter().filter(py).copied().collect();
        for f in distinct {
            *total_c.entry(f).or_default() += count;
        }
    }
    rows(self_c, total_c)
}

/// Native functions by samples as the leaf frame (self) and anywhere (total).
pub fn native_table(profile: &Profile) -> Vec<Row> {
    native_rows(profile, &profile.stack_counts())
}

/// [`native_table`] of some of the samples: `counts`, their weights by stack.
pub fn native_rows(profile: &Profile, counts: &[(u32, u64)]) -> Vec<Row> {
    let mut self_c: HashMap<u32, u64> = HashMap::new();
    let mut total_c: HashMap<u32, u64> = HashMap::new();
    for &(stack, count) in counts {
        let frames = &profile.stacks[stack as usize];
        let native = |f: &&u32| {
            matches!(
                profile.frames[**f as usize].kind,
                Kind::Native | Kind::Kernel
            )
        };
        if let Some(&leaf) = frames.last().filter(native) {
            *self_c.entry(leaf).or_default() += count;
        }
        let distinct: HashSet<u32> = frames.iter().filter(native).copied().collect();
        for f in distinct {
            *total_c.entry(f).or_default() += count;
        }
    }
    rows(self_c, total_c)
}

/// Waits by the innermost Python function they happened in (`None`: no Python frame) and by
/// reason, in the profile's weights: `[wait: …]` leaves, from wall-clock and off-CPU
/// recordings.
pub fn waits_by_function(profile: &Profile) -> HashMap<Option<u32>, HashMap<Reason, u64>> {
    waits_by_function_of(profile, &profile.stack_counts())
}

/// [`waits_by_function`] of some of the samples: `counts`, their weights by stack.
pub fn waits_by_function_of(
    profile: &Profile,
    counts: &[(u32, u64)],
) -> HashMap<Option<u32>, HashMap<Reason, u64>> {
    let mut out: HashMap<Option<u32>, HashMap<Reason, u64>> = HashMap::new();
    for &(stack, weight) in counts {
        let frames = &profile.stacks[stack as usize];
        let Some(reason) = frames
            .last()
            .map(|&f| &profile.frames[f as usize])
            .filter(|f| f.kind == Kind::Wait)
            .and_then(|f| Reason::of_frame(&f.name))
        else {
            continue;
        };
        let inner = frames
            .iter()
            .rev()
            .find(|&&f| profile.frames[f as usize].kind == Kind::Python)
            .copied();
        *out.entry(inner).or_default().entry(reason).or_default() += weight;
    }
    out
}

/// One process's share of the samples.
#[derive(Debug, Clone)]
pub struct ProcessRow {
    pub pid: i32,
    pub weight: u64,
    /// Its command line (what `perfpy record` found), else perf's name for it.
    pub name: String,
    /// `CPython 3.12`, when perfpy found it running Python.
    pub interpreter: String,
}

/// The processes of `samples` (pid, weight), heaviest first.
pub fn process_rows(profile: &Profile, weights: &HashMap<i32, u64>) -> Vec<ProcessRow> {
    let mut rows: Vec<ProcessRow> = weights
        .iter()
        .map(|(&pid, &weight)| {
            let info = profile.processes.get(&pid);
            let name = info
                .map(|i| i.cmdline.clone())
                .filter(|c| !c.is_empty())
                .or_else(|| profile.process_names.get(&pid).cloned())
                .unwrap_or_else(|| format!("[{pid}]"));
            ProcessRow {
                pid,
                weight,
                name: if pid == 0 {
                    "[idle: no task on the CPU]".to_string()
                } else {
                    name
                },
                interpreter: info.map(|i| i.interpreter.clone()).unwrap_or_default(),
            }
        })
        .collect();
    rows.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.pid.cmp(&b.pid)));
    rows
}

/// The profile's samples' weights by process.
pub fn process_weights(profile: &Profile) -> HashMap<i32, u64> {
    let mut out: HashMap<i32, u64> = HashMap::new();
    for s in &profile.samples {
        *out.entry(s.pid).or_default() += s.weight;
    }
    out
}

fn rows(self_c: HashMap<u32, u64>, total_c: HashMap<u32, u64>) -> Vec<Row> {
    let mut rows: Vec<Row> = total_c
        .into_iter()
        .map(|(frame, total_samples)| Row {
            frame,
            self_samples: self_c.get(&frame).copied().unwrap_or(0),
            total_samples,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.self_samples
            .cmp(&a.self_samples)
            .then(b.total_samples.cmp(&a.total_samples))
            .then(a.frame.cmp(&b.frame))
    });
    rows
}

/// `n` as a percentage of `of` (0 when `of` is 0).
pub fn pct(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * n as f64 / of as f64
    }
}
