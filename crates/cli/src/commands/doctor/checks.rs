//! The checks of `perfpy doctor`, one function each: what it found and, for anything but a
//! pass, the fix.

use crate::lend::Lend;
use crate::perf;
use crate::python::{FramePointers, PythonFacts};
use std::path::Path;
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Pass,
    Warn,
    Fail,
}

pub struct Check {
    pub level: Level,
    pub name: &'static str,
    pub found: String,
    pub fix: Option<String>,
}

fn check(level: Level, name: &'static str, found: impl Into<String>, fix: Option<String>) -> Check {
    Check {
        level,
        name,
        found: found.into(),
        fix,
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// perf on PATH, and its version.
pub fn perf_binary(perf: Option<&Path>) -> (Check, Option<perf::Version>) {
    let Some(p) = perf else {
        return (
            check(
                Level::Fail,
                "perf",
                "perf is not on PATH",
                Some("install it: apt-get install linux-perf (Debian), linux-tools-$(uname -r) (Ubuntu), perf (Fedora)".into()),
            ),
            None,
        );
    };
    match perf::version_text(p) {
        Err(e) => (
            check(
                Level::Fail,
                "perf",
                format!("{} does not run: {e}", p.display()),
                Some("reinstall perf".into()),
            ),
            None,
        ),
        Ok(text) => match perf::Version::parse(&text) {
            Some(v) => (
                check(
                    Level::Pass,
                    "perf",
                    format!("perf {v} at {}", p.display()),
                    None,
                ),
                Some(v),
            ),
            None => (
                check(
                    Level::Warn,
                    "perf",
                    format!("{} prints no version ({text:?})", p.display()),
                    Some("the version checks below are skipped; perf may still work".into()),
                ),
                None,
            ),
        },
    }
}

/// Whether perf's own DWARF unwinder steps through `perf inject --jit` code.
pub fn perf_jit(v: perf::Version) -> Check {
    match v.dwarf_jit_unwinding() {
        Some(true) => check(Level::Pass, "perf_jit", format!("perf {v} unwinds through perf inject --jit code with DWARF"), None),
        Some(false) => check(
            Level::Warn,
            "perf_jit",
            format!("perf {v} can't unwind through JIT code with DWARF (fixed in 6.8, 6.7.2)"),
            Some("use the perf backend with an interpreter built with frame pointers, or a newer perf".into()),
        ),
        None => check(
            Level::Warn,
            "perf_jit",
            format!("perf {v}: can't tell whether it has the DWARF-unwinding fixes for JIT code (6.8, 6.7.2, 6.1 stable from 2024)"),
            Some("if perf_jit stacks stop at the first py:: frame, use a newer perf".into()),
        ),
    }
}

/// Whether perf compresses recordings as it writes them (`-z`, zstd), as `perfpy record` has
/// it do wherever it can.
pub fn compression(perf: &Path) -> Check {
    match perf::compresses(perf) {
        Some(true) => check(
            Level::Pass,
            "compression",
            "perf compresses recordings as it writes them (zstd): perfpy record has it do so",
            None,
        ),
        Some(false) => check(
            Level::Warn,
            "compression",
            "perf was built without zstd: perfpy record's recordings are written uncompressed, \
             ten to fifty times larger",
            Some(
                "a perf built with zstd (Debian's, Ubuntu's and Fedora's are); meanwhile watch \
                 the disk, or record with a lower -F"
                    .into(),
            ),
        ),
        None => check(
            Level::Warn,
            "compression",
            "perf version --build-options doesn't say whether perf has zstd: perfpy record \
             writes uncompressed recordings",
            Some("a newer perf (4.20+ builds with zstd)".into()),
        ),
    }
}

/// `perf_event_paranoid`: may this user profile their own processes?
pub fn paranoid() -> Check {
    let root = euid() == 0;
    match read_trimmed("/proc/sys/kernel/perf_event_paranoid").and_then(|s| s.parse::<i32>().ok()) {
        None => check(
            Level::Fail,
            "paranoid",
            "/proc/sys/kernel/perf_event_paranoid is missing: no perf events in this kernel",
            Some("use a kernel with CONFIG_PERF_EVENTS".into()),
        ),
        Some(p) if p <= 2 || root => check(
            Level::Pass,
            "paranoid",
            format!(
                "perf_event_paranoid = {p}{}",
                if root {
                    " (running as root)"
                } else {
                    ": your own processes can be profiled"
                }
            ),
            None,
        ),
        Some(p) => check(
            Level::Fail,
            "paranoid",
            format!("perf_event_paranoid = {p}: unprivileged users can't profile"),
            Some("sudo sysctl kernel.perf_event_paranoid=2 (or run perf as root)".into()),
        ),
    }
}

/// `kptr_restrict`: do kernel frames get names?
pub fn kptr() -> Option<Check> {
    let root = euid() == 0;
    let k = read_trimmed("/proc/sys/kernel/kptr_restrict").and_then(|s| s.parse::<i32>().ok())?;
    Some(if k == 0 || (k == 1 && root) {
        check(
            Level::Pass,
            "kptr",
            format!("kptr_restrict = {k}: kernel frames get names"),
            None,
        )
    } else {
        check(
            Level::Warn,
            "kptr",
            format!("kptr_restrict = {k}: kernel frames show as addresses"),
            Some("sudo sysctl kernel.kptr_restrict=0 (only matters for kernel frames)".into()),
        )
    })
}

/// /tmp: perf reads maps and dumps only there; the dump must be mappable executable.
pub fn tmp() -> Check {
    let tmp = Path::new("/tmp");
    let c = std::ffi::CString::new("/tmp").unwrap_or_default();
    // SAFETY: `c` is a NUL-terminated path.
    let writable = unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0;
    let noexec = read_trimmed("/proc/mounts")
        .map(|m| {
            m.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() > 3 && tmp.starts_with(f[1]))
                        .then(|| (f[1].len(), f[3].split(',').any(|o| o == "noexec")))
                })
                .max_by_key(|(len, _)| *len)
                .is_some_and(|(_, noexec)| noexec)
        })
        .unwrap_or(false);
    match (writable, noexec) {
        (false, _) => check(
            Level::Fail,
            "/tmp",
            "/tmp is not writable: perf maps and dumps go there",
            Some("make /tmp writable for this user".into()),
        ),
        (true, true) => check(
            Level::Warn,
            "/tmp",
            "/tmp is mounted noexec: the perf_jit backend can't map its dump",
            Some("use the perf backend, or remount /tmp without noexec".into()),
        ),
        (true, false) => check(
            Level::Pass,
            "/tmp",
            "/tmp is writable and allows executable mappings",
            None,
        ),
    }
}

