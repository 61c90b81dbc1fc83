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

mod context;
mod draw;
mod end;
mod feed;
mod live;
mod plain;
mod screen;

pub use live::{Sort, Window};

use crate::cli::{Backend, Mode, RecordArgs, TopArgs, Trampoline};
use crate::commands::record;
use crate::perf;
use crate::roster::Roster;
use crate::sampling;
use crate::say;
use crate::signals;
use anyhow::{Context as _, Result};
use context::Context;
use end::{finish, stop_perf};
use feed::{keep_lines, widen, Feed};
use live::{Live, View};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
    let feed = Arc::new(Feed::new(
        watching
            .as_ref()
            .map(|w| {
                let s = w.session.lock().unwrap_or_else(|e| e.into_inner());
                s.targets
                    .values()
                    .map(|t| (t.pid as i32, t.ppid as i32))
                    .collect()
            })
            .unwrap_or_default(),
    ));
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
    let (status, killed) = stop_perf(&mut child);
    let _ = reader_thread.join();
    signals::forward_none();
    ctx.take(&mut live);
    if !screen {
        plain::last(&ctx, &mut live, &view);
    }
    let pids: Vec<i32> = feed.pids().into_iter().collect();
    finish(watching, &pids, roster.as_ref(), args.output.as_deref());
    drop(setup.hook);
    let error = feed.error.lock().unwrap_or_else(|e| e.into_inner()).take();
    // Killed while it wrote, perf leaves its stream cut: what came before was shown, and the
    // warning above said so.
    if let Some(e) = error.filter(|_| !killed) {
        for line in perf_said.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            crate::eline!("{line}");
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
enum Ended {
    /// q or Ctrl-C on the screen.
    Quit,
    /// A signal to perfpy (Ctrl-C without a screen: SIGINT).
    Signal(i32),
    /// --duration, or perf ended (the program exited, the processes watched did).
    Done,
}

/// The now of perf's clock (`-k 1`: CLOCK_MONOTONIC), in nanoseconds.
fn perf_now() -> u64 {
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
