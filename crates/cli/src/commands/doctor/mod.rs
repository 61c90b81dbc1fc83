//! `perfpy doctor`: can perf profile Python on this machine, with this interpreter, and how?
//!
//! Each check ([`checks`]) prints `pass`, `warn` or `fail`, what it found, and for anything
//! but a pass the fix. A `fail` means profiling can't work (exit status 1); a `warn` means it
//! works with a limitation. The last lines say what `perfpy record` would do here: the same
//! [`crate::plan`] that `record` follows.

pub mod checks;

use crate::cli::DoctorArgs;
use crate::lend;
use crate::perf;
use crate::plan::{self, Plan};
use crate::python::{self, FramePointers, PythonFacts};
use anyhow::Result;
use checks::{Check, Level};
use std::process::ExitCode;

/// What the checks learnt, for the recommendation.
struct Findings {
    checks: Vec<Check>,
    perf_version: Option<perf::Version>,
    python: Option<(PythonFacts, FramePointers)>,
}

/// Runs every check.
fn run_checks(args: &DoctorArgs) -> Findings {
    let mut out = Vec::new();
    let perf = perf::locate();
    let (perf_check, perf_version) = checks::perf_binary(perf.as_deref());
    out.push(perf_check);
    out.extend(perf_version.map(checks::perf_jit));
    out.extend(perf.as_deref().map(checks::compression));
    out.push(checks::paranoid());
    out.extend(checks::kptr());
    out.push(checks::tmp());
    out.extend(checks::namespace());
    let interpreter = args.python.clone().unwrap_or_else(python::default_python);
    let python = match python::probe(&interpreter) {
        Err(e) => {
            out.push(Check {
                level: Level::Fail,
                name: "python",
                found: e,
                fix: Some("pass an interpreter with --python PATH".into()),
            });
            None
        }
        Ok(facts) => {
            let fp = python::frame_pointers(&facts);
            out.push(checks::python(&facts));
            out.push(checks::frame_pointers(&fp, &facts));
            out.push(checks::support(&facts, &lend::lend_to(&facts)));
            out.extend(checks::cpython_jit(&facts));
            Some((facts, fp))
        }
    };
    if !args.no_record {
        if let Some(p) = &perf {
            out.push(checks::recording(p, &interpreter));
        }
    }
    Findings {
        checks: out,
        perf_version,
        python,
    }
}

/// How to get the plan's stacks with perf alone (CPython's switch names, which perfpy
/// honours too). Uncompressed: perf inject --jit can't read perf record -z's recordings.
fn with_perf_alone(plan: &Plan, perf_version: Option<perf::Version>) -> Vec<String> {
    let perf_unwinds_jit = perf_version.and_then(|v| v.dwarf_jit_unwinding()) == Some(true);
    let lines: Vec<String> = match (plan.call_graph, plan.backend) {
        (plan::CallGraph::FramePointers, _) => {
            vec!["PYTHONPERFSUPPORT=1 perf record -g -- python app.py".into()]
        }
        (plan::CallGraph::Dwarf, plan::Backend::Jitdump) if perf_unwinds_jit => vec![
            format!(
                "PYTHON_PERF_JIT_SUPPORT=1 perf record -k 1 --call-graph dwarf,{} -- python \
                 app.py",
                perf::DEFAULT_STACK_COPY
            ),
            "perf inject --jit -i perf.data -o perf.jit.data && perf report -i perf.jit.data"
                .into(),
        ],
        _ => vec![
            "PYTHONPERFSUPPORT=1 perf record --call-graph dwarf -- python app.py".into(),
            "(perf report then names the innermost Python function of each sample)".into(),
        ],
    };
    lines
}

pub fn run(args: &DoctorArgs) -> Result<ExitCode> {
    let found = run_checks(args);
    for c in &found.checks {
        let tag = match c.level {
            Level::Pass => "pass",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        println!("{tag}  {:<15} {}", c.name, c.found);
        if let Some(fix) = &c.fix {
            println!("      {:<15} fix: {fix}", "");
        }
    }
    let worst = found
        .checks
        .iter()
        .map(|c| c.level)
        .max()
        .unwrap_or(Level::Pass);
    println!();
    if worst == Level::Fail {
        println!("profiling can't work here until the FAIL lines are fixed");
        return Ok(ExitCode::from(1));
    }
    let Some((facts, fp)) = &found.python else {
        return Ok(ExitCode::SUCCESS);
    };
    let lend = lend::lend_to(facts);
    match plan::plan(plan::Asked::default(), facts, &lend, fp, found.perf_version) {
        Ok(p) => {
            let picks = match (p.backend, p.call_graph) {
                (plan::Backend::PerfMap, plan::CallGraph::FramePointers) => {
                    "the perf map and frame-pointer call graphs"
                }
                (plan::Backend::Jitdump, _) => "the jitdump and DWARF call graphs",
                (plan::Backend::PerfMap, plan::CallGraph::Dwarf) => {
                    "CPython's own perf map and DWARF call graphs; perfpy report unwinds \
                     through the stubs itself"
                }
            };
            println!("recommended: perfpy record -- python app.py && perfpy report");
            println!("             (here it picks {picks})");
            for (i, line) in with_perf_alone(&p, found.perf_version).iter().enumerate() {
                let lead = if i == 0 { "with perf alone:" } else { "" };
                println!("{lead:<16} {line}");
            }
        }
        Err(why) => println!("perfpy record would refuse this interpreter: {why}"),
    }
    Ok(ExitCode::SUCCESS)
}