/// Containers: perf on the host looks for /tmp/perf-<host pid>.map.
pub fn namespace() -> Option<Check> {
    let depth = crate::procfs::own_namespace_depth()?;
    Some(if depth > 1 {
        check(Level::Warn, "namespace", "running in a PID namespace (a container)", Some("perf on the host finds a process's map as /tmp/perf-<host pid>.map: copy /proc/<host pid>/root/tmp/perf-<namespace pid>.map there".into()))
    } else {
        check(Level::Pass, "namespace", "not in a PID namespace", None)
    })
}

/// The interpreter itself.
pub fn python(f: &PythonFacts) -> Check {
    check(
        Level::Pass,
        "python",
        format!("CPython {} at {}", f.version, f.executable),
        None,
    )
}

/// Frame pointers in the interpreter's machine code (and what its build flags say).
pub fn frame_pointers(fp: &FramePointers, f: &PythonFacts) -> Check {
    let evidence = if fp.evidence.contains("CFLAGS") {
        fp.evidence.clone()
    } else {
        format!(
            "{}; CFLAGS {} -fno-omit-frame-pointer",
            fp.evidence,
            if f.cflags_fp { "have" } else { "lack" }
        )
    };
    if fp.present {
        check(
            Level::Pass,
            "frame pointers",
            format!("yes: {evidence}"),
            None,
        )
    } else {
        check(Level::Warn, "frame pointers", format!("no: {evidence}"), Some("perf record -g can't walk this interpreter's stack: use the perf_jit backend (PYTHON_PERF_JIT_SUPPORT=1, perf record -k 1 --call-graph dwarf, perf inject --jit)".into()))
    }
}

