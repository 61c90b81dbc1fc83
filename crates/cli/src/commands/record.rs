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

use crate::cli::RecordArgs;
use crate::dormant;
use crate::lend::{self, Lend};
use crate::perf;
use crate::plan::{self, Backend, CallGraph, Plan, Trampoline};
use crate::procfs;
use crate::python::{self, PythonFacts};
use crate::recording::{self, collect_jit_files, side_dir};
use crate::remote::{self, Refusal};
use crate::report::output::{self, Format};
use crate::report::profile::tables::{pct, python_table};
use crate::report::NativeView;
use crate::switch;
use anyhow::{bail, Context, Result};
use perfpy_format::files;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

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
            CallGraph::FramePointers => "fp".into(),
            CallGraph::Dwarf => "dwarf,65528".into(),
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

/// Prints a warning about the plan, if there is one.
fn warn(warning: Option<&str>) {
    if let Some(w) = warning {
        eprintln!("perfpy: warning: {w}");
    }
}

/// What `record` will do: perf's command line, and what to tell the user about it.
struct Setup {
    cmd: Command,
    /// `None` when attaching to a running process (its switches were set when it started).
    plan: Option<Plan>,
    call_graph: CallGraph,
    reasons: Vec<String>,
    /// The start-up hook lending perfpy to the program, removed after the recording.
    hook: Option<lend::HookDir>,
    /// Names switched on in running processes, to switch off after the recording.
    switched: Vec<Switched>,
}

/// perf attached to running processes: only the call graphs are ours to choose (frame
/// pointers only if every process's interpreter has them).
fn attach(args: &RecordArgs, perf: &Path, pids: &[u32]) -> Result<Setup> {
    let mut fps = Vec::new();
    for &pid in pids {
        let exe = match std::fs::read_link(format!("/proc/{pid}/exe")) {
            Ok(exe) => exe,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
                "not allowed to look into process {pid} ({e}). {}",
                remote::ptrace_fix()
            ),
            Err(e) => bail!("no process {pid} ({e})"),
        };
        // The interpreter's code: the libpython it maps, else the executable.
        let lib = std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .ok()
            .and_then(|maps| {
                remote::file_bases(&maps).into_iter().find_map(|(path, _)| {
                    let name = path.file_name()?.to_string_lossy().into_owned();
                    name.starts_with("libpython").then_some(path)
                })
            });
        let binary = lib.unwrap_or(exe);
        let on_disk = Path::new(&format!("/proc/{pid}/root"))
            .join(binary.strip_prefix("/").unwrap_or(&binary));
        let facts = PythonFacts {
            binary: if on_disk.exists() { on_disk } else { binary }
                .display()
                .to_string(),
            ..Default::default()
        };
        fps.push(python::frame_pointers(&facts));
    }
    let fp = fps.iter().find(|f| !f.present).unwrap_or(&fps[0]).clone();
    let (call_graph, warning) = plan::call_graph(args.call_graph, &fp);
    warn(warning.as_deref());
    let mut reasons = vec![format!(
        "{} frame pointers ({})",
        if fp.present { "has" } else { "no" },
        fp.evidence
    )];
    let backend = match call_graph {
        CallGraph::FramePointers => "perf",
        CallGraph::Dwarf => "perf_jit",
    };
    let mut switched = Vec::new();
    for &pid in pids {
        match switch_on(pid, backend, &mut reasons) {
            Ok(s) => switched.extend(s),
            Err(e) => {
                // Leave the others as they were before failing.
                for s in switched {
                    Switched::off(s);
                }
                return Err(e);
            }
        }
    }
    let mut cmd = Command::new(perf);
    cmd.args(perf_args(args, call_graph)).arg("-p").arg(
        pids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
    );
    if let Some(d) = args.duration {
        cmd.args(["--", "sleep", &format!("{d}")]);
    }
    Ok(Setup {
        cmd,
        plan: None,
        hook: None,
        switched,
        call_graph,
        reasons,
    })
}

