//! The report's model: interned frames, interned stacks (root first), and samples, with the
//! views and tables every output format shares. Built by [`super::read`], written by
//! [`super::output`].

pub mod tables;
mod unnamed;
mod view;

mod stats;

pub use stats::{NamesOff, ProcessInfo, StackUse, Stats, Stripped};
pub use view::NativeView;

use std::collections::HashMap;
use std::sync::Arc;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A Python function, named by its stub (`py::<qualname>:<file>`).
    Python,
    /// Native user-space code (a symbol, or the file name when there is none).
    Native,
    /// The kernel: its symbol from `/proc/kallsyms` when the recorded kernel is this
    /// machine's running one, else one `[kernel]` frame for the kernel part of a sample.
    Kernel,
    /// Why a thread was off the CPU (`[wait: sleep]`): the leaf of each wait in wall-clock
    /// and off-CPU recordings.
    Wait,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    pub kind: Kind,
    pub name: Arc<str>,
    /// The binary for native frames.
    pub module: Option<Arc<str>>,
    /// For Python frames, the line the function is defined on, when known (jitdump).
    pub line: Option<u32>,
}

impl Frame {
    /// A frame known by its name alone (no binary, no line).
    pub fn named(kind: Kind, name: &str) -> Frame {
        Frame {
            kind,
            name: Arc::from(name),
            module: None,
            line: None,
        }
    }

    /// `(function, file)` of a Python frame: `py::foo:/x.py` → `("py::foo", "/x.py")`.
    pub fn python_parts(&self) -> (&str, &str) {
        let rest = self.name.strip_prefix("py::").unwrap_or(&self.name);
        match rest.find(':') {
            Some(i) => (&self.name[..4 + i], &rest[i + 1..]),
            None => (&self.name, ""),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub time: u64,
    pub pid: i32,
    pub tid: i32,
    pub stack: u32,
    /// What the sample stands for, in the profile's [`Measure`]: 1 (a sample), or
    /// nanoseconds (of CPU time, or of a wait).
    pub weight: u64,
}

/// What a profile's samples measure.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Samples of one event, each counting one.
    #[default]
    Samples,
    /// Wall-clock time (`perfpy record --mode wall`): CPU samples weighed by the CPU time
    /// each stands for, waits by their length, in nanoseconds.
    Wall,
    /// Off-CPU time (`--mode off-cpu`): waits by their length, in nanoseconds.
    OffCpu,
}

impl Measure {
    /// Whether weights are nanoseconds (else counts).
    pub fn is_time(self) -> bool {
        self != Measure::Samples
    }
}

/// A profile: interned frames, interned stacks (root first), samples.
#[derive(Debug, Default)]
pub struct Profile {
    pub frames: Vec<Frame>,
    frame_ids: HashMap<Frame, u32>,
    pub stacks: Vec<Vec<u32>>,
    stack_ids: HashMap<Vec<u32>, u32>,
    pub samples: Vec<Sample>,
    /// Thread names (`comm`) by tid, and process names by pid.
    pub thread_names: HashMap<i32, String>,
    pub process_names: HashMap<i32, String>,
    /// What the samples' weights measure.
    pub measure: Measure,
    /// The sampling frequency, when the recording used one.
    pub frequency: Option<u64>,
    pub perf_version: Option<String>,
    /// What was recorded: the command after `perf record ... --`, or perf's whole command line.
    pub command: Option<String>,
    /// Recorded system-wide (`perf record -a`).
    pub system_wide: bool,
    /// The text report groups the samples by process (system-wide recordings, `perfpy
    /// report --by-process`).
    pub by_process: bool,
    /// The events the recording holds (perf's side-band event left out), and which one the
    /// samples are of.
    pub events: Vec<crate::report::read::events::Event>,
    /// Every process the recording saw start or exec.
    pub pids: std::collections::BTreeSet<i32>,
    /// Each process's parent, from perf's fork records.
    pub parents: HashMap<i32, i32>,
    /// What `perfpy record` found of the running programs it recorded (their command lines:
    /// perf keeps 15 characters of each name), by pid.
    pub processes: HashMap<i32, ProcessInfo>,
    pub stats: Stats,
}

impl Profile {
    pub fn intern_frame(&mut self, frame: Frame) -> u32 {
        if let Some(&id) = self.frame_ids.get(&frame) {
            return id;
        }
        let id = self.frames.len() as u32;
        self.frames.push(frame.clone());
        self.frame_ids.insert(frame, id);
        id
    }

