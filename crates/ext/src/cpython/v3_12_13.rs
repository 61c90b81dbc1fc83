//! CPython 3.12 and 3.13.
//!
//! * Hook: `PyObject *(*)(PyThreadState *, _PyInterpreterFrame *, int)`.
//! * Code object: the frame's first field, `f_code` (3.12) / `f_executable` (3.13), offset 0.
//!   In 3.13 `f_executable` is a code object for every frame that reaches an evaluator; the
//!   hot path checks the type anyway. (`PyUnstable_InterpreterFrame_GetCode` returns a new
//!   reference, an incref/decref per call we avoid.)

pub(crate) use super::since_3_9::{current_interp, get_eval, set_eval};
use crate::hook;
use pyo3::ffi::PyObject;
use std::ffi::{c_int, c_void};

pub(crate) const FAMILY: &str = "3.12-3.13";
pub(crate) const FRAME_CODE_OFFSET: usize = 0;
pub(crate) const HAS_CO_QUALNAME: bool = true;

unsafe extern "C" fn eval_hook(ts: *mut c_void, frame: *mut c_void, throw: c_int) -> *mut PyObject {
    // SAFETY: CPython passes a live _PyInterpreterFrame whose first field is its code.
    let code = unsafe { *frame.cast::<u8>().add(FRAME_CODE_OFFSET).cast::<*mut PyObject>() };
    // SAFETY: (ts, frame, throw) are the evaluator's own arguments.
    unsafe { hook::dispatch(ts, frame, throw as isize, code) }
}

pub(crate) fn hook_ptr() -> *const c_void {
    eval_hook as *const c_void
}