/// How long a running process gets to reach a safe point and run a switch.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether process `pid` already announces Python names (a perf map or jitdump of its own).
fn names_on(pid: u32) -> bool {
    let inner = procfs::namespace_pid(pid as i32).unwrap_or(pid as i32) as u32;
    let root = PathBuf::from(format!("/proc/{pid}/root{}", files::DIR));
    [files::Kind::PerfMap, files::Kind::Jitdump]
        .iter()
        .any(|k| root.join(k.file_name(inner)).exists())
}

/// Switches Python names on in a running CPython 3.14+ (PEP 768); says what it did in
/// `reasons`. `Some` when they must be switched off again after the recording.
fn switch_on(pid: u32, backend: &str, reasons: &mut Vec<String>) -> Result<Option<Switched>> {
    let rt = match remote::locate(pid) {
        Ok(rt) if rt.at_least(3, 14) => rt,
        Ok(rt) => return dormant_on(pid, backend, &remote::describe(&rt), reasons),
        Err(Refusal::Permission(why)) => bail!("{why}"),
        Err(why) => return dormant_on(pid, backend, &why.to_string(), reasons),
    };
    let sent = match switch::Switch::send(&rt, true, backend) {
        Ok(s) => s,
        Err(Refusal::Disabled) if names_on(pid) => {
            reasons.push(format!(
                "pid {pid} ({}) has remote debugging disabled, but already writes Python names",
                remote::describe(&rt)
            ));
            return Ok(None);
        }
        Err(Refusal::Disabled) => bail!(
            "cannot switch Python names on in pid {pid} ({}): {}. Restart it without that \
             setting, or with names on from the start (PYTHONPERFSUPPORT=1, or \
             PYTHON_PERF_JIT_SUPPORT=1 without frame pointers); it was left untouched",
            remote::describe(&rt),
            Refusal::Disabled
        ),
        Err(why) => bail!("cannot switch Python names on in pid {pid}: {why}"),
    };
    match sent.wait(SWITCH_TIMEOUT) {
        Some(o) if o.error.is_some() => bail!(
            "pid {pid} could not switch Python names on: {}",
            o.error.unwrap_or_default()
        ),
        Some(o) if o.already => {
            reasons.push(format!(
                "pid {pid} ({}) had Python names on already ({}'s trampoline); left as it was",
                remote::describe(&rt),
                o.trampoline
            ));
            Ok(None)
        }
        Some(o) if !o.active => bail!(
            "pid {pid} ran the switch, but its trampoline did not come on (it printed a \
             warning to its own stderr)"
        ),
        Some(o) => {
            reasons.push(format!(
                "switched Python names on in pid {pid} ({}, {}'s {backend} trampoline); \
                 functions already running are named from their next call",
                remote::describe(&rt),
                o.trampoline
            ));
            Ok(Some(Switched::Remote {
                rt,
                backend: backend.to_string(),
                pending: None,
            }))
        }
        None => {
            warn(Some(&format!(
                "pid {pid} has not reached a safe point in {} s: its main thread is not \
                 running Python code (blocked in C: a sleep, a lock, a socket read). Names come \
                 on when it does; recording anyway",
                SWITCH_TIMEOUT.as_secs()
            )));
            Ok(Some(Switched::Remote {
                rt,
                backend: backend.to_string(),
                pending: Some(sent),
            }))
        }
    }
}

