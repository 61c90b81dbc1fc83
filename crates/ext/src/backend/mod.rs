//! How stubs are announced to perf: one interface, two backends (as CPython's
//! `_PyPerf_Callbacks`: init state, write state, free state).
//!
//! | backend            | file                  | perf unwinds stubs by       | module |
//! |--------------------|-----------------------|-----------------------------|--------|
//! | [`Kind::Perf`]     | `/tmp/perf-<pid>.map` | frame pointers (`-g`)       | [`perf_map`] |
//! | [`Kind::PerfJit`]  | `/tmp/jit-<pid>.dump` | each stub's DWARF CFI       | [`perf_jit`] |
//!
//! Each backend owns its stub pool (the jitdump's stubs are spaced wider, see
//! [`perf_jit`]), its file, and what it needs to carry its announcements into a forked
//! child. The cold path (`compile.rs`), the lifecycle and the fork handlers only see
//! [`Backend`], picked by `state::Backends::get`, the one `match` on the kind. The backends
//! import this file, never the other way round.
//!
//! Nothing here touches Python: names are worked out by the caller ([`Announcement`]).

mod fd;
pub(crate) mod perf_jit;
pub(crate) mod perf_map;
pub(crate) mod roster;

use crate::error::Error;
use perfpy_trampoline::StubPool;
use std::path::Path;

/// Which backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// `/tmp/perf-<pid>.map` lines.
    Perf,
    /// `/tmp/jit-<pid>.dump` records with unwind information.
    PerfJit,
}

impl Kind {
    /// CPython's name for the backend (`activate_stack_trampoline`'s argument).
    pub(crate) fn from_name(name: &str) -> Result<Kind, Error> {
        match name {
            "perf" => Ok(Kind::Perf),
            "perf_jit" => Ok(Kind::PerfJit),
            _ => Err(Error::InvalidBackend(name.to_string())),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Perf => "perf",
            Kind::PerfJit => "perf_jit",
        }
    }
}

/// One stub, as perf is told about it.
#[derive(Debug, Clone)]
pub(crate) struct Announcement {
    /// The stub's address.
    pub addr: usize,
    /// `py::<qualname>:<filename>`.
    pub name: Box<str>,
    /// The function's file and `def` line, where known (the jitdump's debug record).
    pub location: Option<(Box<str>, i32)>,
}

/// What every backend does. All methods run under the state lock.
pub(crate) trait Backend {
    /// The pool this backend's stubs come from, made on first use.
    fn pool(&mut self) -> Result<&mut StubPool, Error>;

    /// The pool, if it has been made.
    fn pool_made(&self) -> Option<&StubPool>;

    /// Opens this process's file if it is not open yet. In a persist-after-fork child, the
    /// parent's announcements (as of the fork) are carried into it first.
    fn ensure_open(&mut self) -> Result<(), Error>;

    /// In a persist-after-fork child, right after the fork: whether [`Backend::ensure_open`]
    /// has parent announcements to carry over (a pre-forked worker may never compile
    /// anything itself, yet its file must name what it runs).
    fn has_inherited(&self) -> bool;

    /// Tells perf about a stub from [`Backend::pool`], opening the file first if needed.
    /// Returns once the announcement is in the file.
    fn announce(&mut self, stub: &Announcement) -> Result<(), Error>;

    /// In the parent, just before `fork()`.
    fn before_fork(&mut self);

    /// In the child, just after `fork()`: stop writing the parent's file. With `persist`,
    /// keep what is needed to carry the parent's announcements into the child's own file.
    fn after_fork_child(&mut self, persist: bool);

    /// While the trampoline is off: stop writing the file and close it (perfpy record --pid
    /// collects and removes it). The next announcement opens a new one; stubs announced in
    /// the old one are announced again when next run (the caller bumps the generation).
    fn release(&mut self);

    /// At process exit.
    fn at_exit(&mut self);

    /// The file being written, if open.
    fn path(&self) -> Option<&Path>;

    /// Its length in bytes, if open.
    fn file_len(&self) -> Option<u64>;
}

/// The stub template for this machine.
pub(super) fn template() -> Result<&'static perfpy_trampoline::arch::Template, Error> {
    perfpy_trampoline::arch::host().ok_or(Error::UnsupportedArch(std::env::consts::ARCH))
}
