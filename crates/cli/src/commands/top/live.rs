//! What `perfpy top` shows, from the samples read so far: their weights kept per second of
//! perf's clock (by process and stack, the stacks as the report's default view keeps them),
//! so that the last N seconds and everything since the start are both at hand, and the
//! tables of either, for one process or all.

use crate::report::output::wall::reasons;
use crate::report::profile::tables::{
    native_rows, process_rows, python_rows, waits_by_function_of, ProcessRow,
};
use crate::report::{Measure, NativeView, Profile, Sample};
use std::collections::{BTreeMap, HashMap};

/// Which samples a view covers, in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last this many seconds.
    Last(u64),
    /// Everything since `top` started.
    All,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Window::Last(s) => write!(f, "last {s} s"),
            Window::All => f.write_str("since start"),
        }
    }
}

/// What the tables are sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sort {
    /// The function itself (Python: its own code and the native code it calls directly;
    /// native: the sampled instruction).
    #[value(name = "self")]
    Own,
    /// Anywhere on the stack.
    Total,
}

/// What the person at the keyboard chose to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub window: Window,
    pub sort: Sort,
    /// Native code's table shown.
    pub native: bool,
    /// One process (`None`: all of them).
    pub process: Option<i32>,
}

/// A (process, stack) pair's weight.
type Weights = HashMap<(i32, u32), u64>;

/// The samples read so far, by second.
#[derive(Default)]
pub struct Live {
    /// By second of perf's clock.
    seconds: BTreeMap<u64, Weights>,
    all: Weights,
    /// Samples read, since the start.
    pub samples: u64,
    /// The newest sample's time (perf's clock, ns).
    pub newest: u64,
    /// Raw stack → the stack as the report's default view keeps it.
    viewed: HashMap<u32, u32>,
}

/// One line of a function table.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub own: u64,
    pub total: u64,
    pub name: String,
    pub place: String,
    /// Wall-clock views: what its waits were (`sleep 90%, lock 10%`).
    pub waits: String,
}

/// What one refresh shows.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub measure: Measure,
    /// The weight of the view's samples (the selected process's), and of every process's.
    pub total: u64,
    pub all_total: u64,
    pub processes: Vec<ProcessRow>,
    pub python: Vec<Line>,
    pub native: Vec<Line>,
}

impl Live {
    /// Takes in samples of `profile` (their stacks are viewed as the report views them, by
    /// default: the interpreter's glue between Python frames left out).
    pub fn add(&mut self, profile: &mut Profile, samples: Vec<Sample>) {
        for s in samples {
            let stack = *self
                .viewed
                .entry(s.stack)
                .or_insert_with(|| profile.view_of(s.stack, NativeView::Leaf));
            let second = s.time / 1_000_000_000;
            *self
                .seconds
                .entry(second)
                .or_default()
                .entry((s.pid, stack))
                .or_default() += s.weight;
            *self.all.entry((s.pid, stack)).or_default() += s.weight;
            self.samples += 1;
            self.newest = self.newest.max(s.time);
        }
        // Nothing older than a minute is ever shown by second.
        let keep = (self.newest / 1_000_000_000).saturating_sub(60);
        self.seconds = self.seconds.split_off(&keep);
    }

    /// The weights of `window`, which ends `now` (perf's clock, ns).
    pub fn weights(&self, window: Window, now: u64) -> Weights {
        match window {
            Window::All => self.all.clone(),
            Window::Last(n) => {
                let from = (now / 1_000_000_000).saturating_sub(n.saturating_sub(1));
                let mut out = Weights::new();
                for w in self.seconds.range(from..).map(|(_, w)| w) {
                    for (&k, &v) in w {
                        *out.entry(k).or_default() += v;
                    }
                }
                out
            }
        }
    }
}

/// The weights of one process (`None`: all), by stack.
pub fn counts(weights: &Weights, process: Option<i32>) -> Vec<(u32, u64)> {
    let mut by: HashMap<u32, u64> = HashMap::new();
    for (&(pid, stack), &w) in weights {
        if process.is_none_or(|p| p == pid) {
            *by.entry(stack).or_default() += w;
        }
    }
    let mut v: Vec<(u32, u64)> = by.into_iter().collect();
    v.sort_unstable();
    v
}

