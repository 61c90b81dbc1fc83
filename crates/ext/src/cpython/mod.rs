//! Everything that differs between CPython versions, one module per version family, each with
//! the same surface. This file is the only place whose `cfg(Py_3_x)` picks a family.
//!
//! | family     | hook signature                          | code object of the frame                 |
//! |------------|-----------------------------------------|------------------------------------------|
//! | `v3_8`     | `(PyFrameObject*, int)`; no setter: `interp->eval_frame` written at its offset | `f->f_code` |
//! | `v3_9_10`  | `(tstate, PyFrameObject*, int)`         | `f->f_code`                              |
//! | `v3_11`    | `(tstate, _PyInterpreterFrame*, int)`   | `f->f_code` (offset 32)                  |
//! | `v3_12_13` | same                                    | `f->f_code` / `f->f_executable` (offset 0) |
//! | `v3_14_15` | same                                    | `f->f_executable`, a tagged `_PyStackRef` |
//!
//! Each family provides:
//! * `FAMILY`: its name, for `status()`;
//! * `OFFSETS`: every struct offset it relies on (where the frame keeps its code object, and
//!   the like), each checked against the real headers by a C probe in the test suite;
//! * `HAS_CO_QUALNAME`: whether code objects carry `co_qualname` (3.11+);
//! * `FRAME_HOLDS_CODE`: whether the frame's code field is always a code object;
//! * `CODE_EXTRA_OFFSET`: where `co_extra` is, if pinned for this family;
//! * `hook_ptr::<D>()`: the PEP 523 evaluator perfpy installs, with this version's signature:
//!   it finds the frame's code object and hands both to [`Dispatch::dispatch`] of `D` (this
//!   layer knows nothing of what perfpy does with a call; `hook.rs` implements `Dispatch`);
//! * `current_interp()`, `get_eval(interp)`, `set_eval(interp, f)`: read and replace the
//!   interpreter's evaluator, where "no hook" reads as `_PyEval_EvalFrameDefault`;
//! * `SUBINTERPRETERS`, `call_interp(a0)`, `current_interp_unchecked()`: which interpreter a
//!   call runs in (3.9+: the thread state's `interp`; 3.8's hook can't tell, so 3.8 hooks
//!   only the interpreter perfpy is imported into);
//! * `is_shared_static(code)`: whether a code object is static and shared by every
//!   interpreter (3.11 and 3.12's deep-frozen standard library), so no subinterpreter may
//!   write its `co_extra`.

mod common;
pub(crate) mod ffi;

pub(crate) use common::Dispatch;

#[cfg(not(Py_3_9))]
mod v3_8;
#[cfg(not(Py_3_9))]
use v3_8 as family;

#[cfg(all(Py_3_9, not(Py_3_11)))]
mod v3_9_10;
#[cfg(all(Py_3_9, not(Py_3_11)))]
use v3_9_10 as family;

#[cfg(all(Py_3_11, not(Py_3_12)))]
mod v3_11;
#[cfg(all(Py_3_11, not(Py_3_12)))]
use v3_11 as family;

#[cfg(all(Py_3_12, not(Py_3_14)))]
mod v3_12_13;
#[cfg(all(Py_3_12, not(Py_3_14)))]
use v3_12_13 as family;

#[cfg(all(Py_3_14, not(Py_3_16)))]
mod v3_14_15;
#[cfg(all(Py_3_14, not(Py_3_16)))]
use v3_14_15 as family;

#[cfg(Py_3_16)]
compile_error!(
    "perfpy does not know the frame layout of CPython 3.16 or newer; \
     supported versions are 3.8 to 3.15"
);

/// Whether `obj` is exactly a code object.
///
/// # Safety
/// `obj` is a live object.
#[inline(always)]
pub(crate) unsafe fn is_code(obj: *mut pyo3::ffi::PyObject) -> bool {
    // SAFETY: a live object's type pointer is readable.
    unsafe { pyo3::ffi::Py_TYPE(obj) == std::ptr::addr_of_mut!(pyo3::ffi::PyCode_Type) }
}

pub(crate) use family::{
    call_interp, current_interp, current_interp_unchecked, get_eval, hook_ptr, is_shared_static,
    set_eval, FAMILY, FRAME_HOLDS_CODE, HAS_CO_QUALNAME, OFFSETS, SUBINTERPRETERS,
};

/// `_PyCodeObjectExtra` (`Include/internal/pycore_code.h`, unchanged since 3.6).
#[repr(C)]
struct CodeExtra {
    ce_size: isize,
    ce_extras: [*mut std::ffi::c_void; 1],
}

/// `co_extra[index]` of a code object, or null. Reads the field directly where the family
/// pins `co_extra`'s offset (what `PyUnstable_Code_GetExtra` does, minus a call and its
/// checks), else calls the API.
///
/// # Safety
/// The GIL is held, `code` is a code object, and `index` was requested in this interpreter.
#[inline(always)]
pub(crate) unsafe fn code_extra(
    code: *mut pyo3::ffi::PyObject,
    index: isize,
) -> *mut std::ffi::c_void {
    match family::CODE_EXTRA_OFFSET {
        Some(offset) => {
            // SAFETY: `code` is a code object, whose `co_extra` field is at `offset`.
            let extra = unsafe { *code.cast::<u8>().add(offset).cast::<*const CodeExtra>() };
            if extra.is_null() {
                return std::ptr::null_mut();
            }
            // SAFETY: a non-null co_extra points to a _PyCodeObjectExtra with `ce_size` slots.
            unsafe {
                if index >= (*extra).ce_size {
                    return std::ptr::null_mut();
                }
                *std::ptr::addr_of!((*extra).ce_extras)
                    .cast::<*mut std::ffi::c_void>()
                    .add(index as usize)
            }
        }
        None => {
            let mut out = std::ptr::null_mut();
            // SAFETY: `code` is a code object, so this cannot fail or set an exception.
            let rc = unsafe { pyo3::ffi::PyUnstable_Code_GetExtra(code, index, &mut out) };
            if rc == 0 {
                out
            } else {
                std::ptr::null_mut()
            }
        }
    }
}
