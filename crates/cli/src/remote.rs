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

use object::{Object, ObjectSection, ObjectSegment};
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

/// Why a script can't be run in a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The process is not CPython 3.13+ (no `.PyRuntime` table), or can't be read.
    NotFound(String),
    /// CPython before 3.14: no remote execution.
    TooOld(String),
    /// `PYTHON_DISABLE_REMOTE_DEBUG`, `-X disable_remote_debug`, `--without-remote-debug`.
    Disabled,
    /// No permission to read or write its memory.
    Permission(String),
    /// Anything else, said.
    Other(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotFound(s) | Refusal::TooOld(s) | Refusal::Permission(s) => f.write_str(s),
            Refusal::Disabled => f.write_str(
                "remote debugging is disabled in that interpreter (PYTHON_DISABLE_REMOTE_DEBUG, \
                 -X disable_remote_debug, or a build configured --without-remote-debug)",
            ),
            Refusal::Other(s) => f.write_str(s),
        }
    }
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
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| errno_refusal(pid, "read", e))?;
    let mut tried = Vec::new();
    for (path, base) in file_bases(&maps) {
        if tried.contains(&path) {
            continue;
        }
        tried.push(path.clone());
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !(name.starts_with("python") || name.starts_with("libpython")) {
            continue;
        }
        let on_disk =
            Path::new(&format!("/proc/{pid}/root")).join(path.strip_prefix("/").unwrap_or(&path));
        let Some(address) = runtime_address(&on_disk, base) else {
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

/// Each mapped file and the address its offset 0 is mapped at.
pub(crate) fn file_bases(maps: &str) -> Vec<(PathBuf, u64)> {
    maps.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 || !f[5].starts_with('/') || u64::from_str_radix(f[2], 16).ok()? != 0 {
                return None;
            }
            let start = u64::from_str_radix(f[0].split('-').next()?, 16).ok()?;
            Some((PathBuf::from(f[5]), start))
        })
        .collect()
}

/// `_PyRuntime`'s address, if `binary` (mapped with offset 0 at `base`) has `.PyRuntime`.
fn runtime_address(binary: &Path, base: u64) -> Option<u64> {
    let data = std::fs::read(binary).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let section = file.section_by_name(".PyRuntime")?;
    // The load bias: where the first loadable segment's page landed, less its address.
    let first = file.segments().map(|s| s.address()).min()? & !0xfff;
    Some(base - first + section.address())
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

/// What it takes to read another process's memory, for messages.
pub fn ptrace_fix() -> String {
    format!(
        "That needs ptrace permission: the same user with /proc/sys/kernel/yama/ptrace_scope \
         at 0 (it is {}), or CAP_SYS_PTRACE (run perfpy as root, e.g. with sudo; in a \
         container, add --cap-add=SYS_PTRACE)",
        std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "not set".into())
    )
}

pub(crate) fn errno_refusal(pid: u32, what: &str, e: std::io::Error) -> Refusal {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => Refusal::Permission(format!(
            "not allowed to {what} the memory of process {pid} ({e}). {}",
            ptrace_fix()
        )),
        Some(libc::ESRCH) => Refusal::NotFound(format!("process {pid} has exited")),
        _ => Refusal::Other(format!("cannot {what} the memory of process {pid}: {e}")),
    }
}

pub(crate) fn read(pid: u32, address: u64, buf: &mut [u8]) -> Result<(), Refusal> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, which is valid for writes of its length; the remote
    // range is only read by the kernel, which checks it against the target's mappings.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(errno_refusal(pid, "read", std::io::Error::last_os_error()));
    }
    if n as usize != buf.len() {
        return Err(Refusal::Other(format!(
            "short read of process {pid}'s memory at {address:#x}"
        )));
    }
    Ok(())
}

pub(crate) fn write(pid: u32, address: u64, data: &[u8]) -> Result<(), Refusal> {
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: `local` describes `data`, valid for reads of its length; the kernel writes the
    // target's memory only where it is mapped writable, after checking ptrace permission.
    let n = unsafe { libc::process_vm_writev(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(errno_refusal(pid, "write", std::io::Error::last_os_error()));
    }
    if n as usize != data.len() {
        return Err(Refusal::Other(format!(
            "short write to process {pid}'s memory at {address:#x}"
        )));
    }
    Ok(())
}

fn read_u64(pid: u32, address: u64) -> Result<u64, Refusal> {
    let mut b = [0u8; 8];
    read(pid, address, &mut b)?;
    Ok(u64::from_le_bytes(b))
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
    let interp = read_u64(pid, rt.address + rt.interpreters_head)?;
    if interp == 0 {
        return Err(Refusal::Other(format!(
            "process {pid} has no interpreter (not started, or finalizing)"
        )));
    }
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
    fn finds_the_files_mapped_from_offset_zero() {
        let maps = "\
55d0c0000000-55d0c0100000 r--p 00000000 08:01 42 /usr/bin/python3.14
55d0c0100000-55d0c0400000 r-xp 00100000 08:01 42 /usr/bin/python3.14
7f0000000000-7f0000001000 rw-p 00000000 00:00 0
7f0000100000-7f0000200000 r--p 00000000 08:01 43 /usr/lib/libc.so.6
";
        assert_eq!(
            file_bases(maps),
            [
                (PathBuf::from("/usr/bin/python3.14"), 0x55d0c0000000),
                (PathBuf::from("/usr/lib/libc.so.6"), 0x7f0000100000)
            ]
        );
    }

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
