//! Python frames without a name: functions that were already running when names came on
//! (a server's main loop under `perfpy record --pid`) have no stub until they are entered
//! again. The leaf view keeps their interpreter frames, and the text report counts them.

use super::{Kind, Profile};

impl Profile {
    /// Whether `stack` (root first) has Python frames without a name: functions that were
    /// already running when names came on (a server's main loop under `record --pid`) have no
    /// stub until they are entered again. Seen as an interpreter-loop frame
    /// (`_PyEval_EvalFrame*`) rootward of the outermost named Python frame, or, where the
    /// interpreter's own functions have no names (stripped builds), as an outermost named
    /// frame that is not where Python code starts (a module, `runpy`, a thread's
    /// `_bootstrap`) although the interpreter's entry (`PyEval_EvalCode`, `Py_RunMain`, a
    /// thread's `start_thread`) is below it.
    pub fn unnamed_python_frames(&self, stack: &[u32]) -> bool {
        let frame = |f: &u32| &self.frames[*f as usize];
        let outer = stack.iter().position(|f| frame(f).kind == Kind::Python);
        let roots = &stack[..outer.unwrap_or(stack.len())];
        let native = |f: &&u32| frame(f).kind == Kind::Native;
        if roots
            .iter()
            .filter(native)
            .any(|f| frame(f).name.starts_with("_PyEval_EvalFrame"))
        {
            return true;
        }
        let Some(outer) = outer else {
            return false;
        };
        let (func, _) = frame(&stack[outer]).python_parts();
        let starts_python = func == "py::<module>"
            || func.ends_with("_run_module_as_main")
            || func.ends_with("._bootstrap")
            || func.ends_with("._bootstrap_inner");
        !starts_python
            && roots.iter().filter(native).any(|f| {
                matches!(
                    &*frame(f).name,
                    "PyEval_EvalCode" | "Py_RunMain" | "Py_BytesMain" | "start_thread"
                )
            })
    }

    /// How many samples of processes that had names on have Python frames without a name
    /// (see [`Profile::unnamed_python_frames`]); those whose names were off altogether are
    /// [`super::Stats::names_off`].
    pub fn samples_with_unnamed_python(&self) -> u64 {
        self.unnamed_python_samples(|_| true)
    }

    /// [`Profile::samples_with_unnamed_python`] of the processes `of` says.
    pub fn unnamed_python_samples(&self, of: impl Fn(i32) -> bool) -> u64 {
        let off: std::collections::HashSet<i32> =
            self.stats.names_off.iter().map(|o| o.pid).collect();
        let flags: Vec<bool> = self
            .stacks
            .iter()
            .map(|s| self.unnamed_python_frames(s))
            .collect();
        self.samples
            .iter()
            .filter(|s| of(s.pid) && flags[s.stack as usize] && !off.contains(&s.pid))
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Frame, NativeView, Sample};
    use super::*;

    #[test]
    fn frames_that_were_running_before_names_came_on_keep_their_interpreter_frames() {
        let mut p = Profile::default();
        let ids: Vec<u32> = [
            Frame::named(Kind::Native, "main"),
            Frame::named(Kind::Native, "_PyEval_EvalFrameDefault"), // serve(), no stub
            Frame::named(Kind::Native, "py_trampoline_evaluator"),
            Frame::named(Kind::Python, "py::middle:x"),
            Frame::named(Kind::Native, "_PyEval_EvalFrameDefault"),
            Frame::named(Kind::Python, "py::leaf:x"),
            Frame::named(Kind::Native, "_PyEval_EvalFrameDefault"),
        ]
        .into_iter()
        .map(|f| p.intern_frame(f))
        .collect();
        let st = p.intern_stack(&ids);
        let unnamed_only = p.intern_stack(&ids[..2]);
        for stack in [st, unnamed_only] {
            p.samples.push(Sample {
                time: 0,
                pid: 1,
                tid: 1,
                stack,
                weight: 1,
            });
        }
        assert_eq!(p.samples_with_unnamed_python(), 2);
        let leaf = p.with_view(NativeView::Leaf);
        let names: Vec<&str> = leaf.stacks[leaf.samples[0].stack as usize]
            .iter()
            .map(|&f| &*leaf.frames[f as usize].name)
            .collect();
        assert_eq!(
            names,
            [
                "main",
                "_PyEval_EvalFrameDefault",
                "py_trampoline_evaluator",
                "py::middle:x",
                "py::leaf:x",
                "_PyEval_EvalFrameDefault"
            ]
        );
        assert_eq!(leaf.samples_with_unnamed_python(), 2);
        // Names that were never on are not "already running when they came on".
        let mut off = leaf;
        off.stats.names_off.push(super::super::NamesOff {
            pid: 1,
            version: Some((3, 11)),
        });
        assert_eq!(off.samples_with_unnamed_python(), 0);

        // A stripped interpreter: only its exported entry points have names.
        let mut p = Profile::default();
        let stack = |p: &mut Profile, names: &[(Kind, &str)]| -> u32 {
            let ids: Vec<u32> = names
                .iter()
                .map(|&(k, n)| p.intern_frame(Frame::named(k, n)))
                .collect();
            p.intern_stack(&ids)
        };
        use Kind::{Native as N, Python as P};
        let attached = stack(
            &mut p,
            &[
                (N, "Py_RunMain"),
                (N, "PyEval_EvalCode"),
                (N, "[python3.14]"),
                (P, "py::middle:x"),
            ],
        );
        let launched = stack(
            &mut p,
            &[
                (N, "Py_RunMain"),
                (N, "PyEval_EvalCode"),
                (N, "[python3.14]"),
                (P, "py::<module>:x"),
                (P, "py::middle:x"),
            ],
        );
        let thread = stack(
            &mut p,
            &[
                (N, "start_thread"),
                (N, "[python3.14]"),
                (P, "py::Thread._bootstrap:t"),
                (P, "py::work:x"),
            ],
        );
        let old_thread = stack(
            &mut p,
            &[(N, "start_thread"), (N, "[python3.14]"), (P, "py::work:x")],
        );
        let flags: Vec<bool> = [attached, launched, thread, old_thread]
            .iter()
            .map(|&s| p.unnamed_python_frames(&p.stacks[s as usize]))
            .collect();
        assert_eq!(flags, [true, false, false, true]);
    }
}
