//! `perfpy record`: one command from "my program is slow" to a profile.
//!
//! 1. Work out the interpreter the command runs and what it can do (perfpy importable?
//!    built-in support? frame pointers in its machine code?), and pick the backend and the
//!    call-graph mode, saying why.
//! 2. Run `perf record` with the flags that mode needs and the switch in the program's
//!    environment; Ctrl-C / SIGTERM / SIGHUP go to perf, which stops the program and still
//!    writes the recording.
//! 3. Move the program's perf maps and jitdumps next to the recording (`<out>.perfpy/`), so
//!    /tmp keeps nothing and `perfpy report` finds them; nothing is written to ~/.debug.
//! 4. Read the recording and print the hottest Python functions.

use crate::cli::{Backend, CallGraph, RecordArgs};
use crate::commands::doctor::{frame_pointer_prologues, probe_python, PythonFacts};
use crate::commands::report::{self, side_dir};
use crate::perf;
use crate::report::formats::python_table;
use crate::report::{jit, NativeView};
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

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

/// The interpreter a command runs: itself if it is one, else its shebang's.
fn interpreter_of(cmd: &Path) -> Option<PathBuf> {
    let resolved = if cmd.components().count() > 1 {
        cmd.to_path_buf()
    } else {
        perf::on_path(cmd)?
    };
    let name = resolved.file_name()?.to_string_lossy().into_owned();
    let head = std::fs::read(&resolved).ok()?;
    if head.starts_with(b"\x7fELF") {
        return name.starts_with("python").then_some(resolved);
    }
    let first = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(first.strip_prefix(b"#!")?).ok()?.trim();
    let mut words = line.split_whitespace();
    let prog = words.next()?;
    let interp = if prog.ends_with("/env") {
        let arg = words.find(|w| !w.starts_with('-'))?;
        return interpreter_of(Path::new(arg));
    } else {
        PathBuf::from(prog)
    };
    interp
        .file_name()?
        .to_string_lossy()
        .starts_with("python")
        .then_some(interp)
}

/// `arg` as a shell would need it typed (for messages).
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// What will be recorded, and why.
struct Plan {
    backend: Backend,
    call_graph: CallGraph,
    /// Environment for the program.
    env: Vec<(&'static str, &'static str)>,
    reasons: Vec<String>,
}

fn has_frame_pointers(facts: &PythonFacts) -> (bool, String) {
    match frame_pointer_prologues(Path::new(&facts.binary)) {
        Ok((with, total)) if total > 0 => (
            with * 2 > total,
            format!(
                "{with} of {total} functions in {} set up a frame pointer",
                facts.binary
            ),
        ),
        _ => (
            facts.cflags_fp,
            format!(
                "CFLAGS {} -fno-omit-frame-pointer",
                if facts.cflags_fp { "have" } else { "lack" }
            ),
        ),
    }
}

