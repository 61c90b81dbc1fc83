//! What `perfpy record` records with, and why: one pure function of the interpreter's facts,
//! used by `record` to run perf and by `doctor` to say what `record` would do, so the two
//! can't disagree.
//!
//! | interpreter                     | backend   | call graphs | switch                       |
//! |---------------------------------|-----------|-------------|------------------------------|
//! | frame pointers, perfpy or 3.12+ | perf map  | `-g`        | `PERFPY_BACKEND=perf` / `PYTHONPERFSUPPORT=1` |
//! | no frame pointers, perfpy       | jitdump   | DWARF       | `PERFPY_BACKEND=perf_jit`    |
//! | no frame pointers, 3.13+        | jitdump   | DWARF       | `PYTHON_PERF_JIT_SUPPORT=1`  |
//! | no frame pointers, 3.12         | perf map  | DWARF       | `PYTHONPERFSUPPORT=1` (perfpy report unwinds CPython's stubs) |
//! | 3.8–3.11 without perfpy         | refused: install perfpy                                 |
//! | CPython's JIT on                | refused: `PYTHON_JIT=0`                                 |
//!
//! "perfpy" is perfpy's trampoline, installed in the interpreter or else lent to it by this
//! command for the run ([`crate::lend`]): with a wheel-installed `perfpy` command, even
//! 3.8–3.11 without perfpy are recorded. `--trampoline cpython` picks CPython's own (3.12+)
//! where both could serve; by default perfpy's does, whose stubs keep a frame record.

use crate::cli::{Backend as BackendArg, CallGraph as CallGraphArg, Trampoline as TrampolineArg};
use crate::lend::Lend;
use crate::perf;
use crate::python::{FramePointers, PythonFacts};

/// How stubs are announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `/tmp/perf-<pid>.map`.
    PerfMap,
    /// `/tmp/jit-<pid>.dump`.
    Jitdump,
}

/// How perf records call stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallGraph {
    /// `--call-graph fp` (`-g`).
    FramePointers,
    /// `--call-graph dwarf,65528`: registers and a copy of the user stack.
    Dwarf,
}

/// Whose trampoline runs in the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trampoline {
    /// perfpy's, installed in the interpreter.
    Perfpy,
    /// perfpy's, lent to the interpreter for the run through `PYTHONPATH`.
    PerfpyLent,
    /// CPython's built-in one (3.12+).
    Cpython,
}

/// What to record with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub backend: Backend,
    pub call_graph: CallGraph,
    pub trampoline: Trampoline,
    /// Why, one line per choice.
    pub reasons: Vec<String>,
    /// What the user asked for that will work badly.
    pub warnings: Vec<String>,
}

/// Environment variables that switch a trampoline on; cleared in the program's environment
/// before the plan's own is set.
pub const SWITCHES: [&str; 3] = [
    "PYTHONPERFSUPPORT",
    "PYTHON_PERF_JIT_SUPPORT",
    "PERFPY_BACKEND",
];

impl Plan {
    /// The switch for the program's environment.
    pub fn env(&self) -> (&'static str, &'static str) {
        match (self.trampoline, self.backend) {
            (Trampoline::Perfpy | Trampoline::PerfpyLent, Backend::PerfMap) => {
                ("PERFPY_BACKEND", "perf")
            }
            (Trampoline::Perfpy | Trampoline::PerfpyLent, Backend::Jitdump) => {
                ("PERFPY_BACKEND", "perf_jit")
            }
            (Trampoline::Cpython, Backend::PerfMap) => ("PYTHONPERFSUPPORT", "1"),
            (Trampoline::Cpython, Backend::Jitdump) => ("PYTHON_PERF_JIT_SUPPORT", "1"),
        }
    }
}

/// The call graphs for `asked` on an interpreter with or without frame pointers, and a
/// warning if the user forces frame pointers where there are none.
pub fn call_graph(asked: CallGraphArg, fp: &FramePointers) -> (CallGraph, Option<String>) {
    match asked {
        // Frame pointers in the interpreter are not enough: the C extensions a program calls
        // (numpy, its BLAS, anything from PyPI) are built without them, and a frame-pointer
        // walk loses the Python stack under them. DWARF unwinds through both.
        CallGraphArg::Auto | CallGraphArg::Dwarf => (CallGraph::Dwarf, None),
        CallGraphArg::Fp => (
            CallGraph::FramePointers,
            (!fp.present).then(|| {
                "--call-graph fp on an interpreter without frame pointers: stacks stop at the \
                 first interpreter function. Leave --call-graph at auto (dwarf here)."
                    .to_string()
            }),
        ),
    }
}

