//! The evaluator's hot and cold paths.
//!
//! Every Python call made while the hook is installed arrives in a version family's
//! `eval_hook::<Hook>`, which finds the frame's code object and calls [`Hook`]'s dispatch:
//!
//! ```text
//! eval_hook(ts, frame, throw)
//!   code = frame's code object                       (cpython::<family>)
//!   interp = ts->interp: the home? else the index of its slot (interpreters.rs)
//!   entry = co_extra[index]                          (hot: a read of the code object)
//!   entry current?  yes -> stub(ts, frame, throw, prev_eval)   -> prev_eval(ts, frame, throw)
//!                   no  -> cold path: a stub from the backend's pool, announced through
//!                          the backend interface, entry stored
//! ```
//!
//! The hot path allocates nothing and touches no Python object beyond the `co_extra` read.
//! In an interpreter other than perfpy's home (a subinterpreter) stubs call CPython's own
//! evaluator, the only one perfpy installs itself over there; the deep-frozen code objects
//! every interpreter shares (3.11, 3.12) keep their entries in [`state::Inner::shared`]
//! rather than in their `co_extra`, which belongs to the home.
//! The cold path runs once per code object per process. It may run with an exception set
//! (a generator's `throw()`), so it saves and restores the exception around its work, and it
//! never lets a failure escape into the program: on any error perfpy turns itself off, warns
//! once (a `perfpy.PerfpyWarning`), and the call proceeds through the previous evaluator.

use crate::entry::{self, Place};
use crate::error::{self, Error};
use crate::state::{self, BELOW_EVAL, GENERATION, MODE, MODE_ACTIVE, PREV_EVAL};
use crate::{chain, cpython, interpreters};
use pyo3::ffi;
use std::cell::Cell;
use std::ffi::c_void;
use std::sync::atomic::Ordering;

/// The stub's C signature: the evaluator comes last so the first three arguments are already
/// in place for the call it makes.
pub(crate) type StubFn =
    unsafe extern "C" fn(*mut c_void, *mut c_void, isize, *const c_void) -> *mut ffi::PyObject;

/// The evaluator signature shared by 3.9+ (3.8's two-argument form ignores the third).
type EvalFn = unsafe extern "C" fn(*mut c_void, *mut c_void, isize) -> *mut ffi::PyObject;

/// perfpy's [`cpython::Dispatch`]: what the installed evaluator hook does with each call.
pub(crate) struct Hook;

impl cpython::Dispatch for Hook {
    /// Runs a call through its function's stub, or straight through the previous evaluator.
    #[inline(always)]
    unsafe fn dispatch(
        a0: *mut c_void,
        a1: *mut c_void,
        a2: isize,
        frame: *mut c_void,
        code: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        let mode = MODE.load(Ordering::Relaxed);
        let prev = PREV_EVAL.load(Ordering::Relaxed) as *const c_void;
        if mode == MODE_ACTIVE {
            // SAFETY: the family's hook passes its own arguments and the frame's code.
            return unsafe { run_through(a0, a1, a2, code, prev, Place::Home) };
        }
        if mode == 0 {
            // SAFETY: forwarding the evaluator's own arguments to the previous evaluator.
            return unsafe { call_eval(prev, a0, a1, a2) };
        }
        // SAFETY: as for `run_through`.
        unsafe { dispatch_guarded(a0, a1, a2, frame, code, mode & MODE_ACTIVE != 0) }
    }
}

/// perfpy's [`cpython::Dispatch`] in the interpreters other than the home: a hook of its
/// own, so the home's hot path never asks which interpreter a call runs in.
pub(crate) struct Elsewhere;

impl cpython::Dispatch for Elsewhere {
    #[inline(always)]
    unsafe fn dispatch(
        a0: *mut c_void,
        a1: *mut c_void,
        a2: isize,
        _frame: *mut c_void,
        code: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: `a0` is the evaluator's own first argument (the thread state, 3.9+).
        let interp = unsafe { cpython::call_interp(a0) };
        // SAFETY: as for this function.
        unsafe { dispatch_elsewhere(a0, a1, a2, code, interp) }
    }
}

/// The evaluator perfpy installs in the other interpreters (dispatching to [`Elsewhere`]).
#[inline(never)]
pub(crate) fn elsewhere_ptr() -> *const c_void {
    cpython::hook_ptr::<Elsewhere>()
}

/// The evaluator perfpy installs (this version family's hook, dispatching to [`Hook`]).
///
/// One non-generic function, so every caller compares against the same address.
#[inline(never)]
pub(crate) fn hook_ptr() -> *const c_void {
    cpython::hook_ptr::<Hook>()
}

