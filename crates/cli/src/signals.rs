//! Ctrl-C, SIGTERM and SIGHUP while a command records: passed on to perf while it runs (perf
//! then stops the recording, and still writes it), and noted, so that what perfpy switched on
//! in running processes is switched off again before perfpy exits, whenever they come.

use std::sync::atomic::{AtomicI32, Ordering};

/// perf's pid while it runs (0: none), for the handler.
static CHILD: AtomicI32 = AtomicI32::new(0);
/// The last of those signals that came (0: none).
static CAUGHT: AtomicI32 = AtomicI32::new(0);

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

extern "C" fn caught(sig: libc::c_int) {
    CAUGHT.store(sig, Ordering::SeqCst);
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe; pid is perf's, which we started and have not
        // yet reaped (it is cleared before waitpid returns).
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// The handlers, installed for as long as it lives; the previous ones come back after.
pub struct Guard {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl Guard {
    pub fn install() -> Guard {
        let mut old = Vec::new();
        for sig in SIGNALS {
            // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler
            // only stores to atomics and calls kill(2); the previous action is kept to be
            // restored.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = caught as *const () as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut previous: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &action, &mut previous) == 0 {
                    old.push((sig, previous));
                }
            }
        }
        Guard { old }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        CHILD.store(0, Ordering::SeqCst);
        for (sig, previous) in &self.old {
            // SAFETY: restores the action saved by `install` for the same signal.
            unsafe {
                libc::sigaction(*sig, previous, std::ptr::null_mut());
            }
        }
    }
}

/// Signals that come from now on go to `pid` too (perf), until [`forward_none`].
pub fn forward_to(pid: u32) {
    CHILD.store(pid as i32, Ordering::SeqCst);
}

pub fn forward_none() {
    CHILD.store(0, Ordering::SeqCst);
}

/// The signal that came, if one did.
pub fn caught_signal() -> Option<i32> {
    match CAUGHT.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}
