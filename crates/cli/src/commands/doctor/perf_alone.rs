//! What holds for perf alone here, without `perfpy record`: CPython's switches (which perfpy
//! installed in an interpreter honours too) and perf's own unwinder and `perf report`.
//!
//! * `PYTHONPERFSUPPORT=1 perf record -g`: a perf map, and perf's frame-pointer walk, which
//!   needs frame pointers in the interpreter;
//! * `PYTHON_PERF_JIT_SUPPORT=1 perf record -k 1 --call-graph dwarf`, `perf inject --jit`: a
//!   jitdump, and perf's DWARF unwinder, which needs a perf that steps through JIT code
//!   ([`perf::Version::dwarf_jit_unwinding`], the one place perfpy judges that).
//!
//! A pure function of what doctor found, so that the advice (never a way this perf or this
//! interpreter can't take) is table-tested.

use super::checks::{Check, Level, Switches};
use crate::perf;
use crate::python::PythonFacts;

/// Whether `perfpy record` works here, as doctor found: the advice for perf alone offers it
/// only when nothing said otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its one-second recording had whole stacks.
    Works,
    /// Not recorded (`--no-record`); the plan holds.
    Untested,
    /// It would refuse, or its recording failed or had stacks cut.
    No,
}

/// What perf alone depends on.
#[derive(Debug, Clone)]
pub struct Alone<'a> {
    pub perf: Option<perf::Version>,
    pub facts: &'a PythonFacts,
    pub frame_pointers: bool,
    pub tmp_noexec: bool,
    pub perfpy_record: Verdict,
}

/// The section: a line for each way, and the commands to use (`with perf alone:`).
#[derive(Debug, Clone)]
pub struct PerfAlone {
    pub checks: Vec<Check>,
    pub commands: Vec<String>,
}

/// The ways, as commands. `PYTHON_JIT=0` first where CPython's JIT is on (its code has no
/// names).
struct Ways {
    prefix: &'static str,
}

impl Ways {
    fn jit(&self) -> Vec<String> {
        vec![
            format!(
                "{}PYTHON_PERF_JIT_SUPPORT=1 perf record -k 1 --call-graph dwarf,{} -- python \
                 app.py",
                self.prefix,
                perf::DEFAULT_STACK_COPY
            ),
            // Uncompressed (no -z): perf inject --jit can't read compressed recordings.
            "perf inject --jit -i perf.data -o perf.jit.data && perf report -i perf.jit.data"
                .into(),
        ]
    }

    fn map_fp(&self) -> Vec<String> {
        vec![
            format!(
                "{}PYTHONPERFSUPPORT=1 perf record -g -- python app.py",
                self.prefix
            ),
            "perf report".into(),
        ]
    }

    fn names_only(&self) -> Vec<String> {
        vec![
            format!(
                "{}PYTHONPERFSUPPORT=1 perf record --call-graph dwarf -- python app.py",
                self.prefix
            ),
            "(perf report then names the innermost Python function of each sample: no whole \
             Python stacks with perf alone here)"
                .into(),
        ]
    }
}

const RECORD_INSTEAD: &str = "perfpy record -- python app.py, which unwinds the stacks itself \
                              (above)";

fn newer_perf() -> String {
    format!(
        "a perf that unwinds JIT code with DWARF (from {})",
        perf::DWARF_JIT_UNWINDING_FROM
    )
}

