//! Per-function trampolines in executable memory.
//!
//! A profiler that samples native stacks sees one anonymous `_PyEval_EvalFrameDefault` per
//! Python call. If each Python function is entered through its *own* copy of a tiny stub that
//! calls the evaluator, the return address left by that copy identifies the function, and a
//! perf map (or jitdump) can name it. This crate owns that memory:
//!
//! * [`arch`]: the stub's machine code for each architecture. Each stub builds a frame
//!   record, so frame-pointer unwinders walk through it.
//! * [`StubPool`]: a bump allocator over 64 KiB arenas, pre-filled with stub copies and made
//!   read+execute before any stub is handed out. Memory is never writable and executable at
//!   once (W^X). Where the host refuses to make anonymous memory executable (systemd's
//!   `MemoryDenyWriteExecute=`, `prctl(PR_SET_MDWE)`), the copies are written to a memfd and
//!   mapped read+execute from there. Arenas are never unmapped: a stub may be on some
//!   thread's stack for as long as the process lives.
//!
//! Not here: which stub belongs to which function, and what perf is told. That is the
//! extension's business.

pub mod arch;
mod exec_mem;

pub use arch::Template;
pub use exec_mem::{ExecMemory, Method};

use std::fmt;

/// Size of one arena, as in CPython (16 pages of 4 KiB).
pub const ARENA_SIZE: usize = 64 * 1024;

/// Why executable memory could not be had.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// This architecture has no trampoline template.
    UnsupportedArch(&'static str),
    /// `mmap` of a new arena failed.
    Map(std::io::Error),
    /// Making the arena executable failed by both methods.
    NoExec {
        /// The error from `mprotect(PROT_READ|PROT_EXEC)` on anonymous memory.
        mprotect: std::io::Error,
        /// The error from the memfd fallback.
        memfd: std::io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnsupportedArch(a) => {
                write!(f, "no trampoline template for the {a} architecture (x86_64 and aarch64 are supported)")
            }
            Error::Map(e) => write!(f, "could not map memory for trampolines: {e}"),
            Error::NoExec { mprotect, memfd } => write!(
                f,
                "the system refuses executable memory for trampolines \
                 (mprotect: {mprotect}; memfd fallback: {memfd}); \
                 this happens under MemoryDenyWriteExecute=, prctl(PR_SET_MDWE) or SELinux deny_execmem"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// One trampoline: `size` bytes of code at `addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stub {
    /// Start of the stub's code.
    pub addr: usize,
    /// Length of its code (the template size, which is what perf is told).
    pub size: usize,
    /// Position of this stub among all stubs the pool handed out (0, 1, 2, ...).
    pub index: u64,
}

/// Hands out stubs from arenas that are never unmapped.
#[derive(Debug)]
pub struct StubPool {
    template: &'static Template,
    /// Distance between stubs (the template's stride, or more).
    stride: usize,
    arenas: Vec<ExecMemory>,
    /// Next free slot in the last arena.
    next_slot: usize,
    handed_out: u64,
}

impl StubPool {
    /// A pool for the host architecture. Maps nothing until the first [`StubPool::alloc`].
    pub fn for_host() -> Result<StubPool, Error> {
        let template = arch::host().ok_or(Error::UnsupportedArch(std::env::consts::ARCH))?;
        Ok(StubPool::new(template))
    }

    /// A pool of copies of `template`.
    pub fn new(template: &'static Template) -> StubPool {
        StubPool::with_stride(template, template.stride)
    }

    /// A pool whose stubs are at least `min_stride` bytes apart (rounded up to 16), for
    /// consumers that attach data after each stub's code (perf maps the unwind information
    /// of a jitdump stub right after its code).
    pub fn with_stride(template: &'static Template, min_stride: usize) -> StubPool {
        let stride = min_stride
            .max(template.stride)
            .next_multiple_of(16)
            .min(ARENA_SIZE);
        StubPool {
            template,
            stride,
            arenas: Vec::new(),
            next_slot: usize::MAX,
            handed_out: 0,
        }
    }

    /// Slots per arena.
    pub fn slots_per_arena(&self) -> usize {
        ARENA_SIZE / self.stride
    }

    /// Distance between two stubs.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Bytes at each stub that are its own: the code, then its index (8 bytes, never
    /// executed). Tools that identify code by its bytes tell every stub apart by these.
    pub fn unique_len(&self) -> usize {
        self.template.code.len() + 8
    }

    /// The next unused stub, mapping a new arena when the current one is full.
    pub fn alloc(&mut self) -> Result<Stub, Error> {
        if self.next_slot >= self.slots_per_arena() {
            let image = self.arena_image(self.handed_out);
            self.arenas.push(ExecMemory::new(&image)?);
            self.next_slot = 0;
        }
        let Some(arena) = self.arenas.last() else {
            unreachable!("an arena was pushed above");
        };
        let stub = Stub {
            addr: arena.addr() + self.next_slot * self.stride,
            size: self.template.code.len(),
            index: self.handed_out,
        };
        self.next_slot += 1;
        self.handed_out += 1;
        Ok(stub)
    }

    /// The bytes of a fresh arena whose first slot will be stub number `first_index`.
    ///
    /// Every slot holds the template, then its own stub index (little-endian, in bytes that
    /// never run), then fill. The index makes each stub's bytes unique, so tools that derive
    /// an identity from code bytes (perf's jitdump build-ids) never merge two functions.
    fn arena_image(&self, first_index: u64) -> Vec<u8> {
        let t = self.template;
        let mut image = vec![t.fill; ARENA_SIZE];
        for (slot, chunk) in image.chunks_exact_mut(self.stride).enumerate() {
            chunk[..t.code.len()].copy_from_slice(t.code);
            let tail = &mut chunk[t.code.len()..];
            let idx = (first_index + slot as u64).to_le_bytes();
            if tail.len() >= idx.len() {
                tail[..idx.len()].copy_from_slice(&idx);
            }
        }
        image
    }

    /// The template this pool copies.
    pub fn template(&self) -> &'static Template {
        self.template
    }

    /// Number of arenas mapped so far.
    pub fn arena_count(&self) -> usize {
        self.arenas.len()
    }

    /// Bytes of executable memory mapped so far.
    pub fn mapped_bytes(&self) -> usize {
        self.arenas.iter().map(ExecMemory::len).sum()
    }

    /// Number of stubs handed out so far.
    pub fn stubs_handed_out(&self) -> u64 {
        self.handed_out
    }

    /// How the arenas were made executable (the last one's method), if any exist.
    pub fn method(&self) -> Option<Method> {
        self.arenas.last().map(ExecMemory::method)
    }

    /// Whether `addr` lies in one of this pool's arenas.
    pub fn contains(&self, addr: usize) -> bool {
        self.arenas
            .iter()
            .any(|a| (a.addr()..a.addr() + a.len()).contains(&addr))
    }
}

#[cfg(test)]
mod tests;