/// Before 3.14: perfpy's dormant attach, if the process was started with `PERFPY_ATTACH=1`;
/// otherwise the process is recorded as it is, and told how to make it switchable.
fn dormant_on(
    pid: u32,
    backend: &str,
    what: &str,
    reasons: &mut Vec<String>,
) -> Result<Option<Switched>> {
    let how = "names come on only if it was started with them (PYTHONPERFSUPPORT=1, \
               PERFPY_BACKEND=perf_jit, activate_stack_trampoline()), or with perfpy installed \
               and PERFPY_ATTACH=1, which lets perfpy record --pid switch them on and off later";
    let block = match dormant::find(pid) {
        Ok(dormant::Found::Armed(block)) => block,
        Ok(found) => {
            let has = if found == dormant::Found::NotArmed {
                "perfpy is loaded there but was not started with PERFPY_ATTACH=1"
            } else {
                "perfpy is not loaded there"
            };
            let line = format!(
                "pid {pid} ({what}) can't be switched on from outside before CPython 3.14, and \
                 {has}: {how}"
            );
            if names_on(pid) {
                reasons.push(line);
            } else {
                warn(Some(&format!(
                    "{line}. Recording it as it is, without Python names"
                )));
            }
            return Ok(None);
        }
        Err(Refusal::Permission(why)) => bail!("{why}"),
        Err(why) => {
            reasons.push(format!("can't switch names on in pid {pid} ({why})"));
            return Ok(None);
        }
    };
    match dormant::request(pid, block, Some(backend), SWITCH_TIMEOUT) {
        Ok(Some(true)) => reasons.push(format!(
            "switched Python names on in pid {pid} ({what}, perfpy's {backend} trampoline, \
             PERFPY_ATTACH); functions already running are named from their next call"
        )),
        Ok(Some(false)) => bail!(
            "pid {pid} ran the switch, but its trampoline did not come on (its stderr says why)"
        ),
        Ok(None) => warn(Some(&format!(
            "pid {pid} has not reached a safe point in {} s: its main thread is not running \
             Python code (blocked in C: a sleep, a lock, a socket read). Names come on when it \
             does; recording anyway",
            SWITCH_TIMEOUT.as_secs()
        ))),
        Err(why) => bail!("cannot switch Python names on in pid {pid}: {why}"),
    }
    Ok(Some(Switched::Dormant { pid, block }))
}

/// Names perfpy switched on in a running process, to switch off after the recording.
enum Switched {
    /// Through PEP 768 (3.14+).
    Remote {
        rt: remote::Runtime,
        backend: String,
        /// The switch-on, if it had not run yet.
        pending: Option<switch::Switch>,
    },
    /// Through perfpy's dormant attach (`PERFPY_ATTACH=1`).
    Dormant { pid: u32, block: u64 },
}

impl Switched {
    /// Switches the names off again (or cancels a switch-on that never ran).
    fn off(self) {
        let (rt, backend, pending) = match self {
            Switched::Remote {
                rt,
                backend,
                pending,
            } => (rt, backend, pending),
            Switched::Dormant { pid, block } => {
                match dormant::request(pid, block, None, SWITCH_TIMEOUT) {
                    Ok(Some(false)) => eprintln!("perfpy: switched Python names off in pid {pid}"),
                    Ok(Some(true)) => warn(Some(&format!(
                        "pid {pid} could not switch Python names off: still active"
                    ))),
                    Ok(None) => warn(Some(&format!(
                        "pid {pid} has not run the switch-off yet (main thread blocked); it \
                         will at its next safe point"
                    ))),
                    Err(why) => warn(Some(&format!(
                        "cannot switch Python names off in pid {pid}: {why}"
                    ))),
                }
                return;
            }
        };
        let pid = rt.pid;
        let on_ran = pending
            .as_ref()
            .is_none_or(|p| p.wait(Duration::ZERO).is_some());
        match switch::Switch::send(&rt, false, &backend) {
            Ok(off) => {
                if let Some(on) = pending.filter(|_| !on_ran) {
                    on.discard(); // replaced before it ran
                }
                match off.wait(SWITCH_TIMEOUT) {
                    Some(o) if o.error.is_none() && !o.active => {
                        eprintln!("perfpy: switched Python names off in pid {pid}")
                    }
                    Some(o) => warn(Some(&format!(
                        "pid {pid} could not switch Python names off: {}",
                        o.error.unwrap_or_else(|| "still active".into())
                    ))),
                    None => warn(Some(&format!(
                        "pid {pid} has not run the switch-off yet (main thread blocked); it \
                         will at its next safe point"
                    ))),
                }
            }
            Err(why) => warn(Some(&format!(
                "cannot switch Python names off in pid {pid}: {why}"
            ))),
        }
    }
}

