//! `perfpy._native`: per-function perf trampolines for CPython 3.8–3.14.
//!
//! The Python package `perfpy` wraps this module; see ARCHITECTURE.md for the data flow.
//!
//! * [`cpython`] — everything that differs per CPython version (hook signature, frame layout).
//! * [`hook`] — the evaluator's hot path (one `co_extra` read and an indirect call) and its
//!   cold path (stub from the pool, map line, cache entry).
//! * [`names`] — `py::<qualname>:<filename>`.
//! * [`map_file`] — `/tmp/perf-<pid>.map` (the `perf` backend).
//! * [`jit_file`] — `/tmp/jit-<pid>.dump` (the `perf_jit` backend).
//! * [`fork`] — parent and child keep separate maps.
//! * [`state`] — the process-wide state both paths share.

mod cpython;
mod fork;
mod hook;
mod jit_file;
mod map_file;
mod names;
mod state;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use state::{BELOW_EVAL, EXTRA_INDEX, PREV_EVAL};
use std::sync::atomic::Ordering;

pyo3::create_exception!(
    _native,
    SetupError,
    PyOSError,
    "perfpy cannot profile in this environment (the map file or executable memory is unavailable)."
);

/// Turns the trampoline on: our hook in the evaluator chain, stubs handed out, map open.
///
/// Raises `SetupError` when this environment can't be profiled (the Python wrapper turns that
/// into a warning) and `RuntimeError` for a conflict the caller must resolve.
#[pyfunction]
fn activate(_py: Python<'_>, backend: &str) -> PyResult<()> {
    let backend = state::Backend::from_name(backend).ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(format!("invalid backend: {backend}"))
    })?;
    fork::install();
    jit_file::install_exit_hook();
    let mut inner = state::lock();
    if EXTRA_INDEX.load(Ordering::Relaxed) < 0 {
        // SAFETY: the GIL is held (we have `_py`); `free_entry` matches `freefunc`.
        let index = unsafe { pyo3::ffi::PyUnstable_Eval_RequestCodeExtraIndex(hook::free_entry) };
        if index < 0 {
            return Err(PyRuntimeError::new_err(
                "no code-object extra slot is free (CPython allows 255 per interpreter)",
            ));
        }
        EXTRA_INDEX.store(index, Ordering::Relaxed);
    }
    if backend != inner.backend {
        // Stubs announced by the other backend are announced again (or replaced, if their
        // spacing doesn't suit this backend) the next time they run.
        let g = state::GENERATION.load(Ordering::Relaxed);
        state::GENERATION.store(state::next_generation(g), Ordering::Relaxed);
        inner.backend = backend;
    }
    // Fail now, not on the first call, if the first arena can't be made executable.
    let pool = hook::pool_for(&mut inner, backend).map_err(SetupError::new_err)?;
    if pool.arena_count() == 0 {
        pool.alloc()
            .map_err(|e| SetupError::new_err(e.to_string()))?;
    }
    match backend {
        state::Backend::Perf => map_file::ensure_open(&mut inner),
        state::Backend::PerfJit => jit_file::ensure_open(&mut inner),
    }
    .map_err(|e| SetupError::new_err(e.to_string()))?;
    inner.failure = None;
    // SAFETY: GIL held.
    let interp = unsafe { cpython::current_interp() };
    // SAFETY: GIL held; `interp` is the current interpreter.
    let current = unsafe { cpython::get_eval(interp) };
    if current != cpython::hook_ptr() {
        if inner.hook_installed {
            // Our hook was never removed, yet another evaluator is on top: ours may still be
            // inside that evaluator's chain, calling what was below it.
            if !state::is_guarded() {
                BELOW_EVAL.store(PREV_EVAL.load(Ordering::Acquire), Ordering::Release);
                state::enable_guard();
            }
        }
        PREV_EVAL.store(current as usize, Ordering::Release);
        // SAFETY: GIL held; our hook has this version's signature.
        unsafe { cpython::set_eval(interp, cpython::hook_ptr()) }.map_err(SetupError::new_err)?;
    }
    inner.hook_installed = true;
    state::set_active(true);
    Ok(())
}

/// Turns the trampoline off. If our hook is at the top of the evaluator chain the previous
/// evaluator is put back; if another hook was installed on top of ours since, ours stays in
/// the chain and passes calls through.
///
/// # Safety
/// The GIL is held and the state lock is not.
unsafe fn deactivate_locked() {
    let mut inner = state::lock();
    state::set_active(false);
    if inner.hook_installed {
        // SAFETY: GIL held.
        let interp = unsafe { cpython::current_interp() };
        // SAFETY: GIL held; `interp` is the current interpreter.
        if unsafe { cpython::get_eval(interp) } == cpython::hook_ptr() {
            let prev = PREV_EVAL.load(Ordering::Acquire) as *const std::ffi::c_void;
            // SAFETY: GIL held; `prev` is the evaluator that was installed before ours.
            if unsafe { cpython::set_eval(interp, prev) }.is_ok() {
                inner.hook_installed = false;
            }
        }
    }
}

#[pyfunction]
fn deactivate(_py: Python<'_>) {
    // SAFETY: the GIL is held (we have `_py`); the state lock is not.
    unsafe { deactivate_locked() };
}

#[pyfunction]
fn is_active() -> bool {
    state::is_active()
}

