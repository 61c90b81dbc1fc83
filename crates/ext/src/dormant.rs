//! Dormant attach, for CPython 3.8–3.13 (which have no PEP 768): started with
//! `PERFPY_ATTACH=1`, perfpy only watches a control block in its own memory until
//! `perfpy record --pid` writes a request there, and then switches the trampoline on or off
//! on the main thread at its next safe point.
//!
//! * Costs nothing measurable while dormant: no hook, no trampoline; one thread that sleeps
//!   and reads one word twenty times a second (a request is seen within 50 ms).
//! * Authenticated by the kernel: the block can only be written with `process_vm_writev`
//!   (or ptrace), so only a user allowed to ptrace the process can switch it on.
//! * Safe for the program: no signal; the switch runs through `Py_AddPendingCall`, which
//!   the interpreter runs on the main thread between bytecodes, with the GIL.
//! * Reaches a busy main thread: 3.9–3.12 queue a pending call from another thread without
//!   telling the main thread to look (the "eval breaker" is computed for the calling thread,
//!   which can't run pending calls), so a program with no other thread and no I/O would never
//!   run it. When the call has not run a poll after it was queued, the watcher asks for the
//!   GIL once: that request sets the eval breaker, and the main thread, handling it, runs its
//!   pending calls before it hands the GIL over.
//!
//! The block is the exported symbol `PERFPY_CONTROL`, laid out as [`Control`]; the CLI finds
//! it in the `.so`'s dynamic symbol table.

use pyo3::ffi;
use pyo3::prelude::*;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

/// The control block, as the CLI reads and writes it (offsets are part of the protocol).
#[repr(C)]
pub struct Control {
    /// `perfpy-control-1` (offset 0).
    pub magic: [u8; 16],
    /// 1 once the watcher runs (offset 16).
    pub armed: AtomicU32,
    /// Written by the CLI: 0 nothing, 1 on with `perf`, 2 on with `perf_jit`, 3 off (its
    /// files closed and removed), 4 off (its files kept) (offset 20). Cleared when carried
    /// out.
    pub request: AtomicU32,
    /// Counts requests carried out (offset 24).
    pub done: AtomicU32,
    /// After the last one: 0 off, 1 on, 2 it failed (the program's stderr says why), 3 on
    /// already before an "on" request, left as it was (offset 28).
    pub state: AtomicU32,
}

#[no_mangle]
#[used]
pub static PERFPY_CONTROL: Control = Control {
    magic: *b"perfpy-control-1",
    armed: AtomicU32::new(0),
    request: AtomicU32::new(0),
    done: AtomicU32::new(0),
    state: AtomicU32::new(0),
};

/// A pending call is queued and has not run yet.
static QUEUED: AtomicBool = AtomicBool::new(false);
/// The main thread was asked to look at the queued call (once per request).
static NUDGED: AtomicBool = AtomicBool::new(false);

/// Starts the watcher (once per process).
pub fn arm() {
    if PERFPY_CONTROL.armed.swap(1, Ordering::SeqCst) == 1 {
        return;
    }
    spawn_watcher();
}

/// In a child after `os.fork()` (CPython's after-fork hook, on the thread that forked, with
/// the GIL): a fork of an armed process is as switchable as its parent (a pre-fork server's
/// workers), but the watcher thread didn't survive the fork, and the block is a copy of the
/// parent's taken at any moment. A request the parent had not carried out yet is the
/// parent's, not this process's.
pub fn rearm_in_child() {
    if PERFPY_CONTROL.armed.load(Ordering::SeqCst) != 1 {
        return;
    }
    PERFPY_CONTROL.request.store(0, Ordering::SeqCst);
    QUEUED.store(false, Ordering::SeqCst);
    spawn_watcher();
}

fn spawn_watcher() {
    let spawned = std::thread::Builder::new()
        .name("perfpy-attach".into())
        .spawn(|| loop {
            std::thread::sleep(POLL);
            if PERFPY_CONTROL.request.load(Ordering::SeqCst) == 0 {
                continue;
            }
            if QUEUED.swap(true, Ordering::SeqCst) {
                // Queued a poll ago and not run yet: a busy main thread nothing told to
                // look (3.9-3.12). Asked once per request.
                if !NUDGED.swap(true, Ordering::SeqCst) {
                    nudge_main_thread();
                }
                continue;
            }
            NUDGED.store(false, Ordering::SeqCst);
            // SAFETY: Py_AddPendingCall may be called from any thread without the GIL; the
            // callback is a plain function and takes no argument.
            if unsafe { ffi::Py_AddPendingCall(Some(switch), std::ptr::null_mut()) } != 0 {
                QUEUED.store(false, Ordering::SeqCst); // the queue is full: next time
            }
        });
    if spawned.is_err() {
        PERFPY_CONTROL.armed.store(0, Ordering::SeqCst);
    }
}

/// How often the watcher reads the control block.
const POLL: Duration = Duration::from_millis(50);

/// Makes the main thread look at its pending calls now: asks for the GIL once (the request
/// sets the eval breaker the main thread checks between bytecodes) and gives it back. Not
/// while the runtime finalizes, when a thread that asks for the GIL is never given it.
fn nudge_main_thread() {
    if crate::cpython::ffi::is_finalizing() {
        return;
    }
    // SAFETY: PyGILState_Ensure may be called from a thread with no thread state while the
    // runtime is initialized and not finalizing (checked just above; the pending call queued
    // a moment ago keeps the interpreter's state alive until it runs); it is paired with the
    // release below, which frees the thread state it made.
    unsafe {
        if ffi::Py_IsInitialized() == 0 {
            return;
        }
        let gil = ffi::PyGILState_Ensure();
        ffi::PyGILState_Release(gil);
    }
}

/// Carries out the request, on the main thread with the GIL (a pending call). Never leaves an
/// exception set: failures are printed and reported in `state`.
extern "C" fn switch(_: *mut c_void) -> c_int {
    let request = PERFPY_CONTROL.request.load(Ordering::SeqCst);
    // SAFETY: pending calls run with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let already = crate::state::is_active();
    let result = py.import("perfpy").and_then(|perfpy| match request {
        // Names on already (from the start, or by the program): left as they are.
        1 | 2 if already => Ok(()),
        1 | 2 => perfpy
            .call_method1(
                "activate_stack_trampoline",
                (if request == 1 { "perf" } else { "perf_jit" },),
            )
            .map(drop),
        3 | 4 => perfpy.call_method0("deactivate_stack_trampoline").map(|_| {
            // The recording has its copy of the names (perfpy collects them before asking):
            // nothing of this switch stays in /tmp, unless asked to keep them (4).
            if request == 3 {
                for path in crate::lifecycle::release_files() {
                    let _ = std::fs::remove_file(path);
                }
            }
        }),
        _ => Ok(()),
    });
    let state = match result {
        Ok(()) if already && request <= 2 => 3,
        Ok(()) if crate::state::is_active() => 1,
        Ok(()) => 0,
        Err(e) => {
            e.print(py);
            2
        }
    };
    PERFPY_CONTROL.state.store(state, Ordering::SeqCst);
    PERFPY_CONTROL.request.store(0, Ordering::SeqCst);
    PERFPY_CONTROL.done.fetch_add(1, Ordering::SeqCst);
    QUEUED.store(false, Ordering::SeqCst);
    0
}
