//! The two tables of the text report (and of `perfpy record`'s summary): Python functions
//! and native functions, with self and total sample counts.

use super::{Kind, Profile};
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
    let mut self_c: HashMap<u32, u64> = HashMap::new();
    let mut total_c: HashMap<u32, u64> = HashMap::new();
    for (stack, count) in profile.stack_counts() {
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
    let mut self_c: HashMap<u32, u64> = HashMap::new();
    let mut total_c: HashMap<u32, u64> = HashMap::new();
    for (stack, count) in profile.stack_counts() {
        let frames = &profile.stacks[stack as usize];
        let native = |f: &&u32| profile.frames[**f as usize].kind != Kind::Python;
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
