//! The evaluator's hot and cold paths.
//!
//! Every Python call made while the hook is installed arrives in a version family's
//! `eval_hook`, which finds the frame's code object and calls [`dispatch`]:
//!
//! ```text
//! eval_hook(ts, frame, throw)
//!   code = frame's code object                       (cpython::<family>)
//!   entry = co_extra[EXTRA_INDEX]                    (hot: one call into libpython)
//!   entry current?  yes -> stub(ts, frame, throw, prev_eval)   -> prev_eval(ts, frame, throw)
//!                   no  -> cold path: stub from the pool, map line written, entry stored
//! ```
//!
//! The hot path allocates nothing and touches no Python object beyond the `co_extra` read.
//! The cold path runs once per code object per process. It may run with an exception set
//! (a generator's `throw()`), so it saves and restores the exception around its work, and it
//! never lets a failure escape into the program: on any error perfpy turns itself off, warns
//! once, and the call proceeds through the previous evaluator.

use crate::names;
use crate::state::{
    self, Inner, BELOW_EVAL, EXTRA_INDEX, GENERATION, MODE, MODE_ACTIVE, PREV_EVAL,
};
use pyo3::ffi;
use std::cell::Cell;
use std::ffi::{c_int, c_void, CString};
use std::sync::atomic::Ordering;

/// The stub's C signature: the evaluator comes last so the first three arguments are already
/// in place for the call it makes.
pub(crate) type StubFn =
    unsafe extern "C" fn(*mut c_void, *mut c_void, isize, *const c_void) -> *mut ffi::PyObject;

/// The evaluator signature shared by 3.9+ (3.8's two-argument form ignores the third).
type EvalFn = unsafe extern "C" fn(*mut c_void, *mut c_void, isize) -> *mut ffi::PyObject;

/// What `co_extra[EXTRA_INDEX]` points to. Freed by [`free_entry`] when the code object dies
/// (the stub itself is never reused: perf may still attribute samples to its address).
pub(crate) struct Entry {
    /// Stub address, 0 until one is assigned.
    pub stub: usize,
    /// [`GENERATION`] in which this process's map last announced the stub.
    pub generation: u32,
    /// Whose pool the stub came from (`None` until it has one).
    pub backend: Option<state::Backend>,
    /// Qualified name worked out from the enclosing code (3.8–3.10, which lack co_qualname).
    pub qualname: Option<Box<str>>,
}

/// Passed to `PyUnstable_Eval_RequestCodeExtraIndex`: drops an [`Entry`].
pub(crate) unsafe extern "C" fn free_entry(p: *mut c_void) {
    if !p.is_null() {
        // SAFETY: every non-null value stored at our index is a Box<Entry> leaked by
        // `store_entry`, and CPython calls this once per stored value.
        drop(unsafe { Box::from_raw(p.cast::<Entry>()) });
    }
}

/// Runs a call through its function's stub, or straight through the previous evaluator.
///
/// # Safety
/// Called only from a version family's hook with the evaluator's own arguments (`a0..a2`),
/// the frame they carry, and the frame's code object (or any other object pointer, which is
/// ignored).
#[inline(always)]
pub(crate) unsafe fn dispatch(
    a0: *mut c_void,
    a1: *mut c_void,
    a2: isize,
    frame: *mut c_void,
    code: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let mode = MODE.load(Ordering::Relaxed);
    let prev = PREV_EVAL.load(Ordering::Relaxed) as *const c_void;
    if mode == MODE_ACTIVE {
        // SAFETY: forwarded.
        return unsafe { run_through(a0, a1, a2, code, prev) };
    }
    if mode == 0 {
        // SAFETY: forwarding the evaluator's own arguments to the previous evaluator.
        return unsafe { call_eval(prev, a0, a1, a2) };
    }
    // SAFETY: forwarded.
    unsafe { dispatch_guarded(a0, a1, a2, frame, code, mode & MODE_ACTIVE != 0) }
}

