//! This process's `/tmp/jit-<pid>.dump` (the `perf_jit` backend).
//!
//! * Opened `O_RDWR|O_CREAT|O_TRUNC|O_NOFOLLOW|O_CLOEXEC`, mode 0600 (a dump of a dead process
//!   with our pid is truncated; a planted symlink is refused).
//! * Its first page is mapped read+execute for the life of the process: perf records only
//!   executable mappings, and `perf inject --jit` finds the dump through that mapping's name.
//!   A `noexec` /tmp makes this fail, and the backend then reports why.
//! * Each stub is announced with one `write(2)` holding its `JIT_CODE_UNWINDING_INFO`,
//!   `JIT_CODE_DEBUG_INFO` and `JIT_CODE_LOAD` records: nothing is buffered, so the file is
//!   complete before the stub first runs, after SIGKILL, and across `fork()` (CPython 3.13
//!   loses or duplicates its 2 MiB stdio buffer there).
//! * The records carry the stub's real bytes, code and index: every stub's bytes differ,
//!   so perf versions that identify injected code by its bytes never merge two functions.

use perfpy_format::eh_frame::{self, Arch, StubUnwindInfo};
use perfpy_format::jitdump::{self, CodeLoad, DebugEntry};
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// An open jitdump and its marker mapping.
#[derive(Debug)]
pub(crate) struct JitFile {
    fd: OwnedFd,
    path: PathBuf,
    marker: usize,
    marker_len: usize,
    unwind: StubUnwindInfo,
    next_index: u64,
    pid: u32,
}

pub(crate) fn path_for(pid: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/jit-{pid}.dump"))
}

/// Monotonic clock in nanoseconds (what `perf record -k 1` uses).
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// The unwind information for stubs whose announced bytes are `code_len` long.
pub(crate) fn unwind_info(code_len: usize) -> io::Result<StubUnwindInfo> {
    let arch = Arch::host().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "no jitdump support for this architecture",
        )
    })?;
    eh_frame::stub_unwind_info(arch, code_len)
        .map_err(|e| io::Error::other(format!("cannot encode the stub's unwind information: {e}")))
}

impl JitFile {
    /// Creates this process's dump and its marker mapping, and writes the header.
    pub(crate) fn open_current(unwind: StubUnwindInfo) -> io::Result<JitFile> {
        let pid = std::process::id();
        let path = path_for(pid);
        let fd =
            crate::map_file::open_nofollow(&path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC)?;
        let mut header = Vec::with_capacity(jitdump::HEADER_SIZE);
        let arch = Arch::host().map_or(0, Arch::elf_machine);
        jitdump::write_header(&mut header, arch, pid, monotonic_ns());
        crate::map_file::write_all(fd.as_raw_fd(), &header).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
        })?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        // SAFETY: maps the first page of our own file read+execute; the result is checked.
        let marker = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page,
                libc::PROT_READ | libc::PROT_EXEC,
                libc::MAP_PRIVATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if marker == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "cannot map {} executable, which is how perf finds it: {e} \
                     (is /tmp mounted noexec?)",
                    path.display()
                ),
            ));
        }
        Ok(JitFile {
            fd,
            path,
            marker: marker as usize,
            marker_len: page,
            unwind,
            next_index: 1,
            pid,
        })
    }

    /// Announces the stub at `addr` whose announced bytes are `code`.
    pub(crate) fn write_stub(
        &mut self,
        addr: u64,
        code: &[u8],
        name: &str,
        location: Option<(&str, i32)>,
    ) -> io::Result<()> {
        let now = monotonic_ns();
        let mut out = Vec::with_capacity(256 + name.len());
        jitdump::write_unwinding_info(&mut out, now, &self.unwind);
        if let Some((file, line)) = location {
            let entry = DebugEntry { addr, line, file };
            jitdump::write_debug_info(&mut out, now, addr, &[entry]);
        }
        let load = CodeLoad {
            pid: self.pid,
            tid: gettid(),
            code_addr: addr,
            code_index: self.next_index,
            name,
            code,
        };
        jitdump::write_code_load(&mut out, now, &load);
        crate::map_file::write_all(self.fd.as_raw_fd(), &out)?;
        self.next_index += 1;
        Ok(())
    }

    /// Writes `JIT_CODE_CLOSE`.
    pub(crate) fn write_close(&mut self) -> io::Result<()> {
        let mut out = Vec::with_capacity(jitdump::RECORD_HEADER_SIZE);
        jitdump::write_code_close(&mut out, monotonic_ns());
        crate::map_file::write_all(self.fd.as_raw_fd(), &out)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> io::Result<u64> {
        crate::map_file::fd_len(self.fd.as_raw_fd())
    }

    /// Forgets the file without writing to it (in a forked child: it is the parent's). The
    /// marker mapping is released and the descriptor returned for the caller to close.
    pub(crate) fn abandon(self) -> RawFd {
        // SAFETY: unmapping our own marker mapping, which nothing else references.
        unsafe { libc::munmap(self.marker as *mut libc::c_void, self.marker_len) };
        self.fd.into_raw_fd()
    }
}

/// Opens this process's jitdump if it is not open yet. A persist-after-fork child then
/// announces every stub its parent had announced, under its own pid.
pub(crate) fn ensure_open(inner: &mut crate::state::Inner) -> io::Result<()> {
    if inner.jit.is_some() {
        return Ok(());
    }
    let len = crate::hook::pool_for(inner, crate::state::Backend::PerfJit)
        .map_err(io::Error::other)?
        .unique_len();
    inner.jit = Some(JitFile::open_current(unwind_info(len)?)?);
    if std::mem::take(&mut inner.jit_replay) {
        let log = std::mem::take(&mut inner.jit_log);
        let replayed = log
            .iter()
            .try_for_each(|entry| crate::hook::write_jit(inner, entry).map_err(io::Error::other));
        inner.jit_log = log;
        replayed?;
    }
    Ok(())
}

/// At process exit: `JIT_CODE_CLOSE` in this process's dump.
extern "C" fn close_at_exit() {
    // try_lock: never block exit on a lock some other thread holds.
    if let Ok(mut inner) = crate::state::INNER.try_lock() {
        if let Some(jit) = inner.jit.as_mut() {
            if jit.pid == std::process::id() {
                let _ = jit.write_close();
            }
        }
    }
}

/// Registers [`close_at_exit`], once per process.
pub(crate) fn install_exit_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a plain extern "C" function that lives forever.
        unsafe { libc::atexit(close_at_exit) };
    });
}
