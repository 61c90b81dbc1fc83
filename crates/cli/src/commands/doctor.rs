//! `perfpy doctor`: can perf profile Python on this machine, with this interpreter, and how?
//!
//! Each check prints `pass`, `warn` or `fail`, what it found, and for anything but a pass the
//! fix. A `fail` means profiling can't work (exit status 1); a `warn` means it works with a
//! limitation. The last lines recommend a command for this machine.

use crate::cli::DoctorArgs;
use crate::perf;
use anyhow::Result;
use object::{Object, ObjectSection, ObjectSymbol};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

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

/// What the interpreter says about itself.
#[derive(Debug, Default)]
pub(crate) struct PythonFacts {
    pub version: String,
    pub executable: String,
    pub cflags_fp: bool,
    pub builtin_perf: bool,
    pub binary: String,
    pub perfpy: Option<String>,
    pub cpython_jit: bool,
}

const PROBE: &str = r#"
import os, sys, sysconfig
v = sys.version_info
print("version=%d.%d.%d" % v[:3])
print("executable=" + sys.executable)
print("cflags_fp=%d" % ("no-omit-frame-pointer" in (sysconfig.get_config_var("CFLAGS") or "")))
print("builtin_perf=%d" % (sysconfig.get_config_var("PY_HAVE_PERF_TRAMPOLINE") == 1))
lib = None
if sysconfig.get_config_var("Py_ENABLE_SHARED"):
    for name in (sysconfig.get_config_var("INSTSONAME"), sysconfig.get_config_var("LDLIBRARY")):
        if name:
            p = os.path.join(sysconfig.get_config_var("LIBDIR") or "", name)
            if os.path.exists(p):
                lib = p
                break
print("binary=" + os.path.realpath(lib or sys.executable))
try:
    import perfpy
    print("perfpy=" + perfpy.__version__)
except Exception:
    pass
jit = getattr(sys, "_jit", None)
enabled = bool(jit and jit.is_enabled()) or "_Py_JIT" in (sysconfig.get_config_var("PY_CORE_CFLAGS") or "") and os.environ.get("PYTHON_JIT", "1") != "0"
print("cpython_jit=%d" % enabled)
"#;

pub(crate) fn probe_python(python: &Path) -> Result<PythonFacts, String> {
    let out = Command::new(python)
        .arg("-c")
        .arg(PROBE)
        .env_remove("PYTHONPERFSUPPORT")
        .env_remove("PYTHON_PERF_JIT_SUPPORT")
        .env_remove("PERFPY_BACKEND")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut f = PythonFacts::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "version" => f.version = v.into(),
            "executable" => f.executable = v.into(),
            "cflags_fp" => f.cflags_fp = v == "1",
            "builtin_perf" => f.builtin_perf = v == "1",
            "binary" => f.binary = v.into(),
            "perfpy" => f.perfpy = Some(v.into()),
            "cpython_jit" => f.cpython_jit = v == "1",
            _ => {}
        }
    }
    Ok(f)
}

/// Of the first few hundred functions in `binary`, how many begin by setting up a frame
/// record (x86_64 `push %rbp; mov %rsp,%rbp`, after an optional `endbr64`; aarch64
/// `mov x29, sp` among the first instructions).
pub fn frame_pointer_prologues(binary: &Path) -> Result<(usize, usize), String> {
    let data =
        std::fs::read(binary).map_err(|e| format!("cannot read {}: {e}", binary.display()))?;
    let file = object::File::parse(&*data).map_err(|e| format!("{}: {e}", binary.display()))?;
    let aarch64 = file.architecture() == object::Architecture::Aarch64;
    let (mut with_fp, mut total) = (0, 0);
    let symbols: Vec<_> = if file.symbols().next().is_some() {
        file.symbols().collect()
    } else {
        file.dynamic_symbols().collect()
    };
    for sym in symbols {
        if sym.kind() != object::SymbolKind::Text || sym.size() < 16 || !sym.is_definition() {
            continue;
        }
        let Some(section) = sym
            .section_index()
            .and_then(|i| file.section_by_index(i).ok())
        else {
            continue;
        };
        let Ok(bytes) = section.data() else { continue };
        let Some(off) = sym.address().checked_sub(section.address()) else {
            continue;
        };
        let Some(code) = bytes.get(off as usize..off as usize + 16) else {
            continue;
        };
        total += 1;
        let has_fp = if aarch64 {
            code.chunks_exact(4)
                .any(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]) == 0x9100_03fd)
        } else {
            let code = code.strip_prefix(&[0xf3, 0x0f, 0x1e, 0xfa]).unwrap_or(code);
            code.starts_with(&[0x55, 0x48, 0x89, 0xe5])
        };
        with_fp += has_fp as usize;
        if total >= 400 {
            break;
        }
    }
    Ok((with_fp, total))
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