/// What the user asked `record` for.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    pub backend: BackendArg,
    pub trampoline: TrampolineArg,
    pub call_graph: CallGraphArg,
}

impl Default for Asked {
    fn default() -> Asked {
        Asked {
            backend: BackendArg::Auto,
            trampoline: TrampolineArg::Auto,
            call_graph: CallGraphArg::Auto,
        }
    }
}

/// Whose trampoline `asked` gets in `facts`' interpreter, if perfpy's (installed, or lent).
fn perfpys(
    asked: TrampolineArg,
    facts: &PythonFacts,
    lend: &Lend,
) -> Result<Option<Trampoline>, String> {
    let ours = if facts.perfpy.is_some() {
        Some(Trampoline::Perfpy)
    } else if lend.is_yes() {
        Some(Trampoline::PerfpyLent)
    } else {
        None
    };
    match (asked, ours, lend) {
        (TrampolineArg::Cpython, ..) => {
            if !facts.builtin_perf || !facts.at_least(3, 12) {
                return Err(format!(
                    "--trampoline cpython: {} (Python {}) has no built-in perf support \
                     (CPython 3.12+ built with it); leave --trampoline at auto",
                    facts.executable, facts.version
                ));
            }
            Ok(None)
        }
        (TrampolineArg::Perfpy, None, Lend::No(why)) => Err(format!(
            "--trampoline perfpy: perfpy isn't importable in {} (Python {}), and {why}. \
             Install perfpy into it ({} -m pip install perfpy), or run a perfpy command \
             installed from the wheel (pipx install perfpy)",
            facts.executable, facts.version, facts.executable
        )),
        _ => Ok(ours),
    }
}

/// The plan for recording `facts`' interpreter as `asked`; `lend` says whether this command
/// can lend perfpy to an interpreter that doesn't have it.
pub fn plan(
    asked: Asked,
    facts: &PythonFacts,
    lend: &Lend,
    fp: &FramePointers,
    perf_version: Option<perf::Version>,
) -> Result<Plan, String> {
    let (backend, asked_call_graph) = (asked.backend, asked.call_graph);
    if facts.cpython_jit {
        return Err(format!(
            "CPython's JIT is enabled in {} ({}): JIT-compiled code has no perf names. \
             Run with PYTHON_JIT=0.",
            facts.executable, facts.cpython_jit_how
        ));
    }
    let ours = perfpys(asked.trampoline, facts, lend)?;
    let perfpy = ours.is_some();
    let builtin = |b: Backend| {
        asked.trampoline != TrampolineArg::Perfpy
            && match b {
                Backend::PerfMap => facts.builtin_perf && facts.at_least(3, 12),
                Backend::Jitdump => facts.builtin_perf && facts.at_least(3, 13),
            }
    };
    let available = |b: Backend| perfpy || builtin(b);
    let mut reasons = vec![format!(
        "{} frame pointers ({})",
        if fp.present {
            "interpreter has"
        } else {
            "interpreter lacks"
        },
        fp.evidence
    )];
    let (call_graph, warning) = call_graph(asked_call_graph, fp);
    if fp.present && asked_call_graph == CallGraphArg::Auto {
        reasons.push(
            "DWARF call graphs all the same: C extensions (numpy, BLAS, most of PyPI) have no \
             frame pointers, and only DWARF unwinds the Python stack through them \
             (--call-graph fp: smaller recordings, if everything the program runs has them)"
                .into(),
        );
    }
    let chosen = match backend {
        BackendArg::Auto
            if call_graph == CallGraph::FramePointers && available(Backend::PerfMap) =>
        {
            reasons.push(
                "frame-pointer call graphs with the perf map: the smallest recordings, and \
                 perf report reads them as they are (time inside a library built without \
                 frame pointers has no stack there)"
                    .into(),
            );
            Backend::PerfMap
        }
        BackendArg::Auto if available(Backend::Jitdump) => {
            let note = match (
                perf_version.and_then(|v| v.dwarf_jit_unwinding()),
                perf_version,
            ) {
                (Some(true), _) => " (perf inject --jit + perf report can read it too, with \
                                    --keep-jit-files)"
                    .to_string(),
                (Some(false), Some(v)) => format!(
                    " (perf {v}'s own unwinder can't step through perf inject --jit code; \
                     perfpy report doesn't need it)"
                ),
                _ => String::new(),
            };
            reasons.push(format!(
                "DWARF call graphs with the jitdump: each stub carries its unwind info{note}"
            ));
            Backend::Jitdump
        }
        BackendArg::Auto if available(Backend::PerfMap) => {
            reasons.push(
                "CPython's own perf map (this interpreter has no jitdump support without \
                 perfpy); perfpy report unwinds through its stubs with CFI derived from the \
                 interpreter's trampoline"
                    .into(),
            );
            Backend::PerfMap
        }
        BackendArg::Auto => {
            return Err(format!(
                "{} (Python {}) has neither perfpy nor built-in perf support (CPython 3.12+), \
                 and {}. Install perfpy into it ({} -m pip install perfpy), or run a perfpy \
                 command installed from the wheel (pipx install perfpy), which lends it \
                 perfpy for the run",
                facts.executable,
                facts.version,
                lend_why(lend),
                facts.executable
            ))
        }
        explicit => {
            let (b, name) = match explicit {
                BackendArg::Perf => (Backend::PerfMap, "perf"),
                _ => (Backend::Jitdump, "perf-jit"),
            };
            if !available(b) {
                return Err(format!(
                    "{} (Python {}) can't do --backend {name}{}: perfpy isn't importable there \
                     ({}) and the interpreter has no built-in support for it. Install perfpy \
                     into it: {} -m pip install perfpy",
                    facts.executable,
                    facts.version,
                    if asked.trampoline == TrampolineArg::Cpython {
                        " --trampoline cpython"
                    } else {
                        ""
                    },
                    lend_why(lend),
                    facts.executable
                ));
            }
            reasons.push("backend chosen on the command line".into());
            b
        }
    };
    Ok(Plan {
        backend: chosen,
        call_graph,
        // perfpy's implementation wherever it is installed or can be lent (its stubs keep a
        // frame record, so perfpy report unwinds through them); CPython's own elsewhere.
        trampoline: ours.unwrap_or(Trampoline::Cpython),
        reasons: {
            match (ours, lend) {
                (Some(Trampoline::PerfpyLent), Lend::Yes(pkg)) => reasons.push(format!(
                    "perfpy isn't installed in {}: lent for this run from {} through \
                     PYTHONPATH (nothing is written into the program's environment)",
                    facts.executable,
                    pkg.display()
                )),
                (None, _) if asked.trampoline == TrampolineArg::Cpython => {
                    reasons.push("CPython's own trampoline, as asked (--trampoline cpython)".into())
                }
                _ => {}
            }
            reasons
        },
        warnings: warning.into_iter().collect(),
    })
}

