//! Another process, as far as switching names on in it takes: the files it maps (from
//! `/proc/<pid>/maps`, found through `/proc/<pid>/root` so a container's are too), where a
//! symbol of one of them is in its memory, and reading and writing that memory with
//! `process_vm_readv`/`process_vm_writev`, which need the same permission as ptrace.

use object::{Object, ObjectSegment};
use std::path::{Path, PathBuf};

/// Why names can't be switched on in a process from outside.
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

/// Each file process `pid` maps, with the address its offset 0 is mapped at.
pub fn mapped_files(pid: u32) -> Result<Vec<(PathBuf, u64)>, Refusal> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| errno_refusal(pid, "read", e))?;
    Ok(file_bases(&maps))
}

/// Each mapped file of a `/proc/<pid>/maps` text and the address its offset 0 is mapped at.
fn file_bases(maps: &str) -> Vec<(PathBuf, u64)> {
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

/// `path`, a file process `pid` maps, from here (see [`crate::procfs::paths_of`]).
pub fn on_disk(pid: u32, path: &Path) -> PathBuf {
    let candidates = crate::procfs::paths_of(pid, path);
    candidates
        .iter()
        .find(|p| p.exists())
        .unwrap_or(&candidates[0])
        .clone()
}

/// Where `svma` (an address in `file`'s own numbering) is in a process that maps `file`
/// with offset 0 at `base`: relocated by the load bias, where the first loadable segment's
/// page landed less its address.
pub fn in_memory(file: &object::File<'_>, base: u64, svma: u64) -> Option<u64> {
    let first = file.segments().map(|s| s.address()).min()? & !0xfff;
    Some(base.wrapping_sub(first).wrapping_add(svma))
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

fn errno_refusal(pid: u32, what: &str, e: std::io::Error) -> Refusal {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => Refusal::Permission(format!(
            "not allowed to {what} the memory of process {pid} ({e}). {}",
            ptrace_fix()
        )),
        Some(libc::ESRCH) => Refusal::NotFound(format!("process {pid} has exited")),
        Some(libc::ENOENT) => Refusal::NotFound(format!("no process {pid}")),
        _ => Refusal::Other(format!("cannot {what} the memory of process {pid}: {e}")),
    }
}

/// Fills `buf` from process `pid`'s memory at `address`.
pub fn read(pid: u32, address: u64, buf: &mut [u8]) -> Result<(), Refusal> {
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

/// A little-endian word of process `pid`'s memory.
pub fn read_u64(pid: u32, address: u64) -> Result<u64, Refusal> {
    let mut b = [0u8; 8];
    read(pid, address, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// A little-endian 32-bit word of process `pid`'s memory.
pub fn read_u32(pid: u32, address: u64) -> Result<u32, Refusal> {
    let mut b = [0u8; 4];
    read(pid, address, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// Writes `data` into process `pid`'s memory at `address`.
pub fn write(pid: u32, address: u64, data: &[u8]) -> Result<(), Refusal> {
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
    fn reads_its_own_memory_and_refuses_a_missing_process() {
        let word = 0x1122_3344_5566_7788u64;
        let me = std::process::id();
        assert_eq!(read_u64(me, &word as *const u64 as u64), Ok(word));
        assert!(mapped_files(me)
            .unwrap()
            .iter()
            .any(|(p, _)| p == &std::env::current_exe().unwrap()));
        // pid_max is at most 2^22: this pid can't exist.
        assert!(matches!(mapped_files(1 << 23), Err(Refusal::NotFound(_))));
    }
}
