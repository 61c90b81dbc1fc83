//! `perfpy doctor`: can perf profile Python on this machine, with this interpreter, and how?
//!
//! Three sections, each line `pass`, `warn` or `FAIL`, what it found, and where there is one
//! the fix, each true of the command it speaks of:
//!
//! 1. this machine and the interpreter: facts ([`checks`]): the kernel, perf and its
//!    version, `perf_event_paranoid`, `kptr_restrict`, /tmp, PID namespaces, the
//!    interpreter, its frame pointers, its symbols, its own perf support, CPython's JIT;
//! 2. `perfpy record`: the plan it follows (the same [`crate::plan`] `record` calls) and a
//!    real one-second `perfpy record`, read back ([`perfpy_record`]);
//! 3. perf alone: CPython's switches with perf's own unwinder and `perf report`
//!    ([`perf_alone`]), and the commands that work best with it here.
//!
//! A `FAIL` means profiling can't work (exit status 1); a `warn` means it works with a
//! limitation. What is printed is a pure function of [`Findings`] ([`report`]), so that no
//! two lines contradict is tested over every combination.

pub mod checks;
pub mod perf_alone;
pub mod perfpy_record;

use crate::cli::DoctorArgs;
use crate::lend::{self, Lend};
use crate::perf;
use crate::plan;
use crate::python::{self, FramePointers, PythonFacts};
use anyhow::Result;
use checks::{Check, Level};
use perf_alone::Verdict;
use perfpy_record::Recorded;
use std::process::ExitCode;

/// The interpreter, as doctor found it.
#[derive(Debug)]
pub struct Interpreter {
    pub facts: PythonFacts,
    pub fp: FramePointers,
    pub lend: Lend,
}

/// Everything doctor found.
#[derive(Debug)]
pub struct Findings {
    /// The facts about this machine and the interpreter, in order.
    pub machine: Vec<Check>,
    pub perf_version: Option<perf::Version>,
    pub tmp: checks::Tmp,
    /// Whether perf compresses as it records (what `perfpy record` has it do).
    pub compression: Option<Check>,
    /// `None`: it couldn't be run (its FAIL line is among the facts).
    pub interpreter: Option<Interpreter>,
    /// The one-second `perfpy record`; `None` with `--no-record`, or where it can't run.
    pub recorded: Option<Recorded>,
}

/// A section of the output: its title, its lines, and commands after them.
#[derive(Debug, Clone)]
pub struct Section {
    pub title: &'static str,
    pub checks: Vec<Check>,
    /// `(lead, line)`: the lead printed on the first line of each group.
    pub then: Vec<(&'static str, String)>,
}

/// What doctor prints, and whether profiling can work.
#[derive(Debug, Clone)]
pub struct Report {
    pub sections: Vec<Section>,
    pub verdict: Option<&'static str>,
    pub failed: bool,
}

const MACHINE: &str = "this machine and the interpreter:";
const PERFPY_RECORD: &str = "perfpy record (perfpy report reads what it records):";
const PERF_ALONE: &str = "perf alone (perf record, perf report):";

fn has_fail(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.level == Level::Fail)
}

fn leads(lead: &'static str, lines: Vec<String>) -> Vec<(&'static str, String)> {
    lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| (if i == 0 { lead } else { "" }, l))
        .collect()
}

/// The plan `perfpy record` would follow with no options.
fn plan_of(i: &Interpreter, perf_version: Option<perf::Version>) -> Result<plan::Plan, String> {
    plan::plan(
        plan::Asked::default(),
        &i.facts,
        &i.lend,
        &i.fp,
        perf_version,
    )
}

