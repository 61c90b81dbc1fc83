//! Every interpreter of the process, not only the one perfpy is imported into.
//!
//! perfpy is switched on and off in one interpreter, its *home*: the main interpreter
//! (CPython refuses to load the module into isolated subinterpreters; legacy ones get a copy
//! of the main's, whose switches refuse to work there). Its hook is plain machine code, though, and the
//! interpreter's evaluator is a per-interpreter setting, so the home installs the same hook
//! into the others. What each interpreter needs of its own:
//!
//! * **the evaluator setting**: set from the home for the interpreters that exist when names
//!   come on, and by a runtime audit hook (`PySys_AddAuditHook`, which every interpreter
//!   calls) for those created later: their first audit event (an import, during their own
//!   start-up) runs in their own thread and installs it there;
//! * **a `co_extra` index**: indices are per interpreter and can only be requested by the
//!   interpreter itself, so the first call that reaches the cold path there requests it,
//!   with [`free_entry`](crate::entry::free_entry) as its free function (the interpreter
//!   frees perfpy's entries with its code objects at its teardown);
//! * **nothing else**: stubs, arenas and files are the process's, shared by every
//!   interpreter, and never released before the process exits (code announced alike in
//!   them shares one stub: [`crate::compile`]).
//!
//! The other interpreters get a hook of their own ([`crate::hook::Elsewhere`]), so the
//! home's hot path is the same as in a process without subinterpreters. Theirs finds the
//! call's interpreter in the thread state it is passed and its index in [`SLOTS`], without
//! a lock. An interpreter
//! leaves its slot at its `cpython.PyInterpreterState_Clear` audit event, before its memory
//! goes; in a forked child every slot is emptied (CPython deletes the other interpreters
//! there). Writes to [`SLOTS`] and to other interpreters' evaluator settings happen under
//! [`REGISTRY`], so a teardown waits for a toggle in progress.
//!
//! Only interpreters whose evaluator is CPython's own get the hook: one that runs another
//! PEP 523 hook is left alone (chaining, [`crate::chain`], is the home's).

use crate::cpython;
use crate::state;
use pyo3::ffi;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// How many interpreters besides the home can have names at once.
pub(crate) const MAX: usize = 64;

/// One interpreter besides the home: its address (0: a free slot) and its `co_extra` index
/// (-1: not requested yet).
pub(crate) struct Slot {
    interp: AtomicUsize,
    index: AtomicIsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    interp: AtomicUsize::new(0),
    index: AtomicIsize::new(-1),
};

/// The other interpreters perfpy knows of, read by the hot path without a lock.
static SLOTS: [Slot; MAX] = [FREE; MAX];

/// The interpreter perfpy is imported into (0 until the first activation).
pub(crate) static HOME: AtomicUsize = AtomicUsize::new(0);

/// The hook the other interpreters get (`hook::Elsewhere`'s), noted at the first activation.
static OURS: AtomicUsize = AtomicUsize::new(0);

/// The audit hook is registered (it can't be removed: it stays for the process's life).
static AUDIT_HOOK: AtomicBool = AtomicBool::new(false);

/// What only writers touch, under one lock (taken after [`state::INNER`], never before;
/// no Python code runs while it is held).
pub(crate) struct Registry {
    /// Why some interpreter goes without names, if one does (for `status()`).
    limit: Option<&'static str>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { limit: None });

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Held across `fork()` (after the state lock), so a child never inherits it locked.
pub(crate) fn lock_for_fork() -> MutexGuard<'static, Registry> {
    registry()
}

/// Whether this CPython lets perfpy reach its other interpreters (the hook must be able to
/// tell which interpreter a call runs in: 3.9+, whose hook receives the thread state).
pub(crate) const SUPPORTED: bool = cpython::SUBINTERPRETERS;

/// A slot's index when its interpreter had no `co_extra` index left to give.
pub(crate) const NO_INDEX: isize = -2;

/// The `co_extra` index of `interp`, an interpreter other than the home: `None` if perfpy
/// doesn't know it, -1 if it has none yet, [`NO_INDEX`] if it can't have one.
#[inline(always)]
pub(crate) fn index_of(interp: usize) -> Option<isize> {
    if interp == 0 {
        return None;
    }
    SLOTS
        .iter()
        .find(|s| s.interp.load(Ordering::Acquire) == interp)
        .map(|s| s.index.load(Ordering::Acquire))
}

