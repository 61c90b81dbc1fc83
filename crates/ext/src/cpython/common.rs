//! What the version families share: the [`Dispatch`] interface their hooks call, and
//! (3.9+) the evaluator API CPython exports.

/// What a family's evaluator hook calls for every frame.
pub(crate) trait Dispatch {
    /// Runs the call.
    ///
    /// # Safety
    /// Called only from a family's hook with the evaluator's own arguments (`a0..a2`; on
    /// 3.8 `(frame, throw, 0)`), the frame they carry, and what the frame holds as its code
    /// (a code object, or on 3.14 possibly another object or null).
    unsafe fn dispatch(
        a0: *mut std::ffi::c_void,
        a1: *mut std::ffi::c_void,
        a2: isize,
        frame: *mut std::ffi::c_void,
        code: *mut pyo3::ffi::PyObject,
    ) -> *mut pyo3::ffi::PyObject;
}

/// The evaluator API CPython exports since 3.9.
#[cfg(Py_3_9)]
pub(crate) mod since_3_9 {
    use crate::cpython::ffi;
    use pyo3::ffi::PyInterpreterState;
    use std::ffi::c_void;

    /// `offsetof(PyThreadState, interp)`: `prev`, `next`, `interp` open the struct in every
    /// version since 3.9.
    pub(crate) const TSTATE_INTERP_OFFSET: usize = 16;

    /// Other interpreters can get the hook: it tells them apart by the thread state it is
    /// passed.
    pub(crate) const SUBINTERPRETERS: bool = true;

    /// The interpreter of a call, from the thread state the hook is passed.
    ///
    /// # Safety
    /// `ts` is the running thread's state (an evaluator's first argument).
    #[inline(always)]
    pub(crate) unsafe fn call_interp(ts: *mut c_void) -> usize {
        // SAFETY: per the caller; `interp` is at this offset (checked by the layout probe).
        unsafe { *ts.cast::<u8>().add(TSTATE_INTERP_OFFSET).cast::<usize>() }
    }

    /// The current interpreter, or None when this thread has no thread state.
    ///
    /// # Safety
    /// None beyond CPython being initialized.
    pub(crate) unsafe fn current_interp_unchecked() -> Option<*mut PyInterpreterState> {
        #[cfg(Py_3_13)]
        // SAFETY: reads this thread's state, possibly null.
        let ts = unsafe { pyo3::ffi::PyThreadState_GetUnchecked() };
        #[cfg(not(Py_3_13))]
        // SAFETY: as above.
        let ts = unsafe { ffi::_PyThreadState_UncheckedGet() };
        if ts.is_null() {
            return None;
        }
        // SAFETY: `ts` is this thread's live state.
        Some(unsafe { pyo3::ffi::PyThreadState_GetInterpreter(ts) })
    }

    /// # Safety
    /// The GIL must be held.
    pub(crate) unsafe fn current_interp() -> *mut PyInterpreterState {
        // SAFETY: the caller holds the GIL, which is all PyInterpreterState_Get needs.
        unsafe { pyo3::ffi::PyInterpreterState_Get() }
    }

    /// # Safety
    /// `interp` is a live interpreter and the GIL is held.
    pub(crate) unsafe fn get_eval(interp: *mut PyInterpreterState) -> *const c_void {
        // SAFETY: per the caller's guarantee.
        let f = unsafe { ffi::_PyInterpreterState_GetEvalFrameFunc(interp) };
        if f.is_null() {
            ffi::default_eval()
        } else {
            f
        }
    }

    /// # Safety
    /// `interp` is a live interpreter, the GIL is held, and `f` is an evaluator with this
    /// version's hook signature.
    pub(crate) unsafe fn set_eval(
        interp: *mut PyInterpreterState,
        f: *const c_void,
    ) -> Result<(), String> {
        // SAFETY: per the caller's guarantee.
        unsafe { ffi::_PyInterpreterState_SetEvalFrameFunc(interp, f) };
        Ok(())
    }
}
