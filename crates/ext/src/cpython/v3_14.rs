//! CPython 3.14 (compile-checked; no 3.14 interpreter is in the test matrix yet).
//!
//! * Hook: `PyObject *(*)(PyThreadState *, _PyInterpreterFrame *, int)`.
//! * Code object: `f_executable`, offset 0, is a `_PyStackRef`: a `uintptr_t` whose low bits
//!   are tags (`Py_TAG_BITS` is 1 or 3 depending on the build). Objects are at least 8-byte
//!   aligned, so masking the low two bits yields the object on every 3.14 build.

pub(crate) use super::common::since_3_9::{current_interp, get_eval, set_eval};
use super::common::Dispatch;
use pyo3::ffi::PyObject;
use std::ffi::{c_int, c_void};

pub(crate) const FAMILY: &str = "3.14";
pub(crate) const FRAME_CODE_OFFSET: usize = 0;
/// 3.14's `PyCodeObject` layout is not pinned here: `co_extra` is read through
/// `PyUnstable_Code_GetExtra` (which is also thread-safe on free-threaded builds).
pub(crate) const CODE_EXTRA_OFFSET: Option<usize> = None;

/// Every layout fact this family relies on, for the header probe in the test suite.
pub(crate) const OFFSETS: &[(&str, usize)] = &[("frame_code_offset", FRAME_CODE_OFFSET)];
/// Whether the frame's code field always holds a code object (else the hot path checks).
pub(crate) const FRAME_HOLDS_CODE: bool = false;
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
