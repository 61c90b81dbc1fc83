//! Ctrl-C, SIGTERM and SIGHUP while a command records: passed on to perf while it runs (perf
//! then stops the recording, and still writes it), and noted, so that what perfpy switched on
//! in running processes is switched off again before perfpy exits, whenever they come.

use std::sync::atomic::{AtomicI32, Ordering};

/// perf's pid while it runs (0: none), for the handler.
static CHILD: AtomicI32 = AtomicI32::new(0);
/// The last of those signals that came (0: none).
static CAUGHT: AtomicI32 = AtomicI32::new(0);
/// A descriptor to put in standard input's place when the terminal hangs up (-1: none).
static ON_HANGUP: AtomicI32 = AtomicI32::new(-1);
/// `/dev/null`, to put in standard output's and error's place then (-1: none).
static NULL: AtomicI32 = AtomicI32::new(-1);

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

extern "C" fn caught(sig: libc::c_int) {
    CAUGHT.store(sig, Ordering::SeqCst);
    if sig == libc::SIGHUP {
        hung_up();
    }
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

/// The terminal is gone: what perfpy still writes goes nowhere (a write to a hung-up
/// terminal fails, and some libraries' writes panic when it does), and what it reads is an
/// empty pipe (see [`quiet_stdin_on_hangup`]). Async-signal-safe: dup2(2) only.
fn hung_up() {
    let null = NULL.load(Ordering::SeqCst);
    let quiet = ON_HANGUP.load(Ordering::SeqCst);
    // SAFETY: dup2(2) is async-signal-safe; the descriptors are ours and open until the
    // process ends.
    unsafe {
        if null >= 0 {
            libc::dup2(null, libc::STDOUT_FILENO);
            libc::dup2(null, libc::STDERR_FILENO);
        }
        if quiet >= 0 {
            libc::dup2(quiet, libc::STDIN_FILENO);
        }
    }
}

impl Guard {
    pub fn install() -> Guard {
        if NULL.load(Ordering::SeqCst) < 0 {
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
                use std::os::fd::IntoRawFd;
                NULL.store(f.into_raw_fd(), Ordering::SeqCst);
            }
        }
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

/// When the terminal hangs up (SIGHUP), standard input is replaced by an empty pipe that
/// never blocks: a hung-up terminal reads as end-of-file forever, which the terminal library's
/// input loop would spin on (crossterm 0.29 retries a read of 0 bytes without end), and the
/// screen would never get to switch names off.
pub fn quiet_stdin_on_hangup() {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } == 0 {
        ON_HANGUP.store(fds[0], Ordering::SeqCst);
        // The write end stays open (and is never written): a read gives EAGAIN, not EOF.
        let _ = fds[1];
    }
}

/// Whether standard input is a terminal that has hung up (its other end closed); then it is
/// replaced as on SIGHUP.
pub fn stdin_hung_up() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll(2) on one valid pollfd, without waiting.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    let gone = n > 0 && fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0;
    if gone {
        hung_up();
    }
    gone
}

/// The signal that came, if one did.
pub fn caught_signal() -> Option<i32> {
    match CAUGHT.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}