/// Requests a `co_extra` index in the current interpreter `interp` (not the home), once.
///
/// # Safety
/// The GIL of `interp` is held and `interp` is the current interpreter.
pub(crate) unsafe fn request_index(interp: usize) -> Option<isize> {
    let _registry = registry();
    let slot = SLOTS
        .iter()
        .find(|s| s.interp.load(Ordering::Acquire) == interp)?;
    let index = slot.index.load(Ordering::Acquire);
    if index >= 0 {
        return Some(index);
    }
    // SAFETY: the GIL is held in `interp`, the interpreter the index is requested for;
    // `free_entry` matches `freefunc`.
    let index = unsafe { ffi::PyUnstable_Eval_RequestCodeExtraIndex(crate::entry::free_entry) };
    if index < 0 {
        // All 255 taken there: that interpreter's calls pass straight through from now on.
        slot.index.store(NO_INDEX, Ordering::Release);
        return None;
    }
    slot.index.store(index, Ordering::Release);
    Some(index)
}

/// Notes the main interpreter as perfpy's home (the first time).
pub(crate) fn set_home() {
    if SUPPORTED && HOME.load(Ordering::Acquire) == 0 {
        // SAFETY: CPython is initialized (perfpy is imported).
        let main = unsafe { ffi::PyInterpreterState_Main() } as usize;
        HOME.store(main, Ordering::Release);
    }
}

/// At an activation in the home: registers the audit hook (once), and puts
/// perfpy's hook into every other interpreter that runs CPython's evaluator. Returns how
/// many other interpreters have it.
///
/// # Safety
/// The GIL is held, in the home interpreter; `ours` is perfpy's hook.
pub(crate) unsafe fn install_everywhere(ours: *const c_void) -> usize {
    if !SUPPORTED {
        return 0;
    }
    let home = HOME.load(Ordering::Acquire);
    OURS.store(ours as usize, Ordering::Release);
    // Registering the hook raises `sys.addaudithook`, which runs the program's own audit
    // hooks: no lock of perfpy's is held meanwhile.
    if !AUDIT_HOOK.swap(true, Ordering::AcqRel) {
        // SAFETY: `on_audit_event` has `Py_AuditHookFunction`'s signature and lives forever;
        // the GIL is held.
        let rc = unsafe { cpython::ffi::PySys_AddAuditHook(on_audit_event, std::ptr::null_mut()) };
        let mut registry = registry();
        if rc != 0 {
            // SAFETY: GIL held; an existing audit hook refused ours.
            unsafe { ffi::PyErr_Clear() };
            registry.limit = Some(
                "an audit hook of the program refused perfpy's: interpreters created from now on get no names",
            );
        }
        // The interpreters that exist now (the audit hook sees those created later).
        // SAFETY: the GIL is held; the list is read as CPython's own tools read it.
        let mut interp = unsafe { ffi::PyInterpreterState_Head() };
        while !interp.is_null() {
            if interp as usize != home {
                take_slot(&mut registry, interp as usize);
            }
            // SAFETY: `interp` is an entry of the runtime's list.
            interp = unsafe { ffi::PyInterpreterState_Next(interp) };
        }
    }
    // SAFETY: GIL held (sys._jit is read in the home).
    if unsafe { jit_enabled() } {
        // CPython invalidates an interpreter's JIT executors when its evaluator changes:
        // not something to do from another thread. They get the hook in their own thread,
        // at their next audit event.
        return 0;
    }
    let _registry = registry();
    let mut hooked = 0;
    for slot in &SLOTS {
        let interp = slot.interp.load(Ordering::Acquire);
        // SAFETY: a slot's interpreter is alive (it leaves the slot, under REGISTRY, before
        // its teardown); `ours` has the evaluator signature.
        if interp != 0 && unsafe { put_hook(interp, ours) } {
            hooked += 1;
        }
    }
    hooked
}

/// At a deactivation in the home: CPython's evaluator goes back into every other
/// interpreter that still runs perfpy's hook on top.
///
/// # Safety
/// The GIL is held, in the home interpreter; `ours` is perfpy's hook.
pub(crate) unsafe fn remove_everywhere(ours: *const c_void) {
    if !SUPPORTED {
        return;
    }
    let _registry = registry();
    for slot in &SLOTS {
        let interp = slot.interp.load(Ordering::Acquire) as *mut ffi::PyInterpreterState;
        if interp.is_null() {
            continue;
        }
        // SAFETY: as in `install_everywhere`: the interpreter is alive while in its slot.
        unsafe {
            if cpython::get_eval(interp) == ours {
                let _ = cpython::set_eval(interp, cpython::ffi::default_eval());
            }
        }
    }
}

/// How many other interpreters run perfpy's hook now.
///
/// # Safety
/// The GIL is held; `ours` is perfpy's hook.
pub(crate) unsafe fn hooked(ours: *const c_void) -> usize {
    if !SUPPORTED {
        return 0;
    }
    let _registry = registry();
    SLOTS
        .iter()
        .map(|s| s.interp.load(Ordering::Acquire) as *mut ffi::PyInterpreterState)
        // SAFETY: as in `install_everywhere`.
        .filter(|i| !i.is_null() && unsafe { cpython::get_eval(*i) } == ours)
        .count()
}

