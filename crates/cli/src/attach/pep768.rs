//! Running a Python script inside a running CPython 3.14+ process, as `sys.remote_exec` does
//! (PEP 768), from Rust: whatever Python this command runs under, or none.
//!
//! 1. The interpreter's binary (the executable, or the `libpython` it maps) has a `.PyRuntime`
//!    section; relocated by the mapping's load bias, that is `_PyRuntime` in the process.
//! 2. `_PyRuntime` starts with `_Py_DebugOffsets`: the cookie `xdebugpy`, `PY_VERSION_HEX`,
//!    and the offsets of the runtime's fields, ending with the debugger support block
//!    `{eval_breaker, remote_debugger_support, remote_debugging_enabled,
//!    debugger_pending_call (0), debugger_script_path (4), debugger_script_path_size (512)}`,
//!    whose fixed tail locates it whatever the version added before it.
//! 3. The main thread state (`interpreters.head` → `threads.main`) gets the script's path in
//!    `remote_debugger_support.debugger_script_path`, `debugger_pending_call = 1`, and
//!    `_PY_EVAL_PLEASE_STOP_BIT` in its `eval_breaker`; the interpreter runs the file at its
//!    next safe point, on the main thread, in `__main__`'s namespace.
//!
//! Memory is read and written with `process_vm_readv`/`process_vm_writev`, which need the
//! same permission as ptrace.

use super::process::{self, read, read_u64, write, Refusal};
use object::{Object, ObjectSection};
use std::path::{Path, PathBuf};

const COOKIE: &[u8; 8] = b"xdebugpy";
/// `_PY_EVAL_PLEASE_STOP_BIT`.
const PLEASE_STOP: u64 = 1 << 5;
/// How much of `_Py_DebugOffsets` is read (3.14's is 784 bytes, 3.15's 912).
const TABLE_BYTES: usize = 4096;

/// A process's CPython runtime, located.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub pid: u32,
    /// `_PyRuntime`'s address in the process.
    pub address: u64,
    /// The file holding `.PyRuntime` (as the process sees it).
    pub binary: PathBuf,
    /// `PY_VERSION_HEX`.
    pub version_hex: u64,
    pub free_threaded: bool,
    offsets: Option<DebuggerOffsets>,
    interpreters_head: u64,
    interp_id: u64,
    interp_next: u64,
    threads_head: u64,
    threads_main: u64,
}

/// The debugger support block of `_Py_DebugOffsets` (3.14+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DebuggerOffsets {
    eval_breaker: u64,
    remote_debugger_support: u64,
    remote_debugging_enabled: u64,
    pending_call: u64,
    script_path: u64,
    script_path_size: u64,
}

impl Runtime {
    /// `major.minor.micro`.
    pub fn version(&self) -> String {
        let v = self.version_hex;
        format!(
            "{}.{}.{}",
            (v >> 24) & 0xff,
            (v >> 16) & 0xff,
            (v >> 8) & 0xff
        )
    }

    pub fn at_least(&self, major: u64, minor: u64) -> bool {
        (self.version_hex >> 16) >= (major << 8 | minor)
    }
}

