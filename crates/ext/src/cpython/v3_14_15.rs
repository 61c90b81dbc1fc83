//! CPython 3.14 and 3.15 (the same frame and code-object layout: 3.15 changed only the frame
//! owner enum, which perfpy doesn't read).
//!
//! * Hook: `PyObject *(*)(PyThreadState *, _PyInterpreterFrame *, int)`.
//! * Code object: `f_executable`, offset 0, is a `_PyStackRef`: a `uintptr_t` whose low bits
//!   are tags (`Py_TAG_BITS` is 1, or 3 on free-threaded builds). Objects are at least 8-byte
//!   aligned, so masking the low two bits yields the object on every build. For every frame
//!   that reaches an evaluator it is a code object (CPython's own trampoline casts it with
//!   `_PyFrame_GetCode`), so the hot path does no type check.
//! * `co_extra`: at offset 200 on default builds, read directly by the hot path. Free-threaded
//!   builds lay `PyCodeObject` out differently and need `PyUnstable_Code_GetExtra`'s locking,
//!   so they go through the API.
//! * 3.15 adds `_PyInterpreterState_SetEvalFrameAllowSpecialization`, which keeps the adaptive
//!   specializer on under a custom evaluator. perfpy leaves it at its default (off). Turned on
//!   under perfpy's hook, Python-to-Python calls still went through the hook (no frame lost)
//!   but `fib` ran no faster (81.4 M against 81.0 M instructions): the calls, where a hook's
//!   cost is, stay unspecialized under a hook (README, "Compatibility").

use super::common::since_3_9::TSTATE_INTERP_OFFSET;
pub(crate) use super::common::since_3_9::{
    call_interp, current_interp, current_interp_unchecked, get_eval, set_eval, SUBINTERPRETERS,
};
use super::common::Dispatch;
use pyo3::ffi::PyObject;
use std::ffi::{c_int, c_void};

pub(crate) const FAMILY: &str = "3.14-3.15";
pub(crate) const FRAME_CODE_OFFSET: usize = 0;

/// `offsetof(PyCodeObject, co_extra)` on default (GIL) builds.
#[cfg(not(Py_GIL_DISABLED))]
const CO_EXTRA_OFFSET: usize = 200;
#[cfg(not(Py_GIL_DISABLED))]
pub(crate) const CODE_EXTRA_OFFSET: Option<usize> = Some(CO_EXTRA_OFFSET);
#[cfg(Py_GIL_DISABLED)]
pub(crate) const CODE_EXTRA_OFFSET: Option<usize> = None;

/// Every layout fact this family relies on, for the header probe in the test suite.
#[cfg(not(Py_GIL_DISABLED))]
pub(crate) const OFFSETS: &[(&str, usize)] = &[
    ("frame_code_offset", FRAME_CODE_OFFSET),
    ("tstate_interp_offset", TSTATE_INTERP_OFFSET),
    ("code_extra_offset", CO_EXTRA_OFFSET),
];
/// Every layout fact this family relies on, for the header probe in the test suite.
#[cfg(Py_GIL_DISABLED)]
pub(crate) const OFFSETS: &[(&str, usize)] = &[
    ("frame_code_offset", FRAME_CODE_OFFSET),
    ("tstate_interp_offset", TSTATE_INTERP_OFFSET),
];
/// The frame's code field holds a code object for every frame that reaches an evaluator.
pub(crate) const FRAME_HOLDS_CODE: bool = true;
pub(crate) const HAS_CO_QUALNAME: bool = true;

/// Tag bits of a `_PyStackRef` that never belong to the pointer.
const STACKREF_TAG_MASK: usize = 0b11;

unsafe extern "C" fn eval_hook<D: Dispatch>(
    ts: *mut c_void,
    frame: *mut c_void,
    throw: c_int,
) -> *mut PyObject {
    // SAFETY: CPython passes a live _PyInterpreterFrame whose first field is the tagged
    // reference to its code.
    let bits = unsafe { *frame.cast::<u8>().add(FRAME_CODE_OFFSET).cast::<usize>() };
    let code = (bits & !STACKREF_TAG_MASK) as *mut PyObject;
    // SAFETY: (ts, frame, throw) are the evaluator's own arguments.
    unsafe { D::dispatch(ts, frame, throw as isize, frame, code) }
}

/// This family's evaluator hook, calling `D` for every frame.
pub(crate) fn hook_ptr<D: Dispatch>() -> *const c_void {
    eval_hook::<D> as *const c_void
}

/// Whether `code` is shared by every interpreter: never (no static code objects since 3.13).
///
/// # Safety
/// None (the same contract as the other families').
#[inline(always)]
pub(crate) unsafe fn is_shared_static(_code: *mut PyObject) -> bool {
    false
}
