//! CPython 3.12 and 3.13.
//!
//! * Hook: `PyObject *(*)(PyThreadState *, _PyInterpreterFrame *, int)`.
//! * Code object: the frame's first field, `f_code` (3.12) / `f_executable` (3.13), offset 0.
//!   In 3.13 `f_executable` is a code object for every frame that reaches an evaluator. (`PyUnstable_InterpreterFrame_GetCode` returns a new
//!   reference, an incref/decref per call we avoid.)
//! * Recursion (3.12 only): the evaluator charges 2 units of the thread's C recursion budget
//!   (1500 units) per frame. Without a hook Python-to-Python calls are inlined and charge
//!   nothing; with one (CPython's own `-X perf` included) every call charges 2, so recursion
//!   stops at depth ~748 whatever `sys.setrecursionlimit` says. The hook gives one unit back
//!   for the duration of each call: the default limit of 1000 is reached as without a hook,
//!   and the 1500-unit budget still bounds native stack use. 3.13 has a 10000-unit budget.

use super::common::since_3_9::TSTATE_INTERP_OFFSET;
pub(crate) use super::common::since_3_9::{
    call_interp, current_interp, current_interp_unchecked, get_eval, set_eval, SUBINTERPRETERS,
};
use super::common::Dispatch;
use pyo3::ffi::PyObject;
use std::ffi::{c_int, c_void};

pub(crate) const FAMILY: &str = "3.12-3.13";
pub(crate) const FRAME_CODE_OFFSET: usize = 0;
/// `offsetof(PyCodeObject, co_extra)`: the hot path reads the slot directly.
#[cfg(not(Py_3_13))]
const CO_EXTRA_OFFSET: usize = 184;
#[cfg(Py_3_13)]
const CO_EXTRA_OFFSET: usize = 192;
pub(crate) const CODE_EXTRA_OFFSET: Option<usize> = Some(CO_EXTRA_OFFSET);

/// Every layout fact this family relies on, for the header probe in the test suite.
#[cfg(not(Py_3_13))]
pub(crate) const OFFSETS: &[(&str, usize)] = &[
    ("frame_code_offset", FRAME_CODE_OFFSET),
    ("tstate_interp_offset", TSTATE_INTERP_OFFSET),
    ("code_extra_offset", CO_EXTRA_OFFSET),
    (
        "tstate_c_recursion_remaining_offset",
        TSTATE_C_RECURSION_REMAINING_OFFSET,
    ),
];
/// Every layout fact this family relies on, for the header probe in the test suite.
#[cfg(Py_3_13)]
pub(crate) const OFFSETS: &[(&str, usize)] = &[
    ("frame_code_offset", FRAME_CODE_OFFSET),
    ("tstate_interp_offset", TSTATE_INTERP_OFFSET),
    ("code_extra_offset", CO_EXTRA_OFFSET),
];
/// Whether the frame's code field always holds a code object: yes, `f_code` in 3.12 and
/// `f_executable` in 3.13 for every frame that reaches an evaluator (CPython 3.13's own
/// perf trampoline casts it with `_PyFrame_GetCode`).
pub(crate) const FRAME_HOLDS_CODE: bool = true;
pub(crate) const HAS_CO_QUALNAME: bool = true;

/// `offsetof(PyThreadState, c_recursion_remaining)` in 3.12 (`Include/cpython/pystate.h`).
#[cfg(not(Py_3_13))]
pub(crate) const TSTATE_C_RECURSION_REMAINING_OFFSET: usize = 36;

unsafe extern "C" fn eval_hook<D: Dispatch>(
    ts: *mut c_void,
    frame: *mut c_void,
    throw: c_int,
) -> *mut PyObject {
    // SAFETY: CPython passes a live _PyInterpreterFrame whose first field is its code.
    let code = unsafe {
        *frame
            .cast::<u8>()
            .add(FRAME_CODE_OFFSET)
            .cast::<*mut PyObject>()
    };
    #[cfg(not(Py_3_13))]
    {
        let remaining = ts
            .cast::<u8>()
            .wrapping_add(TSTATE_C_RECURSION_REMAINING_OFFSET)
            .cast::<c_int>();
        // SAFETY: `ts` is the running thread's state; only this thread touches the field,
        // and the unit is returned below before the frame's caller sees it.
        unsafe { *remaining += 1 };
        // SAFETY: (ts, frame, throw) are the evaluator's own arguments.
        let result = unsafe { D::dispatch(ts, frame, throw as isize, frame, code) };
        // SAFETY: as above.
        unsafe { *remaining -= 1 };
        result
    }
    #[cfg(Py_3_13)]
    // SAFETY: (ts, frame, throw) are the evaluator's own arguments.
    unsafe {
        D::dispatch(ts, frame, throw as isize, frame, code)
    }
}

/// This family's evaluator hook, calling `D` for every frame.
pub(crate) fn hook_ptr<D: Dispatch>() -> *const c_void {
    eval_hook::<D> as *const c_void
}

/// Whether `code` is shared by every interpreter: 3.12's deep-frozen code objects (the frozen
/// standard-library modules) are static and immortal; 3.13 unmarshals them per interpreter.
///
/// # Safety
/// `code` is a live object.
#[inline(always)]
pub(crate) unsafe fn is_shared_static(code: *mut PyObject) -> bool {
    #[cfg(not(Py_3_13))]
    // SAFETY: a live object's reference count is readable; 3.12 marks immortal objects with a
    // negative low half (`_Py_IsImmortal`).
    unsafe {
        (pyo3::ffi::Py_REFCNT(code) as u32 as i32) < 0
    }
    #[cfg(Py_3_13)]
    {
        let _ = code;
        false
    }
}