/// What to print for `f`.
pub fn report(f: &Findings) -> Report {
    let mut sections = vec![Section {
        title: MACHINE,
        checks: f.machine.clone(),
        then: vec![],
    }];
    let (Some(i), false) = (&f.interpreter, has_fail(&f.machine)) else {
        return Report {
            sections,
            verdict: Some("profiling can't work here until the FAIL lines are fixed"),
            failed: true,
        };
    };

    // perfpy record.
    let plan = plan_of(i, f.perf_version);
    let mut record = vec![perfpy_record::plan_line(&plan, f.perf_version)];
    if plan.is_ok() {
        record.extend(f.compression.clone());
    }
    record.extend(f.recorded.as_ref().map(perfpy_record::recording_line));
    let verdict = match (&plan, &f.recorded) {
        (Err(_), _) => Verdict::No,
        (Ok(_), None) => Verdict::Untested,
        (Ok(_), Some(r)) if r.works() => Verdict::Works,
        (Ok(_), Some(_)) => Verdict::No,
    };
    let then = if verdict == Verdict::No {
        vec![]
    } else {
        leads(
            "recommended:",
            vec!["perfpy record -- python app.py && perfpy report".into()],
        )
    };
    let record_failed = has_fail(&record);
    sections.push(Section {
        title: PERFPY_RECORD,
        checks: record,
        then,
    });
    // A recording that failed is perf failing to record: perf alone can't either.
    if matches!(f.recorded, Some(Recorded::Failed(_))) {
        return Report {
            sections,
            verdict: Some("profiling can't work here until the FAIL lines are fixed"),
            failed: true,
        };
    }

    // perf alone.
    let alone = perf_alone::perf_alone(&perf_alone::Alone {
        perf: f.perf_version,
        facts: &i.facts,
        frame_pointers: i.fp.present,
        tmp_noexec: f.tmp.noexec,
        perfpy_record: verdict,
    });
    sections.push(Section {
        title: PERF_ALONE,
        checks: alone.checks,
        then: leads("with perf alone:", alone.commands),
    });
    Report {
        sections,
        verdict: record_failed
            .then_some("perfpy record can't work here until the FAIL lines are fixed"),
        failed: record_failed,
    }
}

/// The report as text.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    for s in &r.sections {
        out.push_str(s.title);
        out.push('\n');
        for c in &s.checks {
            let tag = match c.level {
                Level::Pass => "pass",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            out.push_str(&format!("{tag}  {:<15} {}\n", c.name, c.found));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("      {:<15} fix: {fix}\n", ""));
            }
        }
        for (lead, line) in &s.then {
            out.push_str(&format!("{lead:<16} {line}\n"));
        }
        out.push('\n');
    }
    if let Some(v) = r.verdict {
        out.push_str(v);
        out.push('\n');
    }
    out
}

/// Looks at the machine and the interpreter, and records a second of it.
fn find(args: &DoctorArgs) -> Findings {
    let mut machine = vec![checks::kernel()];
    let perf = perf::locate();
    let (perf_check, perf_version) = checks::perf_binary(perf.as_deref());
    machine.push(perf_check);
    machine.push(checks::paranoid());
    machine.extend(checks::kptr());
    let tmp = checks::tmp_state();
    machine.push(checks::tmp(tmp));
    machine.extend(checks::namespace());
    let interpreter = args.python.clone().unwrap_or_else(python::default_python);
    let found = match python::probe(&interpreter) {
        Err(e) => {
            machine.push(Check {
                level: Level::Fail,
                name: "python",
                found: e,
                fix: Some("pass an interpreter with --python PATH".into()),
            });
            None
        }
        Ok(facts) => {
            let fp = python::frame_pointers(&facts);
            machine.push(checks::python(&facts));
            machine.push(checks::frame_pointers(&fp, &facts));
            machine.push(checks::symbols(std::path::Path::new(&facts.binary)));
            machine.push(checks::support(&facts));
            machine.extend(checks::cpython_jit(&facts));
            let lend = lend::lend_to(&facts);
            Some(Interpreter { facts, fp, lend })
        }
    };
    let runs = found
        .as_ref()
        .is_some_and(|i| plan_of(i, perf_version).is_ok());
    let recorded = (!args.no_record && perf.is_some() && runs && !has_fail(&machine))
        .then(|| perfpy_record::record(&interpreter));
    Findings {
        machine,
        perf_version,
        tmp,
        compression: perf.as_deref().map(checks::compression),
        interpreter: found,
        recorded,
    }
}

