//! Switching the trampoline on and off, and everything else the Python API asks of the
//! extension. Each function here runs with the GIL held (from a `#[pyfunction]` in
//! `lib.rs`) and returns the extension's [`Error`].
//!
//! ```text
//! activate(kind)    co_extra index (once) -> kind's pool primed (first arena executable)
//!                   -> kind's file open -> hook on top of the chain -> MODE_ACTIVE
//!                   -> hook into the other interpreters (interpreters.rs)
//! deactivate()      MODE_ACTIVE off -> hook off the top of the chain, if still on top
//!                   -> CPython's evaluator back in the other interpreters
//! release_files()   (off only) each backend's file closed -> generation bumped
//! compile_code(co)  the cold path, now (pre-fork warm-up)
//! after_fork_child  persist-after-fork: the child's file opened with the parent's entries
//! exit              JIT_CODE_CLOSE in this process's dump
//! ```

use crate::backend::{Backend, Kind};
use crate::entry::Place;
use crate::error::Error;
use crate::state::{self, EXTRA_INDEX, GENERATION};
use crate::{chain, compile, cpython, entry, fork, hook, interpreters};
use perfpy_trampoline::Method;
use std::path::Path;
use std::sync::atomic::Ordering;

/// Turns the trampoline on with `backend`: our hook in the evaluator chain, stubs handed
/// out, the backend's file open. Activating the other backend while one is active switches.
///
/// # Safety
/// The GIL is held.
pub(crate) unsafe fn activate(backend: &str) -> Result<(), Error> {
    let kind = Kind::from_name(backend)?;
    if !interpreters::in_home() {
        return Err(Error::NotMainInterpreter);
    }
    crate::backend::roster::init();
    fork::install();
    install_exit_hook();
    let mut inner = state::lock();
    if EXTRA_INDEX.load(Ordering::Relaxed) < 0 {
        // SAFETY: the GIL is held; `free_entry` matches `freefunc`.
        let index = unsafe { pyo3::ffi::PyUnstable_Eval_RequestCodeExtraIndex(entry::free_entry) };
        if index < 0 {
            return Err(Error::NoCodeExtraIndex);
        }
        EXTRA_INDEX.store(index, Ordering::Relaxed);
    }
    if kind != inner.kind {
        // Stubs announced by the other backend are announced again (or replaced, if their
        // spacing doesn't suit this backend) the next time they run.
        let g = GENERATION.load(Ordering::Relaxed);
        GENERATION.store(state::next_generation(g), Ordering::Relaxed);
        inner.kind = kind;
    }
    let backend = inner.backend();
    // Fail now, not on the first call, if the first arena can't be made executable.
    let pool = backend.pool()?;
    if pool.arena_count() == 0 {
        pool.alloc()?;
    }
    backend.ensure_open()?;
    inner.failure = None;
    interpreters::set_home();
    // SAFETY: GIL held; `hook_ptr` is our hook.
    unsafe { chain::install(&mut inner, hook::hook_ptr()) }?;
    state::set_active(true);
    drop(inner);
    // SAFETY: GIL held, in the home; `elsewhere_ptr` is our hook for the other interpreters.
    unsafe { interpreters::install_everywhere(hook::elsewhere_ptr()) };
    Ok(())
}

/// Turns the trampoline off. If our hook is at the top of the evaluator chain the previous
/// evaluator is put back; if another hook was installed on top of ours since, ours stays in
/// the chain and passes calls through.
///
/// # Safety
/// The GIL is held.
pub(crate) unsafe fn deactivate() -> Result<(), Error> {
    if !interpreters::in_home() {
        return Err(Error::NotMainInterpreter);
    }
    let mut inner = state::lock();
    state::set_active(false);
    // SAFETY: GIL held; `hook_ptr` is our hook.
    unsafe { chain::remove(&mut inner, hook::hook_ptr()) };
    drop(inner);
    // SAFETY: GIL held, in the home; `elsewhere_ptr` is our hook for the other interpreters.
    unsafe { interpreters::remove_everywhere(hook::elsewhere_ptr()) };
    Ok(())
}

/// While the trampoline is off, closes the backends' files and returns their paths, for
/// whoever switched names on from outside (`perfpy record --pid`) to collect and remove; an
/// activation later opens new ones and announces each stub again before it next runs.
/// Nothing is closed while the trampoline is active.
pub(crate) fn release_files() -> Vec<std::path::PathBuf> {
    let mut inner = state::lock();
    if state::is_active() || !interpreters::in_home() {
        return Vec::new();
    }
    let mut paths = Vec::new();
    for backend in inner.backends.all_mut() {
        if let Some(path) = backend.path() {
            paths.push(path.to_path_buf());
        }
        backend.release();
    }
    let g = GENERATION.load(Ordering::Relaxed);
    GENERATION.store(state::next_generation(g), Ordering::Relaxed);
    paths
}

