//! What perfpy keeps per code object: an [`Entry`] in the code object's `co_extra` slot at
//! its interpreter's index ([`EXTRA_INDEX`](crate::state::EXTRA_INDEX) in the home, the
//! slot's in [`crate::interpreters`] elsewhere), owned by the code object and freed with it
//! by [`free_entry`].

use crate::backend::Kind;
use crate::state::EXTRA_INDEX;
use pyo3::ffi;
use std::ffi::c_void;
use std::sync::atomic::Ordering;

/// What `co_extra[EXTRA_INDEX]` points to. The stub itself is never reused when the entry
/// is freed: perf may still attribute samples to its address.
pub(crate) struct Entry {
    /// Stub address, 0 until one is assigned.
    pub stub: usize,
    /// `GENERATION` in which this process's file last announced the stub (0: no stub).
    pub generation: u32,
    /// Whose pool the stub came from (`None` until it has one).
    pub backend: Option<Kind>,
    /// Qualified name worked out from the enclosing code (3.8–3.10, which lack co_qualname).
    pub qualname: Option<Box<str>>,
}

/// Passed to `PyUnstable_Eval_RequestCodeExtraIndex`: drops an [`Entry`].
pub(crate) unsafe extern "C" fn free_entry(p: *mut c_void) {
    if !p.is_null() {
        // SAFETY: every non-null value stored at our index is a Box<Entry> leaked by
        // `store`, and CPython calls this once per stored value.
        drop(unsafe { Box::from_raw(p.cast::<Entry>()) });
    }
}

/// The entry stored for `code` at `index`, if any.
///
/// # Safety
/// The GIL is held, `code` is a code object, and `index` (if not negative) was requested by
/// perfpy in the code object's interpreter.
#[inline(always)]
pub(crate) unsafe fn get(code: *mut ffi::PyObject, index: isize) -> Option<*mut Entry> {
    if index < 0 {
        return None;
    }
    // SAFETY: the GIL is held and `code` is a code object (our contract); the index was
    // requested in this interpreter.
    let extra = unsafe { crate::cpython::code_extra(code, index) };
    (!extra.is_null()).then_some(extra.cast::<Entry>())
}

/// Stores a new entry for `code` at `index`; on failure the entry is dropped and None
/// returned.
///
/// # Safety
/// The GIL is held, `code` is a code object, `index` was requested by perfpy in its
/// interpreter, and no entry is stored for it yet.
pub(crate) unsafe fn store(
    code: *mut ffi::PyObject,
    index: isize,
    entry: Entry,
) -> Option<*mut Entry> {
    let p = Box::into_raw(Box::new(entry));
    // SAFETY: `code` is a code object; `p` is a valid pointer whose ownership passes to the
    // code object (freed by `free_entry`) when this succeeds.
    if unsafe { ffi::PyUnstable_Code_SetExtra(code, index, p.cast()) } != 0 {
        // SAFETY: the store failed, so we still own `p`; clear the (MemoryError) exception.
        unsafe {
            drop(Box::from_raw(p));
            ffi::PyErr_Clear();
        }
        return None;
    }
    Some(p)
}

/// Where a code object's [`Entry`] lives, in the interpreter that runs it.
#[derive(Clone, Copy)]
pub(crate) enum Place {
    /// In its `co_extra`, at the home's index.
    Home,
    /// In its `co_extra`, in another interpreter (the address), at the index of its slot
    /// (-1 until requested there).
    Elsewhere(usize, isize),
    /// In [`state::Inner::shared`]: a static code object of every interpreter, run outside
    /// the home.
    Shared,
}

impl Place {
    /// The `co_extra` index (negative: none, or not there).
    #[inline(always)]
    pub(crate) fn index(self) -> isize {
        match self {
            Place::Home => EXTRA_INDEX.load(Ordering::Relaxed),
            Place::Elsewhere(_, index) => index,
            Place::Shared => -1,
        }
    }
}
