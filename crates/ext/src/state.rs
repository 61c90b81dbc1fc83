//! Process-wide state.
//!
//! The hot path reads only atomics: [`MODE`], [`GENERATION`], [`PREV_EVAL`] and
//! [`EXTRA_INDEX`]. Everything the cold path changes (the backends, counters) sits in
//! [`INNER`] behind one mutex, which the fork handlers hold across `fork()` so a child never
//! inherits it half-updated.

use crate::backend::perf_jit::PerfJit;
use crate::backend::perf_map::PerfMap;
use crate::backend::{Backend, Kind};
use std::collections::BTreeMap;
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

/// Everything the cold path mutates.
pub(crate) struct Inner {
    /// The backend of the last activation.
    pub kind: Kind,
    /// Both backends' pools and files.
    pub backends: Backends,
    /// Whether our hook is somewhere in the evaluator chain (installed and not removed).
    pub hook_installed: bool,
    /// Keep the trampoline active in a forked child and start its file with the parent's
    /// announcements.
    pub persist_after_fork: bool,
    /// Code objects given a stub, in this process.
    pub compiled: u64,
    /// Map lines or jitdump stubs written by this process.
    pub announced: u64,
    /// Why perfpy turned itself off, if it did.
    pub failure: Option<String>,
    /// Entries of the static code objects every interpreter shares (3.11, 3.12), by address,
    /// for calls outside the home: their `co_extra` is the home's to write.
    pub shared: BTreeMap<usize, usize>,
    /// Stubs of code run outside the home, by what perf is told about them: each new
    /// interpreter runs its own code objects of the same functions (its imports, its
    /// start-up), which take the stub already announced under the same name instead of a
    /// new stub and a new line per interpreter.
    pub by_name: BTreeMap<StubKey, SharedStub>,
}

/// An announcement's backend, symbol, and file and line.
pub(crate) type StubKey = (Kind, Box<str>, Option<(Box<str>, i32)>);

/// A stub shared by code objects announced alike.
pub(crate) struct SharedStub {
    pub addr: usize,
    /// `GENERATION` in which this process's file last announced it.
    pub generation: u32,
}

impl Inner {
    /// The backend of the last activation.
    pub(crate) fn backend(&mut self) -> &mut dyn Backend {
        self.backends.get(self.kind)
    }
}

pub(crate) static INNER: Mutex<Inner> = Mutex::new(Inner {
    kind: Kind::Perf,
    backends: Backends::new(),
    hook_installed: false,
    persist_after_fork: false,
    compiled: 0,
    announced: 0,
    failure: None,
    shared: BTreeMap::new(),
    by_name: BTreeMap::new(),
});

/// Both backends' state, for the life of the process (switching backends keeps both).
pub(crate) struct Backends {
    pub perf: PerfMap,
    pub jit: PerfJit,
}

impl Backends {
    pub(crate) const fn new() -> Backends {
        Backends {
            perf: PerfMap::new(),
            jit: PerfJit::new(),
        }
    }

    pub(crate) fn get(&mut self, kind: Kind) -> &mut dyn Backend {
        match kind {
            Kind::Perf => &mut self.perf,
            Kind::PerfJit => &mut self.jit,
        }
    }

    /// Both, perf map first.
    pub(crate) fn all(&self) -> [&dyn Backend; 2] {
        [&self.perf, &self.jit]
    }

    /// Both, perf map first.
    pub(crate) fn all_mut(&mut self) -> [&mut dyn Backend; 2] {
        [&mut self.perf, &mut self.jit]
    }
}

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
