//! The facts `perfpy doctor` finds about this machine and the interpreter, one function
//! each: what it found and, where there is one, the fix. A fact whose consequence depends on
//! the command (frame pointers, the interpreter's perf support) carries no fix here: the
//! sections on `perfpy record` ([`super::perfpy_record`]) and on perf alone
//! ([`super::perf_alone`]) say what it means for each and what to do.

use crate::perf;
use crate::python::{FramePointers, PythonFacts};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, Clone)]
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

/// The running kernel: its release and machine (`uname -r`, `uname -m`).
pub fn kernel() -> Check {
    // SAFETY: utsname is plain C data (char arrays), valid all zeroes.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname fills the struct it is given, which lives past the call.
    if unsafe { libc::uname(&mut u) } != 0 {
        return check(Level::Warn, "kernel", "uname(2) failed", None);
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    check(
        Level::Pass,
        "kernel",
        format!("Linux {} {}", field(&u.release), field(&u.machine)),
        None,
    )
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

/// What /tmp allows: writing (maps and dumps go there), and executable mappings (a jitdump
/// is mapped executable, so that perf records where it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tmp {
    pub writable: bool,
    pub noexec: bool,
}

/// /tmp as this process finds it.
pub fn tmp_state() -> Tmp {
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
    Tmp { writable, noexec }
}

/// /tmp: perf reads maps and dumps only there; a jitdump must be mappable executable.
pub fn tmp(t: Tmp) -> Check {
    match (t.writable, t.noexec) {
        (false, _) => check(
            Level::Fail,
            "/tmp",
            "/tmp is not writable: perf maps and dumps go there",
            Some("make /tmp writable for this user".into()),
        ),
        (true, true) => check(
            Level::Warn,
            "/tmp",
            "/tmp is mounted noexec: a jitdump (the perf_jit backend's file) can't be mapped \
             executable there",
            Some("remount /tmp without noexec".into()),
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

/// Frame pointers in the interpreter's machine code (and what its build flags say). A fact:
/// what it means for `perf record -g` is said under perf alone, with the fix.
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
        check(
            Level::Warn,
            "frame pointers",
            format!("no: {evidence}"),
            None,
        )
    }
}

/// What names the interpreter's binary gives its own functions: its symbol table, or (a
/// stripped binary, as distributions ship) only the functions it exports.
pub fn symbols(binary: &Path) -> Check {
    let counted = std::fs::read(binary)
        .map_err(|e| e.to_string())
        .and_then(|data| {
            use object::{Object, ObjectSection, ObjectSymbol};
            let file = object::File::parse(&*data).map_err(|e| e.to_string())?;
            let functions = |symbols: &mut dyn Iterator<Item = object::Symbol<'_, '_>>| {
                symbols
                    .filter(|s| s.kind() == object::SymbolKind::Text && s.is_definition())
                    .count()
            };
            Ok((
                functions(&mut file.symbols()),
                functions(&mut file.dynamic_symbols()),
                file.section_by_name(".debug_info")
                    .is_some_and(|s| s.size() > 0),
            ))
        });
    match counted {
        Err(e) => check(
            Level::Warn,
            "symbols",
            format!("{} can't be read as ELF: {e}", binary.display()),
            None,
        ),
        Ok((symtab, _, debug)) if symtab > 0 => check(
            Level::Pass,
            "symbols",
            format!(
                "{} has its symbol table: {symtab} functions named{}",
                binary.display(),
                if debug { ", and debug info" } else { "" }
            ),
            None,
        ),
        Ok((_, exported, _)) => check(
            Level::Warn,
            "symbols",
            format!(
                "{} is stripped (no .symtab): only the {exported} functions it exports are \
                 named in it",
                binary.display()
            ),
            None,
        ),
    }
}

/// Which switches the interpreter honours by itself, without `perfpy record` lending it
/// perfpy: perfpy installed there serves both; CPython serves `PYTHONPERFSUPPORT` from 3.12
/// and `PYTHON_PERF_JIT_SUPPORT` from 3.13 (built with its trampoline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switches {
    /// `PYTHONPERFSUPPORT=1`: a perf map.
    pub perf_map: bool,
    /// `PYTHON_PERF_JIT_SUPPORT=1`: a jitdump.
    pub jitdump: bool,
}

impl Switches {
    pub fn of(f: &PythonFacts) -> Switches {
        let perfpy = f.perfpy.is_some();
        Switches {
            perf_map: perfpy || (f.builtin_perf && f.at_least(3, 12)),
            jitdump: perfpy || (f.builtin_perf && f.at_least(3, 13)),
        }
    }
}

/// Who can make the trampolines in the interpreter itself: perfpy installed there, CPython's
/// built-in support, or nobody. A fact: `perfpy record` can lend perfpy where it is missing
/// (its section says), perf alone can't (its section says what to install).
pub fn support(f: &PythonFacts) -> Check {
    let builtin = match (f.builtin_perf && f.at_least(3, 12), f.at_least(3, 13)) {
        (false, _) => None,
        (true, false) => Some("perf map only"),
        (true, true) => Some("perf map and jitdump"),
    };
    match (&f.perfpy, builtin) {
        (Some(v), b) => check(
            Level::Pass,
            "support",
            format!(
                "perfpy {v} is installed there: perf map and jitdump{}",
                match b {
                    Some(b) => format!(" (CPython's built-in support too: {b})"),
                    None => String::new(),
                }
            ),
            None,
        ),
        (None, Some(b)) => check(
            Level::Pass,
            "support",
            format!("perfpy is not installed there; CPython's built-in support: {b}"),
            None,
        ),
        (None, None) => check(
            Level::Warn,
            "support",
            format!(
                "perfpy is not installed there, and CPython {} has no built-in perf support",
                f.version
            ),
            None,
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
                "CPython's JIT is enabled ({}): the code it compiles has no perf names",
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
    fn support_is_what_the_interpreter_has_itself() {
        #[rustfmt::skip]
        let table = [
            ("3.8.18", false, false, Level::Warn, "CPython 3.8.18 has no built-in perf support"),
            ("3.8.18", true, false, Level::Pass, "perfpy 0.1.0 is installed there: perf map and jitdump"),
            ("3.12.1", false, true, Level::Pass, "built-in support: perf map only"),
            ("3.13.0", false, true, Level::Pass, "built-in support: perf map and jitdump"),
            ("3.13.0", true, true, Level::Pass, "(CPython's built-in support too: perf map and jitdump)"),
        ];
        for (v, perfpy, builtin, level, text) in table {
            let f = facts(v, perfpy, builtin);
            let c = support(&f);
            assert_eq!(c.level, level, "{v}: {}", c.found);
            assert!(c.found.contains(text), "{v}: {}", c.found);
            // A fact: what it means for each command is said in that command's section.
            assert!(c.fix.is_none(), "{v}");
            let sw = Switches::of(&f);
            assert_eq!(sw.perf_map, level == Level::Pass, "{v}");
            assert_eq!(sw.jitdump, perfpy || v.starts_with("3.13"), "{v}");
        }
    }

    #[test]
    fn frame_pointers_are_a_fact() {
        let no = FramePointers {
            present: false,
            evidence: "0 of 400".into(),
        };
        let c = frame_pointers(&no, &facts("3.11.7", true, false));
        assert_eq!(c.level, Level::Warn);
        // A fact; the fix depends on perf (perf alone's lines).
        assert!(c.found.starts_with("no: 0 of 400") && c.fix.is_none());
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
    fn symbols_tell_a_stripped_binary() {
        let exe = std::env::current_exe().unwrap();
        let c = symbols(&exe);
        assert_eq!(c.level, Level::Pass, "{}", c.found);
        assert!(c.found.contains("has its symbol table"), "{}", c.found);
        // The same binary stripped (binutils' strip, as distributions do).
        let dir = std::env::temp_dir().join(format!("perfpy-symbols-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stripped = dir.join("stripped");
        let ok = std::process::Command::new("strip")
            .arg("-o")
            .arg(&stripped)
            .arg(&exe)
            .status()
            .expect("strip (binutils)")
            .success();
        assert!(ok);
        let c = symbols(&stripped);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(c.level, Level::Warn, "{}", c.found);
        assert!(c.found.contains("is stripped (no .symtab)"), "{}", c.found);
        assert_eq!(symbols(&dir.join("missing")).level, Level::Warn);
    }

    #[test]
    fn this_machine_has_a_tmp_and_kernel_settings() {
        assert_ne!(tmp(tmp_state()).level, Level::Fail);
        let k = kernel();
        assert_eq!(k.level, Level::Pass);
        assert!(k.found.starts_with("Linux ") && k.found.contains(std::env::consts::ARCH));
        assert!(
            paranoid().found.starts_with("perf_event_paranoid") || paranoid().level == Level::Fail
        );
        assert!(namespace().is_some());
    }
}