    /// The id of `frame`, if a stack has it.
    pub fn frame_id(&self, frame: &Frame) -> Option<u32> {
        self.frame_ids.get(frame).copied()
    }

    pub fn intern_stack(&mut self, stack: &[u32]) -> u32 {
        if let Some(&id) = self.stack_ids.get(stack) {
            return id;
        }
        let id = self.stacks.len() as u32;
        self.stacks.push(stack.to_vec());
        self.stack_ids.insert(stack.to_vec(), id);
        id
    }

    /// The processes forked from those of `roots` (and from their children, ...) during the
    /// recording, as perf's fork records say.
    pub fn descendants(
        &self,
        roots: &std::collections::BTreeSet<i32>,
    ) -> std::collections::BTreeSet<i32> {
        let mut out = std::collections::BTreeSet::new();
        for &pid in self.parents.keys() {
            let mut at = pid;
            for _ in 0..64 {
                let Some(&parent) = self.parents.get(&at) else {
                    break;
                };
                if roots.contains(&parent) || out.contains(&parent) {
                    out.insert(pid);
                    break;
                }
                at = parent;
            }
        }
        out
    }

    /// The samples' weights summed per distinct stack (counts, or nanoseconds: see
    /// [`Measure`]), in first-seen order.
    pub fn stack_counts(&self) -> Vec<(u32, u64)> {
        self.stack_counts_of(|_| true)
    }

    /// [`Profile::stack_counts`] of the processes `of` says.
    pub fn stack_counts_of(&self, of: impl Fn(i32) -> bool) -> Vec<(u32, u64)> {
        let mut counts = vec![0u64; self.stacks.len()];
        for s in self.samples.iter().filter(|s| of(s.pid)) {
            counts[s.stack as usize] += s.weight;
        }
        counts
            .into_iter()
            .enumerate()
            .filter(|&(_, c)| c > 0)
            .map(|(i, c)| (i as u32, c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_parts_split_at_the_first_colon_after_the_prefix() {
        let f = Frame::named(Kind::Python, "py::A.f.<locals>.g:/a:b/x.py");
        assert_eq!(f.python_parts(), ("py::A.f.<locals>.g", "/a:b/x.py"));
        let f = Frame::named(Kind::Python, "py::f");
        assert_eq!(f.python_parts(), ("py::f", ""));
    }

    #[test]
    fn views_drop_the_interpreter_glue() {
        let mut p = Profile::default();
        let ids: Vec<u32> = [
            Frame::named(Kind::Native, "main"),
            Frame::named(Kind::Python, "py::a:x"),
            Frame::named(Kind::Native, "eval"),
            Frame::named(Kind::Python, "py::b:x"),
            Frame::named(Kind::Native, "eval"),
            Frame::named(Kind::Native, "memcpy"),
        ]
        .into_iter()
        .map(|f| p.intern_frame(f))
        .collect();
        let st = p.intern_stack(&ids);
        let native_only = p.intern_stack(&ids[..1]);
        for stack in [st, st, native_only] {
            p.samples.push(Sample {
                time: 0,
                pid: 1,
                tid: 1,
                stack,
                weight: 1,
            });
        }
        let names = |p: &Profile, s: u32| -> Vec<String> {
            p.stacks[s as usize]
                .iter()
                .map(|&f| p.frames[f as usize].name.to_string())
                .collect()
        };
        let leaf = Profile {
            frames: p.frames.clone(),
            frame_ids: p.frame_ids.clone(),
            stacks: p.stacks.clone(),
            stack_ids: p.stack_ids.clone(),
            samples: p.samples.clone(),
            ..Default::default()
        }
        .with_view(NativeView::Leaf);
        assert_eq!(
            names(&leaf, leaf.samples[0].stack),
            ["py::a:x", "py::b:x", "eval", "memcpy"]
        );
        assert_eq!(names(&leaf, leaf.samples[2].stack), ["main"]);
        assert_eq!(leaf.samples_with_unnamed_python(), 0);
        let none = p.with_view(NativeView::None);
        assert_eq!(names(&none, none.samples[0].stack), ["py::a:x", "py::b:x"]);
        assert_eq!(none.stack_counts().len(), 2);
    }
}
