//! perf itself: its command line, and running it to the end with the signals that reach
//! perfpy passed on to it ([`crate::signals`]) and, on a terminal, a line now and then on how
//! it goes.

use anyhow::{bail, Context, Result};
use std::io::IsTerminal;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Instant;

/// On a terminal, a line now and then while perf records (after 10 s, then at doubling
/// intervals): elapsed time and the recording's size. Whole lines, so the program's own output
/// is never overwritten.
struct Progress {
    stop: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(output: PathBuf) -> Progress {
        let stop = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut next = std::time::Duration::from_secs(10);
            let (lock, cvar) = &*flag;
            let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let wait = next.saturating_sub(started.elapsed());
                let (guard, timeout) = cvar
                    .wait_timeout(stopped, wait)
                    .unwrap_or_else(|e| e.into_inner());
                stopped = guard;
                if *stopped {
                    return;
                }
                if timeout.timed_out() {
                    let size = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
                    crate::eline!(
                        "perfpy: recording for {:.0} s, {} so far: {:.1} MB",
                        started.elapsed().as_secs_f64(),
                        output.display(),
                        size as f64 / 1e6
                    );
                    next *= 2;
                }
            }
        });
        Progress {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs perf to the end, forwarding signals; perf's exit status.
pub(super) fn run(mut cmd: Command, perf: &Path, output: &Path) -> Result<ExitStatus> {
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}", perf.display()))?;
    let status = {
        // Ctrl-C, SIGTERM, SIGHUP go to perf, which stops and writes the recording; a signal
        // that came before perf started stops it at once.
        crate::signals::forward_to(child.id());
        if let Some(sig) = crate::signals::caught_signal() {
            // SAFETY: kill(2) on the child we just started and have not reaped.
            unsafe {
                libc::kill(child.id() as i32, sig);
            }
        }
        let _progress = std::io::stderr()
            .is_terminal()
            .then(|| Progress::start(output.to_path_buf()));
        let status = child.wait().context("waiting for perf");
        crate::signals::forward_none();
        status?
    };
    let size = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    if size == 0 {
        bail!(
            "perf record wrote no recording ({}); its messages are above. `perfpy doctor` \
             checks what perf needs",
            match status.code() {
                Some(c) => format!("exit status {c}"),
                None => format!("killed by signal {}", status.signal().unwrap_or(0)),
            }
        );
    }
    crate::eline!(
        "perfpy: recorded {:.1} MB in {:.1} s",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(status)
}
