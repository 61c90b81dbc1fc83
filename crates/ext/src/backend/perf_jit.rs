//! The `perf_jit` backend: this process's `/tmp/jit-<pid>.dump`.
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
//! * Stubs are spaced by what perf maps for each (code, then unwind information), so
//!   injected mappings never overlap.
//! * A dump can't be copied into a forked child (its records carry the writer's pid): a
//!   persist-after-fork child announces the parent's stubs again in its own dump, from the
//!   log kept here.

use super::{fd, Announcement, Backend};
use crate::error::Error;
use perfpy_format::eh_frame::{self, Arch, StubUnwindInfo};
use perfpy_format::files;
use perfpy_format::jitdump::{self, CodeLoad, DebugEntry};
use perfpy_trampoline::StubPool;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// An open jitdump and its marker mapping.
#[derive(Debug)]
struct JitFile {
    fd: OwnedFd,
    path: PathBuf,
    marker: usize,
    marker_len: usize,
    unwind: StubUnwindInfo,
    next_index: u64,
    pid: u32,
}

/// Monotonic clock in nanoseconds (what `perf record -k 1` uses).
fn monotonic_ns() -> u64 {
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
fn unwind_info(code_len: usize) -> Result<StubUnwindInfo, Error> {
    let arch = Arch::host().ok_or(Error::UnsupportedArch(std::env::consts::ARCH))?;
    eh_frame::stub_unwind_info(arch, code_len).map_err(|e| Error::UnwindInfo(e.to_string()))
}

impl JitFile {
    /// Creates this process's dump and its marker mapping, and writes the header.
    fn open_current(unwind: StubUnwindInfo) -> Result<JitFile, Error> {
        let pid = std::process::id();
        let path = files::Kind::Jitdump.path(pid);
        let fd = fd::open_nofollow(&path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC)?;
        super::roster::enroll();
        let mut header = Vec::with_capacity(jitdump::HEADER_SIZE);
        let arch = Arch::host().map_or(0, Arch::elf_machine);
        jitdump::write_header(&mut header, arch, pid, monotonic_ns());
        fd::write_all(fd.as_raw_fd(), &header).map_err(|source| Error::Write {
            path: path.clone(),
            source,
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
            return Err(Error::File(io::Error::new(
                e.kind(),
                format!(
                    "cannot map {} executable, which is how perf finds it: {e} \
                     (is /tmp mounted noexec?)",
                    path.display()
                ),
            )));
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
    fn write_stub(&mut self, addr: u64, code: &[u8], stub: &Announcement) -> Result<(), Error> {
        let now = monotonic_ns();
        let mut out = Vec::with_capacity(256 + stub.name.len());
        jitdump::write_unwinding_info(&mut out, now, &self.unwind);
        if let Some((file, line)) = &stub.location {
            let entry = DebugEntry {
                addr,
                line: *line,
                file,
            };
            jitdump::write_debug_info(&mut out, now, addr, &[entry]);
        }
        let load = CodeLoad {
            pid: self.pid,
            tid: gettid(),
            code_addr: addr,
            code_index: self.next_index,
            name: &stub.name,
            code,
        };
        jitdump::write_code_load(&mut out, now, &load);
        fd::write_all(self.fd.as_raw_fd(), &out).map_err(|source| Error::Write {
            path: self.path.clone(),
            source,
        })?;
        self.next_index += 1;
        Ok(())
    }
}

impl Drop for JitFile {
    fn drop(&mut self) {
        // SAFETY: unmapping our own marker mapping, which nothing else references.
        unsafe { libc::munmap(self.marker as *mut libc::c_void, self.marker_len) };
    }
}

/// The `perf_jit` backend's state.
pub(crate) struct PerfJit {
    pool: Option<StubPool>,
    dump: Option<JitFile>,
    /// Every stub announced in this process's dump (see the module docs on fork).
    log: Vec<Announcement>,
    /// In a persist-after-fork child: announce `log` when the child's dump is opened.
    replay: bool,
}

impl PerfJit {
    pub(crate) const fn new() -> PerfJit {
        PerfJit {
            pool: None,
            dump: None,
            log: Vec::new(),
            replay: false,
        }
    }

    /// This process's dump, opened first if needed (see [`Backend::ensure_open`]).
    fn open(&mut self) -> Result<&mut JitFile, Error> {
        if let Some(dump) = self.dump.take() {
            return Ok(self.dump.insert(dump));
        }
        let len = self.pool()?.unique_len();
        let mut dump = JitFile::open_current(unwind_info(len)?)?;
        if std::mem::take(&mut self.replay) {
            for stub in &self.log {
                dump.write_stub(stub.addr as u64, stub_bytes(stub.addr, len), stub)?;
            }
        }
        Ok(self.dump.insert(dump))
    }
}

/// The announced bytes of the stub at `addr`.
fn stub_bytes(addr: usize, len: usize) -> &'static [u8] {
    // SAFETY: `addr` is a stub handed out by the jit pool, whose `unique_len` is `len`: that
    // many readable bytes of an arena that is never unmapped.
    unsafe { std::slice::from_raw_parts(addr as *const u8, len) }
}

impl Backend for PerfJit {
    fn pool(&mut self) -> Result<&mut StubPool, Error> {
        let pool = match self.pool.take() {
            Some(pool) => pool,
            None => {
                // perf maps each stub's code followed by its unwind information: stubs must
                // be at least that far apart.
                let template = super::template()?;
                let code_len = StubPool::new(template).unique_len();
                let extent = jitdump::mapped_extent(code_len, &unwind_info(code_len)?);
                StubPool::with_stride(template, extent)
            }
        };
        Ok(self.pool.insert(pool))
    }

    fn pool_made(&self) -> Option<&StubPool> {
        self.pool.as_ref()
    }

    fn ensure_open(&mut self) -> Result<(), Error> {
        self.open().map(drop)
    }

    fn has_inherited(&self) -> bool {
        self.replay
    }

    fn announce(&mut self, stub: &Announcement) -> Result<(), Error> {
        let len = self.pool()?.unique_len();
        self.open()?
            .write_stub(stub.addr as u64, stub_bytes(stub.addr, len), stub)?;
        self.log.push(stub.clone());
        Ok(())
    }

    fn before_fork(&mut self) {}

    fn after_fork_child(&mut self, persist: bool) {
        // Dropping the parent's dump unmaps the marker and closes the descriptor; the child
        // never writes the parent's file.
        self.dump = None;
        if persist {
            self.replay = true;
        } else {
            self.log.clear();
        }
    }

    fn release(&mut self) {
        // Dropping the dump unmaps the marker and closes the descriptor.
        self.dump = None;
        self.log.clear();
        self.replay = false;
    }

    fn at_exit(&mut self) {
        if let Some(dump) = self.dump.as_mut() {
            if dump.pid == std::process::id() {
                let mut out = Vec::with_capacity(jitdump::RECORD_HEADER_SIZE);
                jitdump::write_code_close(&mut out, monotonic_ns());
                let _ = fd::write_all(dump.fd.as_raw_fd(), &out);
            }
        }
    }

    fn path(&self) -> Option<&Path> {
        self.dump.as_ref().map(|d| d.path.as_path())
    }

    fn file_len(&self) -> Option<u64> {
        self.dump
            .as_ref()
            .and_then(|d| fd::len(d.fd.as_raw_fd()).ok())
    }
}