/// Who can make the trampolines: perfpy (installed, or lent by this command), CPython's
/// built-in support, or nobody.
pub fn support(f: &PythonFacts, lend: &Lend) -> Check {
    let builtin_jit = f.at_least(3, 13) && f.builtin_perf;
    if let (None, Lend::Yes(package)) = (&f.perfpy, lend) {
        return check(
            Level::Pass,
            "support",
            format!(
                "perfpy is not installed there; perfpy record lends it this command's perfpy \
                 ({}) for each run: perf and perf_jit backends{}",
                package.display(),
                if f.builtin_perf {
                    " (CPython's own also available: --trampoline cpython)"
                } else {
                    ""
                }
            ),
            None,
        );
    }
    match (&f.perfpy, f.builtin_perf) {
        (Some(v), _) => check(
            Level::Pass,
            "support",
            format!(
                "perfpy {v} is installed: perf and perf_jit backends{}",
                if f.builtin_perf {
                    " (CPython's own also available)"
                } else {
                    ""
                }
            ),
            None,
        ),
        (None, true) => check(
            if builtin_jit {
                Level::Pass
            } else {
                Level::Warn
            },
            "support",
            format!(
                "CPython's built-in support: perf{}",
                if builtin_jit {
                    " and perf_jit"
                } else {
                    " only"
                }
            ),
            (!builtin_jit)
                .then(|| "pip install perfpy for the perf_jit backend on this version".into()),
        ),
        (None, false) => check(
            Level::Fail,
            "support",
            format!(
                "CPython {} has no perf support and perfpy is not installed",
                f.version
            ),
            Some(format!("{} -m pip install perfpy", f.executable)),
        ),
    }
}

/// CPython's JIT, whose code has no perf names: said when it is built in, on or off.
pub fn cpython_jit(f: &PythonFacts) -> Option<Check> {
    if f.cpython_jit {
        Some(check(
            Level::Warn,
            "cpython jit",
            format!(
                "CPython's JIT is enabled ({}): JIT-compiled code has no perf names, and \
                 perfpy record refuses to record it",
                f.cpython_jit_how
            ),
            Some("run with PYTHON_JIT=0".into()),
        ))
    } else if f.cpython_jit_available {
        Some(check(
            Level::Pass,
            "cpython jit",
            format!(
                "CPython's JIT is built in but off ({}): perf sees every function",
                f.cpython_jit_how
            ),
            None,
        ))
    } else {
        None
    }
}

