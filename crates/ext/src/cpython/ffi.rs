//! CPython symbols pyo3-ffi does not declare (or declares with a type that does not fit
//! every version), named as in CPython's headers.
//!
//! Evaluator pointers are declared as `*const c_void`: the hook signature differs between
//! 3.8 (two arguments), 3.9–3.10 (frame object) and 3.11+ (interpreter frame), and each
//! version family casts to its own function type.

use pyo3::ffi::PyInterpreterState;
use std::ffi::c_void;

extern "C" {
    /// The interpreter's own frame evaluator (`Include/internal/pycore_ceval.h`,
    /// `Include/cpython/ceval.h`). Exported by libpython 3.8–3.14.
    /// pyo3-ffi: "skipped private _PyEval_EvalFrameDefault".
    pub fn _PyEval_EvalFrameDefault();

    /// `Include/internal/pycore_pystate.h` (3.8): the current interpreter. 3.9 added the
    /// public `PyInterpreterState_Get`; 3.8 exports only this one.
    #[cfg(not(Py_3_9))]
    pub fn _PyInterpreterState_Get() -> *mut PyInterpreterState;

    /// `Include/cpython/pystate.h` (3.8–3.12; 3.13 made it public as
    /// `PyThreadState_GetUnchecked`): this thread's state, or null.
    #[cfg(not(Py_3_13))]
    pub fn _PyThreadState_UncheckedGet() -> *mut pyo3::ffi::PyThreadState;

    /// `Include/cpython/pylifecycle.h` (3.8–3.12; 3.13 made it public as `Py_IsFinalizing`):
    /// whether the runtime is finalizing.
    #[cfg(not(Py_3_13))]
    pub fn _Py_IsFinalizing() -> std::ffi::c_int;

    /// `Include/cpython/sysmodule.h` (3.8+): a runtime audit hook, called by every
    /// interpreter for every audit event.
    pub fn PySys_AddAuditHook(
        hook: unsafe extern "C" fn(
            *const std::ffi::c_char,
            *mut pyo3::ffi::PyObject,
            *mut c_void,
        ) -> std::ffi::c_int,
        user_data: *mut c_void,
    ) -> std::ffi::c_int;

    /// `Include/cpython/pystate.h` (3.9+). 3.9–3.10 return the raw field; 3.11+ map the
    /// stored NULL back to `_PyEval_EvalFrameDefault`.
    #[cfg(Py_3_9)]
    pub fn _PyInterpreterState_GetEvalFrameFunc(interp: *mut PyInterpreterState) -> *const c_void;

    /// `Include/cpython/pystate.h` (3.9+). 3.11+ store `_PyEval_EvalFrameDefault` as NULL.
    #[cfg(Py_3_9)]
    pub fn _PyInterpreterState_SetEvalFrameFunc(
        interp: *mut PyInterpreterState,
        eval_frame: *const c_void,
    );
}

/// The address of `_PyEval_EvalFrameDefault`.
pub fn default_eval() -> *const c_void {
    _PyEval_EvalFrameDefault as *const c_void
}

/// Whether the runtime is finalizing (a thread that asks for the GIL then never gets it back).
pub fn is_finalizing() -> bool {
    // SAFETY: reads one runtime field; callable from any thread, with or without the GIL.
    #[cfg(not(Py_3_13))]
    let finalizing = unsafe { _Py_IsFinalizing() };
    // SAFETY: as above (the public name since 3.13).
    #[cfg(Py_3_13)]
    let finalizing = unsafe { pyo3::ffi::Py_IsFinalizing() };
    finalizing != 0
}