/// Makes `code`'s stub and map entry now (the pre-fork-server workflow).
#[pyfunction]
fn compile_code(code: &Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: `code` is a live object.
    let is_code = unsafe { pyo3::ffi::Py_TYPE(code.as_ptr()) }
        == std::ptr::addr_of_mut!(pyo3::ffi::PyCode_Type);
    if !is_code {
        let tname = code.get_type().name()?;
        return Err(PyTypeError::new_err(format!(
            "compile_code() argument must be a code object, not {tname} (pass f.__code__)"
        )));
    }
    if !state::is_active() {
        return Err(PyRuntimeError::new_err(
            "the perf trampoline is not active: call perfpy.activate_stack_trampoline() first",
        ));
    }
    // SAFETY: the GIL is held (bound object) and `code` is a code object.
    match unsafe { hook::compile(code.as_ptr()) } {
        Ok(_) => Ok(()),
        Err(reason) => Err(SetupError::new_err(reason)),
    }
}

#[pyfunction]
fn set_persist_after_fork(flag: bool) {
    state::lock().persist_after_fork = flag;
}

/// Called in a child after `os.fork()`: with persist-after-fork, opens the child's map as a
/// copy of the parent's right away (a pre-forked worker may never compile anything itself).
#[pyfunction]
fn _after_fork_child() -> PyResult<()> {
    let mut inner = state::lock();
    if inner.persist_after_fork && state::is_active() {
        match inner.backend {
            state::Backend::Perf if inner.inherited_map.is_some() => {
                map_file::ensure_open(&mut inner)
            }
            state::Backend::PerfJit => jit_file::ensure_open(&mut inner),
            _ => Ok(()),
        }
        .map_err(|e| SetupError::new_err(e.to_string()))?;
    }
    Ok(())
}

/// Writes one line to this process's perf map (as `PyUnstable_WritePerfMapEntry`).
#[pyfunction]
fn write_perf_map_entry(code_addr: u64, code_size: u64, entry_name: &str) -> PyResult<()> {
    let mut inner = state::lock();
    map_file::ensure_open(&mut inner).map_err(|e| SetupError::new_err(e.to_string()))?;
    let Some(map) = inner.map.as_mut() else {
        return Err(SetupError::new_err("perf map is not open"));
    };
    map.write_entry(code_addr, code_size, entry_name)
        .map_err(|e| SetupError::new_err(e.to_string()))?;
    inner.map_lines += 1;
    Ok(())
}

#[pyfunction]
fn status(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let inner = state::lock();
    let d = PyDict::new(py);
    d.set_item("active", state::is_active())?;
    d.set_item(
        "backend",
        state::is_active().then_some(inner.backend.name()),
    )?;
    let path = |p: &std::path::Path| p.display().to_string();
    d.set_item("map_file", inner.map.as_ref().map(|m| path(m.path())))?;
    d.set_item("jit_file", inner.jit.as_ref().map(|j| path(j.path())))?;
    d.set_item("jit_bytes", inner.jit.as_ref().and_then(|j| j.len().ok()))?;
    d.set_item("stubs", inner.compiled)?;
    d.set_item("map_lines", inner.map_lines)?;
    let pools = || inner.pool.iter().chain(inner.jit_pool.iter());
    d.set_item("arenas", pools().map(|p| p.arena_count()).sum::<usize>())?;
    d.set_item(
        "arena_bytes",
        pools().map(|p| p.mapped_bytes()).sum::<usize>(),
    )?;
    let method = pools().find_map(|p| p.method()).map(|m| match m {
        perfpy_trampoline::Method::Mprotect => "mprotect",
        perfpy_trampoline::Method::Memfd => "memfd",
    });
    d.set_item("exec_memory", method)?;
    d.set_item("code_extra_index", EXTRA_INDEX.load(Ordering::Relaxed))?;
    d.set_item("persist_after_fork", inner.persist_after_fork)?;
    d.set_item("failure", inner.failure.clone())?;
    Ok(d)
}

/// Facts about this build, for bug reports and the layout probe in the test suite.
#[pyfunction]
fn build_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("version", env!("CARGO_PKG_VERSION"))?;
    d.set_item("cpython_family", cpython::FAMILY)?;
    d.set_item("arch", std::env::consts::ARCH)?;
    let offsets = PyDict::new(py);
    for (name, value) in cpython::OFFSETS {
        offsets.set_item(name, value)?;
    }
    d.set_item("offsets", offsets)?;
    d.set_item(
        "stub_size",
        perfpy_trampoline::arch::host().map(|t| t.code.len()),
    )?;
    d.set_item(
        "stub_stride",
        perfpy_trampoline::arch::host().map(|t| t.stride),
    )?;
    Ok(d)
}

#[pymodule(gil_used = true)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(activate, m)?)?;
    m.add_function(wrap_pyfunction!(deactivate, m)?)?;
    m.add_function(wrap_pyfunction!(is_active, m)?)?;
    m.add_function(wrap_pyfunction!(compile_code, m)?)?;
    m.add_function(wrap_pyfunction!(set_persist_after_fork, m)?)?;
    m.add_function(wrap_pyfunction!(_after_fork_child, m)?)?;
    m.add_function(wrap_pyfunction!(write_perf_map_entry, m)?)?;
    m.add_function(wrap_pyfunction!(status, m)?)?;
    m.add_function(wrap_pyfunction!(build_info, m)?)?;
    m.add("SetupError", m.py().get_type::<SetupError>())?;
    Ok(())
}
