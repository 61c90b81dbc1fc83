//! What a report keeps of a profile: which native frames (`--native`), and whether the
//! idle threads of a wall-clock profile (`--no-idle`).

use super::{Frame, Kind, Profile};
use std::collections::HashMap;

impl Profile {
    /// Whether `stack` is a wait's (its leaf a `[wait: …]` frame).
    pub fn is_wait(&self, stack: u32) -> bool {
        self.stacks[stack as usize]
            .last()
            .is_some_and(|&f| self.frames[f as usize].kind == Kind::Wait)
    }

    /// Leaves out the samples of idle threads (on the CPU for less than 1% of their time) of
    /// a wall-clock or off-CPU profile, and returns those threads' `(pid, tid)`.
    pub fn without_idle_threads(&mut self) -> Vec<(i32, i32)> {
        if !self.measure.is_time() {
            return Vec::new();
        }
        let mut by: HashMap<(i32, i32), (u64, u64)> = HashMap::new();
        for s in &self.samples {
            let t = by.entry((s.pid, s.tid)).or_default();
            if self.is_wait(s.stack) {
                t.1 += s.weight;
            } else {
                t.0 += s.weight;
            }
        }
        let mut idle: Vec<(i32, i32)> = by
            .into_iter()
            .filter(|&(_, (on, off))| on * 100 < on + off)
            .map(|(thread, _)| thread)
            .collect();
        idle.sort_unstable();
        self.samples
            .retain(|s| idle.binary_search(&(s.pid, s.tid)).is_err());
        idle
    }

    /// Keeps only the frames `view` asks for in every stack (see [`NativeView`]).
    pub fn with_view(mut self, view: NativeView) -> Profile {
        if view == NativeView::All {
            return self;
        }
        let old_stacks = std::mem::take(&mut self.stacks);
        self.stack_ids.clear();
        let mut remap = Vec::with_capacity(old_stacks.len());
        for stack in &old_stacks {
            let kept = self.kept_frames(stack, view);
            remap.push(self.intern_stack(&kept));
        }
        for s in &mut self.samples {
            s.stack = remap[s.stack as usize];
        }
        self
    }

    /// Stack `stack` as `view` shows it, interned beside it (for a profile read as it grows,
    /// whose stacks can't all be replaced at once).
    pub fn view_of(&mut self, stack: u32, view: NativeView) -> u32 {
        if view == NativeView::All {
            return stack;
        }
        let frames = self.stacks[stack as usize].clone();
        let kept = self.kept_frames(&frames, view);
        self.intern_stack(&kept)
    }

    /// The frames of `stack` that `view` keeps.
    fn kept_frames(&mut self, stack: &[u32], view: NativeView) -> Vec<u32> {
        let native_marker = self.intern_frame(Frame::named(Kind::Native, "[native]"));
        let is_py = |f: &u32| self.frames[*f as usize].kind == Kind::Python;
        let is_wait = |f: &u32| self.frames[*f as usize].kind == Kind::Wait;
        let innermost_py = stack.iter().rposition(is_py);
        // Frames below the outermost named one that are Python without a name (running
        // before names came on) stay as the interpreter frames they are, with their roots.
        let unnamed = self.unnamed_python_frames(stack);
        let keep_roots = if unnamed {
            stack.iter().position(is_py).unwrap_or(0)
        } else {
            0
        };
        match (view, innermost_py) {
            (NativeView::All, _) | (NativeView::Leaf, None) => stack.to_vec(),
            (_, None) => [native_marker]
                .into_iter()
                .chain(stack.last().copied().filter(|f| is_wait(f)))
                .collect(),
            (NativeView::Leaf, Some(i)) => stack[..keep_roots]
                .iter()
                .copied()
                .chain(stack[keep_roots..i].iter().copied().filter(|f| is_py(f)))
                .chain(stack[i..].iter().copied())
                .collect(),
            (_, Some(_)) => stack
                .iter()
                .copied()
                .filter(|f| is_py(f) || is_wait(f))
                .collect(),
        }
    }
}

/// Which native frames a report keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NativeView {
    /// Every frame, as perf shows them: the interpreter's own functions between Python
    /// frames included.
    All,
    /// Python frames, plus the native code the innermost Python function is running
    /// (an extension, the interpreter loop): the interpreter glue between Python frames
    /// is dropped. Samples without Python frames keep their native stack.
    Leaf,
    /// Python frames only (samples without any become `[native]`), and the reason of a wait.
    None,
}