/// Locates process `pid`'s CPython runtime and reads its debug offsets.
pub fn locate(pid: u32) -> Result<Runtime, Refusal> {
    let mut tried = Vec::new();
    for (path, base) in process::mapped_files(pid)? {
        if tried.contains(&path) {
            continue;
        }
        tried.push(path.clone());
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !(name.starts_with("python") || name.starts_with("libpython")) {
            continue;
        }
        let Some(address) = runtime_address(&process::on_disk(pid, &path), base) else {
            continue;
        };
        return read_table(pid, address, path);
    }
    Err(Refusal::NotFound(format!(
        "process {pid} maps no CPython 3.13+ binary (no .PyRuntime section in {})",
        if tried.is_empty() {
            "any file".to_string()
        } else {
            tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    )))
}

/// `_PyRuntime`'s address, if `binary` (mapped with offset 0 at `base`) has `.PyRuntime`.
fn runtime_address(binary: &Path, base: u64) -> Option<u64> {
    let data = std::fs::read(binary).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let section = file.section_by_name(".PyRuntime")?;
    process::in_memory(&file, base, section.address())
}

fn read_table(pid: u32, address: u64, binary: PathBuf) -> Result<Runtime, Refusal> {
    let mut table = vec![0u8; TABLE_BYTES];
    read(pid, address, &mut table)?;
    if &table[..8] != COOKIE {
        return Err(Refusal::NotFound(format!(
            "CPython before 3.13: no debug offsets in {}'s _PyRuntime",
            binary.display()
        )));
    }
    let word = |i: usize| u64::from_le_bytes(table[i * 8..i * 8 + 8].try_into().unwrap());
    let mut rt = Runtime {
        pid,
        address,
        binary,
        version_hex: word(1),
        free_threaded: word(2) != 0,
        offsets: None,
        // runtime_state {size, finalizing, interpreters_head}, then interpreter_state
        // {size, id, next, threads_head, threads_main, ...} (3.14+).
        interpreters_head: word(5),
        interp_id: word(7),
        interp_next: word(8),
        threads_head: word(9),
        threads_main: word(10),
    };
    if !rt.at_least(3, 14) {
        return Ok(rt);
    }
    let words: Vec<u64> = (0..TABLE_BYTES / 8).map(word).collect();
    let interp_size = word(6);
    rt.offsets = words.windows(6).skip(16).find_map(|w| {
        let found = DebuggerOffsets {
            eval_breaker: w[0],
            remote_debugger_support: w[1],
            remote_debugging_enabled: w[2],
            pending_call: w[3],
            script_path: w[4],
            script_path_size: w[5],
        };
        (found.pending_call == 0
            && found.script_path == 4
            && found.script_path_size == 512
            && found.eval_breaker < found.remote_debugger_support
            && found.remote_debugger_support < 0x10000
            && found.remote_debugging_enabled < interp_size)
            .then_some(found)
    });
    Ok(rt)
}

/// Asks the main thread of `rt`'s process to run the Python file at `path` (a path as the
/// process sees it) at its next safe point. Returns at once; there is no completion signal.
/// A script still pending (not yet run) is replaced.
pub fn exec(rt: &Runtime, path: &str) -> Result<(), Refusal> {
    if !rt.at_least(3, 14) {
        return Err(Refusal::TooOld(format!(
            "process {} runs CPython {}: running code in it needs 3.14+ (PEP 768)",
            rt.pid,
            rt.version()
        )));
    }
    let off = rt.offsets.ok_or_else(|| {
        Refusal::Other(format!(
            "process {} (CPython {}): its debug offsets have no debugger support block",
            rt.pid,
            rt.version()
        ))
    })?;
    let pid = rt.pid;
    let interp = main_interpreter(rt)?;
    let mut enabled = [0u8; 4];
    read(pid, interp + off.remote_debugging_enabled, &mut enabled)?;
    if i32::from_le_bytes(enabled) == 0 {
        return Err(Refusal::Disabled);
    }
    let mut tstate = read_u64(pid, interp + rt.threads_main)?;
    if tstate == 0 {
        tstate = read_u64(pid, interp + rt.threads_head)?;
    }
    if tstate == 0 {
        return Err(Refusal::Other(format!("process {pid} has no thread state")));
    }
    let mut bytes = path.as_bytes().to_vec();
    bytes.push(0);
    if bytes.len() as u64 > off.script_path_size {
        return Err(Refusal::Other(format!(
            "the script path {path} is longer than the {} bytes CPython keeps for it",
            off.script_path_size - 1
        )));
    }
    let support = tstate + off.remote_debugger_support;
    write(pid, support + off.script_path, &bytes)?;
    write(pid, support + off.pending_call, &1i32.to_le_bytes())?;
    let breaker = tstate + off.eval_breaker;
    let value = read_u64(pid, breaker)?;
    write(pid, breaker, &(value | PLEASE_STOP).to_le_bytes())?;
    Ok(())
}

/// The main interpreter's state: the runtime's list starts with the newest interpreter (a
/// subinterpreter, in a process that has some), and the main one has id 0.
fn main_interpreter(rt: &Runtime) -> Result<u64, Refusal> {
    let pid = rt.pid;
    let mut interp = read_u64(pid, rt.address + rt.interpreters_head)?;
    if interp == 0 {
        return Err(Refusal::Other(format!(
            "process {pid} has no interpreter (not started, or finalizing)"
        )));
    }
    // A bound on the walk, in case the list changes under it.
    for _ in 0..100_000 {
        if interp == 0 {
            break;
        }
        if read_u64(pid, interp + rt.interp_id)? == 0 {
            return Ok(interp);
        }
        interp = read_u64(pid, interp + rt.interp_next)?;
    }
    Err(Refusal::Other(format!(
        "process {pid}: its main interpreter is not in the runtime's list of interpreters \
         (finalizing?)"
    )))
}

/// The file holding `_PyRuntime` for a process, for messages.
pub fn describe(rt: &Runtime) -> String {
    format!(
        "CPython {}{} ({})",
        rt.version(),
        if rt.free_threaded {
            " free-threaded"
        } else {
            ""
        },
        rt.binary.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_minor() {
        let rt = Runtime {
            pid: 1,
            address: 0,
            binary: PathBuf::new(),
            version_hex: 0x030e0af0,
            free_threaded: false,
            offsets: None,
            interpreters_head: 0,
            interp_id: 0,
            interp_next: 0,
            threads_head: 0,
            threads_main: 0,
        };
        assert_eq!(rt.version(), "3.14.10");
        assert!(rt.at_least(3, 14) && !rt.at_least(3, 15));
        assert!(matches!(exec(&rt, "/tmp/x.py"), Err(Refusal::Other(_))));
    }

    #[test]
    fn a_process_without_cpython_is_refused_with_what_was_looked_at() {
        // This test binary maps no python binary.
        match locate(std::process::id()) {
            Err(Refusal::NotFound(why)) => assert!(why.contains("no .PyRuntime"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
