//! This process's `/tmp/perf-<pid>.map`.
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

use crate::state::Inner;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// An open map file.
#[derive(Debug)]
pub(crate) struct MapFile {
    fd: OwnedFd,
    path: PathBuf,
}

/// The map path perf reads for `pid`.
pub(crate) fn path_for(pid: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/perf-{pid}.map"))
}

impl MapFile {
    /// Opens the map of the calling process, replacing a stale one.
    pub(crate) fn open_current() -> io::Result<MapFile> {
        let path = path_for(std::process::id());
        remove_if_stale(&path);
        let fd = open_nofollow(&path, libc::O_RDWR | libc::O_CREAT | libc::O_APPEND)?;
        let meta = fs::File::from(fd.try_clone()?).metadata()?;
        if !meta.file_type().is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        Ok(MapFile { fd, path })
    }

    /// Appends one entry in a single write.
    pub(crate) fn write_entry(&mut self, start: u64, size: u64, name: &str) -> io::Result<()> {
        let mut line = Vec::with_capacity(32 + name.len());
        perfpy_format::perf_map::write_entry(&mut line, start, size, name);
        write_all(self.fd.as_raw_fd(), &line)
    }

    /// Current length of the file.
    pub(crate) fn len(&self) -> io::Result<u64> {
        fd_len(self.fd.as_raw_fd())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Gives up ownership of the descriptor (kept open for a persist-after-fork copy).
    pub(crate) fn into_raw_fd(self) -> RawFd {
        use std::os::fd::IntoRawFd;
        self.fd.into_raw_fd()
    }
}

/// Opens `path` with `flags | O_NOFOLLOW | O_CLOEXEC`, mode 0600 if created. The error names
/// the path, and says so when the path is a symbolic link (which is refused, not followed).
pub(crate) fn open_nofollow(path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a NUL-terminated path; the result is checked.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        let hint = if e.raw_os_error() == Some(libc::ELOOP) {
            " (it is a symbolic link; perfpy does not follow links there)"
        } else {
            ""
        };
        return Err(io::Error::new(
            e.kind(),
            format!("cannot open {}: {e}{hint}", path.display()),
        ));
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Length of the open file `fd`.
pub(crate) fn fd_len(fd: RawFd) -> io::Result<u64> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `fd` is open; `st` is a valid out-pointer.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded and filled `st`.
    Ok(unsafe { st.assume_init() }.st_size as u64)
}

/// Runs a read/write-style syscall until it is not interrupted; its byte count or error.
fn retry_eintr(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Writes all of `buf` to `fd`, retrying on EINTR and short writes.
pub(crate) fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `fd` is open; the buffer is valid for `buf.len()` bytes.
        let n = retry_eintr(|| unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// Opens this process's map if it is not open yet. A persist-after-fork child first copies
/// the parent's entries (as they were at the fork) into it.
pub(crate) fn ensure_open(inner: &mut Inner) -> io::Result<()> {
    if inner.map.is_some() {
        return Ok(());
    }
    let map = MapFile::open_current()?;
    if let Some((fd, len)) = inner.inherited_map.take() {
        let copied = copy_prefix(fd, len, &map);
        // SAFETY: `fd` is the parent's map descriptor, owned by us since the fork.
        unsafe { libc::close(fd) };
        copied?;
    }
    inner.map = Some(map);
    Ok(())
}

/// Copies the first `len` bytes of `src` to the end of `dst`.
fn copy_prefix(src: RawFd, len: u64, dst: &MapFile) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut off: u64 = 0;
    while off < len {
        let want = buf.len().min((len - off) as usize);
        let dest = buf.as_mut_ptr();
        // SAFETY: `src` is open for reading; the buffer is valid for `want` bytes.
        let n = retry_eintr(|| unsafe { libc::pread(src, dest.cast(), want, off as libc::off_t) })?;
        if n == 0 {
            break;
        }
        write_all(dst.fd.as_raw_fd(), &buf[..n])?;
        off += n as u64;
    }
    Ok(())
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
