//! perf itself: its command line, and running it to the end with the signals that reach
//! perfpy passed on to it and, on a terminal, a line now and then on how it goes.

use crate::cli::{Mode, RecordArgs};
use crate::perf;
use crate::plan::CallGraph;
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

/// How perf writes the recording, whichever way it reaches the program.
pub(super) struct Writing {
    /// `-z`: zstd as it records.
    pub compress: bool,
    /// With DWARF call graphs, the stack copied with each sample.
    pub stack_size: u32,
    /// Why, for the user.
    pub reasons: Vec<String>,
}

/// How perf at `perf` will write the recording `args` ask for.
pub(super) fn writing(args: &RecordArgs, perf: &Path) -> Writing {
    let mut reasons = Vec::new();
    let compress = if args.no_compress {
        false
    } else if args.keep_jit_files {
        reasons.push(
            "uncompressed: --keep-jit-files is for perf inject --jit, which can't read \
             compressed recordings"
                .to_string(),
        );
        false
    } else {
        match perf::compresses(perf) {
            Some(true) => true,
            Some(false) => {
                reasons.push(
                    "uncompressed: this perf was built without zstd (`perfpy doctor` says more)"
                        .to_string(),
                );
                false
            }
            None => {
                reasons.push(
                    "uncompressed: this perf doesn't say whether it was built with zstd"
                        .to_string(),
                );
                false
            }
        }
    };
    Writing {
        compress,
        stack_size: args.stack_size,
        reasons,
    }
}

/// `perf record`'s options for `args`, up to (not including) what it records: `--` and a
/// command, or `-p`.
pub(super) fn args(args: &RecordArgs, call_graph: CallGraph, writing: &Writing) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["record".into()];
    a.extend(events(args).into_iter().map(OsString::from));
    a.extend([
        // CLOCK_MONOTONIC, as the jitdump's timestamps: perf inject --jit needs it.
        "-k".into(),
        "1".into(),
        // No copies of the binaries in ~/.debug.
        "--no-buildid-cache".into(),
        "--call-graph".into(),
        match call_graph {
            CallGraph::FramePointers => "fp".into(),
            CallGraph::Dwarf => format!("dwarf,{}", writing.stack_size).into(),
        },
        "-o".into(),
        args.output.clone().into(),
    ]);
    if writing.compress {
        a.push("-z".into());
    }
    a
}

/// What perf samples in each mode. The CPU samples keep `-F`; the context switches are all
/// sampled (a period of 1, with their stacks), and the switch records (`--switch-events`)
/// say when each thread left the CPU and came back, and whether it was preempted. (`-F` and
/// a period can't be mixed on perf's command line; per-event terms can.)
fn events(args: &RecordArgs) -> Vec<String> {
    let ticks = format!("cpu-clock/freq={}/", args.frequency);
    let switches = [
        "-e".into(),
        CONTEXT_SWITCHES.into(),
        "--switch-events".into(),
    ];
    match args.mode {
        Mode::Cpu => {
            let mut a = vec!["-F".into(), args.frequency.to_string()];
            if let Some(e) = &args.event {
                a.extend(["-e".into(), e.clone()]);
            }
            a
        }
        Mode::Wall => [vec!["-e".into(), ticks], switches.to_vec(), buffer()].concat(),
        Mode::OffCpu => [switches.to_vec(), buffer()].concat(),
    }
}

/// perf's ring buffer per CPU for the modes that sample every context switch: a thread
/// switching often (a lock passed back and forth, threads starting) writes a stack copy per
/// switch in bursts that overflow perf's default 512 KiB and lose samples (measured: 3-17
/// lost events a run of the wall-clock test program with the default, none with 8 MiB).
/// 64 MiB shared by the CPUs, between 1 and 8 MiB each; only where perf may lock that much
/// (root), else perf's default.
fn buffer() -> Vec<String> {
    // SAFETY: geteuid has no preconditions and can't fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        return Vec::new();
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let mib = (64 / cpus).clamp(1, 8).next_power_of_two().min(8);
    vec!["-m".into(), format!("{mib}M")]
}

/// The context-switch event as `perfpy record` spells it (and `perfpy report` recognises).
pub const CONTEXT_SWITCHES: &str = "cs/period=1/";

/// perf's pid while it runs, for the signal handler.
static PERF_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = PERF_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe; pid is perf's, which we started and have not
        // yet reaped (the handler is reset before waitpid returns).
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Sends SIGINT, SIGTERM and SIGHUP that reach perfpy on to perf while it runs. (A Ctrl-C on
/// the terminal reaches perf and the program directly too; perf then stops recording, stops
/// the program and writes the file.)
struct Forwarding {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl Forwarding {
    fn install(perf_pid: u32) -> Forwarding {
        PERF_PID.store(perf_pid as i32, Ordering::SeqCst);
        let mut old = Vec::new();
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; we set a
            // handler that only calls kill(2), and keep the previous action to restore it.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = forward as *const () as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut previous: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &action, &mut previous) == 0 {
                    old.push((sig, previous));
                }
            }
        }
        Forwarding { old }
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        PERF_PID.store(0, Ordering::SeqCst);
        for (sig, previous) in &self.old {
            // SAFETY: restores the action saved by `install` for the same signal.
            unsafe {
                libc::sigaction(*sig, previous, std::ptr::null_mut());
            }
        }
    }
}

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
                    eprintln!(
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
        let _forwarding = Forwarding::install(child.id());
        let _progress = std::io::stderr()
            .is_terminal()
            .then(|| Progress::start(output.to_path_buf()));
        child.wait().context("waiting for perf")?
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
    eprintln!(
        "perfpy: recorded {:.1} MB in {:.1} s",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(status)
}
