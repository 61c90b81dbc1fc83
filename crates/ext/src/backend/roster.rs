//! `perfpy record`'s roster of the processes that wrote a perf map or jitdump.
//!
//! `perfpy record` moves each process's file out of `/tmp` once the recording ends, and it
//! learns the processes from perf.data's fork, comm and sample records. perf drops records when
//! it can't keep up (a busy machine: its LOST records), and a worker recycled during the
//! recording whose fork record was dropped would leave its file behind. So `perfpy record`
//! names a file of its own in the program's environment (`PERFPY_ROSTER`), and each process
//! that creates its perf map or jitdump appends its pid there: one line, one `write(2)` with
//! `O_APPEND`. The file must exist (it is never created here, so a stale variable in a
//! long-lived child writes nothing anywhere) and not be a symbolic link.
//!
//! The variable is read once, when the trampoline is first activated, not in a forked child
//! (whose environment lock another thread may have held at the fork).

use std::ffi::CString;
use std::sync::OnceLock;

/// The environment variable `perfpy record` names its roster in.
pub(crate) const VAR: &str = "PERFPY_ROSTER";

static ROSTER: OnceLock<Option<CString>> = OnceLock::new();

/// Reads [`VAR`], once per process (a forked child keeps its parent's).
pub(crate) fn init() {
    ROSTER.get_or_init(|| {
        let path = std::env::var_os(VAR).filter(|p| !p.is_empty())?;
        CString::new(path.into_encoded_bytes()).ok()
    });
}

/// Adds the calling process to the roster, if there is one. Failing to is not an error: the
/// recording's own records still name the process, as they did before the roster.
pub(super) fn enroll() {
    let Some(Some(path)) = ROSTER.get() else {
        return;
    };
    let line = format!("{}\n", std::process::id());
    // SAFETY: `path` is NUL-terminated; the descriptor is checked, written once and closed.
    unsafe {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        );
        if fd >= 0 {
            libc::write(fd, line.as_ptr().cast(), line.len());
            libc::close(fd);
        }
    }
}
