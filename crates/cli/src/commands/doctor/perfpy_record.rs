//! What holds for `perfpy record` here: the plan it follows ([`crate::plan`], the same
//! function `record` calls), and a real one-second `perfpy record` of the interpreter, read
//! back as `perfpy report` reads it.
//!
//! perfpy report unwinds every stack itself (the binaries' CFI, each jitdump stub's unwind
//! information), so what perf's own unwinder can do matters to perf alone, never here.

use super::checks::{Check, Level};
use crate::perf;
use crate::plan::{Backend, CallGraph, Plan, Trampoline};
use crate::recording;
use crate::report::{Kind, Profile};
use std::path::Path;
use std::process::{Command, Stdio};

/// The program doctor records: a second in `doctor_inner`, called from `doctor_outer`.
pub const PROGRAM: &str = "import time\n\
def doctor_outer():\n    doctor_inner()\n\
def doctor_inner():\n    t = time.time()\n    while time.time() - t < 1: pass\n\
doctor_outer()\n";

/// The Python stack every sample of [`PROGRAM`]'s loop has, root first.
const STACK: [&str; 3] = ["py::<module>", "py::doctor_outer", "py::doctor_inner"];

/// What the one-second `perfpy record` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// It recorded, and the recording was read: `inner` samples in `doctor_inner`, `whole`
    /// of them with [`STACK`] whole.
    Read { inner: u64, whole: u64 },
    /// It wrote no recording, or one that can't be read: why.
    Failed(String),
}

impl Recorded {
    /// Whether the recording had the program's stacks whole: `perfpy record` works here.
    pub fn works(&self) -> bool {
        match *self {
            // The thresholds the test suite holds perfpy record to (80% whole).
            Recorded::Read { inner, whole } => inner >= 10 && whole * 5 >= inner * 4,
            Recorded::Failed(_) => false,
        }
    }
}

/// The plan's line: what `record` will use here, or why it would refuse.
pub fn plan_line(plan: &Result<Plan, String>, perf_version: Option<perf::Version>) -> Check {
    let p = match plan {
        Err(why) => {
            return Check {
                level: Level::Fail,
                name: "plan",
                found: format!("perfpy record would refuse this interpreter: {why}"),
                fix: None,
            }
        }
        Ok(p) => p,
    };
    let what = match (p.backend, p.call_graph) {
        (Backend::Jitdump, CallGraph::Dwarf) => "the jitdump and DWARF call graphs",
        (Backend::Jitdump, CallGraph::FramePointers) => "the jitdump and frame-pointer call graphs",
        (Backend::PerfMap, CallGraph::Dwarf) => "the perf map and DWARF call graphs",
        (Backend::PerfMap, CallGraph::FramePointers) => {
            "the perf map and frame-pointer call graphs"
        }
    };
    let whose = match p.trampoline {
        Trampoline::Perfpy => "perfpy's trampoline, installed there".to_string(),
        Trampoline::PerfpyLent => "perfpy's trampoline, which it lends the interpreter for each \
                                   run"
        .to_string(),
        Trampoline::Cpython => "CPython's own trampoline".to_string(),
    };
    let (k, v) = p.env();
    let how = match (p.call_graph, p.backend) {
        (CallGraph::FramePointers, _) => {
            " (perf's frame-pointer walk; time inside code built without frame pointers loses \
             its stack)"
                .to_string()
        }
        (CallGraph::Dwarf, Backend::Jitdump) => format!(
            "; perfpy report unwinds through each stub itself, with the unwind info the \
             jitdump carries{}",
            match perf_version {
                Some(v) if v.dwarf_jit_unwinding() != Some(true) => {
                    format!(": perf {v}'s own unwinder is not used")
                }
                _ => String::new(),
            }
        ),
        (CallGraph::Dwarf, Backend::PerfMap) => {
            "; perfpy report unwinds through the stubs itself, with CFI derived from the \
             interpreter's trampoline"
                .to_string()
        }
    };
    Check {
        level: Level::Pass,
        name: "plan",
        found: format!("perfpy record picks {what}, with {whose} ({k}={v}){how}"),
        fix: None,
    }
}

/// Runs `perfpy record` (this very command) on [`PROGRAM`] with `python`, as a user would,
/// reads the recording, and removes it and its side directory.
pub fn record(python: &Path) -> Recorded {
    let out = std::env::temp_dir().join(format!("perfpy-doctor-{}.data", std::process::id()));
    let side = recording::side_dir(&out);
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return Recorded::Failed(format!("can't find this command to run: {e}")),
    };
    let run = Command::new(&exe)
        .args(["record", "-F", "99", "--python"])
        .arg(python)
        .arg("-o")
        .arg(&out)
        .arg("--")
        .arg(python)
        .args(["-c", PROGRAM])
        .stdin(Stdio::null())
        .output();
    let result = match run {
        Err(e) => Recorded::Failed(format!("cannot run {} record: {e}", exe.display())),
        Ok(o) if !o.status.success() => {
            Recorded::Failed(last_message(&String::from_utf8_lossy(&o.stderr)))
        }
        Ok(_) => match recording::load(&out, &[], None, false, &Default::default()) {
            Ok(profile) => count(&profile),
            Err(e) => Recorded::Failed(format!("its recording can't be read: {e:#}")),
        },
    };
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_dir_all(&side);
    result
}