/// Calls `next` for the frame, through the frame's stub.
///
/// # Safety
/// As for [`dispatch`]; `next` is an evaluator with this version's signature.
#[inline(always)]
unsafe fn run_through(
    a0: *mut c_void,
    a1: *mut c_void,
    a2: isize,
    code: *mut ffi::PyObject,
    next: *const c_void,
) -> *mut ffi::PyObject {
    // SAFETY: the GIL is held inside an evaluator, and `code` is the frame's object.
    match unsafe { stub_for(code) } {
        // SAFETY: `stub` is a live trampoline (arenas are never unmapped) that forwards
        // (a0, a1, a2) to `next`.
        Some(stub) => unsafe { stub(a0, a1, a2, next) },
        // SAFETY: forwarding the evaluator's own arguments to an evaluator.
        None => unsafe { call_eval(next, a0, a1, a2) },
    }
}

/// # Safety
/// `f` is an evaluator with this version's signature; the arguments are an evaluator's own.
#[inline(always)]
unsafe fn call_eval(
    f: *const c_void,
    a0: *mut c_void,
    a1: *mut c_void,
    a2: isize,
) -> *mut ffi::PyObject {
    // SAFETY: per the caller, `f` is an evaluator (3.8's two-argument form ignores `a2`).
    let f: EvalFn = unsafe { std::mem::transmute::<*const c_void, EvalFn>(f) };
    // SAFETY: per the caller.
    unsafe { f(a0, a1, a2) }
}

thread_local! {
    /// The frame this thread's outermost copy of our hook is dispatching (guarded mode).
    static DISPATCHING: Cell<usize> = const { Cell::new(0) };
}

/// [`dispatch`] when our hook may appear twice in the evaluator chain.
///
/// The first copy to see a frame runs it through its stub and passes it on: to
/// [`PREV_EVAL`] if that copy is the installed evaluator (the top of the chain), else to
/// [`BELOW_EVAL`] (the copy stranded inside another hook's chain). A copy reached again for
/// the same frame passes it straight to [`BELOW_EVAL`].
#[cold]
#[inline(never)]
unsafe fn dispatch_guarded(
    a0: *mut c_void,
    a1: *mut c_void,
    a2: isize,
    frame: *mut c_void,
    code: *mut ffi::PyObject,
    active: bool,
) -> *mut ffi::PyObject {
    let below = BELOW_EVAL.load(Ordering::Relaxed) as *const c_void;
    let outer = DISPATCHING.with(Cell::get);
    if outer == frame as usize {
        // SAFETY: forwarding to the evaluator below our stranded copy.
        return unsafe { call_eval(below, a0, a1, a2) };
    }
    // SAFETY: the GIL is held inside an evaluator.
    let on_top = unsafe { crate::cpython::get_eval(crate::cpython::current_interp()) }
        == crate::cpython::hook_ptr();
    let next = if on_top {
        PREV_EVAL.load(Ordering::Relaxed) as *const c_void
    } else {
        below
    };
    DISPATCHING.with(|d| d.set(frame as usize));
    let result = if active {
        // SAFETY: forwarded; `next` is an evaluator.
        unsafe { run_through(a0, a1, a2, code, next) }
    } else {
        // SAFETY: forwarding to an evaluator.
        unsafe { call_eval(next, a0, a1, a2) }
    };
    DISPATCHING.with(|d| d.set(outer));
    result
}

/// The stub to run `code` through, making one on first use.
///
/// # Safety
/// The GIL is held; `code` is a live object or null.
#[inline(always)]
unsafe fn stub_for(code: *mut ffi::PyObject) -> Option<StubFn> {
    // SAFETY: `code` is the frame's live object.
    if !crate::cpython::FRAME_HOLDS_CODE && (code.is_null() || !unsafe { is_code(code) }) {
        return None;
    }
    // SAFETY: `code` is a code object, the index was requested for this interpreter.
    if let Some(entry) = unsafe { entry_of(code) } {
        // SAFETY: entries stay alive as long as their code object, which the frame holds.
        let e = unsafe { &*entry };
        // Entries without a stub have generation 0, which never matches.
        if e.generation == GENERATION.load(Ordering::Relaxed) {
            // SAFETY: a non-zero `stub` is the address of a trampoline.
            return Some(unsafe { std::mem::transmute::<usize, StubFn>(e.stub) });
        }
    }
    // SAFETY: as above.
    unsafe { cold_path(code) }
}

