//! `fork()` handling, so parent and child never write each other's map or dump.
//!
//! `pthread_atfork` handlers run for every `fork()`, from Python's `os.fork()` or from C:
//!
//! * prepare (parent): take the state lock (so the child never inherits it mid-update), let
//!   each backend note what a child would need (`Backend::before_fork`), then take the
//!   interpreters' registry lock (a subinterpreter's thread may hold it);
//! * parent: release it;
//! * child: empty the other interpreters' slots (CPython deletes those interpreters) and
//!   release both, after each backend stops writing the parent's file
//!   (`Backend::after_fork_child`). Without persist-after-fork [`GENERATION`] is bumped, so
//!   each stub is announced in the child's own file before it next runs there (the file is
//!   created with the first announcement, so children that only `exec` leave nothing
//!   behind). With persist-after-fork the child's file starts with the parent's
//!   announcements as of the fork, opened by `_after_fork_child` (from
//!   `os.register_at_fork`); the trampoline stays active either way.
//!
//! Arenas are inherited and stay mapped: the child returns through the parent's stubs.

use crate::interpreters::Registry;
use crate::state::{self, Inner, GENERATION};
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{MutexGuard, Once};

thread_local! {
    /// The state lock, held by the forking thread between prepare and parent/child.
    static HELD: RefCell<Option<MutexGuard<'static, Inner>>> = const { RefCell::new(None) };
    /// The interpreters' registry lock, taken after it.
    static HELD_REGISTRY: RefCell<Option<MutexGuard<'static, Registry>>> =
        const { RefCell::new(None) };
}

extern "C" fn prepare() {
    let mut guard = state::lock();
    for backend in guard.backends.all_mut() {
        backend.before_fork();
    }
    HELD.with(|h| *h.borrow_mut() = Some(guard));
    let registry = crate::interpreters::lock_for_fork();
    HELD_REGISTRY.with(|h| *h.borrow_mut() = Some(registry));
}

extern "C" fn parent() {
    HELD_REGISTRY.with(|h| drop(h.borrow_mut().take()));
    HELD.with(|h| drop(h.borrow_mut().take()));
}

extern "C" fn child() {
    // CPython deletes every interpreter but the forking one in the child.
    crate::interpreters::forget_all_in_child();
    HELD_REGISTRY.with(|h| drop(h.borrow_mut().take()));
    HELD.with(|h| {
        let mut slot = h.borrow_mut();
        if let Some(inner) = slot.as_mut() {
            reset_in_child(inner);
        }
        drop(slot.take());
    });
}

fn reset_in_child(inner: &mut Inner) {
    let persist = inner.persist_after_fork;
    for backend in inner.backends.all_mut() {
        backend.after_fork_child(persist);
    }
    if !persist {
        let g = GENERATION.load(Ordering::Relaxed);
        GENERATION.store(state::next_generation(g), Ordering::Relaxed);
    }
    inner.compiled = 0;
    inner.announced = 0;
}

/// Registers the handlers, once per process.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: the handlers are plain extern "C" functions that live forever.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}
