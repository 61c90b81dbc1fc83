//! `perfpy._native`: per-function perf trampolines for CPython 3.8–3.15.
//!
//! This file only declares the Python module: each function is a thin wrapper over
//! [`lifecycle`], and [`error`] maps failures to Python exceptions. The Python package
//! `perfpy` wraps this module; see ARCHITECTURE.md for the data flow.
//!
//! * [`lifecycle`] — activate, deactivate, `compile_code`, fork and exit, status.
//! * [`hook`] — the evaluator's hot path (one `co_extra` read and an indirect call) and its
//!   cold path, which calls [`compile`] (a stub from the backend's pool, announced, cached in
//!   an [`entry`]).
//! * [`backend`] — the interface to the two backends: [`backend::perf_map`]
//!   (`/tmp/perf-<pid>.map`) and [`backend::perf_jit`] (`/tmp/jit-<pid>.dump`).
//! * [`chain`] — our place in the interpreter's chain of evaluators.
//! * [`interpreters`] — the hook in every interpreter of the process (subinterpreters).
//! * [`cpython`] — everything that differs per CPython version (hook signature, frame layout).
//! * [`names`] — `py::<qualname>:<filename>`.
//! * [`fork`] — parent and child keep separate files.
//! * [`state`] — the process-wide state both paths share.
//! * [`dormant`] — `PERFPY_ATTACH=1`: switched on and off later by `perfpy record --pid`.
//! * [`error`] — the extension's errors, and how Python sees them.

mod backend;
mod chain;
mod compile;
mod cpython;
mod dormant;
mod entry;
mod error;
mod fork;
mod hook;
mod interpreters;
mod lifecycle;
mod names;
mod state;

use error::{PerfpyWarning, SetupError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Turns the trampoline on.
///
/// Raises `SetupError` when this environment can't be profiled (the Python wrapper turns that
/// into a warning) and `RuntimeError` for a conflict the caller must resolve.
#[pyfunction]
fn activate(_py: Python<'_>, backend: &str) -> PyResult<()> {
    // SAFETY: the GIL is held (we have `_py`).
    Ok(unsafe { lifecycle::activate(backend) }?)
}

/// Turns the trampoline off.
#[pyfunction]
fn deactivate(_py: Python<'_>) -> PyResult<()> {
    // SAFETY: the GIL is held (we have `_py`).
    Ok(unsafe { lifecycle::deactivate() }?)
}

/// While the trampoline is off: closes its files and returns their paths (for
/// `perfpy record --pid`, which collects and removes them).
#[pyfunction]
fn release_files(_py: Python<'_>) -> Vec<String> {
    lifecycle::release_files()
        .into_iter()
        .map(|p| p.display().to_string())
        .collect()
}

/// Starts the dormant-attach watcher (`PERFPY_ATTACH=1`): `perfpy record --pid` can then
/// switch the trampoline on and off in this process.
#[pyfunction]
fn arm_attach() {
    dormant::arm();
}

#[pyfunction]
fn is_active() -> bool {
    state::is_active()
}

/// Makes `code`'s stub and map entry now (the pre-fork-server workflow).
#[pyfunction]
fn compile_code(code: &Bound<'_, PyAny>) -> PyResult<()> {
    let type_name = || {
        code.get_type()
            .name()
            .map_or_else(|_| "?".to_string(), |n| n.to_string())
    };
    // SAFETY: the GIL is held (bound object) and `code` is a live object.
    Ok(unsafe { lifecycle::compile_code(code.as_ptr(), type_name) }?)
}

#[pyfunction]
fn set_persist_after_fork(flag: bool) {
    lifecycle::set_persist_after_fork(flag);
}

/// Called in a child after `os.fork()`: a dormant attach armed in the parent is armed in the
/// child too, and persist-after-fork opens the child's file.
#[pyfunction]
fn _after_fork_child() -> PyResult<()> {
    dormant::rearm_in_child();
    Ok(lifecycle::after_fork_child()?)
}

/// Writes one line to this process's perf map (as `PyUnstable_WritePerfMapEntry`).
#[pyfunction]
fn write_perf_map_entry(code_addr: u64, code_size: u64, entry_name: &str) -> PyResult<()> {
    Ok(lifecycle::write_perf_map_entry(
        code_addr, code_size, entry_name,
    )?)
}

#[pyfunction]
fn status(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let s = lifecycle::status();
    let d = PyDict::new(py);
    d.set_item("active", s.active)?;
    d.set_item("backend", s.backend)?;
    d.set_item("map_file", s.map_file)?;
    d.set_item("jit_file", s.jit_file)?;
    d.set_item("jit_bytes", s.jit_bytes)?;
    d.set_item("stubs", s.stubs)?;
    d.set_item("map_lines", s.announced)?;
    d.set_item("arenas", s.arenas)?;
    d.set_item("arena_bytes", s.arena_bytes)?;
    d.set_item("exec_memory", s.exec_memory)?;
    d.set_item("code_extra_index", s.code_extra_index)?;
    d.set_item("persist_after_fork", s.persist_after_fork)?;
    d.set_item("failure", s.failure)?;
    d.set_item("interpreters", s.interpreters)?;
    d.set_item("interpreters_limit", s.interpreters_limit)?;
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
    let template = perfpy_trampoline::arch::host();
    d.set_item("stub_size", template.map(|t| t.code.len()))?;
    d.set_item("stub_stride", template.map(|t| t.stride))?;
    Ok(d)
}

#[pymodule(gil_used = true)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(activate, m)?)?;
    m.add_function(wrap_pyfunction!(deactivate, m)?)?;
    m.add_function(wrap_pyfunction!(release_files, m)?)?;
    m.add_function(wrap_pyfunction!(is_active, m)?)?;
    m.add_function(wrap_pyfunction!(arm_attach, m)?)?;
    m.add_function(wrap_pyfunction!(compile_code, m)?)?;
    m.add_function(wrap_pyfunction!(set_persist_after_fork, m)?)?;
    m.add_function(wrap_pyfunction!(_after_fork_child, m)?)?;
    m.add_function(wrap_pyfunction!(write_perf_map_entry, m)?)?;
    m.add_function(wrap_pyfunction!(status, m)?)?;
    m.add_function(wrap_pyfunction!(build_info, m)?)?;
    m.add("SetupError", m.py().get_type::<SetupError>())?;
    m.add("PerfpyWarning", m.py().get_type::<PerfpyWarning>())?;
    Ok(())
}