fn plan(
    args: &RecordArgs,
    facts: &PythonFacts,
    perf_version: Option<perf::Version>,
) -> Result<Plan> {
    let minor: Vec<u32> = facts
        .version
        .split('.')
        .filter_map(|p| p.parse().ok())
        .collect();
    let at_least = |maj: u32, min: u32| minor.len() >= 2 && (minor[0], minor[1]) >= (maj, min);
    let perfpy = facts.perfpy.is_some();
    let builtin = |b: Backend| match b {
        Backend::Perf => at_least(3, 12) && facts.builtin_perf,
        Backend::PerfJit => at_least(3, 13) && facts.builtin_perf,
        Backend::Auto => false,
    };
    let available = |b: Backend| perfpy || builtin(b);
    let mut reasons = Vec::new();
    if facts.cpython_jit {
        bail!(
            "CPython's JIT is enabled in {}: JIT-compiled code has no perf names. \
             Run with PYTHON_JIT=0.",
            facts.executable
        );
    }
    let (fp, fp_found) = has_frame_pointers(facts);
    reasons.push(format!(
        "{} frame pointers ({fp_found})",
        if fp {
            "interpreter has"
        } else {
            "interpreter lacks"
        }
    ));
    let call_graph = match args.call_graph {
        CallGraph::Auto if fp => CallGraph::Fp,
        CallGraph::Auto => CallGraph::Dwarf,
        other => other,
    };
    if call_graph == CallGraph::Fp && !fp {
        eprintln!(
            "perfpy: warning: --call-graph fp on an interpreter without frame pointers: stacks \
             stop at the first interpreter function. Leave --call-graph at auto (dwarf here)."
        );
    }
    let backend = match args.backend {
        Backend::Auto if call_graph == CallGraph::Fp && available(Backend::Perf) => {
            reasons.push("frame-pointer call graphs with the perf map: the smallest recordings, and perf report reads them as they are".into());
            Backend::Perf
        }
        Backend::Auto if available(Backend::PerfJit) => {
            let perf_ok = perf_version.and_then(|v| v.dwarf_jit_unwinding());
            reasons.push(format!(
                "DWARF call graphs with the jitdump: each stub carries its unwind info{}",
                match (perf_ok, perf_version) {
                    (Some(true), _) => " (perf inject --jit + perf report can read it too, with --keep-jit-files)".to_string(),
                    (Some(false), Some(v)) => format!(
                        " (perf {v}'s own unwinder can't step through perf inject --jit code; \
                         perfpy report doesn't need it)"
                    ),
                    _ => String::new(),
                }
            ));
            Backend::PerfJit
        }
        Backend::Auto if available(Backend::Perf) => {
            reasons.push("CPython's own perf map (this interpreter has no jitdump support without perfpy); perfpy report unwinds through its stubs with CFI derived from the interpreter's trampoline".into());
            Backend::Perf
        }
        Backend::Auto => bail!(
            "{} (Python {}) has neither perfpy nor built-in perf support (CPython 3.12+). \
             Install perfpy into it: {} -m pip install perfpy",
            facts.executable,
            facts.version,
            facts.executable
        ),
        b if !available(b) => bail!(
            "{} (Python {}) can't do --backend {}: perfpy isn't importable there and the \
             interpreter has no built-in support for it. Install perfpy into it: {} -m pip install perfpy",
            facts.executable,
            facts.version,
            if b == Backend::Perf { "perf" } else { "perf-jit" },
            facts.executable
        ),
        b => {
            reasons.push("backend chosen on the command line".into());
            b
        }
    };
    // perfpy's implementation wherever it is installed (its stubs keep a frame record, so
    // perfpy report unwinds through them); CPython's own where it isn't.
    let name = match backend {
        Backend::PerfJit => "perf_jit",
        _ => "perf",
    };
    let env = if perfpy {
        vec![("PERFPY_BACKEND", name)]
    } else if backend == Backend::PerfJit {
        vec![("PYTHON_PERF_JIT_SUPPORT", "1")]
    } else {
        vec![("PYTHONPERFSUPPORT", "1")]
    };
    Ok(Plan {
        backend,
        call_graph,
        env,
        reasons,
    })
}

fn perf_args(args: &RecordArgs, call_graph: CallGraph) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "record".into(),
        "-F".into(),
        args.frequency.to_string().into(),
        // CLOCK_MONOTONIC, as the jitdump's timestamps: perf inject --jit needs it.
        "-k".into(),
        "1".into(),
        // No copies of the binaries in ~/.debug.
        "--no-buildid-cache".into(),
        "--call-graph".into(),
        match call_graph {
            CallGraph::Fp => "fp".into(),
            _ => "dwarf,65528".into(),
        },
        "-o".into(),
        args.output.clone().into(),
    ];
    if let Some(e) = &args.event {
        a.push("-e".into());
        a.push(e.into());
    }
    a
}

