//! CPython 3.9 and 3.10.
//!
//! * Hook: `PyObject *(*)(PyThreadState *, PyFrameObject *, int)`, installed with
//!   `_PyInterpreterState_SetEvalFrameFunc`.
//! * Code object: `PyFrameObject.f_code`, offset 32 (read directly: `PyFrame_GetCode`
//!   returns a new reference, which costs an incref/decref on every call).

use super::common::since_3_9::TSTATE_INTERP_OFFSET;
pub(crate) use super::common::since_3_9::{
    call_interp, current_interp, current_interp_unchecked, get_eval, set_eval, SUBINTERPRETERS,
};
use super::common::Dispatch;
use pyo3::ffi::PyObject;
use std::ffi::{c_int, c_void};

pub(crate) const FAMILY: &str = "3.9-3.10";
pub(crate) const FRAME_CODE_OFFSET: usize = 32;
/// `offsetof(PyCodeObject, co_extra)`: the hot path reads the slot directly.
const CO_EXTRA_OFFSET: usize = 144;
pub(crate) const CODE_EXTRA_OFFSET: Option<usize> = Some(CO_EXTRA_OFFSET);

/// Every layout fact this family relies on, for the header probe in the test suite.
pub(crate) const OFFSETS: &[(&str, usize)] = &[
    ("frame_code_offset", FRAME_CODE_OFFSET),
    ("tstate_interp_offset", TSTATE_INTERP_OFFSET),
    ("code_extra_offset", CO_EXTRA_OFFSET),
];
/// Whether the frame's code field always holds a code object (else the hot path checks).
pub(crate) const FRAME_HOLDS_CODE: bool = true;
pub(crate) const HAS_CO_QUALNAME: bool = false;

unsafe extern "C" fn eval_hook<D: Dispatch>(
    ts: *mut c_void,
    frame: *mut c_void,
    throw: c_int,
) -> *mut PyObject {
    // SAFETY: CPython passes a live PyFrameObject; f_code is at FRAME_CODE_OFFSET.
    let code = unsafe {
        *frame
            .cast::<u8>()
            .add(FRAME_CODE_OFFSET)
            .cast::<*mut PyObject>()
    };
    // SAFETY: (ts, frame, throw) are the evaluator's own arguments.
    unsafe { D::dispatch(ts, frame, throw as isize, frame, code) }
}

/// This family's evaluator hook, calling `D` for every frame.
pub(crate) fn hook_ptr<D: Dispatch>() -> *const c_void {
    eval_hook::<D> as *const c_void
}

/// Whether `code` is shared by every interpreter: never before 3.11 (no static code objects).
///
/// # Safety
/// None (the same contract as the other families').
#[inline(always)]
pub(crate) unsafe fn is_shared_static(_code: *mut PyObject) -> bool {
    false
}
