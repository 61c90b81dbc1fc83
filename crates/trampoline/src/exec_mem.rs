//! Read+execute memory that holds a given image, made without ever being writable and
//! executable at the same time.

use crate::Error;
use std::io;

/// How a block of executable memory was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Anonymous memory written while read+write, then `mprotect`ed to read+execute.
    Mprotect,
    /// The image was written to a `memfd` which was then mapped read+execute. Used where
    /// the system forbids making anonymous memory executable.
    Memfd,
}

/// A read+execute mapping that is never unmapped (dropping it leaks the mapping on purpose:
/// code in it may still be on a stack).
#[derive(Debug)]
pub struct ExecMemory {
    addr: usize,
    len: usize,
    method: Method,
}

impl ExecMemory {
    /// Maps `image` read+execute, by `mprotect` if the system allows it, else by memfd.
    pub fn new(image: &[u8]) -> Result<ExecMemory, Error> {
        let len = mapped_len(image);
        let (addr, method) = match map_by_mprotect(image, len) {
            Ok(addr) => (addr, Method::Mprotect),
            Err(Step::Map(e)) => return Err(Error::Map(e)),
            Err(Step::Protect(mprotect)) => match map_by_memfd(image, len) {
                Ok(addr) => (addr, Method::Memfd),
                Err(memfd) => return Err(Error::NoExec { mprotect, memfd }),
            },
        };
        flush_icache(addr, len);
        Ok(ExecMemory { addr, len, method })
    }

    /// Maps `image` read+execute using exactly `method` (no fallback).
    pub fn with_method(image: &[u8], method: Method) -> io::Result<ExecMemory> {
        let len = mapped_len(image);
        let addr = match method {
            Method::Mprotect => {
                map_by_mprotect(image, len).map_err(|(Step::Map(e) | Step::Protect(e))| e)?
            }
            Method::Memfd => map_by_memfd(image, len)?,
        };
        flush_icache(addr, len);
        Ok(ExecMemory { addr, len, method })
    }

    /// Start address.
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// Length in bytes (whole pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: at least one page is mapped).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How it was made.
    pub fn method(&self) -> Method {
        self.method
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// Which step of the mprotect method failed.
enum Step {
    Map(io::Error),
    Protect(io::Error),
}

fn mapped_len(image: &[u8]) -> usize {
    image.len().max(1).next_multiple_of(page_size())
}

fn map_by_mprotect(image: &[u8], len: usize) -> Result<usize, Step> {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory; the result is checked against MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Step::Map(io::Error::last_os_error()));
    }
    // SAFETY: `p` is a fresh read+write mapping of `len >= image.len()` bytes that nothing
    // else references; the source is a valid slice that cannot overlap it.
    unsafe { std::ptr::copy_nonoverlapping(image.as_ptr(), p.cast::<u8>(), image.len()) };
    // SAFETY: `p..p+len` is the mapping made above.
    if unsafe { libc::mprotect(p, len, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
        let err = io::Error::last_os_error();
        // SAFETY: unmapping the mapping made above, which nothing else references yet.
        unsafe { libc::munmap(p, len) };
        return Err(Step::Protect(err));
    }
    Ok(p as usize)
}

fn map_by_memfd(image: &[u8], len: usize) -> io::Result<usize> {
    // SAFETY: the name is a NUL-terminated literal; the result is checked.
    let fd = unsafe { libc::memfd_create(c"perfpy-trampolines".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let result = (|| {
        let mut padded = image.to_vec();
        padded.resize(len, 0);
        let mut written = 0;
        while written < padded.len() {
            // SAFETY: `fd` is the memfd opened above; the buffer range is in bounds.
            let n = unsafe {
                libc::write(
                    fd,
                    padded[written..].as_ptr().cast(),
                    padded.len() - written,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            written += n as usize;
        }
        // SAFETY: maps `len` bytes of the memfd just written; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_EXEC,
                libc::MAP_PRIVATE,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(p as usize)
    })();
    // SAFETY: `fd` is ours; the mapping keeps the memory alive after close.
    unsafe { libc::close(fd) };
    result
}

#[cfg(target_arch = "aarch64")]
fn flush_icache(addr: usize, len: usize) {
    extern "C" {
        // libgcc / compiler-rt: cleans the data cache and invalidates the instruction cache
        // for [begin, end) so that freshly written code is fetched correctly.
        fn __clear_cache(begin: *mut libc::c_char, end: *mut libc::c_char);
    }
    // SAFETY: the range is a mapping this module just made and still owns.
    unsafe { __clear_cache(addr as *mut libc::c_char, (addr + len) as *mut libc::c_char) };
}

#[cfg(not(target_arch = "aarch64"))]
fn flush_icache(_addr: usize, _len: usize) {
    // x86 keeps instruction and data caches coherent.
}