/// The line of a failed `perfpy record`'s stderr that says why: perf's last message, else
/// perfpy's.
fn last_message(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .rev()
        .find(|l| !l.starts_with("perfpy:") && !l.starts_with("[ perf record"))
        .or(lines.last())
        .map(|l| l.to_string())
        .unwrap_or_else(|| "no output".into())
}

/// [`PROGRAM`]'s samples in `doctor_inner`, and those with its whole stack.
fn count(profile: &Profile) -> Recorded {
    let (mut inner, mut whole) = (0, 0);
    for s in &profile.samples {
        let python: Vec<&str> = profile.stacks[s.stack as usize]
            .iter()
            .map(|&f| &profile.frames[f as usize])
            .filter(|f| f.kind == Kind::Python)
            .map(|f| f.python_parts().0)
            .collect();
        if python.last() == Some(&STACK[2]) {
            inner += 1;
            whole += (python == STACK) as u64;
        }
    }
    Recorded::Read { inner, whole }
}

/// The recording's line. Its found text begins the same whatever the outcome, for readers
/// of doctor's output (`tests/test_aarch64_vm.py`).
pub fn recording_line(r: &Recorded) -> Check {
    let stack = STACK
        .iter()
        .map(|f| f.trim_start_matches("py::"))
        .collect::<Vec<_>>()
        .join(" → ");
    match r {
        Recorded::Failed(why) => Check {
            level: Level::Fail,
            name: "recording",
            found: format!(
                "perf record of a one-second Python run failed, as perfpy record ran it: {why}"
            ),
            fix: Some(
                "see the perf and paranoid lines above; in a container, perf_event_open may be \
                 blocked by seccomp"
                    .into(),
            ),
        },
        Recorded::Read { inner, whole } if r.works() => Check {
            level: Level::Pass,
            name: "recording",
            found: format!(
                "perf record of a one-second Python run worked, as perfpy record runs it: \
                 {whole} of its {inner} samples in doctor_inner have {stack} whole"
            ),
            fix: None,
        },
        Recorded::Read { inner: 0, .. } => Check {
            level: Level::Warn,
            name: "recording",
            found: "perf record of a one-second Python run recorded, as perfpy record runs \
                    it, but no sample has a named doctor_inner"
                .into(),
            fix: Some(
                "perfpy record -- python app.py says why names are missing (its warnings)".into(),
            ),
        },
        Recorded::Read { inner, whole } => Check {
            level: Level::Warn,
            name: "recording",
            found: format!(
                "perf record of a one-second Python run recorded, as perfpy record runs it, \
                 but only {whole} of its {inner} samples in doctor_inner have {stack} whole"
            ),
            fix: Some(
                "perfpy report on a recording of yours says why stacks are cut (its warnings)"
                    .into(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_work_only_with_whole_stacks() {
        let read = |inner, whole| Recorded::Read { inner, whole };
        assert!(read(70, 70).works() && read(70, 56).works());
        assert!(!read(70, 55).works() && !read(0, 0).works() && !read(9, 9).works());
        assert!(!Recorded::Failed("x".into()).works());
        let pass = recording_line(&read(70, 69));
        assert_eq!(pass.level, Level::Pass);
        assert!(
            pass.found.contains("69 of its 70 samples"),
            "{}",
            pass.found
        );
        assert!(pass
            .found
            .contains("<module> → doctor_outer → doctor_inner"));
        assert_eq!(recording_line(&read(70, 10)).level, Level::Warn);
        assert_eq!(recording_line(&read(0, 0)).level, Level::Warn);
        let failed = recording_line(&Recorded::Failed("Operation not permitted".into()));
        assert_eq!(failed.level, Level::Fail);
        // The same beginning for every outcome.
        for r in [
            read(70, 69),
            read(70, 1),
            read(0, 0),
            Recorded::Failed("x".into()),
        ] {
            assert!(recording_line(&r)
                .found
                .starts_with("perf record of a one-second Python run "));
        }
    }

    #[test]
    fn the_failure_said_is_perfs() {
        let stderr = "perfpy: recording python -c …, jitdump, DWARF call graphs\n\
                      perfpy:   because: …\n\
                      Error: perf_event_open failed: Operation not permitted\n\
                      perfpy: perf record wrote no recording (exit status 1); its messages \
                      are above\n";
        assert_eq!(
            last_message(stderr),
            "Error: perf_event_open failed: Operation not permitted"
        );
        assert_eq!(last_message("perfpy: only mine\n"), "perfpy: only mine");
        assert_eq!(last_message(""), "no output");
    }
}
