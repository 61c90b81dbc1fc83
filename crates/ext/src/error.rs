//! The extension's one error type, and the one place it becomes a Python exception or
//! warning.
//!
//! | error                                   | Python                  | who sees it |
//! |-----------------------------------------|-------------------------|-------------|
//! | [`Error::InvalidBackend`]               | `ValueError`            | the caller of `activate` |
//! | [`Error::NotCode`]                      | `TypeError`             | the caller of `compile_code` |
//! | [`Error::NoCodeExtraIndex`], [`Error::NotActive`], [`Error::NotMainInterpreter`] | `RuntimeError` | the caller, who must resolve it |
//! | everything else: files, memory, architecture, evaluator | [`SetupError`] (an `OSError`) | the Python wrapper, which turns it into a [`PerfpyWarning`] |
//!
//! From the evaluator hook nothing is raised: [`warn`] issues a [`PerfpyWarning`] and the
//! program continues unprofiled.

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyRuntimeWarning, PyTypeError, PyValueError};
use pyo3::{ffi, PyErr, PyTypeInfo, Python};
use std::ffi::{c_int, CString};
use std::fmt;
use std::io;
use std::path::PathBuf;

pyo3::create_exception!(
    _native,
    SetupError,
    PyOSError,
    "perfpy cannot profile in this environment (the map file or executable memory is unavailable)."
);

pyo3::create_exception!(
    perfpy,
    PerfpyWarning,
    PyRuntimeWarning,
    "perfpy could not profile; the program continues unprofiled."
);

/// Why an operation of the extension failed.
#[derive(Debug)]
pub(crate) enum Error {
    /// `activate()` was given a name that is neither `perf` nor `perf_jit`.
    InvalidBackend(String),
    /// `compile_code()` was given an object of this type, not a code object.
    NotCode(String),
    /// All 255 `co_extra` indices of the interpreter are taken.
    NoCodeExtraIndex,
    /// `compile_code()` while the trampoline is off.
    NotActive,
    /// A switch used in a subinterpreter (where the module is a copy of the main's).
    NotMainInterpreter,
    /// No stub template for the machine we run on.
    UnsupportedArch(&'static str),
    /// Opening, mapping or sizing a backend's file (the message names the file).
    File(io::Error),
    /// Writing a backend's file.
    Write { path: PathBuf, source: io::Error },
    /// Executable memory for stubs.
    Memory(perfpy_trampoline::Error),
    /// The stub's unwind information could not be encoded.
    UnwindInfo(String),
    /// The interpreter's evaluator could not be replaced.
    EvalHook(String),
    /// A panic was caught in the cold path.
    Panic,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidBackend(name) => write!(f, "invalid backend: {name}"),
            Error::NotCode(type_name) => write!(
                f,
                "compile_code() argument must be a code object, not {type_name} \
                 (pass f.__code__)"
            ),
            Error::NoCodeExtraIndex => {
                f.write_str("no code-object extra slot is free (CPython allows 255 per interpreter)")
            }
            Error::NotActive => f.write_str(
                "the perf trampoline is not active: call perfpy.activate_stack_trampoline() first",
            ),
            Error::NotMainInterpreter => f.write_str(
                "perfpy is switched on and off in the main interpreter only; switched on there \
                 (PYTHONPERFSUPPORT=1, PERFPY_BACKEND, perfpy.activate_stack_trampoline() or \
                 perfpy record), it names the functions of every interpreter of the process",
            ),
            Error::UnsupportedArch(arch) => write!(
                f,
                "no trampoline template for the {arch} architecture (x86_64 and aarch64 are supported)"
            ),
            Error::File(e) => write!(f, "{e}"),
            Error::Write { path, source } => write!(f, "cannot write {}: {source}", path.display()),
            Error::Memory(e) => write!(f, "{e}"),
            Error::UnwindInfo(e) => write!(f, "cannot encode the stub's unwind information: {e}"),
            Error::EvalHook(e) => f.write_str(e),
            Error::Panic => f.write_str("internal error (panic) while making a trampoline"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::File(e)
    }
}

impl From<perfpy_trampoline::Error> for Error {
    fn from(e: perfpy_trampoline::Error) -> Error {
        Error::Memory(e)
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let msg = e.to_string();
        match e {
            Error::InvalidBackend(_) => PyValueError::new_err(msg),
            Error::NotCode(_) => PyTypeError::new_err(msg),
            Error::NoCodeExtraIndex | Error::NotActive | Error::NotMainInterpreter => {
                PyRuntimeError::new_err(msg)
            }
            Error::UnsupportedArch(_)
            | Error::File(_)
            | Error::Write { .. }
            | Error::Memory(_)
            | Error::UnwindInfo(_)
            | Error::EvalHook(_)
            | Error::Panic => SetupError::new_err(msg),
        }
    }
}

/// Issues a [`PerfpyWarning`] (a plain `RuntimeWarning` outside the main interpreter, where
/// perfpy's class doesn't live: `in_home` false); if warnings are errors (`-W error`),
/// reports it as unraisable instead, so nothing is raised into the program.
///
/// # Safety
/// The GIL is held.
pub(crate) unsafe fn warn(msg: &str, in_home: bool) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: the caller holds the GIL.
    let py = unsafe { Python::assume_attached() };
    // perfpy's own category is an object of the home interpreter: elsewhere, its base.
    let category = if in_home {
        PerfpyWarning::type_object_raw(py).cast::<ffi::PyObject>()
    } else {
        // SAFETY: a static exception type, shared by every interpreter.
        unsafe { ffi::PyExc_RuntimeWarning }
    };
    // SAFETY: GIL held; the category is a warning class and the message a C string.
    let rc: c_int = unsafe { ffi::PyErr_WarnEx(category, c.as_ptr(), 1) };
    if rc != 0 {
        // SAFETY: GIL held and an exception is set.
        unsafe { ffi::PyErr_WriteUnraisable(std::ptr::null_mut()) };
    }
}
