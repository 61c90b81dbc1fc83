//! CPython 3.11.
//!
//! * Hook: `PyObject *(*)(PyThreadState *, _PyInterpreterFrame *, int)`. Installing any hook
//!   turns off inlined Python-to-Python calls, so every call passes through it.
//! * Code object: `_PyInterpreterFrame.f_code` (`Include/internal/pycore_frame.h`: `f_func,
//!   f_globals, f_builtins, f_locals, f_code, ...`), offset 32. 3.11 has no API for it.
//! * Native stack: 3.11 has no C recursion budget. Without a hook, Python-to-Python calls
//!   use no native stack, so a program may raise `sys.setrecursionlimit` far beyond what the
//!   native stack holds; with a hook every call nests on the native stack and such a program
//!   would crash. The hook therefore refuses to enter a frame when less than
//!   [`STACK_RESERVE`] bytes of the thread's native stack are left, raising `RecursionError`
//!   exactly as the evaluator's own recursion check does (returning NULL before the frame
//!   runs; its caller pops it).

use super::common::since_3_9::TSTATE_INTERP_OFFSET;
pub(crate) use super::common::since_3_9::{
    call_interp, current_interp, current_interp_unchecked, get_eval, set_eval, SUBINTERPRETERS,
};
use super::common::Dispatch;
use pyo3::ffi::PyObject;
use std::cell::Cell;
use std::ffi::{c_int, c_void};

pub(crate) const FAMILY: &str = "3.11";
pub(crate) const FRAME_CODE_OFFSET: usize = 32;
/// `offsetof(PyCodeObject, co_extra)`: the hot path reads the slot directly.
const CO_EXTRA_OFFSET: usize = 176;
pub(crate) const CODE_EXTRA_OFFSET: Option<usize> = Some(CO_EXTRA_OFFSET);

/// Every layout fact this family relies on, for the header probe in the test suite.
pub(crate) const OFFSETS: &[(&str, usize)] = &[
    ("frame_code_offset", FRAME_CODE_OFFSET),
    ("tstate_interp_offset", TSTATE_INTERP_OFFSET),
    ("code_extra_offset", CO_EXTRA_OFFSET),
    (
        "tstate_recursion_remaining_offset",
        TSTATE_RECURSION_REMAINING_OFFSET,
    ),
    (
        "tstate_recursion_limit_offset",
        TSTATE_RECURSION_LIMIT_OFFSET,
    ),
];
/// Whether the frame's code field always holds a code object (else the hot path checks).
pub(crate) const FRAME_HOLDS_CODE: bool = true;
pub(crate) const HAS_CO_QUALNAME: bool = true;

/// Native stack kept free for C code running under the deepest Python frame.
pub(crate) const STACK_RESERVE: usize = 256 * 1024;

thread_local! {
    /// Lowest usable stack address of this thread (0: not yet known).
    static STACK_FLOOR: Cell<usize> = const { Cell::new(0) };
}

/// The address below which this thread's stack is too close to exhausted.
#[cold]
fn compute_floor() -> usize {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::zeroed();
    let (mut addr, mut size): (*mut c_void, usize) = (std::ptr::null_mut(), 0);
    // SAFETY: standard glibc calls on the current thread with valid out-pointers; the
    // attribute object is destroyed after use.
    let ok = unsafe {
        libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) == 0 && {
            let r = libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size) == 0;
            libc::pthread_attr_destroy(attr.as_mut_ptr());
            r
        }
    };
    if !ok || addr.is_null() {
        return 1; // unknown: never refuse
    }
    addr as usize + STACK_RESERVE.min(size / 4)
}

/// `offsetof(PyThreadState, recursion_remaining)` and `recursion_limit` in 3.11.
pub(crate) const TSTATE_RECURSION_REMAINING_OFFSET: usize = 32;
pub(crate) const TSTATE_RECURSION_LIMIT_OFFSET: usize = 36;

/// Recursion depth below which the native stack is not checked: the default recursion limit
/// (1000) can't exhaust any thread stack CPython runs on.
const UNCHECKED_DEPTH: c_int = 1000;

/// Whether this thread's native stack is too close to exhausted to enter another frame.
#[cold]
#[inline(never)]
fn stack_nearly_exhausted() -> bool {
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    let mut floor = STACK_FLOOR.with(Cell::get);
    if floor == 0 {
        floor = compute_floor();
        STACK_FLOOR.with(|f| f.set(floor));
    }
    sp < floor
}

unsafe extern "C" fn eval_hook<D: Dispatch>(
    ts: *mut c_void,
    frame: *mut c_void,
    throw: c_int,
) -> *mut PyObject {
    let field = |offset: usize| ts.cast::<u8>().wrapping_add(offset).cast::<c_int>();
    // SAFETY: `ts` is the running thread's state; both fields are plain ints.
    let depth = unsafe {
        *field(TSTATE_RECURSION_LIMIT_OFFSET) - *field(TSTATE_RECURSION_REMAINING_OFFSET)
    };
    if depth > UNCHECKED_DEPTH && stack_nearly_exhausted() {
        // SAFETY: the GIL is held inside an evaluator; the message is a C string literal.
        unsafe {
            pyo3::ffi::PyErr_SetString(
                pyo3::ffi::PyExc_RecursionError,
                c"maximum recursion depth exceeded (the native stack is nearly exhausted)".as_ptr(),
            )
        };
        return std::ptr::null_mut();
    }
    // SAFETY: CPython passes a live _PyInterpreterFrame; f_code is at FRAME_CODE_OFFSET.
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

/// `_PyObject_IMMORTAL_REFCNT` (3.11): the reference count deep-frozen objects start with.
const IMMORTAL_REFCNT: isize = 999_999_999;

/// Whether `code` is one of the deep-frozen code objects (the frozen standard-library modules)
/// that live in libpython's data and are shared by every interpreter.
///
/// # Safety
/// `code` is a live object.
#[inline(always)]
pub(crate) unsafe fn is_shared_static(code: *mut PyObject) -> bool {
    // SAFETY: a live object's reference count is readable.
    unsafe { pyo3::ffi::Py_REFCNT(code) >= IMMORTAL_REFCNT }
}