/// What perf alone can do here, and how.
pub fn perf_alone(a: &Alone<'_>) -> PerfAlone {
    let f = a.facts;
    let switches = Switches::of(f);
    let ways = Ways {
        prefix: if f.cpython_jit { "PYTHON_JIT=0 " } else { "" },
    };
    let unwinds_jit = a.perf.and_then(perf::Version::dwarf_jit_unwinding);
    let jit_usable = switches.jitdump && !a.tmp_noexec;
    let jit_whole = jit_usable && unwinds_jit == Some(true);
    let map_whole = switches.perf_map && a.frame_pointers;
    let record_instead = a.perfpy_record != Verdict::No;
    let perf_named = match a.perf {
        Some(v) => format!("perf {v}"),
        None => "this perf (its version unknown)".into(),
    };
    let install = format!("{} -m pip install perfpy", f.executable);
    // Each way as its line names it (the commands in full are the section's last lines).
    let map_way = format!("{}PYTHONPERFSUPPORT=1, perf record -g", ways.prefix);
    let jit_cmd = format!(
        "{}PYTHON_PERF_JIT_SUPPORT=1, perf record -k 1 --call-graph dwarf, perf inject --jit",
        ways.prefix
    );

    let map_line = if !switches.perf_map {
        Check {
            level: Level::Warn,
            name: "perf map",
            found: format!(
                "PYTHONPERFSUPPORT=1 does nothing in this interpreter: perfpy is not installed \
                 there, and CPython {} has no built-in perf map (3.12+)",
                f.version
            ),
            fix: Some(install.clone()),
        }
    } else if a.frame_pointers {
        Check {
            level: Level::Pass,
            name: "perf map",
            found: format!(
                "{map_way}: whole Python stacks, through the interpreter's frame pointers (time \
                 inside code built without them, as most C extensions are, loses its stack)"
            ),
            fix: None,
        }
    } else {
        let mut fixes = Vec::new();
        if jit_whole {
            fixes.push(
                "PYTHON_PERF_JIT_SUPPORT=1 (next line), whose stacks this perf unwinds whole"
                    .to_string(),
            );
        } else {
            if record_instead {
                fixes.push(RECORD_INSTEAD.to_string());
            }
            if jit_usable {
                fixes.push(format!(
                    "{} for PYTHON_PERF_JIT_SUPPORT=1 (next line)",
                    newer_perf()
                ));
            } else if !switches.jitdump && !a.tmp_noexec && unwinds_jit == Some(true) {
                fixes.push(format!(
                    "{install} for PYTHON_PERF_JIT_SUPPORT=1 (next line)"
                ));
            }
            fixes.push("an interpreter built with -fno-omit-frame-pointer".into());
        }
        Check {
            level: Level::Warn,
            name: "perf map",
            found: format!(
                "{map_way}: stacks stop at the first interpreter function, which sets up no \
                 frame pointer"
            ),
            fix: Some(format!("use {}", fixes.join("; or "))),
        }
    };

    let jit_line = if !switches.jitdump {
        Check {
            level: Level::Warn,
            name: "perf_jit",
            found: format!(
                "PYTHON_PERF_JIT_SUPPORT=1 does nothing in this interpreter: perfpy is not \
                 installed there, and CPython {} has no built-in jitdump (3.13+)",
                f.version
            ),
            fix: Some(install.clone()),
        }
    } else if a.tmp_noexec {
        Check {
            level: Level::Warn,
            name: "perf_jit",
            found: format!(
                "{jit_cmd}: perf never sees the jitdump, which can't be mapped executable in a \
                 noexec /tmp"
            ),
            fix: Some("remount /tmp without noexec".into()),
        }
    } else if unwinds_jit == Some(true) {
        Check {
            level: Level::Pass,
            name: "perf_jit",
            found: format!(
                "{jit_cmd}: whole Python stacks: {perf_named} unwinds through the JIT code \
                 with DWARF"
            ),
            fix: None,
        }
    } else {
        let mut fixes = vec![newer_perf()];
        if record_instead {
            fixes.push(RECORD_INSTEAD.to_string());
        }
        if map_whole {
            fixes.push("PYTHONPERFSUPPORT=1 perf record -g (previous line)".into());
        }
        let found = match unwinds_jit {
            Some(false) => format!(
                "{jit_cmd}: stacks stop at the innermost Python function: {perf_named} can't \
                 unwind through JIT code with DWARF (fixed in {})",
                perf::DWARF_JIT_UNWINDING_FROM
            ),
            _ => format!(
                "{jit_cmd}: stacks may stop at the innermost Python function: whether \
                 {perf_named} unwinds through JIT code with DWARF can't be told from its \
                 version (fixed in {})",
                perf::DWARF_JIT_UNWINDING_FROM
            ),
        };
        Check {
            level: Level::Warn,
            name: "perf_jit",
            found,
            fix: Some(format!("use {}", fixes.join("; or "))),
        }
    };

    let commands = if jit_whole {
        ways.jit()
    } else if map_whole {
        ways.map_fp()
    } else if switches.perf_map {
        ways.names_only()
    } else {
        vec![format!(
            "nothing: this interpreter honours neither switch ({install})"
        )]
    };
    PerfAlone {
        checks: vec![map_line, jit_line],
        commands,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn facts(version: &str, perfpy: bool, builtin: bool) -> PythonFacts {
        PythonFacts {
            version: version.into(),
            executable: "/usr/bin/python3".into(),
            builtin_perf: builtin,
            perfpy: perfpy.then(|| "0.1.0".into()),
            ..Default::default()
        }
    }

    fn alone(perf: &str, f: &PythonFacts, fp: bool, record: Verdict) -> PerfAlone {
        perf_alone(&Alone {
            perf: perf::Version::parse(perf),
            facts: f,
            frame_pointers: fp,
            tmp_noexec: false,
            perfpy_record: record,
        })
    }

    fn text(p: &PerfAlone) -> String {
        let mut out = Vec::new();
        for c in &p.checks {
            out.push(c.found.clone());
            out.extend(c.fix.clone());
        }
        out.extend(p.commands.clone());
        out.join("\n")
    }

    /// Debian 11: perf 5.10, a stripped python3.9 without frame pointers, perfpy installed.
    #[test]
    fn perf_5_10_without_frame_pointers_is_never_told_to_use_perf_jit() {
        let f = facts("3.9.2", true, false);
        for record in [Verdict::Works, Verdict::Untested, Verdict::No] {
            let p = alone("perf version 5.10.0", &f, false, record);
            let [map, jit] = &p.checks[..] else { panic!() };
            assert_eq!((map.level, jit.level), (Level::Warn, Level::Warn));
            assert!(
                jit.found
                    .contains("perf 5.10.0 can't unwind through JIT code"),
                "{}",
                jit.found
            );
            // The frame-pointer fix: no perf_jit with this perf; what works instead.
            let fix = map.fix.as_deref().unwrap();
            assert!(!fix.contains("unwinds whole"), "{fix}");
            assert!(
                fix.contains("a perf that unwinds JIT code with DWARF (from 6.8, 6.7.2, 6.1.187)"),
                "{fix}"
            );
            assert!(fix.contains("-fno-omit-frame-pointer"), "{fix}");
            assert_eq!(
                fix.contains("perfpy record"),
                record != Verdict::No,
                "{fix}"
            );
            // The commands: no perf_jit, and no claim of whole stacks.
            assert!(
                p.commands[0].starts_with("PYTHONPERFSUPPORT=1 perf record --call-graph dwarf"),
                "{:?}",
                p.commands
            );
            assert!(!p.commands.join("\n").contains("PYTHON_PERF_JIT_SUPPORT"));
            assert!(p.commands[1].contains("no whole Python stacks"));
        }
    }

    #[test]
    fn the_advice_follows_perf_frame_pointers_and_support() {
        /// (perf, CPython, perfpy, built-in, frame pointers) -> the commands' first line,
        /// the perf map line's level, the perf_jit line's level.
        type Row = (
            &'static str,
            &'static str,
            bool,
            bool,
            bool,
            &'static str,
            Level,
            Level,
        );
        #[rustfmt::skip]
        let rows: &[Row] = &[
            ("6.1.187", "3.11.7", true, false, false, "PYTHON_PERF_JIT", Level::Warn, Level::Pass),
            ("6.8.0", "3.11.7", true, false, true, "PYTHON_PERF_JIT", Level::Pass, Level::Pass),
            ("5.10.0", "3.11.7", true, false, true, "PYTHONPERFSUPPORT=1 perf record -g", Level::Pass, Level::Warn),
            ("6.7.1", "3.11.7", true, false, false, "PYTHONPERFSUPPORT=1 perf record --call-graph dwarf", Level::Warn, Level::Warn),
            // Can't tell from the version: not recommended.
            ("6.1.50", "3.11.7", true, false, false, "PYTHONPERFSUPPORT=1 perf record --call-graph dwarf", Level::Warn, Level::Warn),
            ("6.5.0", "3.12.1", true, true, true, "PYTHONPERFSUPPORT=1 perf record -g", Level::Pass, Level::Warn),
            // CPython 3.12's own: a perf map, no jitdump (perfpy installed would make one).
            ("6.8.0", "3.12.1", false, true, false, "PYTHONPERFSUPPORT=1 perf record --call-graph dwarf", Level::Warn, Level::Warn),
            ("6.8.0", "3.12.1", false, true, true, "PYTHONPERFSUPPORT=1 perf record -g", Level::Pass, Level::Warn),
            // CPython 3.13's own: both.
            ("6.8.0", "3.13.0", false, true, false, "PYTHON_PERF_JIT", Level::Warn, Level::Pass),
            // Nothing installed, nothing built in: perf alone names nothing.
            ("6.8.0", "3.9.18", false, false, true, "nothing", Level::Warn, Level::Warn),
        ];
        for &(perf, v, perfpy, builtin, fp, first, map, jit) in rows {
            let f = facts(v, perfpy, builtin);
            let p = alone(perf, &f, fp, Verdict::Works);
            let row = format!("perf {perf}, {v} perfpy={perfpy} builtin={builtin} fp={fp}");
            assert!(p.commands[0].starts_with(first), "{row}: {:?}", p.commands);
            assert_eq!((p.checks[0].level, p.checks[1].level), (map, jit), "{row}");
        }
    }

    #[test]
    fn no_line_contradicts_another() {
        let versions = [
            "5.10.0", "6.1.50", "6.1.187", "6.7-3", "6.7.1", "6.7.2", "6.8.0", "7.2.13",
        ];
        let interpreters = [
            facts("3.9.18", true, false),
            facts("3.9.18", false, false),
            facts("3.12.1", false, true),
            facts("3.12.1", true, true),
            facts("3.13.0", false, true),
        ];
        for perf in versions {
            for f in &interpreters {
                for fp in [false, true] {
                    for noexec in [false, true] {
                        for record in [Verdict::Works, Verdict::Untested, Verdict::No] {
                            let a = Alone {
                                perf: perf::Version::parse(perf),
                                facts: f,
                                frame_pointers: fp,
                                tmp_noexec: noexec,
                                perfpy_record: record,
                            };
                            check_consistent(&a, &perf_alone(&a));
                        }
                    }
                }
            }
        }
    }

    /// What no output may say, whatever holds.
    pub(crate) fn check_consistent(a: &Alone<'_>, p: &PerfAlone) {
        let all = text(p);
        let ctx = format!("{a:?}\n{all}");
        let unwinds = a.perf.and_then(perf::Version::dwarf_jit_unwinding) == Some(true);
        let sw = Switches::of(a.facts);
        let [map, jit] = &p.checks[..] else { panic!() };
        // perf_jit is recommended, and passes, only where this perf unwinds its code, the
        // interpreter makes a jitdump and /tmp lets it be mapped.
        let jit_ok = unwinds && sw.jitdump && !a.tmp_noexec;
        assert_eq!(jit.level == Level::Pass, jit_ok, "{ctx}");
        assert_eq!(
            p.commands.join("\n").contains("PYTHON_PERF_JIT_SUPPORT"),
            jit_ok,
            "{ctx}"
        );
        assert_eq!(
            all.contains("(next line), whose stacks this perf unwinds whole"),
            jit_ok && !a.frame_pointers,
            "{ctx}"
        );
        // -g passes only with frame pointers (and a perf map).
        assert_eq!(
            map.level == Level::Pass,
            a.frame_pointers && sw.perf_map,
            "{ctx}"
        );
        assert_eq!(
            p.commands[0].contains("perf record -g"),
            a.frame_pointers && sw.perf_map && !jit_ok,
            "{ctx}"
        );
        // perfpy record is offered only where it wasn't found wanting.
        if a.perfpy_record == Verdict::No {
            assert!(!all.contains("perfpy record"), "{ctx}");
        }
        // A way that passes is never the fix's "newer perf", nor said to stop.
        if jit_ok {
            assert!(!all.contains("a perf that unwinds JIT code"), "{ctx}");
        }
        // Whole stacks are claimed only by a passing line.
        for c in &p.checks {
            assert_eq!(
                c.found.contains("whole Python stacks"),
                c.level == Level::Pass,
                "{ctx}"
            );
            assert_eq!(c.fix.is_some(), c.level != Level::Pass, "{ctx}");
        }
        if !(jit_ok || (a.frame_pointers && sw.perf_map)) {
            assert!(
                p.commands
                    .iter()
                    .any(|c| c.contains("no whole Python stacks"))
                    || p.commands[0].starts_with("nothing"),
                "{ctx}"
            );
        }
    }

    #[test]
    fn a_missing_jitdump_is_installed_where_perf_could_use_it() {
        let f = facts("3.12.1", false, true);
        let fix = |perf| {
            alone(perf, &f, false, Verdict::No).checks[0]
                .fix
                .clone()
                .unwrap()
        };
        assert!(
            fix("6.8.0").contains("/usr/bin/python3 -m pip install perfpy for PYTHON_PERF_JIT"),
            "{}",
            fix("6.8.0")
        );
        // Not where this perf couldn't unwind its code anyway.
        assert!(!fix("5.10.0").contains("pip install"), "{}", fix("5.10.0"));
    }

    #[test]
    fn cpython_jit_on_puts_python_jit_0_first() {
        let mut f = facts("3.14.0", false, true);
        f.cpython_jit = true;
        let p = alone("6.8.0", &f, false, Verdict::No);
        assert!(
            p.commands[0].starts_with("PYTHON_JIT=0 PYTHON_PERF_JIT_SUPPORT=1"),
            "{:?}",
            p.commands
        );
        assert!(p.checks[1].found.starts_with("PYTHON_JIT=0 "));
    }
}