/// Why perfpy can't be lent, for messages.
fn lend_why(lend: &Lend) -> &str {
    match lend {
        Lend::Yes(_) => "perfpy could be lent to it",
        Lend::No(why) => why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Backend::{Jitdump, PerfMap};
    use CallGraph::{Dwarf, FramePointers as Fp};
    use Trampoline::{Cpython, Perfpy, PerfpyLent};

    fn facts(version: &str, perfpy: bool, builtin: bool, jit: bool) -> PythonFacts {
        PythonFacts {
            version: version.into(),
            executable: format!("/usr/bin/python{version}"),
            builtin_perf: builtin,
            perfpy: perfpy.then(|| "0.1.0".into()),
            cpython_jit: jit,
            ..Default::default()
        }
    }

    fn asked(backend: BackendArg, call_graph: CallGraphArg) -> Asked {
        Asked {
            backend,
            call_graph,
            ..Asked::default()
        }
    }

    fn no_lend() -> Lend {
        Lend::No("this command has no builds to lend".into())
    }

    fn fp(present: bool) -> FramePointers {
        FramePointers {
            present,
            evidence: "test".into(),
        }
    }

    #[test]
    fn auto_plans_over_interpreter_facts() {
        /// (version, perfpy, built-in support, frame pointers) -> (backend, call graphs,
        /// whose trampoline, switch)
        type Row = (
            &'static str,
            bool,
            bool,
            bool,
            Backend,
            CallGraph,
            Trampoline,
            (&'static str, &'static str),
        );
        let fixed = perf::Version::parse("perf version 6.8.0");
        let table: &[Row] = &[
            (
                "3.8.18",
                true,
                false,
                false,
                Jitdump,
                Dwarf,
                Perfpy,
                ("PERFPY_BACKEND", "perf_jit"),
            ),
            (
                "3.8.18",
                true,
                false,
                true,
                Jitdump,
                Dwarf,
                Perfpy,
                ("PERFPY_BACKEND", "perf_jit"),
            ),
            (
                "3.11.7",
                true,
                false,
                false,
                Jitdump,
                Dwarf,
                Perfpy,
                ("PERFPY_BACKEND", "perf_jit"),
            ),
            (
                "3.11.7",
                true,
                false,
                true,
                Jitdump,
                Dwarf,
                Perfpy,
                ("PERFPY_BACKEND", "perf_jit"),
            ),
            (
                "3.12.1",
                false,
                true,
                false,
                PerfMap,
                Dwarf,
                Cpython,
                ("PYTHONPERFSUPPORT", "1"),
            ),
            (
                "3.12.1",
                false,
                true,
                true,
                PerfMap,
                Dwarf,
                Cpython,
                ("PYTHONPERFSUPPORT", "1"),
            ),
            (
                "3.12.1",
                true,
                true,
                false,
                Jitdump,
                Dwarf,
                Perfpy,
                ("PERFPY_BACKEND", "perf_jit"),
            ),
            (
                "3.13.0",
                false,
                true,
                false,
                Jitdump,
                Dwarf,
                Cpython,
                ("PYTHON_PERF_JIT_SUPPORT", "1"),
            ),
            (
                "3.13.0",
                false,
                true,
                true,
                Jitdump,
                Dwarf,
                Cpython,
                ("PYTHON_PERF_JIT_SUPPORT", "1"),
            ),
            (
                "3.13.0",
                true,
                true,
                true,
                Jitdump,
                Dwarf,
                Perfpy,
                ("PERFPY_BACKEND", "perf_jit"),
            ),
            (
                "3.14.10",
                false,
                true,
                false,
                Jitdump,
                Dwarf,
                Cpython,
                ("PYTHON_PERF_JIT_SUPPORT", "1"),
            ),
            // A 3.12 built without the trampoline (no PY_HAVE_PERF_TRAMPOLINE) but with perfpy.
            (
                "3.12.1",
                true,
                false,
                false,
                Jitdump,
                Dwarf,
                Perfpy,
                ("PERFPY_BACKEND", "perf_jit"),
            ),
        ];
        for &(v, perfpy, builtin, has_fp, backend, cg, whose, env) in table {
            let f = facts(v, perfpy, builtin, false);
            let p = plan(
                asked(BackendArg::Auto, CallGraphArg::Auto),
                &f,
                &no_lend(),
                &fp(has_fp),
                fixed,
            )
            .unwrap_or_else(|e| panic!("{v} perfpy={perfpy} fp={has_fp}: {e}"));
            let got = (p.backend, p.call_graph, p.trampoline, p.env());
            assert_eq!(
                got,
                (backend, cg, whose, env),
                "{v} perfpy={perfpy} builtin={builtin} fp={has_fp}"
            );
            assert!(p.reasons.len() >= 2 && p.warnings.is_empty(), "{:?}", p);
        }
    }

    /// The plan for backend `b` and call graph `cg` on `f`, with or without frame pointers,
    /// nothing to lend and perf's version unknown.
    fn plan_for(
        b: BackendArg,
        cg: CallGraphArg,
        f: &PythonFacts,
        has_fp: bool,
    ) -> Result<Plan, String> {
        plan(asked(b, cg), f, &no_lend(), &fp(has_fp), None)
    }

    /// Why `plan` refuses, for backend `b` on `f` with or without frame pointers.
    fn refusal(b: BackendArg, f: &PythonFacts, has_fp: bool) -> String {
        plan_for(b, CallGraphArg::Auto, f, has_fp).unwrap_err()
    }

    #[test]
    fn refusals_say_what_to_do() {
        for (v, builtin) in [("3.8.18", false), ("3.11.7", false), ("3.12.1", false)] {
            let e = refusal(BackendArg::Auto, &facts(v, false, builtin, false), false);
            assert!(e.contains("-m pip install perfpy"), "{e}");
        }
        // 3.12's built-in support has no jitdump.
        let e = refusal(
            BackendArg::PerfJit,
            &facts("3.12.1", false, true, false),
            false,
        );
        assert!(e.contains("--backend perf-jit"), "{e}");
        // CPython's JIT, whatever else holds.
        for perfpy in [false, true] {
            let e = refusal(BackendArg::Auto, &facts("3.13.0", perfpy, true, true), true);
            assert!(e.contains("PYTHON_JIT=0"), "{e}");
        }
    }

    #[test]
    fn the_command_line_wins_and_is_warned_about() {
        let f = facts("3.11.7", true, false, false);
        let p = plan_for(BackendArg::Perf, CallGraphArg::Fp, &f, false).unwrap();
        assert_eq!((p.backend, p.call_graph), (PerfMap, Fp));
        assert_eq!(p.warnings.len(), 1, "{p:?}");
        assert!(p.reasons.iter().any(|r| r.contains("command line")));
        let p = plan_for(BackendArg::PerfJit, CallGraphArg::Auto, &f, true).unwrap();
        assert_eq!(
            (p.backend, p.call_graph, p.env()),
            (Jitdump, Dwarf, ("PERFPY_BACKEND", "perf_jit"))
        );
        assert!(p
            .reasons
            .iter()
            .any(|r| r.contains("DWARF call graphs all the same")));
        // Frame pointers on request: the perf map, perf's own -g.
        let p = plan_for(BackendArg::Auto, CallGraphArg::Fp, &f, true).unwrap();
        assert_eq!((p.backend, p.call_graph), (PerfMap, Fp));
        assert!(p.warnings.is_empty(), "{p:?}");
        let p = plan_for(BackendArg::Auto, CallGraphArg::Dwarf, &f, true).unwrap();
        assert_eq!((p.backend, p.call_graph), (Jitdump, Dwarf));
    }

    #[test]
    fn reasons_mention_what_perf_itself_can_do() {
        let f = facts("3.11.7", true, false, false);
        let old = perf::Version::parse("perf version 5.10.0");
        let p = plan(
            asked(BackendArg::Auto, CallGraphArg::Auto),
            &f,
            &no_lend(),
            &fp(false),
            old,
        )
        .unwrap();
        let text = p.reasons.join("\n");
        assert!(text.contains("lacks frame pointers (test)"), "{text}");
        assert!(text.contains("perf 5.10.0's own unwinder"), "{text}");
        assert!(text.contains("perfpy report doesn't need it"), "{text}");
    }

    #[test]
    fn perfpy_is_lent_where_it_is_not_installed_and_cpythons_can_be_chosen() {
        let lend = Lend::Yes("/opt/perfpy".into());
        // 3.8-3.11 without perfpy: recorded with the lent perfpy, not refused.
        for v in ["3.8.18", "3.11.7"] {
            let f = facts(v, false, false, false);
            let p = plan(Asked::default(), &f, &lend, &fp(false), None).unwrap();
            assert_eq!(
                (p.backend, p.trampoline, p.env()),
                (Jitdump, PerfpyLent, ("PERFPY_BACKEND", "perf_jit"))
            );
            assert!(p
                .reasons
                .iter()
                .any(|r| r.contains("lent for this run from /opt/perfpy")));
            let asked_cpython = Asked {
                trampoline: TrampolineArg::Cpython,
                ..Asked::default()
            };
            let e = plan(asked_cpython, &f, &lend, &fp(false), None).unwrap_err();
            assert!(
                e.contains("--trampoline cpython") && e.contains("no built-in"),
                "{e}"
            );
        }
        // 3.12+ without perfpy: perfpy's by default, CPython's when asked.
        let f = facts("3.13.0", false, true, false);
        let p = plan(Asked::default(), &f, &lend, &fp(false), None).unwrap();
        assert_eq!(p.trampoline, PerfpyLent);
        let asked_cpython = Asked {
            trampoline: TrampolineArg::Cpython,
            ..Asked::default()
        };
        let p = plan(asked_cpython, &f, &lend, &fp(false), None).unwrap();
        assert_eq!(
            (p.backend, p.trampoline, p.env()),
            (Jitdump, Cpython, ("PYTHON_PERF_JIT_SUPPORT", "1"))
        );
        // Installed perfpy wins over lending.
        let f = facts("3.13.0", true, true, false);
        let p = plan(Asked::default(), &f, &lend, &fp(false), None).unwrap();
        assert_eq!(p.trampoline, Perfpy);
        // --trampoline perfpy where it can't be had says why.
        let asked_perfpy = Asked {
            trampoline: TrampolineArg::Perfpy,
            ..Asked::default()
        };
        let f = facts("3.13.0", false, true, false);
        let e = plan(asked_perfpy, &f, &no_lend(), &fp(false), None).unwrap_err();
        assert!(
            e.contains("no builds to lend") && e.contains("pipx install perfpy"),
            "{e}"
        );
        // And without anything to lend, the refusal says how to get it.
        let f = facts("3.9.18", false, false, false);
        let e = plan(Asked::default(), &f, &no_lend(), &fp(false), None).unwrap_err();
        assert!(
            e.contains("no builds to lend") && e.contains("lends it perfpy"),
            "{e}"
        );
    }
}
