//! The interpreter a command runs, and what it can do: its version, whether perfpy is
//! importable there, CPython's built-in support, CPython's JIT, and whether its machine code
//! keeps frame pointers. Used by `record` (through [`crate::plan`]) and `doctor` alike.

use crate::perf;
use object::{Object, ObjectSection, ObjectSymbol};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the interpreter says about itself.
#[derive(Debug, Default)]
pub struct PythonFacts {
    pub version: String,
    pub executable: String,
    pub cflags_fp: bool,
    pub builtin_perf: bool,
    pub binary: String,
    pub perfpy: Option<String>,
    /// CPython's JIT runs in this interpreter (as started with the current environment).
    pub cpython_jit: bool,
    /// CPython's JIT is built in (on or off).
    pub cpython_jit_available: bool,
    /// How `cpython_jit` was decided, for messages.
    pub cpython_jit_how: String,
    /// The file-name suffix of the extension builds it imports
    /// (`.cpython-311-x86_64-linux-gnu.so`).
    pub ext_suffix: String,
}

impl PythonFacts {
    /// `(major, minor)`, if the version parses.
    pub fn minor(&self) -> Option<(u32, u32)> {
        let mut parts = self.version.split('.').map(|p| p.parse::<u32>().ok());
        Some((parts.next()??, parts.next()??))
    }

    /// Whether the version is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        self.minor().is_some_and(|v| v >= (major, minor))
    }
}

const PROBE: &str = r#"
import os, sys, sysconfig
v = sys.version_info
print("version=%d.%d.%d" % v[:3])
print("executable=" + sys.executable)
print("cflags_fp=%d" % ("no-omit-frame-pointer" in (sysconfig.get_config_var("CFLAGS") or "")))
print("ext_suffix=" + (sysconfig.get_config_var("EXT_SUFFIX") or ""))
print("builtin_perf=%d" % (sysconfig.get_config_var("PY_HAVE_PERF_TRAMPOLINE") == 1))
# The binary the interpreter's code runs from: the libpython this process has mapped, else the
# executable (Debian configures --enable-shared but links python3.X statically).
lib = None
try:
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and "x" in fields[1] and "/libpython" in fields[5]:
                lib = fields[5]
                break
except OSError:
    pass
print("binary=" + os.path.realpath(lib or sys.executable))
try:
    import perfpy
    print("perfpy=" + perfpy.__version__)
except Exception:
    pass
# CPython's JIT, as the interpreter runs it: 3.14+ says so itself (sys._jit); 3.13 decides at
# start-up from its build (-D_Py_JIT, and -D_Py_TIER2's bit 2: built in but off by default)
# and PYTHON_JIT (a non-empty value other than 0 turns it on).
jit = getattr(sys, "_jit", None)
if jit is not None:
    available, enabled, how = jit.is_available(), jit.is_enabled(), "sys._jit.is_enabled()"
else:
    import re
    flags = sysconfig.get_config_var("PY_CORE_CFLAGS") or ""
    tier2 = re.search(r"-D_Py_TIER2=(\d+)", flags)
    available = "-D_Py_JIT" in flags
    enabled = available and not (int(tier2.group(1)) & 2 if tier2 else False)
    env = os.environ.get("PYTHON_JIT", "")
    if available and env:
        enabled = env[0] != "0"
    how = "the build's default and PYTHON_JIT"
print("cpython_jit_available=%d" % bool(available))
print("cpython_jit_how=" + how)
print("cpython_jit=%d" % bool(enabled))
"#;

pub fn probe(python: &Path) -> Result<PythonFacts, String> {
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
            "cpython_jit_available" => f.cpython_jit_available = v == "1",
            "cpython_jit_how" => f.cpython_jit_how = v.into(),
            "ext_suffix" => f.ext_suffix = v.into(),
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

/// Whether an interpreter keeps frame pointers, and the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramePointers {
    pub present: bool,
    /// `"242 of 400 functions in …/libpython3.11.so.1.0 set up a frame pointer"`, or why
    /// the build flags were used instead.
    pub evidence: String,
}

/// The frame-pointer verdict for `facts`: from the machine code of the interpreter's binary
/// (a quarter or more of its functions set up a frame record), else from its CFLAGS.
pub fn frame_pointers(facts: &PythonFacts) -> FramePointers {
    let cflags = format!(
        "CFLAGS {} -fno-omit-frame-pointer",
        if facts.cflags_fp { "have" } else { "lack" }
    );
    match frame_pointer_prologues(Path::new(&facts.binary)) {
        Ok((with, total)) if total > 0 => FramePointers {
            // Builds are bimodal: without the flags 0-2% of functions set one up (sampled
            // here: 0, 4, 5 of 400), with them 45-60% (182, 230, 242 of 400: leaf and
            // assembly functions, and bundled libraries built with their own flags, don't).
            present: with * 4 > total,
            evidence: format!(
                "{with} of {total} functions in {} set up a frame pointer",
                facts.binary
            ),
        },
        Ok(_) => FramePointers {
            present: facts.cflags_fp,
            evidence: format!("no functions found in {}; {cflags}", facts.binary),
        },
        Err(e) => FramePointers {
            present: facts.cflags_fp,
            evidence: format!("{e}; {cflags}"),
        },
    }
}

