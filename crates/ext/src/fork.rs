//! `fork()` handling, so parent and child never write each other's map.
//!
//! `pthread_atfork` handlers run for every `fork()`, from Python's `os.fork()` or from C:
//!
//! * prepare (parent): take the state lock (so the child never inherits it mid-update) and
//!   note how long our map is;
//! * parent: release it;
//! * child: release it; stop writing to the inherited descriptor, which is the parent's file.
//!   Without persist-after-fork the descriptor is closed and [`GENERATION`] is bumped, so
//!   each stub is announced in the child's own `/tmp/perf-<childpid>.map` before it next runs
//!   there (the file is created on the first such entry, so children that only `exec` leave
//!   nothing behind). With persist-after-fork the descriptor is kept until
//!   `_after_fork_child` (from `os.register_at_fork`) copies the parent's entries, as they
//!   were at the fork, into the child's map; the trampoline stays active either way.
//!
//! A jitdump can't be copied (its records carry the writer's pid): a persist-after-fork child
//! announces the parent's stubs again in its own dump instead.
//!
//! Arenas are inherited and stay mapped: the child returns through the parent's stubs.

use crate::state::{self, Inner, GENERATION};
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{MutexGuard, Once};

thread_local! {
    /// The state lock, held by the forking thread between prepare and parent/child.
    static HELD: RefCell<Option<MutexGuard<'static, Inner>>> = const { RefCell::new(None) };
}

extern "C" fn prepare() {
    let mut guard = state::lock();
    guard.map_len_at_fork = guard.map.as_ref().and_then(|m| m.len().ok());
    HELD.with(|h| *h.borrow_mut() = Some(guard));
}

extern "C" fn parent() {
    HELD.with(|h| drop(h.borrow_mut().take()));
}

extern "C" fn child() {
    HELD.with(|h| {
        let mut slot = h.borrow_mut();
        if let Some(inner) = slot.as_mut() {
            reset_in_child(inner);
        }
        drop(slot.take());
    });
}

fn reset_in_child(inner: &mut Inner) {
    let len = inner.map_len_at_fork.take();
    if let Some(map) = inner.map.take() {
        let fd = map.into_raw_fd();
        match (inner.persist_after_fork, len) {
            (true, Some(len)) => inner.inherited_map = Some((fd, len)),
            _ => {
                // SAFETY: `fd` is the inherited descriptor, which the child no longer uses.
                unsafe { libc::close(fd) };
            }
        }
    }
    if let Some(jit) = inner.jit.take() {
        let fd = jit.abandon();
        // SAFETY: `fd` is the parent's dump, which the child never writes.
        unsafe { libc::close(fd) };
    }
    if inner.persist_after_fork && inner.backend == state::Backend::PerfJit {
        inner.jit_replay = true;
    } else {
        inner.jit_log.clear();
    }
    if !inner.persist_after_fork {
        let g = GENERATION.load(Ordering::Relaxed);
        GENERATION.store(state::next_generation(g), Ordering::Relaxed);
    }
    inner.compiled = 0;
    inner.map_lines = 0;
}

/// Registers the handlers, once per process.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: the handlers are plain extern "C" functions that live forever.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}
