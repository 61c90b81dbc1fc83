//! CPython 3.11.
//!
//! * Hook: `PyObject *(*)(PyThreadState *, _PyInterpreterFrame *, int)`. Installing any hook
//!   turns off inlined Python-to-Python calls, so every call passes through it.
//! * Code object: `_PyInterpreterFrame.f_code` (`Include/internal/pycore_frame.h`: `f_func,
//!   f_globals, f_builtins, f_locals, f_code, ...`), offset 32. 3.11 has no API for it.

pub(crate) use super::since_3_9::{current_interp, get_eval, set_eval};
use crate::hook;
use pyo3::ffi::PyObject;
use std::ffi::{c_int, c_void};

pub(crate) const FAMILY: &str = "3.11";
pub(crate) const FRAME_CODE_OFFSET: usize = 32;
pub(crate) const HAS_CO_QUALNAME: bool = true;

unsafe extern "C" fn eval_hook(ts: *mut c_void, frame: *mut c_void, throw: c_int) -> *mut PyObject {
    // SAFETY: CPython passes a live _PyInterpreterFrame; f_code is at FRAME_CODE_OFFSET.
    let code = unsafe { *frame.cast::<u8>().add(FRAME_CODE_OFFSET).cast::<*mut PyObject>() };
    // SAFETY: (ts, frame, throw) are the evaluator's own arguments.
    unsafe { hook::dispatch(ts, frame, throw as isize, code) }
}

pub(crate) fn hook_ptr() -> *const c_void {
    eval_hook as *const c_void
}
