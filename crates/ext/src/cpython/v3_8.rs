//! CPython 3.8.
//!
//! * Hook: `PyObject *(*)(struct _frame *, int)` — no thread state argument.
//! * There is no setter: `interp->eval_frame` is written directly. Its offset in
//!   `struct _is` (`Include/internal/pycore_pystate.h`) is 568 on LP64 builds. Before writing,
//!   the field is checked to hold a plausible evaluator (the default, ours, or a function in a
//!   loaded object), so a layout we do not expect is refused instead of corrupted.
//! * Code object: `PyFrameObject.f_code`, offset 32.

use super::common::Dispatch;
use super::ffi;
use pyo3::ffi::{PyInterpreterState, PyObject};
use std::ffi::{c_int, c_void};

pub(crate) const FAMILY: &str = "3.8";

/// Other interpreters get no hook: 3.8's hook is not passed the thread state, so it can't
/// tell which interpreter a call runs in.
pub(crate) const SUBINTERPRETERS: bool = false;
pub(crate) const FRAME_CODE_OFFSET: usize = 32;
/// `offsetof(PyCodeObject, co_extra)`: the hot path reads the slot directly.
const CO_EXTRA_OFFSET: usize = 144;
pub(crate) const CODE_EXTRA_OFFSET: Option<usize> = Some(CO_EXTRA_OFFSET);

/// Every layout fact this family relies on, for the header probe in the test suite.
pub(crate) const OFFSETS: &[(&str, usize)] = &[
    ("frame_code_offset", FRAME_CODE_OFFSET),
    ("code_extra_offset", CO_EXTRA_OFFSET),
    ("interp_eval_frame_offset", INTERP_EVAL_FRAME_OFFSET),
];
/// Whether the frame's code field always holds a code object (else the hot path checks).
pub(crate) const FRAME_HOLDS_CODE: bool = true;
pub(crate) const HAS_CO_QUALNAME: bool = false;

/// `offsetof(PyInterpreterState, eval_frame)` in 3.8 (x86_64 and aarch64, LP64).
pub(crate) const INTERP_EVAL_FRAME_OFFSET: usize = 568;

unsafe extern "C" fn eval_hook<D: Dispatch>(frame: *mut c_void, throw: c_int) -> *mut PyObject {
    // SAFETY: CPython passes a live PyFrameObject; f_code is at FRAME_CODE_OFFSET and holds
    // a strong reference for the frame's lifetime.
    let code = unsafe {
        *frame
            .cast::<u8>()
            .add(FRAME_CODE_OFFSET)
            .cast::<*mut PyObject>()
    };
    // SAFETY: the 3.8 evaluator takes (frame, throw); dispatch forwards its first two
    // arguments in the first two argument registers and a zero third one, which the 3.8
    // evaluator ignores (System V and AAPCS64 pass arguments in registers).
    unsafe { D::dispatch(frame, throw as isize as *mut c_void, 0, frame, code) }
}

/// This family's evaluator hook, calling `D` for every frame.
pub(crate) fn hook_ptr<D: Dispatch>() -> *const c_void {
    eval_hook::<D> as *const c_void
}

/// # Safety
/// The GIL must be held.
pub(crate) unsafe fn current_interp() -> *mut PyInterpreterState {
    // SAFETY: the caller holds the GIL.
    unsafe { ffi::_PyInterpreterState_Get() }
}

fn field(interp: *mut PyInterpreterState) -> *mut *const c_void {
    interp
        .cast::<u8>()
        .wrapping_add(INTERP_EVAL_FRAME_OFFSET)
        .cast::<*const c_void>()
}

/// # Safety
/// `interp` is a live interpreter and the GIL is held.
pub(crate) unsafe fn get_eval(interp: *mut PyInterpreterState) -> *const c_void {
    // SAFETY: 3.8's PyInterpreterState is larger than the offset; the field is a pointer.
    let f = unsafe { *field(interp) };
    if f.is_null() {
        ffi::default_eval()
    } else {
        f
    }
}

/// Whether `f` is an address inside some loaded object (checked before trusting a value read
/// at a hard-coded offset).
fn in_loaded_object(f: *const c_void) -> bool {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr only reads the address and fills `info`.
    unsafe { libc::dladdr(f, info.as_mut_ptr()) != 0 }
}

/// # Safety
/// `interp` is a live interpreter, the GIL is held, and `f` is a 3.8 evaluator.
pub(crate) unsafe fn set_eval(
    interp: *mut PyInterpreterState,
    f: *const c_void,
) -> Result<(), String> {
    // SAFETY: as in get_eval.
    let current = unsafe { *field(interp) };
    // Our own hook is in a loaded object too (perfpy's extension).
    if current != ffi::default_eval() && !in_loaded_object(current) {
        return Err(format!(
            "PyInterpreterState.eval_frame is not where perfpy expects it in CPython 3.8 \
             (offset {INTERP_EVAL_FRAME_OFFSET} holds {current:p}); refusing to write there"
        ));
    }
    // SAFETY: the field was validated above; writes happen under the GIL, which every
    // reader of eval_frame also holds.
    unsafe { *field(interp) = f };
    Ok(())
}

/// The interpreter of a call: unknown to 3.8's hook (0 means the home).
///
/// # Safety
/// None (the same contract as the other families').
#[inline(always)]
pub(crate) unsafe fn call_interp(_frame: *mut c_void) -> usize {
    0
}

/// The current interpreter, or None (never asked on 3.8: no subinterpreter support).
///
/// # Safety
/// None.
pub(crate) unsafe fn current_interp_unchecked() -> Option<*mut PyInterpreterState> {
    None
}

/// Whether `code` is shared by every interpreter: never before 3.11 (no static code objects).
///
/// # Safety
/// None (the same contract as the other families').
#[inline(always)]
pub(crate) unsafe fn is_shared_static(_code: *mut PyObject) -> bool {
    false
}