/// Whether the current thread runs in the main interpreter, perfpy's home (or perfpy can't
/// tell: 3.8).
pub(crate) fn in_home() -> bool {
    if !SUPPORTED {
        return true;
    }
    // SAFETY: reads this thread's state, possibly null; CPython is initialized.
    match unsafe { cpython::current_interp_unchecked() } {
        // SAFETY: as above.
        Some(interp) => interp == unsafe { ffi::PyInterpreterState_Main() },
        None => true,
    }
}

/// Why an interpreter goes without names, if one does.
pub(crate) fn limit() -> Option<&'static str> {
    registry().limit
}

/// In a forked child: only the forking interpreter survives (CPython deletes the others
/// without their teardown events), so every slot is emptied.
pub(crate) fn forget_all_in_child() {
    for slot in &SLOTS {
        slot.interp.store(0, Ordering::Release);
        slot.index.store(-1, Ordering::Release);
    }
}

/// Puts perfpy's hook into `interp` if it runs CPython's own evaluator.
///
/// # Safety
/// `interp` is alive (REGISTRY is held) and `ours` has the evaluator signature.
unsafe fn put_hook(interp: usize, ours: *const c_void) -> bool {
    let interp = interp as *mut ffi::PyInterpreterState;
    // SAFETY: per the caller.
    let current = unsafe { cpython::get_eval(interp) };
    if current == ours {
        return true;
    }
    if current != cpython::ffi::default_eval() {
        return false;
    }
    // SAFETY: per the caller; one aligned pointer store, read by that interpreter's next call.
    unsafe { cpython::set_eval(interp, ours) }.is_ok()
}

/// A slot for `interp`, if it has none (its index is requested later, in its own thread).
fn take_slot(registry: &mut Registry, interp: usize) -> bool {
    if SLOTS
        .iter()
        .any(|s| s.interp.load(Ordering::Acquire) == interp)
    {
        return true;
    }
    match SLOTS.iter().find(|s| s.interp.load(Ordering::Acquire) == 0) {
        Some(slot) => {
            slot.index.store(-1, Ordering::Release);
            slot.interp.store(interp, Ordering::Release);
            true
        }
        None => {
            registry.limit = Some("more than 64 interpreters at once: the others get no names");
            false
        }
    }
}

/// The runtime audit hook: every interpreter calls it, in its own thread, with its GIL.
/// An interpreter perfpy doesn't know yet is enrolled (and gets the hook, while names are
/// on); one being torn down leaves its slot.
unsafe extern "C" fn on_audit_event(
    event: *const c_char,
    _args: *mut ffi::PyObject,
    _data: *mut c_void,
) -> c_int {
    // SAFETY: audit hooks run with a thread state (CPython skips them without one).
    let Some(interp) = (unsafe { cpython::current_interp_unchecked() }) else {
        return 0;
    };
    let interp = interp as usize;
    let home = HOME.load(Ordering::Acquire);
    if interp == home || home == 0 {
        return 0;
    }
    // SAFETY: CPython passes the event's name as a C string.
    let event = unsafe { CStr::from_ptr(event) };
    if event.to_bytes() == b"cpython.PyInterpreterState_Clear" {
        let _registry = registry();
        for slot in &SLOTS {
            if slot.interp.load(Ordering::Acquire) == interp {
                slot.interp.store(0, Ordering::Release);
                slot.index.store(-1, Ordering::Release);
            }
        }
        return 0;
    }
    if index_of(interp).is_some() {
        // Known: the hook is in already, or names are off, or another hook runs there.
        return 0;
    }
    let mut registry = registry();
    if take_slot(&mut registry, interp) && state::is_active() {
        // SAFETY: `interp` is the current interpreter (its own thread, its GIL), so it is
        // alive; our hook has the evaluator signature.
        unsafe { put_hook(interp, OURS.load(Ordering::Acquire) as *const c_void) };
    }
    0
}

/// Whether CPython's JIT is enabled (`sys._jit.is_enabled()`, 3.14+).
///
/// # Safety
/// The GIL is held.
unsafe fn jit_enabled() -> bool {
    // SAFETY: GIL held; borrowed reference or null.
    let jit = unsafe { ffi::PySys_GetObject(c"_jit".as_ptr()) };
    if jit.is_null() {
        return false;
    }
    // SAFETY: GIL held; `jit` is a live module.
    let result = unsafe { ffi::PyObject_CallMethod(jit, c"is_enabled".as_ptr(), std::ptr::null()) };
    if result.is_null() {
        // SAFETY: GIL held, an exception is set.
        unsafe { ffi::PyErr_Clear() };
        return false;
    }
    // SAFETY: GIL held; `result` is a new reference.
    unsafe {
        let on = ffi::PyObject_IsTrue(result) == 1;
        ffi::Py_DECREF(result);
        ffi::PyErr_Clear();
        on
    }
}