/// perf running the command, with the plan's switch in its environment.
fn launch(args: &RecordArgs, perf: &Path, perf_version: Option<perf::Version>) -> Result<Setup> {
    let program = PathBuf::from(&args.command[0]);
    let interpreter = match &args.python {
        Some(p) => p.clone(),
        None => python::interpreter_of(&program).with_context(|| {
            format!(
                "can't tell which Python {} runs (not a python executable, no python \
                 shebang); pass --python PATH",
                program.display()
            )
        })?,
    };
    let facts = python::probe(&interpreter).map_err(anyhow::Error::msg)?;
    let fp = python::frame_pointers(&facts);
    let lend = lend::lend_to(&facts);
    let asked = plan::Asked {
        backend: args.backend,
        trampoline: args.trampoline,
        call_graph: args.call_graph,
    };
    let p = plan::plan(asked, &facts, &lend, &fp, perf_version).map_err(anyhow::Error::msg)?;
    for w in &p.warnings {
        warn(Some(w));
    }
    let mut cmd = Command::new(perf);
    cmd.args(perf_args(args, p.call_graph))
        .arg("--")
        .args(&args.command);
    for var in plan::SWITCHES {
        cmd.env_remove(var);
    }
    let (k, v) = p.env();
    cmd.env(k, v);
    let hook = match (p.trampoline, &lend) {
        (Trampoline::PerfpyLent, Lend::Yes(package)) => {
            let skipped = lend::options_skipping_the_hook(&args.command[1..]);
            let runs_python = program
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("python"));
            if runs_python && !skipped.is_empty() {
                let opts: Vec<String> = skipped.iter().map(|c| format!("-{c}")).collect();
                bail!(
                    "{} starts the interpreter with {}, so it would skip the start-up hook \
                     perfpy lends it perfpy through (-E and -I ignore PYTHONPATH, -S skips \
                     sitecustomize): drop {}, or install perfpy into {} ({} -m pip install \
                     perfpy)",
                    program.display(),
                    opts.join(" "),
                    if opts.len() == 1 { "it" } else { "them" },
                    facts.executable,
                    facts.executable
                );
            }
            let dir = lend::HookDir::create(package).with_context(|| {
                format!(
                    "cannot make the start-up hook directory in {}",
                    std::env::temp_dir().display()
                )
            })?;
            cmd.env("PYTHONPATH", dir.pythonpath(std::env::var_os("PYTHONPATH")));
            Some(dir)
        }
        _ => None,
    };
    Ok(Setup {
        cmd,
        call_graph: p.call_graph,
        reasons: p.reasons.clone(),
        plan: Some(p),
        hook,
        switched: Vec::new(),
    })
}