/// Makes `code`'s stub and announcement now (the pre-fork-server workflow).
///
/// # Safety
/// The GIL is held and `code` is a live object; `type_name` is its type's name.
pub(crate) unsafe fn compile_code(
    code: *mut pyo3::ffi::PyObject,
    type_name: impl FnOnce() -> String,
) -> Result<(), Error> {
    // SAFETY: `code` is a live object.
    if !unsafe { cpython::is_code(code) } {
        return Err(Error::NotCode(type_name()));
    }
    if !state::is_active() {
        return Err(Error::NotActive);
    }
    if !interpreters::in_home() {
        return Err(Error::NotMainInterpreter);
    }
    // SAFETY: the GIL is held and `code` is a code object.
    unsafe { compile::compile(code, Place::Home) }.map(drop)
}

pub(crate) fn set_persist_after_fork(flag: bool) {
    state::lock().persist_after_fork = flag;
}

/// In a child after `os.fork()`: with persist-after-fork, opens the child's file with the
/// parent's announcements right away (a pre-forked worker may never compile anything).
pub(crate) fn after_fork_child() -> Result<(), Error> {
    let mut inner = state::lock();
    if inner.persist_after_fork && state::is_active() {
        let backend = inner.backend();
        if backend.has_inherited() {
            backend.ensure_open()?;
        }
    }
    Ok(())
}

/// Writes one line to this process's perf map (as `PyUnstable_WritePerfMapEntry`).
pub(crate) fn write_perf_map_entry(addr: u64, size: u64, name: &str) -> Result<(), Error> {
    let mut inner = state::lock();
    inner.backends.perf.write_entry(addr, size, name)?;
    inner.announced += 1;
    Ok(())
}

/// A snapshot of the state, for `perfpy.status()`.
pub(crate) struct Status {
    pub active: bool,
    pub backend: Option<&'static str>,
    pub map_file: Option<String>,
    pub jit_file: Option<String>,
    pub jit_bytes: Option<u64>,
    pub stubs: u64,
    pub announced: u64,
    pub arenas: usize,
    pub arena_bytes: usize,
    pub exec_memory: Option<&'static str>,
    pub code_extra_index: isize,
    pub persist_after_fork: bool,
    pub failure: Option<String>,
    pub interpreters: usize,
    pub interpreters_limit: Option<&'static str>,
}

pub(crate) fn status() -> Status {
    let inner = state::lock();
    let active = state::is_active();
    let path = |p: Option<&Path>| p.map(|p| p.display().to_string());
    let pools: Vec<_> = inner
        .backends
        .all()
        .into_iter()
        .filter_map(|b| b.pool_made())
        .collect();
    Status {
        active,
        backend: active.then_some(inner.kind.name()),
        map_file: path(inner.backends.perf.path()),
        jit_file: path(inner.backends.jit.path()),
        jit_bytes: inner.backends.jit.file_len(),
        stubs: inner.compiled,
        announced: inner.announced,
        arenas: pools.iter().map(|p| p.arena_count()).sum(),
        arena_bytes: pools.iter().map(|p| p.mapped_bytes()).sum(),
        exec_memory: pools.iter().find_map(|p| p.method()).map(|m| match m {
            Method::Mprotect => "mprotect",
            Method::Memfd => "memfd",
        }),
        code_extra_index: EXTRA_INDEX.load(Ordering::Relaxed),
        persist_after_fork: inner.persist_after_fork,
        failure: inner.failure.clone(),
        // SAFETY: GIL held (`status` runs from a #[pyfunction]); our hook's address.
        interpreters: unsafe { interpreters::hooked(hook::elsewhere_ptr()) },
        interpreters_limit: interpreters::limit(),
    }
}

/// At process exit: each backend closes its file (`JIT_CODE_CLOSE` in the dump).
extern "C" fn at_exit() {
    // try_lock: never block exit on a lock some other thread holds.
    if let Ok(mut inner) = state::INNER.try_lock() {
        for backend in inner.backends.all_mut() {
            backend.at_exit();
        }
    }
}

/// Registers [`at_exit`], once per process.
fn install_exit_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a plain extern "C" function that lives forever.
        unsafe { libc::atexit(at_exit) };
    });
}