fn default_python() -> PathBuf {
    perf::on_path("python3").unwrap_or_else(|| PathBuf::from("python3"))
}

/// Runs every check.
pub fn checks(args: &DoctorArgs) -> Vec<Check> {
    let mut out = Vec::new();
    let mut perf_version = None;

    // perf itself.
    let perf = perf::locate();
    match &perf {
        None => out.push(check(
            Level::Fail,
            "perf",
            "perf is not on PATH",
            Some("install it: apt-get install linux-perf (Debian), linux-tools-$(uname -r) (Ubuntu), perf (Fedora)".into()),
        )),
        Some(p) => match perf::version_text(p) {
            Err(e) => out.push(check(Level::Fail, "perf", format!("{} does not run: {e}", p.display()), Some("reinstall perf".into()))),
            Ok(text) => match perf::Version::parse(&text) {
                Some(v) => {
                    perf_version = Some(v);
                    out.push(check(Level::Pass, "perf", format!("perf {v} at {}", p.display()), None));
                }
                None => out.push(check(
                    Level::Warn,
                    "perf",
                    format!("{} prints no version ({text:?})", p.display()),
                    Some("the version checks below are skipped; perf may still work".into()),
                )),
            },
        },
    }
    if let Some(v) = perf_version {
        out.push(match v.dwarf_jit_unwinding() {
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
        });
    }

    // Kernel settings.
    let root = euid() == 0;
    match read_trimmed("/proc/sys/kernel/perf_event_paranoid").and_then(|s| s.parse::<i32>().ok()) {
        None => out.push(check(
            Level::Fail,
            "paranoid",
            "/proc/sys/kernel/perf_event_paranoid is missing: no perf events in this kernel",
            Some("use a kernel with CONFIG_PERF_EVENTS".into()),
        )),
        Some(p) if p <= 2 || root => out.push(check(
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
        )),
        Some(p) => out.push(check(
            Level::Fail,
            "paranoid",
            format!("perf_event_paranoid = {p}: unprivileged users can't profile"),
            Some("sudo sysctl kernel.perf_event_paranoid=2 (or run perf as root)".into()),
        )),
    }
    if let Some(k) =
        read_trimmed("/proc/sys/kernel/kptr_restrict").and_then(|s| s.parse::<i32>().ok())
    {
        out.push(if k == 0 || (k == 1 && root) {
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
        });
    }

    // /tmp: perf reads maps and dumps only there; the dump must be mappable executable.
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
    out.push(match (writable, noexec) {
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
    });

    // Containers.
    if let Some(nspid) = read_trimmed("/proc/self/status").and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("NSpid:"))
            .map(|l| l.split_whitespace().count() - 1)
    }) {
        out.push(if nspid > 1 {
            check(Level::Warn, "namespace", "running in a PID namespace (a container)", Some("perf on the host finds a process's map as /tmp/perf-<host pid>.map: copy /proc/<host pid>/root/tmp/perf-<namespace pid>.map there".into()))
        } else {
            check(Level::Pass, "namespace", "not in a PID namespace", None)
        });
    }

    // The interpreter.
    let python = args.python.clone().unwrap_or_else(default_python);
    match probe_python(&python) {
        Err(e) => out.push(check(
            Level::Fail,
            "python",
            e,
            Some("pass an interpreter with --python PATH".into()),
        )),
        Ok(facts) => python_checks(&facts, &mut out),
    }

    // A real recording.
    if !args.no_record {
        if let Some(p) = &perf {
            out.push(test_recording(p, &python));
        }
    }
    out
}

