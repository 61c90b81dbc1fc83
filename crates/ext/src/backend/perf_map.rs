//! The `perf` backend: this process's `/tmp/perf-<pid>.map`.
//!
//! * Path: `/tmp/perf-<pid>.map`, which is the only place perf looks.
//! * Opened `O_RDWR|O_CREAT|O_APPEND|O_NOFOLLOW|O_CLOEXEC`, mode 0600: a symlink planted at
//!   the path is refused, not followed, and the descriptor does not leak into `exec`ed
//!   programs. Read access lets a persist-after-fork child copy the parent's entries.
//! * A map left by a dead process whose pid we now have (last written before this process
//!   started) is removed first; a map this process already writes (CPython's own writer, or
//!   another JIT in the same process) is appended to.
//! * Each line goes out in one `write(2)` with nothing buffered, so every entry is in the
//!   file before its function first runs and survives SIGKILL, `os._exit` and crashes.
//! * After `fork()` the child closes the parent's descriptor; its own map is created with
//!   its first line (children that only `exec` leave nothing behind). With persist-after-fork
//!   the parent's descriptor is kept until the child's map is opened, which starts as a copy
//!   of the parent's as of the fork.

use super::{fd, Announcement, Backend};
use crate::error::Error;
use perfpy_format::files;
use perfpy_trampoline::StubPool;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// An open map file.
#[derive(Debug)]
struct MapFile {
    fd: OwnedFd,
    path: PathBuf,
}

impl MapFile {
    /// Opens the map of the calling process, replacing a stale one.
    fn open_current() -> io::Result<MapFile> {
        let path = files::Kind::PerfMap.path(std::process::id());
        remove_if_stale(&path);
        let fd = fd::open_nofollow(&path, libc::O_RDWR | libc::O_CREAT | libc::O_APPEND)?;
        let meta = fs::File::from(fd.try_clone()?).metadata()?;
        if !meta.file_type().is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        super::roster::enroll();
        Ok(MapFile { fd, path })
    }

    /// Appends one entry in a single write.
    fn write_entry(&mut self, start: u64, size: u64, name: &str) -> Result<(), Error> {
        let mut line = Vec::with_capacity(32 + name.len());
        perfpy_format::perf_map::write_entry(&mut line, start, size, name);
        fd::write_all(self.fd.as_raw_fd(), &line).map_err(|source| Error::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// The `perf` backend's state.
pub(crate) struct PerfMap {
    pool: Option<StubPool>,
    map: Option<MapFile>,
    /// In a persist-after-fork child: the parent's map descriptor, inherited through
    /// `fork()`, its length at the fork, to copy before writing the child's own lines, and the
    /// file it had open then (device, inode).
    inherited: Option<Inherited>,
    /// Length of our map when a fork began (set before the fork, read in the child).
    len_at_fork: Option<u64>,
}

/// The parent's map, as a forked child holds it until it opens its own.
#[derive(Debug, Clone, Copy)]
struct Inherited {
    fd: RawFd,
    len: u64,
    file: (u64, u64),
}

impl PerfMap {
    pub(crate) const fn new() -> PerfMap {
        PerfMap {
            pool: None,
            map: None,
            inherited: None,
            len_at_fork: None,
        }
    }

    /// Appends one line to this process's map, as `PyUnstable_WritePerfMapEntry` does (for
    /// code that isn't a stub of ours).
    pub(crate) fn write_entry(&mut self, start: u64, size: u64, name: &str) -> Result<(), Error> {
        self.open()?.write_entry(start, size, name)
    }

    /// This process's map, opened first if needed (see [`Backend::ensure_open`]).
    fn open(&mut self) -> Result<&mut MapFile, Error> {
        if let Some(map) = self.map.take() {
            return Ok(self.map.insert(map));
        }
        let map = MapFile::open_current()?;
        if let Some(parent) = self.inherited.take() {
            // A child forked from C may run long before its first stub: if the program closed
            // that descriptor number and opened something of its own under it meanwhile, it
            // is not ours to read or close any more (and the parent's names stay in the
            // parent's map, where perfpy report finds them).
            if fd::identity(parent.fd).ok() == Some(parent.file) {
                let copied = fd::copy_prefix(parent.fd, parent.len, map.fd.as_raw_fd());
                // SAFETY: `parent.fd` still has the parent's map open (same device and inode
                // as at the fork): the descriptor we inherited, owned by us since the fork.
                unsafe { libc::close(parent.fd) };
                copied?;
            }
        }
        Ok(self.map.insert(map))
    }
}

impl Backend for PerfMap {
    fn pool(&mut self) -> Result<&mut StubPool, Error> {
        let pool = match self.pool.take() {
            Some(pool) => pool,
            None => StubPool::new(super::template()?),
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
        self.inherited.is_some()
    }

    fn announce(&mut self, stub: &Announcement) -> Result<(), Error> {
        let size = super::template()?.code.len();
        self.write_entry(stub.addr as u64, size as u64, &stub.name)
    }

    fn before_fork(&mut self) {
        self.len_at_fork = self.file_len();
    }

    fn after_fork_child(&mut self, persist: bool) {
        let len = self.len_at_fork.take();
        if let Some(map) = self.map.take() {
            let file = fd::identity(map.fd.as_raw_fd()).ok();
            let parent = map.fd.into_raw_fd();
            match (persist, len, file) {
                (true, Some(len), Some(file)) => {
                    self.inherited = Some(Inherited {
                        fd: parent,
                        len,
                        file,
                    })
                }
                // SAFETY: `parent` is the inherited descriptor, which the child no longer uses.
                _ => unsafe {
                    libc::close(parent);
                },
            }
        }
    }

    fn release(&mut self) {
        self.map = None;
    }

    fn at_exit(&mut self) {}

    fn path(&self) -> Option<&Path> {
        self.map.as_ref().map(|m| m.path.as_path())
    }

    fn file_len(&self) -> Option<u64> {
        self.map
            .as_ref()
            .and_then(|m| fd::len(m.fd.as_raw_fd()).ok())
    }
}

/// Removes `path` if it is a regular file of ours last modified before this process began.
fn remove_if_stale(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if !meta.file_type().is_file() || meta.uid() != euid {
        return;
    }
    let (Ok(mtime), Some(started)) = (meta.modified(), process_start_time()) else {
        return;
    };
    if mtime < started {
        let _ = fs::remove_file(path);
    }
}

/// When this process started (for a forked child: when it was forked), as wall-clock time.
fn process_start_time() -> Option<SystemTime> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces), starting at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let start_ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    let since_boot = Duration::from_nanos(start_ticks * 1_000_000_000 / hz as u64);
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return None;
    }
    let now_since_boot = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
    let boot = SystemTime::now().checked_sub(now_since_boot)?;
    boot.checked_add(since_boot)
}
