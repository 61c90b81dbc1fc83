//! `perfpy top`: a live view of the hottest functions, Python and native, of running programs
//! (`-p`, `-a`) or of one it starts, as perf records them.
//!
//! ```text
//! names on: record's steps 1 (launch with the switch, or attach::session: switched on in
//!           each running process, new ones watched for)
//! perf record --no-buffering -o - ...  ──pipe──► reader thread: read::stream → Reader
//!      (stdout: the recording, in perf's     (every record as it comes; names followed as the
//!       pipe format; --output keeps a copy)   programs announce new functions)
//!                                                   │ every interval, under its lock:
//!                                                   ▼ take_samples → Live (per second)
//!                              screen (ratatui): the tables of the view, keys │ plain snapshots
//! end (q, Ctrl-C, SIGTERM, SIGHUP, --duration, perf done): perf stopped, the rest read,
//!      names switched off as record does, their files moved beside --output or removed
//! ```

mod live;
mod plain;
mod screen;

pub use live::{Sort, Window};

use crate::cli::{Backend, Mode, RecordArgs, TopArgs, Trampoline};
use crate::commands::record;
use crate::perf;
use crate::recording;
use crate::report::read::{self, Reader};
use crate::roster::Roster;
use crate::sampling;
use crate::say;
use crate::signals;
use anyhow::{Context as _, Result};
use live::{Live, View};
use std::collections::BTreeSet;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How a wall-clock view's live timeline lags the newest record: switch records and the
/// context-switch samples of one switch come microseconds apart, from different CPUs' buffers.
const WALL_LAG_NS: u64 = 250_000_000;

pub fn run(args: &TopArgs) -> Result<ExitCode> {
    let screen = !args.plain && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    if args.mode != Mode::Cpu {
        record::switch_samples_allowed()?;
    }
    let perf = perf::locate().context(
        "perf is not on PATH; install it (Debian: apt-get install linux-perf; Ubuntu: \
         linux-tools-$(uname -r); Fedora: perf), then check with `perfpy doctor`",
    )?;
    let rec = record_args(args, screen);
    // perf's output is read as it comes, through a pipe: compressing it would only cost perf.
    let writing = sampling::writing(true, false, args.stack_size, &perf);
    let _signals = signals::Guard::install();
    let roster = if rec.attaching() {
        None
    } else {
        Some(Roster::create()?)
    };
    let mut setup = record::prepare(&rec, &perf, &writing, roster.as_ref())?;
    for r in &setup.reasons {
        say::note(r);
    }
    if let Some(session) = &setup.session {
        for t in session.targets.values() {
            say::note(&crate::attach::session::line(t));
        }
        if args.all && session.targets.is_empty() {
            say::note(
                "no Python process runs on this machine now; new ones are looked for every second",
            );
        }
    }
    let news = Arc::new(Mutex::new(Vec::<String>::new()));
    let told = news.clone();
    let watching = setup.session.take().map(|s| {
        s.watch(move |t| {
            let line = format!("new: {}", crate::attach::session::line(t));
            if screen {
                told.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            } else {
                say::note(&line);
            }
        })
    });
    setup
        .cmd
        .stdin(if screen {
            Stdio::null()
        } else {
            Stdio::inherit()
        })
        .stdout(Stdio::piped())
        .stderr(if screen {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
    let started = Instant::now();
    let spawned = setup
        .cmd
        .spawn()
        .with_context(|| format!("cannot run {}", perf.display()));
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            finish(watching, &[], roster.as_ref(), None);
            return Err(e);
        }
    };
    signals::forward_to(child.id());
    let feed = Arc::new(Feed {
        parents: watching
            .as_ref()
            .map(|w| {
                let s = w.session.lock().unwrap_or_else(|e| e.into_inner());
                s.targets
                    .values()
                    .map(|t| (t.pid as i32, t.ppid as i32))
                    .collect()
            })
            .unwrap_or_default(),
        ..Feed::default()
    });
    let reader_thread = {
        let feed = feed.clone();
        let stdout = child.stdout.take();
        if let Some(out) = &stdout {
            widen(out);
        }
        let copy = match &args.output {
            Some(path) => Some(
                std::fs::File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            ),
            None => None,
        };
        std::thread::spawn(move || feed.read(stdout, copy))
    };
    let perf_said = Arc::new(Mutex::new(Vec::<String>::new()));
    if let Some(err) = child.stderr.take() {
        let said = perf_said.clone();
        std::thread::spawn(move || keep_lines(err, &said));
    }
    let mut view = View {
        window: args.window,
        sort: args.sort,
        native: !args.no_native,
        process: None,
    };
    let mut live = Live::default();
    let ctx = Context {
        args,
        feed: &feed,
        started,
        news: &news,
        perf_said: &perf_said,
        session: watching.as_ref().map(|w| w.session.clone()),
    };
    let ended = if screen {
        screen::run(&ctx, &mut live, &mut view)
    } else {
        plain::run(&ctx, &mut live, &view)
    };
    let status = stop_perf(&mut child);
    let _ = reader_thread.join();
    signals::forward_none();
    ctx.take(&mut live);
    if !screen {
        plain::last(&ctx, &mut live, &view);
    }
    let pids: Vec<i32> = feed.pids().into_iter().collect();
    finish(watching, &pids, roster.as_ref(), args.output.as_deref());
    drop(setup.hook);
    if let Some(e) = feed.error.lock().unwrap_or_else(|e| e.into_inner()).take() {
        for line in perf_said.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            eprintln!("{line}");
        }
        anyhow::bail!(
            "{e} (perf {}); `perfpy doctor` checks what perf needs",
            match status.and_then(|s| s.code()) {
                Some(c) => format!("exited with status {c}"),
                None => "was stopped".to_string(),
            }
        );
    }
    if let Some(out) = &args.output {
        say::note(&format!(
            "kept the recording in {}: perfpy report -i {} reads it",
            out.display(),
            out.display()
        ));
    }
    Ok(match ended {
        Ended::Quit | Ended::Done => ExitCode::SUCCESS,
        Ended::Signal(s) if s == libc::SIGINT => ExitCode::SUCCESS,
        Ended::Signal(s) => ExitCode::from((128 + s).clamp(0, 255) as u8),
    })
}