fn python_checks(f: &PythonFacts, out: &mut Vec<Check>) {
    out.push(check(
        Level::Pass,
        "python",
        format!("CPython {} at {}", f.version, f.executable),
        None,
    ));
    let binary = Path::new(&f.binary);
    let fp = frame_pointer_prologues(binary);
    let (found, has_fp) = match fp {
        Ok((with, total)) if total > 0 => {
            let has = with * 2 > total;
            (format!("{with} of {total} functions in {} set up a frame pointer; CFLAGS {} -fno-omit-frame-pointer", binary.display(), if f.cflags_fp { "have" } else { "lack" }), has)
        }
        Ok(_) => (
            format!(
                "no functions found in {}; CFLAGS {} -fno-omit-frame-pointer",
                binary.display(),
                if f.cflags_fp { "have" } else { "lack" }
            ),
            f.cflags_fp,
        ),
        Err(e) => (
            format!(
                "{e}; CFLAGS {} -fno-omit-frame-pointer",
                if f.cflags_fp { "have" } else { "lack" }
            ),
            f.cflags_fp,
        ),
    };
    out.push(if has_fp {
        check(Level::Pass, "frame pointers", format!("yes: {found}"), None)
    } else {
        check(Level::Warn, "frame pointers", format!("no: {found}"), Some("perf record -g can't walk this interpreter's stack: use the perf_jit backend (PYTHON_PERF_JIT_SUPPORT=1, perf record -k 1 --call-graph dwarf, perf inject --jit)".into()))
    });
    let minor: Vec<u32> = f
        .version
        .split('.')
        .filter_map(|p| p.parse().ok())
        .collect();
    let builtin_jit = minor.len() >= 2 && (minor[0], minor[1]) >= (3, 13) && f.builtin_perf;
    out.push(match (&f.perfpy, f.builtin_perf) {
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
    });
    if f.cpython_jit {
        out.push(check(Level::Warn, "cpython jit", "CPython's JIT is enabled: JIT-compiled code has no perf names, and CPython refuses perf trampolines with it", Some("run with PYTHON_JIT=0".into())));
    }
}

fn test_recording(perf: &Path, python: &Path) -> Check {
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

pub fn run(args: &DoctorArgs) -> Result<ExitCode> {
    let checks = checks(args);
    for c in &checks {
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
    let worst = checks.iter().map(|c| c.level).max().unwrap_or(Level::Pass);
    println!();
    if worst == Level::Fail {
        println!("profiling can't work here until the FAIL lines are fixed");
        return Ok(ExitCode::from(1));
    }
    let fp = checks
        .iter()
        .any(|c| c.name == "frame pointers" && c.level == Level::Pass);
    let jit_ok = checks
        .iter()
        .any(|c| c.name == "perf_jit" && c.level == Level::Pass);
    let (picks, perf_alone): (&str, &[&str]) = if fp {
        (
            "the perf map and frame-pointer call graphs",
            &["PYTHONPERFSUPPORT=1 perf record -g -- python app.py"],
        )
    } else if jit_ok {
        (
            "the jitdump and DWARF call graphs",
            &[
                "PYTHON_PERF_JIT_SUPPORT=1 perf record -k 1 --call-graph dwarf,65528 -- python app.py",
                "perf inject --jit -i perf.data -o perf.jit.data && perf report -i perf.jit.data",
            ],
        )
    } else {
        (
            "DWARF call graphs; perfpy report unwinds through the stubs itself",
            &[
                "PYTHONPERFSUPPORT=1 perf record --call-graph dwarf -- python app.py",
                "(perf report then names the innermost Python function of each sample)",
            ],
        )
    };
    println!("recommended: perfpy record -- python app.py && perfpy report");
    println!("             (here it picks {picks})");
    for (i, line) in perf_alone.iter().enumerate() {
        let lead = if i == 0 { "with perf alone:" } else { "" };
        println!("{lead:<16} {line}");
    }
    Ok(ExitCode::SUCCESS)
}