/// Whether `obj` is exactly a code object.
///
/// # Safety
/// `obj` is a live object.
#[inline(always)]
pub(crate) unsafe fn is_code(obj: *mut ffi::PyObject) -> bool {
    // SAFETY: a live object's type pointer is readable.
    unsafe { ffi::Py_TYPE(obj) == std::ptr::addr_of_mut!(ffi::PyCode_Type) }
}

/// The entry stored for `code`, if any.
///
/// # Safety
/// The GIL is held and `code` is a code object.
unsafe fn entry_of(code: *mut ffi::PyObject) -> Option<*mut Entry> {
    let index = EXTRA_INDEX.load(Ordering::Relaxed);
    if index < 0 {
        return None;
    }
    // SAFETY: forwarded from our caller; the index was requested in this interpreter.
    let extra = unsafe { crate::cpython::code_extra(code, index) };
    (!extra.is_null()).then_some(extra.cast::<Entry>())
}

/// Stores a new entry for `code`; on failure the entry is dropped and None returned.
///
/// # Safety
/// The GIL is held, `code` is a code object, and no entry is stored for it yet.
unsafe fn store_entry(code: *mut ffi::PyObject, entry: Entry) -> Option<*mut Entry> {
    let index = EXTRA_INDEX.load(Ordering::Relaxed);
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

/// Saves the current exception on creation and restores it on drop, so the cold path can use
/// the C API while a `throw()` is in flight.
struct SavedException {
    ptype: *mut ffi::PyObject,
    pvalue: *mut ffi::PyObject,
    ptrace: *mut ffi::PyObject,
}

impl SavedException {
    /// # Safety
    /// The GIL is held.
    unsafe fn fetch() -> SavedException {
        let mut s = SavedException {
            ptype: std::ptr::null_mut(),
            pvalue: std::ptr::null_mut(),
            ptrace: std::ptr::null_mut(),
        };
        // SAFETY: GIL held; out-pointers are valid. PyErr_Fetch exists in every version we
        // support (deprecated, not removed, in 3.12+).
        #[allow(deprecated)]
        unsafe {
            ffi::PyErr_Fetch(&mut s.ptype, &mut s.pvalue, &mut s.ptrace)
        };
        s
    }
}

impl Drop for SavedException {
    fn drop(&mut self) {
        // SAFETY: the GIL is still held (the guard lives inside the hook); any exception our
        // work left behind is discarded before the saved one is put back.
        #[allow(deprecated)]
        unsafe {
            ffi::PyErr_Clear();
            ffi::PyErr_Restore(self.ptype, self.pvalue, self.ptrace);
        }
    }
}

/// Makes or re-announces the stub for `code`. Never fails: errors turn perfpy off.
///
/// # Safety
/// The GIL is held and `code` is a code object.
#[cold]
#[inline(never)]
unsafe fn cold_path(code: *mut ffi::PyObject) -> Option<StubFn> {
    // SAFETY: GIL held.
    let _saved = unsafe { SavedException::fetch() };
    // SAFETY: forwarded from our caller.
    let result = std::panic::catch_unwind(|| unsafe { compile(code) });
    let stub = match result {
        Ok(Ok(stub)) => stub,
        Ok(Err(reason)) => {
            // SAFETY: GIL held.
            unsafe { fail(&reason) };
            None
        }
        Err(_) => {
            // SAFETY: GIL held.
            unsafe { fail("internal error (panic) while making a trampoline") };
            None
        }
    };
    // SAFETY: a non-zero address is a trampoline.
    stub.map(|s| unsafe { std::mem::transmute::<usize, StubFn>(s) })
}

/// The stub address for `code`, after making sure this process's map or dump names it.
///
/// # Safety
/// The GIL is held and `code` is a code object.
pub(crate) unsafe fn compile(code: *mut ffi::PyObject) -> Result<Option<usize>, String> {
    let mut inner = state::lock();
    if !state::is_active() {
        return Ok(None);
    }
    let backend = inner.backend;
    let generation = GENERATION.load(Ordering::Relaxed);
    // SAFETY: forwarded.
    let existing = unsafe { entry_of(code) };
    // SAFETY: entries live as long as their code object, which the running frame holds.
    if let Some(e) = existing.map(|p| unsafe { &mut *p }) {
        if e.stub != 0 && e.backend == Some(backend) {
            if e.generation != generation {
                // A stub made before fork() (or before a backend switch back): announce it
                // in this process's own file.
                // SAFETY: forwarded.
                unsafe { announce(&mut inner, code, e.stub, e.qualname.as_deref()) }?;
                e.generation = generation;
            }
            return Ok(Some(e.stub));
        }
    }
    let stub = pool_for(&mut inner, backend)?
        .alloc()
        .map_err(|e| e.to_string())?;
    // SAFETY: as above.
    let hint = existing.and_then(|p| unsafe { (*p).qualname.clone() });
    // The announcement is in the file before the function first runs.
    // SAFETY: forwarded.
    unsafe { announce(&mut inner, code, stub.addr, hint.as_deref()) }?;
    inner.compiled += 1;
    match existing {
        Some(p) => {
            // SAFETY: the entry is alive (its code object is running).
            let e = unsafe { &mut *p };
            e.stub = stub.addr;
            e.generation = generation;
            e.backend = Some(backend);
        }
        None => {
            let entry = Entry {
                stub: stub.addr,
                generation,
                backend: Some(backend),
                qualname: None,
            };
            // SAFETY: no entry is stored for `code` (checked above, under the GIL).
            unsafe { store_entry(code, entry) };
        }
    }
    if !crate::cpython::HAS_CO_QUALNAME {
        let mut name_child = |child: *mut ffi::PyObject, qualname: Box<str>| {
            // SAFETY: `child` is a code object found in co_consts, kept alive by `code`.
            if unsafe { entry_of(child) }.is_none() {
                let entry = Entry {
                    stub: 0,
                    generation: 0,
                    backend: None,
                    qualname: Some(qualname),
                };
                // SAFETY: as above; no entry is stored for `child`.
                unsafe { store_entry(child, entry) };
            }
        };
        // SAFETY: forwarded.
        unsafe { names::name_nested_code(code, hint.as_deref(), &mut name_child) };
    }
    Ok(Some(stub.addr))
}

/// The stub pool of `backend`, made on first use.
pub(crate) fn pool_for(
    inner: &mut Inner,
    backend: state::Backend,
) -> Result<&mut perfpy_trampoline::StubPool, String> {
    let template = perfpy_trampoline::arch::host().ok_or_else(|| {
        format!(
            "no trampoline template for the {} architecture (x86_64 and aarch64 are supported)",
            std::env::consts::ARCH
        )
    })?;
    let slot = match backend {
        state::Backend::Perf => &mut inner.pool,
        state::Backend::PerfJit => &mut inner.jit_pool,
    };
    if slot.is_none() {
        *slot = Some(match backend {
            state::Backend::Perf => perfpy_trampoline::StubPool::new(template),
            state::Backend::PerfJit => {
                // perf maps each stub's code followed by its unwind information: stubs must
                // be at least that far apart.
                let probe = perfpy_trampoline::StubPool::new(template);
                let unwind =
                    crate::jit_file::unwind_info(probe.unique_len()).map_err(|e| e.to_string())?;
                let extent = perfpy_format::jitdump::mapped_extent(probe.unique_len(), &unwind);
                perfpy_trampoline::StubPool::with_stride(template, extent)
            }
        });
    }
    slot.as_mut().ok_or_else(|| "no stub pool".to_string())
}

/// Tells perf about the stub at `addr` for `code`, in the active backend's file.
///
/// # Safety
/// The GIL is held and `code` is a code object.
unsafe fn announce(
    inner: &mut Inner,
    code: *mut ffi::PyObject,
    addr: usize,
    qualname: Option<&str>,
) -> Result<(), String> {
    // SAFETY: forwarded.
    let name = unsafe { names::symbol(code, qualname) };
    match inner.backend {
        state::Backend::Perf => write_line(inner, addr, &name),
        state::Backend::PerfJit => {
            // SAFETY: forwarded.
            let location = unsafe { names::location(code) };
            let entry = state::Announced {
                addr,
                name: name.into_boxed_str(),
                location: location.map(|(f, l)| (f.into_boxed_str(), l)),
            };
            write_jit(inner, &entry)?;
            inner.jit_log.push(entry);
            Ok(())
        }
    }
}

/// Writes one map line, opening this process's map first if needed.
fn write_line(inner: &mut Inner, addr: usize, name: &str) -> Result<(), String> {
    let size = perfpy_trampoline::arch::host().map_or(0, |t| t.code.len());
    crate::map_file::ensure_open(inner).map_err(|e| e.to_string())?;
    let Some(map) = inner.map.as_mut() else {
        return Err("perf map is not open".into());
    };
    map.write_entry(addr as u64, size as u64, name)
        .map_err(|e| format!("cannot write {}: {e}", map.path().display()))?;
    inner.map_lines += 1;
    Ok(())
}

/// Writes one stub's records to the jitdump, opening it first if needed.
pub(crate) fn write_jit(inner: &mut Inner, entry: &state::Announced) -> Result<(), String> {
    crate::jit_file::ensure_open(inner).map_err(|e| e.to_string())?;
    let len = pool_for(inner, state::Backend::PerfJit)?.unique_len();
    // SAFETY: `entry.addr` is a stub handed out by the jit pool: `unique_len` readable bytes
    // of a live, never-unmapped arena.
    let code = unsafe { std::slice::from_raw_parts(entry.addr as *const u8, len) };
    let Some(jit) = inner.jit.as_mut() else {
        return Err("jitdump is not open".into());
    };
    let location = entry.location.as_ref().map(|(f, l)| (&**f, *l));
    jit.write_stub(entry.addr as u64, code, &entry.name, location)
        .map_err(|e| format!("cannot write {}: {e}", jit.path().display()))?;
    inner.map_lines += 1;
    Ok(())
}

/// Turns perfpy off after a failure and says so once, as a warning.
///
/// # Safety
/// The GIL is held.
unsafe fn fail(reason: &str) {
    let first = {
        let mut inner = state::lock();
        let first = inner.failure.is_none();
        inner.failure = Some(reason.to_string());
        first
    };
    // SAFETY: GIL held.
    unsafe { crate::deactivate_locked() };
    if first {
        let msg = format!(
            "perfpy: perf trampolines turned off, the program continues unprofiled: {reason}"
        );
        // SAFETY: GIL held.
        unsafe { warn(&msg) };
    }
}

/// Issues a `RuntimeWarning`; if warnings are errors, reports it as unraisable instead.
///
/// # Safety
/// The GIL is held.
pub(crate) unsafe fn warn(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: GIL held; the category is a valid warning class and the message a C string.
    let rc: c_int = unsafe { ffi::PyErr_WarnEx(ffi::PyExc_RuntimeWarning, c.as_ptr(), 1) };
    if rc != 0 {
        // SAFETY: GIL held and an exception is set.
        unsafe { ffi::PyErr_WriteUnraisable(std::ptr::null_mut()) };
    }
}