/// [`Elsewhere`]'s dispatch: a call in an interpreter other than the home.
///
/// # Safety
/// As for [`cpython::Dispatch::dispatch`]; `interp` is the call's interpreter.
#[inline(always)]
unsafe fn dispatch_elsewhere(
    a0: *mut c_void,
    a1: *mut c_void,
    a2: isize,
    code: *mut ffi::PyObject,
    interp: usize,
) -> *mut ffi::PyObject {
    let default = cpython::ffi::default_eval();
    let index = match interpreters::index_of(interp) {
        Some(index) if state::is_active() && index != interpreters::NO_INDEX => index,
        // Off, an interpreter past its teardown event, or one without a co_extra index to
        // spare: CPython's evaluator, the one perfpy's hook replaced there.
        // SAFETY: forwarding the evaluator's own arguments to an evaluator.
        _ => return unsafe { call_eval(default, a0, a1, a2) },
    };
    // SAFETY: `code` is the frame's live object (a code object where FRAME_HOLDS_CODE).
    let place = if cpython::FRAME_HOLDS_CODE && unsafe { cpython::is_shared_static(code) } {
        Place::Shared
    } else {
        Place::Elsewhere(interp, index)
    };
    // SAFETY: as for this function.
    unsafe { run_through(a0, a1, a2, code, default, place) }
}

/// Calls `next` for the frame, through the frame's stub.
///
/// # Safety
/// As for [`cpython::Dispatch::dispatch`]; `next` is an evaluator with this version's
/// signature; `place` is where the code's entry lives in the call's interpreter.
#[inline(always)]
unsafe fn run_through(
    a0: *mut c_void,
    a1: *mut c_void,
    a2: isize,
    code: *mut ffi::PyObject,
    next: *const c_void,
    place: Place,
) -> *mut ffi::PyObject {
    // SAFETY: the GIL is held inside an evaluator, and `code` is the frame's object.
    match unsafe { stub_for(code, place) } {
        // SAFETY: `stub` is a live trampoline (arenas are never unmapped) that forwards
        // (a0, a1, a2) to `next`.
        Some(stub) => unsafe { stub(a0, a1, a2, next) },
        // SAFETY: forwarding the evaluator's own arguments to an evaluator.
        None => unsafe { call_eval(next, a0, a1, a2) },
    }
}

/// # Safety
/// `f` is an evaluator with this version's signature; the arguments are an evaluator's own.
#[inline(always)]
unsafe fn call_eval(
    f: *const c_void,
    a0: *mut c_void,
    a1: *mut c_void,
    a2: isize,
) -> *mut ffi::PyObject {
    // SAFETY: per the caller, `f` is an evaluator (3.8's two-argument form ignores `a2`).
    let f: EvalFn = unsafe { std::mem::transmute::<*const c_void, EvalFn>(f) };
    // SAFETY: per the caller.
    unsafe { f(a0, a1, a2) }
}

thread_local! {
    /// The frame this thread's outermost copy of our hook is dispatching (guarded mode).
    static DISPATCHING: Cell<usize> = const { Cell::new(0) };
}

/// [`Hook`]'s dispatch when our hook may appear twice in the evaluator chain.
///
/// The first copy to see a frame runs it through its stub and passes it on: to
/// [`PREV_EVAL`] if that copy is the installed evaluator (the top of the chain), else to
/// [`BELOW_EVAL`] (the copy stranded inside another hook's chain). A copy reached again for
/// the same frame passes it straight to [`BELOW_EVAL`].
#[cold]
#[inline(never)]
unsafe fn dispatch_guarded(
    a0: *mut c_void,
    a1: *mut c_void,
    a2: isize,
    frame: *mut c_void,
    code: *mut ffi::PyObject,
    active: bool,
) -> *mut ffi::PyObject {
    let below = BELOW_EVAL.load(Ordering::Relaxed) as *const c_void;
    let outer = DISPATCHING.with(Cell::get);
    if outer == frame as usize {
        // SAFETY: forwarding to the evaluator below our stranded copy.
        return unsafe { call_eval(below, a0, a1, a2) };
    }
    // SAFETY: the GIL is held inside an evaluator.
    let on_top = unsafe { cpython::get_eval(cpython::current_interp()) } == hook_ptr();
    let next = if on_top {
        PREV_EVAL.load(Ordering::Relaxed) as *const c_void
    } else {
        below
    };
    DISPATCHING.with(|d| d.set(frame as usize));
    let result = if active {
        // SAFETY: forwarded; `next` is an evaluator.
        unsafe { run_through(a0, a1, a2, code, next, Place::Home) }
    } else {
        // SAFETY: forwarding to an evaluator.
        unsafe { call_eval(next, a0, a1, a2) }
    };
    DISPATCHING.with(|d| d.set(outer));
    result
}