pub fn run(args: &DoctorArgs) -> Result<ExitCode> {
    let r = report(&find(args));
    print!("{}", render(&r));
    Ok(if r.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(version: &str, perfpy: bool, builtin: bool) -> PythonFacts {
        PythonFacts {
            version: version.into(),
            executable: "/usr/bin/python3".into(),
            binary: "/usr/bin/python3".into(),
            builtin_perf: builtin,
            perfpy: perfpy.then(|| "0.1.0".into()),
            ..Default::default()
        }
    }

    fn findings(
        perf: &str,
        f: PythonFacts,
        fp: bool,
        lend: bool,
        recorded: Option<Recorded>,
    ) -> Findings {
        let fps = FramePointers {
            present: fp,
            evidence: "test".into(),
        };
        let mut machine = vec![
            Check {
                level: Level::Pass,
                name: "perf",
                found: format!("perf {perf}"),
                fix: None,
            },
            checks::frame_pointers(&fps, &f),
            checks::support(&f),
        ];
        machine.extend(checks::cpython_jit(&f));
        Findings {
            machine,
            perf_version: perf::Version::parse(perf),
            tmp: checks::Tmp {
                writable: true,
                noexec: false,
            },
            compression: None,
            interpreter: Some(Interpreter {
                facts: f,
                fp: fps,
                lend: if lend {
                    Lend::Yes("/opt/perfpy".into())
                } else {
                    Lend::No("nothing to lend".into())
                },
            }),
            recorded,
        }
    }

    fn worked() -> Option<Recorded> {
        Some(Recorded::Read {
            inner: 70,
            whole: 69,
        })
    }

    /// Every printed line: (section title, name, level, found, fix), and the commands.
    fn lines(r: &Report) -> Vec<(&'static str, &'static str, Level, String, Option<String>)> {
        r.sections
            .iter()
            .flat_map(|s| {
                s.checks
                    .iter()
                    .map(|c| (s.title, c.name, c.level, c.found.clone(), c.fix.clone()))
            })
            .collect()
    }

    fn line<'a>(
        all: &'a [(&'static str, &'static str, Level, String, Option<String>)],
        name: &str,
    ) -> &'a (&'static str, &'static str, Level, String, Option<String>) {
        all.iter()
            .find(|l| l.1 == name)
            .unwrap_or_else(|| panic!("no {name} line"))
    }

    /// The report that was found on Debian 11 (perf 5.10, a stripped python3.9 without frame
    /// pointers, perfpy installed): perf_jit warned about, then advised, then the jitdump
    /// recommended. Now each line speaks of one command, and none contradicts another.
    #[test]
    fn debian_11_perf_5_10_says_each_command_apart() {
        let f = findings(
            "5.10.0",
            facts("3.9.2", true, false),
            false,
            false,
            worked(),
        );
        let r = report(&f);
        let text = render(&r);
        assert!(!r.failed, "{text}");
        let all = lines(&r);
        // The fact has no advice; the advice is where the command is.
        let fp = line(&all, "frame pointers");
        assert_eq!(
            (fp.0, fp.2, fp.4.is_none()),
            (MACHINE, Level::Warn, true),
            "{text}"
        );
        // perfpy record: the jitdump, which works, as its recording shows, without perf's
        // unwinder.
        let plan = line(&all, "plan");
        assert_eq!((plan.0, plan.2), (PERFPY_RECORD, Level::Pass));
        assert!(
            plan.3.contains("the jitdump and DWARF call graphs"),
            "{}",
            plan.3
        );
        assert!(
            plan.3.contains("perf 5.10.0's own unwinder is not used"),
            "{}",
            plan.3
        );
        let rec = line(&all, "recording");
        assert_eq!((rec.0, rec.2), (PERFPY_RECORD, Level::Pass));
        assert!(
            text.contains("recommended:     perfpy record -- python app.py"),
            "{text}"
        );
        // perf alone: perf_jit can't, -g can't; neither is advised.
        let jit = line(&all, "perf_jit");
        assert_eq!((jit.0, jit.2), (PERF_ALONE, Level::Warn));
        let map = line(&all, "perf map");
        assert_eq!((map.0, map.2), (PERF_ALONE, Level::Warn));
        let fix = map.4.as_deref().unwrap();
        assert!(
            fix.starts_with("use perfpy record -- python app.py"),
            "{fix}"
        );
        assert!(!fix.contains("unwinds whole"), "{fix}");
        let alone = &r.sections[2].then;
        assert!(alone[0]
            .1
            .starts_with("PYTHONPERFSUPPORT=1 perf record --call-graph dwarf"));
        assert!(!text.contains("use the perf_jit backend"), "{text}");
        for (_, l) in alone {
            assert!(!l.contains("PYTHON_PERF_JIT_SUPPORT"), "{text}");
        }
    }

    #[test]
    fn a_perf_that_unwinds_jit_code_is_advised_for_perf_alone() {
        let f = findings(
            "6.1.187",
            facts("3.11.7", true, false),
            false,
            false,
            worked(),
        );
        let r = report(&f);
        let text = render(&r);
        let all = lines(&r);
        assert_eq!(line(&all, "perf_jit").2, Level::Pass, "{text}");
        assert!(
            line(&all, "perf map")
                .4
                .as_deref()
                .unwrap()
                .contains("(next line), whose stacks this perf unwinds whole"),
            "{text}"
        );
        assert!(text.contains("with perf alone: PYTHON_PERF_JIT_SUPPORT=1 perf record -k 1"));
        assert!(!line(&all, "plan").3.contains("own unwinder"), "{text}");
    }

    #[test]
    fn failures_stop_at_their_section() {
        // perf can't record: perf alone can't either.
        let f = findings(
            "6.8.0",
            facts("3.11.7", true, false),
            false,
            false,
            Some(Recorded::Failed("Operation not permitted".into())),
        );
        let r = report(&f);
        let text = render(&r);
        assert!(r.failed && r.sections.len() == 2, "{text}");
        assert!(text.ends_with("profiling can't work here until the FAIL lines are fixed\n"));
        assert!(!text.contains("recommended:"), "{text}");
        // A fact fails: nothing about the commands.
        let mut f = findings("6.8.0", facts("3.11.7", true, false), false, false, None);
        f.machine.push(Check {
            level: Level::Fail,
            name: "paranoid",
            found: "perf_event_paranoid = 3".into(),
            fix: Some("sysctl".into()),
        });
        let r = report(&f);
        assert!(r.failed && r.sections.len() == 1);
        // perfpy record refuses (nothing to lend, nothing installed): perf alone is said.
        let f = findings("6.8.0", facts("3.9.18", false, false), false, false, None);
        let r = report(&f);
        let text = render(&r);
        assert!(r.failed && r.sections.len() == 3, "{text}");
        assert!(
            text.contains("FAIL  plan            perfpy record would refuse"),
            "{text}"
        );
        assert!(text.contains("with perf alone: nothing"), "{text}");
        assert!(!text.contains("recommended:"), "{text}");
        // Lent, the same interpreter is recorded by perfpy record.
        let f = findings(
            "6.8.0",
            facts("3.9.18", false, false),
            false,
            true,
            worked(),
        );
        let r = report(&f);
        let text = render(&r);
        assert!(!r.failed, "{text}");
        assert!(
            text.contains("which it lends the interpreter for each run"),
            "{text}"
        );
    }

    /// Over perf versions, interpreters, frame pointers, lending and recordings: the whole
    /// output never has two lines that disagree.
    #[test]
    fn no_two_lines_contradict() {
        let versions = [
            "5.10.0", "6.1.50", "6.1.187", "6.7-3", "6.7.1", "6.8.0", "7.2.13",
        ];
        let interpreters = || {
            let mut jit_on = facts("3.14.0", false, true);
            jit_on.cpython_jit = true;
            jit_on.cpython_jit_available = true;
            jit_on.cpython_jit_how = "sys._jit.is_enabled()".into();
            vec![
                facts("3.9.2", true, false),
                facts("3.9.18", false, false),
                facts("3.12.1", false, true),
                facts("3.12.1", true, true),
                facts("3.13.0", false, true),
                jit_on,
            ]
        };
        let recordings = [
            None,
            worked(),
            Some(Recorded::Read {
                inner: 70,
                whole: 3,
            }),
            Some(Recorded::Failed("no".into())),
        ];
        let mut seen = 0;
        for perf in versions {
            for k in 0..interpreters().len() {
                for fp in [false, true] {
                    for lend in [false, true] {
                        for rec in &recordings {
                            let f = interpreters().swap_remove(k);
                            let found = findings(perf, f, fp, lend, rec.clone());
                            consistent(&found, &report(&found));
                            seen += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(seen, 7 * 6 * 2 * 2 * 4);
    }

    fn consistent(f: &Findings, r: &Report) {
        let text = render(r);
        let all = lines(r);
        let i = f.interpreter.as_ref().unwrap();
        let unwinds = f.perf_version.and_then(perf::Version::dwarf_jit_unwinding) == Some(true);
        // Exit 1 exactly when a FAIL line is printed, and then a verdict says so.
        let fails = all.iter().any(|l| l.2 == Level::Fail);
        assert_eq!(r.failed, fails, "{text}");
        assert_eq!(r.verdict.is_some(), fails, "{text}");
        // Facts carry no advice about a command.
        for l in all.iter().filter(|l| l.0 == MACHINE) {
            if let Some(fix) = &l.4 {
                assert!(
                    !fix.contains("perf record") && !fix.contains("perf_jit"),
                    "{text}"
                );
            }
        }
        // perf_jit is advised, anywhere, only to a perf that can use it.
        let advice: Vec<&str> = all
            .iter()
            .filter_map(|l| l.4.as_deref())
            .chain(
                r.sections
                    .iter()
                    .flat_map(|s| s.then.iter().map(|t| t.1.as_str())),
            )
            .collect();
        if !unwinds {
            // As tests/test_distro_vms.py reads the output of a perf that can't.
            for l in text.lines() {
                assert!(
                    !l.contains("use perf_jit") && !l.contains("PYTHON_PERF_JIT_SUPPORT=1 perf"),
                    "{l}\n{text}"
                );
            }
            for a in &advice {
                assert!(
                    !a.contains("PYTHON_PERF_JIT_SUPPORT=1 perf record")
                        && !a.contains("unwinds whole"),
                    "{a}\n{text}"
                );
            }
        }
        // perfpy record is recommended (as a command, or in a fix) only if its own section
        // says it works or has nothing against it.
        let plan = plan_of(i, f.perf_version);
        let record_ok = plan.is_ok() && f.recorded.as_ref().is_none_or(Recorded::works);
        assert_eq!(text.contains("recommended:"), record_ok, "{text}");
        if !record_ok {
            assert!(
                !advice.iter().any(|a| a.contains("perfpy record")),
                "{text}"
            );
        }
        // The plan never leans on perf's unwinder for the jitdump, and says so where perf's
        // can't.
        if let Ok(p) = &plan {
            let line = all.iter().find(|l| l.1 == "plan").unwrap();
            if p.backend == plan::Backend::Jitdump {
                assert_eq!(
                    line.3.contains("own unwinder is not used"),
                    !unwinds,
                    "{text}"
                );
            }
        }
        // perf alone: a way passes only if the facts allow it.
        if let Some(jit) = all.iter().find(|l| l.1 == "perf_jit") {
            if jit.2 == Level::Pass {
                assert!(unwinds && checks::Switches::of(&i.facts).jitdump, "{text}");
            }
        }
        if let Some(map) = all.iter().find(|l| l.1 == "perf map") {
            assert_eq!(
                map.2 == Level::Pass,
                i.fp.present && checks::Switches::of(&i.facts).perf_map,
                "{text}"
            );
        }
        // Each name once.
        let mut names: Vec<&str> = all.iter().map(|l| l.1).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "{text}");
    }
}