/// A real one-second recording of the interpreter.
pub fn recording(perf: &Path, python: &Path) -> Check {
    let out_file = std::env::temp_dir().join(format!("perfpy-doctor-{}.data", std::process::id()));
    let result = Command::new(perf)
        .args(["record", "-q", "-F", "99", "-g", "-o"])
        .arg(&out_file)
        .arg("--")
        .arg(python)
        .args([
            "-c",
            "import time\nt = time.time()\nwhile time.time() - t < 1: pass",
        ])
        .output();
    let size = std::fs::metadata(&out_file).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&out_file);
    match result {
        Ok(o) if o.status.success() && size > 0 => check(Level::Pass, "recording", format!("perf record of a one-second Python run worked ({size} bytes)"), None),
        Ok(o) => check(
            Level::Fail,
            "recording",
            format!("perf record failed: {}", String::from_utf8_lossy(&o.stderr).trim().lines().last().unwrap_or("no output")),
            Some("see the paranoid and perf lines above; in a container, perf_event_open may be blocked by seccomp".into()),
        ),
        Err(e) => check(Level::Fail, "recording", format!("cannot run perf record: {e}"), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(version: &str, perfpy: bool, builtin: bool) -> PythonFacts {
        PythonFacts {
            version: version.into(),
            executable: "/py".into(),
            builtin_perf: builtin,
            perfpy: perfpy.then(|| "0.1.0".into()),
            ..Default::default()
        }
    }

    #[test]
    fn support_levels_follow_the_version() {
        let table = [
            ("3.8.18", false, false, Level::Fail, "no perf support"),
            (
                "3.8.18",
                true,
                false,
                Level::Pass,
                "perfpy 0.1.0 is installed",
            ),
            ("3.12.1", false, true, Level::Warn, "perf only"),
            ("3.13.0", false, true, Level::Pass, "perf and perf_jit"),
            (
                "3.13.0",
                true,
                true,
                Level::Pass,
                "CPython's own also available",
            ),
        ];
        for (v, perfpy, builtin, level, text) in table {
            let c = support(&facts(v, perfpy, builtin), &Lend::No("test".into()));
            assert_eq!(c.level, level, "{v}: {}", c.found);
            assert!(c.found.contains(text), "{v}: {}", c.found);
            assert_eq!(c.fix.is_some(), level != Level::Pass, "{v}");
        }
        // What this command can lend serves where nothing is installed.
        let lend = Lend::Yes("/opt/perfpy".into());
        let c = support(&facts("3.8.18", false, false), &lend);
        assert_eq!(c.level, Level::Pass);
        assert!(
            c.found
                .contains("lends it this command's perfpy (/opt/perfpy)"),
            "{}",
            c.found
        );
        let c = support(&facts("3.11.7", true, false), &lend);
        assert!(c.found.contains("is installed"), "{}", c.found);
    }

    #[test]
    fn perf_jit_unwinding_by_version() {
        let level = |t: &str| perf_jit(perf::Version::parse(t).unwrap()).level;
        assert_eq!(level("6.8.0"), Level::Pass);
        assert_eq!(level("6.7.2"), Level::Pass);
        assert_eq!(level("6.7.1"), Level::Warn);
        assert_eq!(level("5.10.0"), Level::Warn);
    }

    #[test]
    fn frame_pointers_warn_with_the_fix() {
        let no = FramePointers {
            present: false,
            evidence: "0 of 400".into(),
        };
        let c = frame_pointers(&no, &facts("3.11.7", true, false));
        assert_eq!(c.level, Level::Warn);
        assert!(c.found.starts_with("no: 0 of 400") && c.fix.is_some());
        assert!(
            c.found.ends_with("; CFLAGS lack -fno-omit-frame-pointer"),
            "{}",
            c.found
        );
        let yes = FramePointers {
            present: true,
            evidence: "242 of 400".into(),
        };
        assert_eq!(
            frame_pointers(&yes, &facts("3.11.7", true, false)).level,
            Level::Pass
        );
        assert!(cpython_jit(&facts("3.13.0", true, true)).is_none());
        let mut off = facts("3.14.10", true, true);
        off.cpython_jit_available = true;
        off.cpython_jit_how = "sys._jit.is_enabled()".into();
        assert_eq!(cpython_jit(&off).map(|c| c.level), Some(Level::Pass));
        off.cpython_jit = true;
        let on = cpython_jit(&off).unwrap();
        assert!(on.level == Level::Warn && on.found.contains("sys._jit.is_enabled()"));
    }

    #[test]
    fn this_machine_has_a_tmp_and_kernel_settings() {
        assert_ne!(tmp().level, Level::Fail);
        assert!(
            paranoid().found.starts_with("perf_event_paranoid") || paranoid().level == Level::Fail
        );
        assert!(namespace().is_some());
    }
}
