//! perfpy's place in the interpreter's chain of PEP 523 evaluators.
//!
//! perfpy's hook goes on top and calls whatever was installed before it ([`PREV_EVAL`]).
//! On the way off it restores that evaluator, but only if its hook is still the one
//! installed: if another hook went on top since (and chained to ours), ours stays in the
//! chain, passing calls through. If ours is then activated again on top, a copy of it may
//! sit inside the other hook's chain, and the guard ([`state::enable_guard`]) keeps a frame
//! from being handled twice.

use crate::cpython;
use crate::error::Error;
use crate::state::{self, Inner, BELOW_EVAL, PREV_EVAL};
use std::ffi::c_void;
use std::sync::atomic::Ordering;

/// Puts `ours` on top of the chain, unless it is there already.
///
/// # Safety
/// The GIL is held; `ours` is perfpy's hook for this version.
pub(crate) unsafe fn install(inner: &mut Inner, ours: *const c_void) -> Result<(), Error> {
    // SAFETY: GIL held.
    let interp = unsafe { cpython::current_interp() };
    // SAFETY: GIL held; `interp` is the current interpreter.
    let current = unsafe { cpython::get_eval(interp) };
    if current != ours {
        if inner.hook_installed && !state::is_guarded() {
            // Our hook was never removed, yet another evaluator is on top: ours may still
            // be inside that evaluator's chain, calling what was below it.
            BELOW_EVAL.store(PREV_EVAL.load(Ordering::Acquire), Ordering::Release);
            state::enable_guard();
        }
        PREV_EVAL.store(current as usize, Ordering::Release);
        // SAFETY: GIL held; our hook has this version's signature.
        unsafe { cpython::set_eval(interp, ours) }.map_err(Error::EvalHook)?;
    }
    inner.hook_installed = true;
    Ok(())
}

/// Takes `ours` off the top of the chain, if it is there.
///
/// # Safety
/// The GIL is held; `ours` is perfpy's hook for this version.
pub(crate) unsafe fn remove(inner: &mut Inner, ours: *const c_void) {
    if !inner.hook_installed {
        return;
    }
    // SAFETY: GIL held.
    let interp = unsafe { cpython::current_interp() };
    // SAFETY: GIL held; `interp` is the current interpreter.
    if unsafe { cpython::get_eval(interp) } == ours {
        let prev = PREV_EVAL.load(Ordering::Acquire) as *const c_void;
        // SAFETY: GIL held; `prev` is the evaluator that was installed before ours.
        if unsafe { cpython::set_eval(interp, prev) }.is_ok() {
            inner.hook_installed = false;
        }
    }
}