/// Moves (or copies, for a process that still runs) the maps and dumps of `pids` into `dir`.
fn collect_jit_files(pids: &[i32], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut moved = Vec::new();
    for &pid in pids {
        let alive = u32::try_from(pid).is_ok_and(crate::commands::clean::running);
        for src in jit::candidates(pid, &[], None) {
            let Ok(meta) = std::fs::symlink_metadata(&src) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let name = if src.extension().is_some_and(|e| e == "map") {
                format!("perf-{pid}.map")
            } else {
                format!("jit-{pid}.dump")
            };
            let dst = dir.join(name);
            if dst.exists() {
                continue; // the namespace path and /tmp were the same file
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            if alive || std::fs::rename(&src, &dst).is_err() {
                std::fs::copy(&src, &dst).with_context(|| {
                    format!("cannot copy {} to {}", src.display(), dst.display())
                })?;
                if !alive {
                    let _ = std::fs::remove_file(&src);
                }
            }
            moved.push(src);
        }
    }
    Ok(moved)
}

pub fn run(args: &RecordArgs) -> Result<ExitCode> {
    let perf = perf::locate().context(
        "perf is not on PATH; install it (Debian: apt-get install linux-perf; Ubuntu: \
         linux-tools-$(uname -r); Fedora: perf), then check with `perfpy doctor`",
    )?;
    let perf_version = perf::version_text(&perf)
        .ok()
        .and_then(|t| perf::Version::parse(&t));
    let mut cmd = Command::new(&perf);
    let plan;
    if let Some(pid) = args.pid {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .with_context(|| format!("no process {pid} (or not allowed to see it)"))?;
        let facts = PythonFacts {
            binary: exe.display().to_string(),
            ..Default::default()
        };
        let (fp, fp_found) = has_frame_pointers(&facts);
        let call_graph = match args.call_graph {
            CallGraph::Auto if fp => CallGraph::Fp,
            CallGraph::Auto => CallGraph::Dwarf,
            other => other,
        };
        plan = Plan {
            backend: Backend::Auto,
            call_graph,
            env: vec![],
            reasons: vec![format!(
                "{} frame pointers ({fp_found})",
                if fp { "has" } else { "no" }
            )],
        };
        cmd.args(perf_args(args, call_graph))
            .arg("-p")
            .arg(pid.to_string());
        if let Some(d) = args.duration {
            cmd.args(["--", "sleep", &format!("{d}")]);
        }
    } else {
        let program = PathBuf::from(&args.command[0]);
        let python = match &args.python {
            Some(p) => p.clone(),
            None => interpreter_of(&program).with_context(|| {
                format!(
                    "can't tell which Python {} runs (not a python executable, no python \
                     shebang); pass --python PATH",
                    program.display()
                )
            })?,
        };
        let facts = probe_python(&python).map_err(anyhow::Error::msg)?;
        plan = self::plan(args, &facts, perf_version)?;
        cmd.args(perf_args(args, plan.call_graph))
            .arg("--")
            .args(&args.command);
        for var in [
            "PYTHONPERFSUPPORT",
            "PYTHON_PERF_JIT_SUPPORT",
            "PERFPY_BACKEND",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in &plan.env {
            cmd.env(k, v);
        }
    }
    let what = match args.pid {
        Some(pid) => format!("pid {pid}"),
        None => args
            .command
            .iter()
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" "),
    };
    eprintln!(
        "perfpy: recording {what}{}, {} call graphs, {} Hz",
        match plan.backend {
            Backend::Perf => ", perf map",
            Backend::PerfJit => ", jitdump",
            Backend::Auto => "",
        },
        if plan.call_graph == CallGraph::Fp {
            "frame-pointer"
        } else {
            "DWARF"
        },
        args.frequency
    );
    for r in &plan.reasons {
        eprintln!("perfpy:   because: {r}");
    }
    if !plan.env.is_empty() {
        let env: Vec<String> = plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        eprintln!("perfpy:   switched on with {}", env.join(" "));
    }
    eprintln!(
        "perfpy: Ctrl-C stops the {} and keeps the profile",
        if args.pid.is_some() {
            "recording"
        } else {
            "program"
        }
    );
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}", perf.display()))?;
    let status = {
        let _forwarding = Forwarding::install(child.id());
        let _progress = std::io::stderr()
            .is_terminal()
            .then(|| Progress::start(args.output.clone()));
        child.wait().context("waiting for perf")?
    };
    let elapsed = started.elapsed();
    let size = std::fs::metadata(&args.output)
        .map(|m| m.len())
        .unwrap_or(0);
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
        elapsed.as_secs_f64()
    );

    let progress = std::io::stderr().is_terminal();
    let profile = report::load(&args.output, &[], progress)?;
    let pids: Vec<i32> = profile.pids.iter().copied().collect();
    let side = side_dir(&args.output);
    if !args.keep_jit_files {
        // A previous recording's names must not name this one's addresses.
        if side.is_dir() {
            for e in std::fs::read_dir(&side)?.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let moved = collect_jit_files(&pids, &side)?;
        if !moved.is_empty() {
            eprintln!(
                "perfpy: moved {} perf map/jitdump file{} into {}",
                moved.len(),
                if moved.len() == 1 { "" } else { "s" },
                side.display()
            );
        }
    }
    let profile = profile.with_view(NativeView::Leaf);
    report::warn_about(&profile);
    summary(&profile, args.top, &args.output);
    Ok(match status.code() {
        Some(0) | None => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(c.clamp(1, 255) as u8),
    })
}