/// The weights by process.
pub fn by_process(weights: &Weights) -> HashMap<i32, u64> {
    let mut out: HashMap<i32, u64> = HashMap::new();
    for (&(pid, _), &w) in weights {
        *out.entry(pid).or_default() += w;
    }
    out
}

/// The tables `view` asks for, `rows` long, from `weights`.
pub fn snapshot(profile: &Profile, weights: &Weights, view: &View, rows: usize) -> Snapshot {
    let counts = counts(weights, view.process);
    let total: u64 = counts.iter().map(|c| c.1).sum();
    let all_total: u64 = weights.values().sum();
    let waits = (profile.measure.is_time()).then(|| waits_by_function_of(profile, &counts));
    let sorted = |mut rows: Vec<crate::report::profile::tables::Row>| {
        if view.sort == Sort::Total {
            rows.sort_by(|a, b| {
                b.total_samples
                    .cmp(&a.total_samples)
                    .then(b.self_samples.cmp(&a.self_samples))
                    .then(a.frame.cmp(&b.frame))
            });
        }
        rows
    };
    let python = sorted(python_rows(profile, &counts))
        .into_iter()
        .take(rows)
        .map(|r| {
            let f = &profile.frames[r.frame as usize];
            let (func, file) = f.python_parts();
            Line {
                own: r.self_samples,
                total: r.total_samples,
                name: func.to_string(),
                place: match f.line {
                    Some(l) => format!("{file}:{l}"),
                    None => file.to_string(),
                },
                waits: waits
                    .as_ref()
                    .and_then(|w| w.get(&Some(r.frame)))
                    .map(reasons)
                    .unwrap_or_default(),
            }
        })
        .collect();
    let native = if view.native {
        sorted(native_rows(profile, &counts))
            .into_iter()
            .filter(|r| view.sort == Sort::Total || r.self_samples > 0)
            .take(rows)
            .map(|r| {
                let f = &profile.frames[r.frame as usize];
                Line {
                    own: r.self_samples,
                    total: r.total_samples,
                    name: f.name.to_string(),
                    place: f.module.as_deref().unwrap_or("").to_string(),
                    waits: String::new(),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    Snapshot {
        measure: profile.measure,
        total,
        all_total,
        processes: process_rows(profile, &by_process(weights)),
        python,
        native,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Frame, Kind};

    #[test]
    fn windows_keep_the_last_seconds_and_everything() {
        let mut p = Profile::default();
        let ids: Vec<u32> = ["py::main:a.py", "py::hot:a.py"]
            .iter()
            .map(|n| p.intern_frame(Frame::named(Kind::Python, n)))
            .collect();
        let hot = p.intern_stack(&ids);
        let cold = p.intern_stack(&ids[..1]);
        let mut live = Live::default();
        let s = |t: u64, pid: i32, stack: u32| Sample {
            time: t * 1_000_000_000,
            pid,
            tid: pid,
            stack,
            weight: 1,
        };
        // Seconds 1-2: pid 7 in main; seconds 10-11: pid 8 in hot.
        let early: Vec<Sample> = (0..20).map(|i| s(1 + i / 10, 7, cold)).collect();
        live.add(&mut p, early);
        live.add(&mut p, (0..30).map(|i| s(10 + i / 15, 8, hot)).collect());
        assert_eq!(live.samples, 50);
        let now = 11 * 1_000_000_000 + 5;
        let last = live.weights(Window::Last(5), now);
        assert_eq!(last.values().sum::<u64>(), 30);
        let all = live.weights(Window::All, now);
        assert_eq!(all.values().sum::<u64>(), 50);
        let view = View {
            window: Window::All,
            sort: Sort::Own,
            native: true,
            process: None,
        };
        let snap = snapshot(&p, &all, &view, 10);
        assert_eq!(snap.total, 50);
        assert_eq!(snap.python[0].name, "py::hot");
        assert_eq!((snap.python[0].own, snap.python[0].total), (30, 30));
        assert_eq!(snap.processes[0].pid, 8);
        let by_total = View {
            sort: Sort::Total,
            ..view
        };
        assert_eq!(snapshot(&p, &all, &by_total, 10).python[0].name, "py::main");
        let one = View {
            process: Some(7),
            ..view
        };
        let snap = snapshot(&p, &all, &one, 10);
        assert_eq!((snap.total, snap.all_total), (20, 50));
        assert_eq!(snap.python.len(), 1);
    }
}
