//! The file-descriptor calls both backends' files are written with: one `open` that refuses
//! symbolic links, one `write` loop, one `fstat`. Plain `libc`, so a write from the cold path
//! (or from a `fork()` child) never goes through a buffer that could lose or duplicate data.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;

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

/// `fstat` of the open file `fd`.
fn stat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `st` is a valid out-pointer; fstat checks `fd` itself.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded and filled `st`.
    Ok(unsafe { st.assume_init() })
}

/// Length of the open file `fd`.
pub(crate) fn len(fd: RawFd) -> io::Result<u64> {
    Ok(stat(fd)?.st_size as u64)
}

/// Which file `fd` has open (device and inode), to tell later whether a descriptor number
/// still means the same file.
pub(crate) fn identity(fd: RawFd) -> io::Result<(u64, u64)> {
    let st = stat(fd)?;
    Ok((st.st_dev, st.st_ino))
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

/// Copies the first `len` bytes of `src` to the end of `dst`.
pub(crate) fn copy_prefix(src: RawFd, len: u64, dst: RawFd) -> io::Result<()> {
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
        write_all(dst, &buf[..n])?;
        off += n as u64;
    }
    Ok(())
}