fn summary(profile: &crate::report::Profile, top: usize, output: &Path) {
    let total = profile.samples.len() as u64;
    eprintln!();
    eprintln!(
        "{total} samples{}",
        if profile.stats.lost_events > 0 {
            format!(" ({} events lost)", profile.stats.lost_events)
        } else {
            String::new()
        }
    );
    let rows = python_table(profile);
    if rows.is_empty() {
        eprintln!("no sample ran Python code with a name (see the warnings above)");
    } else {
        eprintln!("hottest Python functions:");
        eprintln!("  {:>6}  {:>6}  function", "self", "total");
        // Functions under 1% of the samples are noise here; perfpy report lists them all.
        for r in rows
            .iter()
            .filter(|r| r.total_samples * 100 >= total)
            .take(top)
        {
            let frame = &profile.frames[r.frame as usize];
            let (func, file) = frame.python_parts();
            let line = frame.line.map(|l| format!(":{l}")).unwrap_or_default();
            let pct = |n: u64| 100.0 * n as f64 / total.max(1) as f64;
            eprintln!(
                "  {:>5.1}%  {:>5.1}%  {func}  {file}{line}",
                pct(r.self_samples),
                pct(r.total_samples)
            );
        }
    }
    let input = if output == Path::new("perf.data") {
        String::new()
    } else {
        format!(" -i {}", output.display())
    };
    eprintln!();
    eprintln!("next: perfpy report{input}                      (all functions)");
    eprintln!("      perfpy report{input} --format flamegraph  (flamegraph.svg)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_a_shell_would_need_quoted() {
        assert_eq!(shell_quote("app.py"), "app.py");
        assert_eq!(
            shell_quote("import time; time.sleep(1)"),
            "'import time; time.sleep(1)'"
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn finds_the_interpreter_of_a_shebang_script() {
        let dir = std::env::temp_dir().join(format!("perfpy-rec-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let direct = dir.join("tool");
        std::fs::write(&direct, "#!/opt/py/bin/python3.11 -u\nprint()\n").unwrap();
        let via_env = dir.join("tool2");
        std::fs::write(&via_env, "#!/usr/bin/env -S sh\n").unwrap();
        let not_python = dir.join("tool3");
        std::fs::write(&not_python, "#!/bin/sh\n").unwrap();
        assert_eq!(
            interpreter_of(&direct),
            Some(PathBuf::from("/opt/py/bin/python3.11"))
        );
        assert_eq!(interpreter_of(&not_python), None);
        assert_eq!(interpreter_of(&via_env), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