/// The stub to run `code` through, making one on first use.
///
/// # Safety
/// The GIL is held; `code` is a live object or null; `place` is where its entry lives.
#[inline(always)]
unsafe fn stub_for(code: *mut ffi::PyObject, place: Place) -> Option<StubFn> {
    // SAFETY: `code` is the frame's live object.
    if !cpython::FRAME_HOLDS_CODE && (code.is_null() || !unsafe { cpython::is_code(code) }) {
        return None;
    }
    // SAFETY: `code` is a code object, the index was requested for its interpreter.
    if let Some(entry) = unsafe { entry::get(code, place.index()) } {
        // SAFETY: entries stay alive as long as their code object, which the frame holds.
        let e = unsafe { &*entry };
        // Entries without a stub have generation 0, which never matches.
        if e.generation == GENERATION.load(Ordering::Relaxed) {
            // SAFETY: a non-zero `stub` is the address of a trampoline.
            return Some(unsafe { std::mem::transmute::<usize, StubFn>(e.stub) });
        }
    }
    // SAFETY: the GIL is held and `code` is a code object (checked above where the family's
    // frame may hold something else).
    unsafe {
        match place {
            // The home's own call: no `Place` is built on the hot path for it.
            Place::Home => cold_path_home(code),
            _ => cold_path(code, place),
        }
    }
}

/// [`cold_path`] for the home.
///
/// # Safety
/// As for [`cold_path`].
#[cold]
#[inline(never)]
unsafe fn cold_path_home(code: *mut ffi::PyObject) -> Option<StubFn> {
    // SAFETY: per the caller.
    unsafe { cold_path(code, Place::Home) }
}

/// Saves the current exception on creation and restores it on drop, so the cold path can use
/// the C API while a `throw()` is in flight.
struct SavedException {
    ptype: *mut ffi::PyObject,
    pvalue: *mut ffi::PyObject,
    ptrace: *mut ffi::PyObject,
}

impl SavedException {
    /// # Safety
    /// The GIL is held.
    unsafe fn fetch() -> SavedException {
        let mut s = SavedException {
            ptype: std::ptr::null_mut(),
            pvalue: std::ptr::null_mut(),
            ptrace: std::ptr::null_mut(),
        };
        // SAFETY: GIL held; out-pointers are valid. PyErr_Fetch exists in every version we
        // support (deprecated, not removed, in 3.12+).
        #[allow(deprecated)]
        unsafe {
            ffi::PyErr_Fetch(&mut s.ptype, &mut s.pvalue, &mut s.ptrace)
        };
        s
    }
}

impl Drop for SavedException {
    fn drop(&mut self) {
        // SAFETY: the GIL is still held (the guard lives inside the hook); any exception our
        // work left behind is discarded before the saved one is put back.
        #[allow(deprecated)]
        unsafe {
            ffi::PyErr_Clear();
            ffi::PyErr_Restore(self.ptype, self.pvalue, self.ptrace);
        }
    }
}

/// Makes or re-announces the stub for `code`. Never fails: errors turn perfpy off.
///
/// # Safety
/// The GIL is held and `code` is a code object.
#[cold]
#[inline(never)]
unsafe fn cold_path(code: *mut ffi::PyObject, place: Place) -> Option<StubFn> {
    // SAFETY: GIL held.
    let _saved = unsafe { SavedException::fetch() };
    // SAFETY: the GIL is held, `code` is a code object (our caller's contract), and the
    // pending exception, if any, was just saved.
    let result = std::panic::catch_unwind(|| unsafe { crate::compile::compile(code, place) });
    let stub = match result {
        Ok(Ok(stub)) => stub,
        Ok(Err(error)) => {
            // SAFETY: GIL held.
            unsafe { fail(&error) };
            None
        }
        Err(_) => {
            // SAFETY: GIL held.
            unsafe { fail(&Error::Panic) };
            None
        }
    };
    // SAFETY: a non-zero address is a trampoline.
    stub.map(|s| unsafe { std::mem::transmute::<usize, StubFn>(s) })
}

/// Turns perfpy off after a failure and says so once, as a [`error::PerfpyWarning`].
///
/// # Safety
/// The GIL is held.
unsafe fn fail(error: &Error) {
    let first = {
        let mut inner = state::lock();
        let first = inner.failure.is_none();
        inner.failure = Some(error.to_string());
        state::set_active(false);
        if interpreters::in_home() {
            // SAFETY: GIL held; `hook_ptr` is our hook.
            unsafe { chain::remove(&mut inner, hook_ptr()) };
        }
        first
    };
    if first {
        let msg = format!(
            "perfpy: perf trampolines turned off, the program continues unprofiled: {error}"
        );
        // SAFETY: GIL held.
        unsafe { error::warn(&msg, interpreters::in_home()) };
    }
}