/// Tells the user what is recorded, how, and why.
fn announce(args: &RecordArgs, setup: &Setup) {
    let what = match args.pid.as_slice() {
        [pid] => format!("pid {pid}"),
        [] => args
            .command
            .iter()
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" "),
        pids => format!(
            "pids {}",
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    eprintln!(
        "perfpy: recording {what}{}, {} call graphs, {} Hz",
        match setup.plan.as_ref().map(|p| p.backend) {
            Some(Backend::PerfMap) => ", perf map",
            Some(Backend::Jitdump) => ", jitdump",
            None => "",
        },
        match setup.call_graph {
            CallGraph::FramePointers => "frame-pointer",
            CallGraph::Dwarf => "DWARF",
        },
        args.frequency
    );
    for r in &setup.reasons {
        eprintln!("perfpy:   because: {r}");
    }
    if let Some((k, v)) = setup.plan.as_ref().map(Plan::env) {
        match &setup.hook {
            Some(dir) => eprintln!(
                "perfpy:   switched on with {k}={v}, and PYTHONPATH={} for perfpy",
                dir.path().display()
            ),
            None => eprintln!("perfpy:   switched on with {k}={v}"),
        }
    }
    eprintln!(
        "perfpy: Ctrl-C stops the {} and keeps the profile",
        if !args.pid.is_empty() {
            "recording"
        } else {
            "program"
        }
    );
}

/// Runs perf to the end, forwarding signals; perf's exit status.
fn record(mut cmd: Command, perf: &Path, output: &Path) -> Result<std::process::ExitStatus> {
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

/// How long the program's processes that outlive it (a pool's workers, a forkserver) get to
/// exit after perf has, so that their names can be moved out of /tmp whole.
const STRAGGLER_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits for the recorded processes that still run; whether there were any.
fn wait_for_the_rest(pids: &std::collections::BTreeSet<i32>) -> bool {
    let alive = || -> Vec<i32> {
        pids.iter()
            .copied()
            .filter(|&p| u32::try_from(p).is_ok_and(procfs::running))
            .collect()
    };
    let mut left = alive();
    if left.is_empty() {
        return false;
    }
    let started = Instant::now();
    while !left.is_empty() && started.elapsed() < STRAGGLER_TIMEOUT {
        std::thread::sleep(Duration::from_millis(50));
        left = alive();
    }
    if !left.is_empty() {
        let pids: Vec<String> = left.iter().map(i32::to_string).collect();
        warn(Some(&format!(
            "process{} {} of the program still run{} {} s after it exited; {} perf map/jitdump              {} copied, and `perfpy clean` removes {} from /tmp once {} exited",
            if left.len() == 1 { "" } else { "es" },
            pids.join(", "),
            if left.len() == 1 { "s" } else { "" },
            STRAGGLER_TIMEOUT.as_secs(),
            if left.len() == 1 { "its" } else { "their" },
            if left.len() == 1 { "is" } else { "are" },
            if left.len() == 1 { "it" } else { "them" },
            if left.len() == 1 { "it has" } else { "they have" },
        )));
    }
    true
}

/// Moves the program's perf maps and jitdumps next to the recording, replacing a previous
/// recording's (whose names must not name this one's addresses).
fn keep_names(pids: &[i32], output: &Path) -> Result<()> {
    let side = side_dir(output);
    if side.is_dir() {
        for e in std::fs::read_dir(&side)?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let moved = collect_jit_files(pids, &side)?;
    if !moved.is_empty() {
        eprintln!(
            "perfpy: moved {} perf map/jitdump file{} into {}",
            moved.len(),
            if moved.len() == 1 { "" } else { "s" },
            side.display()
        );
    }
    Ok(())
}

pub fn run(args: &RecordArgs) -> Result<ExitCode> {
    let perf = perf::locate().context(
        "perf is not on PATH; install it (Debian: apt-get install linux-perf; Ubuntu: \
         linux-tools-$(uname -r); Fedora: perf), then check with `perfpy doctor`",
    )?;
    let perf_version = perf::version_text(&perf)
        .ok()
        .and_then(|t| perf::Version::parse(&t));
    let setup = if args.pid.is_empty() {
        launch(args, &perf, perf_version)?
    } else {
        attach(args, &perf, &args.pid)?
    };
    announce(args, &setup);
    let status = record(setup.cmd, &perf, &args.output);
    for s in setup.switched {
        s.off();
    }
    let status = status?;
    drop(setup.hook);
    let progress = std::io::stderr().is_terminal();
    let mut profile = recording::load(&args.output, &[], progress)?;
    if args.pid.is_empty() && wait_for_the_rest(&profile.pids) {
        // Their names are complete now (an interpreter may buffer its jitdump until exit).
        profile = recording::load(&args.output, &[], progress)?;
    }
    if !args.keep_jit_files {
        let pids: Vec<i32> = profile.pids.iter().copied().collect();
        keep_names(&pids, &args.output)?;
    }
    let profile = profile.with_view(NativeView::Leaf);
    recording::warn_about(&profile);
    summary(&profile, args.top, &args.output);
    if let Some(svg) = &args.flamegraph {
        if profile.samples.is_empty() {
            eprintln!("perfpy: no samples, so no flamegraph");
        } else {
            output::save(&profile, Format::Flamegraph, Some(svg.clone()), args.top)?;
        }
    }
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
            eprintln!(
                "  {:>5.1}%  {:>5.1}%  {func}  {file}{line}",
                pct(r.self_samples, total),
                pct(r.total_samples, total)
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
}
