//! Process-wide state.
//!
//! The hot path reads only atomics: [`MODE`], [`GENERATION`], [`PREV_EVAL`] and
//! [`EXTRA_INDEX`]. Everything the cold path changes (the stub pool, the map file, counters)
//! sits in [`INNER`] behind one mutex, which the fork handlers hold across `fork()` so a child
//! never inherits it half-updated.

use crate::jit_file::JitFile;
use crate::map_file::MapFile;
use perfpy_trampoline::StubPool;
use std::sync::atomic::{AtomicIsize, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// What the hook does, in one byte so the hot path decides with a single load:
/// [`MODE_ACTIVE`] set: calls go through stubs (deactivation clears it, and calls then pass
/// straight to the previous evaluator); [`MODE_GUARDED`] set: see [`BELOW_EVAL`].
pub(crate) static MODE: AtomicU8 = AtomicU8::new(0);

/// Trampolines are handed out.
pub(crate) const MODE_ACTIVE: u8 = 1;

/// Set for good once our hook may sit, stale, inside another hook's chain: another hook
/// chained to ours, ours was deactivated underneath it, then activated again on top. Calls
/// may then reach our hook twice for one frame, and [`BELOW_EVAL`] is what the inner copy
/// must call.
pub(crate) const MODE_GUARDED: u8 = 2;

/// The evaluator below our stale copy (see [`MODE_GUARDED`]).
pub(crate) static BELOW_EVAL: AtomicUsize = AtomicUsize::new(0);

/// Bumped in a forked child (unless persist-after-fork): a cached stub whose entry carries an
/// older generation is re-announced in this process's own map before it runs again. Never 0:
/// entries with generation 0 have no stub yet.
pub(crate) static GENERATION: AtomicU32 = AtomicU32::new(1);

/// The evaluator that was installed before ours (`_PyEval_EvalFrameDefault`, or another
/// PEP 523 hook we chain to). Stubs call it.
pub(crate) static PREV_EVAL: AtomicUsize = AtomicUsize::new(0);

/// The `co_extra` index, requested once for the life of the process (-1: not yet).
pub(crate) static EXTRA_INDEX: AtomicIsize = AtomicIsize::new(-1);

/// How stubs are announced to perf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// `/tmp/perf-<pid>.map` lines.
    Perf,
    /// `/tmp/jit-<pid>.dump` records with unwind information.
    PerfJit,
}

impl Backend {
    pub(crate) fn from_name(name: &str) -> Option<Backend> {
        match name {
            "perf" => Some(Backend::Perf),
            "perf_jit" => Some(Backend::PerfJit),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Perf => "perf",
            Backend::PerfJit => "perf_jit",
        }
    }
}

/// A stub announced in the jitdump, kept so a persist-after-fork child can announce it again
/// in its own dump (jitdump records carry the writer's pid, so the parent's can't be copied).
#[derive(Debug, Clone)]
pub(crate) struct Announced {
    pub addr: usize,
    pub name: Box<str>,
    pub location: Option<(Box<str>, i32)>,
}

/// Everything the cold path mutates.
pub(crate) struct Inner {
    /// The backend of the last activation.
    pub backend: Backend,
    /// Stubs for the perf map backend; `None` until first needed.
    pub pool: Option<StubPool>,
    /// Stubs for the perf_jit backend, spaced so perf's injected mappings don't overlap.
    pub jit_pool: Option<StubPool>,
    /// This process's map file; `None` until opened (lazily in a forked child).
    pub map: Option<MapFile>,
    /// This process's jitdump; `None` until opened.
    pub jit: Option<JitFile>,
    /// Stubs announced in the jitdump (see [`Announced`]).
    pub jit_log: Vec<Announced>,
    /// In a persist-after-fork child: announce `jit_log` when the child's dump is opened.
    pub jit_replay: bool,
    /// The map file of the parent, inherited through `fork()`, and its size at the moment of
    /// the fork: what a persist-after-fork child copies before writing its own entries.
    pub inherited_map: Option<(std::os::fd::RawFd, u64)>,
    /// Size of our map when a fork began (set by the prepare handler).
    pub map_len_at_fork: Option<u64>,
    /// Whether our hook is somewhere in the evaluator chain (installed and not removed).
    pub hook_installed: bool,
    /// Keep the trampoline active in a forked child and start its map as a copy of ours.
    pub persist_after_fork: bool,
    /// Code objects given a stub, in this process.
    pub compiled: u64,
    /// Map lines written by this process.
    pub map_lines: u64,
    /// Why perfpy turned itself off, if it did.
    pub failure: Option<String>,
}

pub(crate) static INNER: Mutex<Inner> = Mutex::new(Inner {
    backend: Backend::Perf,
    pool: None,
    jit_pool: None,
    map: None,
    jit: None,
    jit_log: Vec::new(),
    jit_replay: false,
    inherited_map: None,
    map_len_at_fork: None,
    hook_installed: false,
    persist_after_fork: false,
    compiled: 0,
    map_lines: 0,
    failure: None,
});

/// Locks [`INNER`], ignoring poisoning: every update leaves it consistent.
pub(crate) fn lock() -> MutexGuard<'static, Inner> {
    INNER.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn is_active() -> bool {
    MODE.load(Ordering::Acquire) & MODE_ACTIVE != 0
}

pub(crate) fn set_active(active: bool) {
    if active {
        MODE.fetch_or(MODE_ACTIVE, Ordering::AcqRel);
    } else {
        MODE.fetch_and(!MODE_ACTIVE, Ordering::AcqRel);
    }
}

pub(crate) fn is_guarded() -> bool {
    MODE.load(Ordering::Acquire) & MODE_GUARDED != 0
}

/// Turns the chain guard on, for good.
pub(crate) fn enable_guard() {
    MODE.fetch_or(MODE_GUARDED, Ordering::AcqRel);
}

/// The next generation after `g` (skipping 0, which marks entries without a stub).
pub(crate) fn next_generation(g: u32) -> u32 {
    match g.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}