/// The interpreter a command runs: itself if it is one, else its shebang's.
pub fn interpreter_of(cmd: &Path) -> Option<PathBuf> {
    let resolved = if cmd.components().count() > 1 {
        cmd.to_path_buf()
    } else {
        perf::on_path(cmd)?
    };
    let name = resolved.file_name()?.to_string_lossy().into_owned();
    let head = std::fs::read(&resolved).ok()?;
    if head.starts_with(b"\x7fELF") {
        return name.starts_with("python").then_some(resolved);
    }
    let first = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(first.strip_prefix(b"#!")?).ok()?.trim();
    let mut words = line.split_whitespace();
    let prog = words.next()?;
    let interp = if prog.ends_with("/env") {
        let arg = words.find(|w| !w.starts_with('-'))?;
        return interpreter_of(Path::new(arg));
    } else {
        PathBuf::from(prog)
    };
    interp
        .file_name()?
        .to_string_lossy()
        .starts_with("python")
        .then_some(interp)
}

/// The interpreter `doctor` looks at when none is given.
pub fn default_python() -> PathBuf {
    perf::on_path("python3").unwrap_or_else(|| PathBuf::from("python3"))
}

/// Whether `path` is an interpreter's binary (`python3.11`, `libpython3.11.so.1.0`), and if so
/// its `(major, minor)`, when the file name says it (`None` for a plain `python3`).
pub fn interpreter_file_version(path: &str) -> Option<Option<(u32, u32)>> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let rest = name
        .strip_prefix("libpython")
        .or_else(|| name.strip_prefix("python"))?;
    Some(python_version(rest))
}

/// `(major, minor)` from what follows `python` or `libpython` in a file name: `3.11.so.1.0`,
/// `3.14`, `3.12d.so`; `None` for `3` or `` (a `python3` without its minor).
fn python_version(rest: &str) -> Option<(u32, u32)> {
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_minor() {
        let f = |v: &str| PythonFacts {
            version: v.into(),
            ..Default::default()
        };
        assert_eq!(f("3.12.1").minor(), Some((3, 12)));
        assert!(f("3.13.0").at_least(3, 12) && !f("3.9.18").at_least(3, 12));
        assert!(f("3.10.1").at_least(3, 9), "numeric, not textual");
        assert_eq!(f("").minor(), None);
        assert!(!f("junk").at_least(3, 8));
    }

    #[test]
    fn frame_pointers_fall_back_to_cflags() {
        let facts = PythonFacts {
            binary: "/nonexistent/libpython".into(),
            cflags_fp: true,
            ..Default::default()
        };
        let v = frame_pointers(&facts);
        assert!(v.present);
        assert!(v.evidence.contains("CFLAGS have"), "{}", v.evidence);
    }

    #[test]
    fn finds_the_interpreter_of_a_shebang_script() {
        let dir = std::env::temp_dir().join(format!("perfpy-rec-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let direct = dir.join("tool");
        std::fs::write(&direct, "#!/opt/py/bin/python3.11 -u\nprint()\n").unwrap();
        let via_env = dir.join("tool2");
        std::fs::write(&via_env, "#!/usr/bin/env -S sh\n").unwrap();
        let not_python = dir.join("tool3");
        std::fs::write(&not_python, "#!/bin/sh\n").unwrap();
        assert_eq!(
            interpreter_of(&direct),
            Some(PathBuf::from("/opt/py/bin/python3.11"))
        );
        assert_eq!(interpreter_of(&not_python), None);
        assert_eq!(interpreter_of(&via_env), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_the_interpreter_version_from_its_file_name() {
        let v = interpreter_file_version;
        assert_eq!(v("/usr/lib/libpython3.11.so.1.0"), Some(Some((3, 11))));
        assert_eq!(v("/usr/bin/python3.14"), Some(Some((3, 14))));
        assert_eq!(v("libpython3.12d.so.1.0"), Some(Some((3, 12))));
        assert_eq!(v("/usr/bin/python3"), Some(None));
        assert_eq!(v("/usr/lib/libc.so.6"), None);
    }
}