/// How the view ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// q or Ctrl-C on the screen.
    Quit,
    /// A signal to perfpy (Ctrl-C without a screen: SIGINT).
    Signal(i32),
    /// --duration, or perf ended (the program exited, the processes watched did).
    Done,
}

/// What the views look at.
pub(super) struct Context<'a> {
    pub args: &'a TopArgs,
    pub feed: &'a Feed,
    pub started: Instant,
    /// New processes found meanwhile, to show.
    pub news: &'a Mutex<Vec<String>>,
    /// perf's own messages (its standard error), with a screen.
    pub perf_said: &'a Mutex<Vec<String>>,
    pub session: Option<Arc<Mutex<crate::attach::session::Session>>>,
}

impl Context<'_> {
    /// Takes the samples read since the last time into `live`, with what the session knows
    /// of their processes (interpreter, names).
    pub fn take(&self, live: &mut Live) {
        self.feed.take(live);
        let Some(session) = &self.session else {
            return;
        };
        let s = session.lock().unwrap_or_else(|e| e.into_inner());
        self.feed.with(|r| {
            let profile = r.profile_mut();
            for t in s.targets.values() {
                let info = profile.processes.entry(t.pid as i32).or_default();
                info.pid = t.pid as i32;
                if info.cmdline.is_empty() {
                    info.cmdline = t.cmdline.clone();
                }
                info.interpreter = t.interpreter.clone();
                info.names = t.state.to_string();
            }
        });
    }

    /// The session's processes recorded without Python names.
    pub fn names_off(&self) -> Vec<i32> {
        self.session
            .as_ref()
            .map(|s| {
                let s = s.lock().unwrap_or_else(|e| e.into_inner());
                s.targets
                    .values()
                    .filter(|t| !t.state.named())
                    .map(|t| t.pid as i32)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Why the view should end now, if it should.
    pub fn should_end(&self) -> Option<Ended> {
        if let Some(s) = signals::caught_signal() {
            return Some(Ended::Signal(s));
        }
        if self.feed.ended.load(Ordering::SeqCst) {
            return Some(Ended::Done);
        }
        match self.args.duration {
            Some(d) if self.started.elapsed().as_secs_f64() >= d => Some(Ended::Done),
            _ => None,
        }
    }
}

/// The recording as it is read, shared by the reader thread and the view.
#[derive(Default)]
pub(super) struct Feed {
    reader: OnceLock<Mutex<Reader>>,
    /// perf's output ended.
    pub ended: AtomicBool,
    /// It could not be read: why.
    pub error: Mutex<Option<String>>,
    /// Every process the records named.
    pids: Mutex<BTreeSet<i32>>,
    /// The watched processes' parents (see [`read::Options::parents`]).
    parents: std::collections::HashMap<i32, i32>,
}

impl Feed {
    /// Reads perf's output to its end (the reader thread). A thread of its own empties the
    /// pipe as fast as perf fills it, into memory: what takes time to read (the binaries a
    /// process maps, read when it is first seen: hundreds at once with -a) never makes perf
    /// wait, and lose samples, meanwhile. At most [`BACKLOG_MB`] wait to be read.
    fn read(&self, stdout: Option<std::process::ChildStdout>, copy: Option<std::fs::File>) {
        let Some(stdout) = stdout else {
            return self.end(Some("perf has no output to read".into()));
        };
        let (chunks, queue) = std::sync::mpsc::sync_channel::<Vec<u8>>(BACKLOG_MB);
        std::thread::spawn(move || pump(stdout, copy, chunks));
        let input = Queued {
            queue,
            chunk: Vec::new(),
            at: 0,
        };
        let opts = read::Options {
            jit_dirs: Vec::new(),
            progress: false,
            event: None,
            parents: self.parents.clone(),
        };
        let (mut records, mut reader) = match read::stream(input, &opts) {
            Ok(r) => r,
            Err(e) => return self.end(Some(format!("{e:#}"))),
        };
        reader.follow_names();
        let reader = self.reader.get_or_init(|| Mutex::new(reader));
        while records.next_locked(reader) {}
        self.end(None);
    }

    fn end(&self, error: Option<String>) {
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = error;
        self.ended.store(true, Ordering::SeqCst);
    }

    /// Runs `f` on the reader, if perf's output has begun.
    pub fn with<T>(&self, f: impl FnOnce(&mut Reader) -> T) -> Option<T> {
        let reader = self.reader.get()?;
        let mut guard = reader.lock().unwrap_or_else(|e| e.into_inner());
        Some(f(&mut guard))
    }

    /// Takes the samples read since the last time into `live`.
    pub fn take(&self, live: &mut Live) {
        self.with(|r| {
            let horizon = if r.profile().measure.is_time() {
                r.newest().saturating_sub(WALL_LAG_NS)
            } else {
                u64::MAX
            };
            let samples = r.take_samples(horizon);
            let mut pids = self.pids.lock().unwrap_or_else(|e| e.into_inner());
            pids.extend(r.profile().pids.iter().copied());
            pids.extend(samples.iter().map(|s| s.pid));
            let profile = r.profile_mut();
            // Command lines, while the processes run (perf keeps 15 characters of a name).
            for s in &samples {
                if s.pid > 0 && !profile.processes.contains_key(&s.pid) {
                    let cmdline = crate::procfs::cmdline(s.pid as u32).unwrap_or_default();
                    profile.processes.insert(
                        s.pid,
                        crate::report::ProcessInfo {
                            pid: s.pid,
                            cmdline,
                            ..Default::default()
                        },
                    );
                }
            }
            live.add(profile, samples);
        });
    }

    fn pids(&self) -> BTreeSet<i32> {
        self.pids.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How many reads of perf's output (at most 1 MiB each) may wait to be read before perf has
/// to wait for the reader.
const BACKLOG_MB: usize = 512;

/// Empties perf's standard output into `chunks` (and `--output`) as it comes.
fn pump(
    mut from: std::process::ChildStdout,
    mut copy: Option<std::fs::File>,
    chunks: std::sync::mpsc::SyncSender<Vec<u8>>,
) {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let chunk = buf[..n].to_vec();
        if let Some(f) = &mut copy {
            if f.write_all(&chunk).is_err() {
                say::warn("cannot write the --output copy any more (disk full?); top goes on");
                copy = None;
            }
        }
        if chunks.send(chunk).is_err() {
            return;
        }
    }
}

/// perf's output as [`pump`] queued it.
struct Queued {
    queue: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for Queued {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.queue.recv() {
                Ok(c) => {
                    self.chunk = c;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Gives the pipe from perf room for many samples: with DWARF stacks each one is 64 KiB, a
/// pipe's default size, and perf would wait for the reader after every sample, and lose the
/// ones the kernel had no room for meanwhile (measured with -a on 2 CPUs: 1,800 of 8,000 lost
/// with the default, none with 64 MiB). As large as the kernel allows this user.
fn widen(pipe: &std::process::ChildStdout) {
    use std::os::fd::AsRawFd;
    let allowed = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(1 << 20);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    for size in [if root { 64 << 20 } else { allowed }, allowed, 1 << 20] {
        // SAFETY: F_SETPIPE_SZ on a pipe descriptor we own; a size the kernel refuses is an
        // error return, nothing else.
        if unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, size) } >= 0 {
            return;
        }
    }
}

/// Keeps the last lines perf writes to its standard error.
fn keep_lines(err: std::process::ChildStderr, into: &Mutex<Vec<String>>) {
    use std::io::BufRead;
    for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
        let mut v = into.lock().unwrap_or_else(|e| e.into_inner());
        v.push(line);
        if v.len() > 50 {
            v.remove(0);
        }
    }
}

/// The now of perf's clock (`-k 1`: CLOCK_MONOTONIC), in nanoseconds.
pub(super) fn perf_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given; CLOCK_MONOTONIC always exists.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `record`'s arguments for what `top` asks: perf writing to its standard output, waking for
/// every record; a program started through a shell that gives it its own output.
fn record_args(args: &TopArgs, screen: bool) -> RecordArgs {
    let wrapper: Vec<std::ffi::OsString> = if args.command.is_empty() {
        Vec::new()
    } else if screen {
        let to = args
            .program_output
            .clone()
            .unwrap_or_else(|| PathBuf::from("/dev/null"));
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "exec >>\"$0\" 2>&1 </dev/null; exec \"$@\"".into(),
            to.into(),
        ]
    } else {
        // perf's standard output is the recording: the program's goes to standard error.
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "exec 1>&2; exec \"$@\"".into(),
            "perfpy-top".into(),
        ]
    };
    RecordArgs {
        mode: args.mode,
        frequency: args.frequency,
        backend: Backend::Auto,
        trampoline: Trampoline::Auto,
        call_graph: args.call_graph,
        stack_size: args.stack_size,
        no_compress: true,
        output: PathBuf::from("-"),
        python: args.python.clone(),
        event: None,
        keep_jit_files: false,
        pid: args.pid.clone(),
        all: args.all,
        duration: None,
        top: args.top,
        flamegraph: None,
        command: args.command.clone(),
        streaming: true,
        wrapper,
    }
}

/// Stops perf if it still runs (it then writes out what it has and exits), and waits for it.
fn stop_perf(child: &mut Child) -> Option<std::process::ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    // SAFETY: kill(2) on our child, not yet reaped.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let asked = Instant::now();
    while asked.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    say::warn("perf did not stop within 10 s of being asked; killing it");
    let _ = child.kill();
    child.wait().ok()
}

/// After perf: names switched off in running processes (CPython's trampolines first, then,
/// once collected, perfpy's, which remove their files), and the files of processes whose
/// names are perfpy's doing moved beside `--output`, or removed.
fn finish(
    watching: Option<crate::attach::session::Watching>,
    pids: &[i32],
    roster: Option<&Roster>,
    output: Option<&std::path::Path>,
) {
    let mut session = watching.map(|w| w.stop());
    if let Some(s) = session.as_mut() {
        s.stop_first();
    }
    let mut all: BTreeSet<i32> = pids.iter().copied().collect();
    all.extend(roster.map(Roster::pids).unwrap_or_default());
    let copy_only: BTreeSet<i32> = match &session {
        Some(s) => {
            let owned = s.owned();
            all.extend(s.targets.keys().map(|&p| p as i32));
            all.iter().copied().filter(|p| !owned.contains(p)).collect()
        }
        None => BTreeSet::new(),
    };
    let all: Vec<i32> = all.into_iter().collect();
    match output {
        Some(out) => {
            let side = recording::side_dir(out);
            if side.is_dir() {
                for e in std::fs::read_dir(&side).into_iter().flatten().flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
            let done = recording::collect_jit_files(&all, &copy_only, &side);
            for (path, why) in &done.failed {
                say::warn(&format!("{} stays where it is ({why})", path.display()));
            }
            if let Some(s) = &session {
                let text = serde_json::to_string_pretty(&s.describe()).unwrap_or_default();
                let _ = std::fs::create_dir_all(&side)
                    .and_then(|()| std::fs::write(side.join(recording::PROCESSES), text));
            }
        }
        None => {
            // Nobody will read them: what perfpy's switches (or its launch) made goes.
            let scratch = std::env::temp_dir().join(format!("perfpy-top-{}", std::process::id()));
            let only_owned: Vec<i32> = all
                .iter()
                .copied()
                .filter(|p| !copy_only.contains(p))
                .collect();
            recording::collect_jit_files(&only_owned, &BTreeSet::new(), &scratch);
            let _ = std::fs::remove_dir_all(&scratch);
        }
    }
    if let Some(s) = session.as_mut() {
        s.stop_rest(true);
    }
}
