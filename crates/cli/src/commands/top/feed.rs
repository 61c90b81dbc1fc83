//! perf's output as top reads it: a thread that empties the pipe as fast as perf fills it,
//! and the reader thread that takes each record into the [`Reader`] the view looks at.

use super::live::Live;
use super::WALL_LAG_NS;
use crate::report::read::{self, Reader};
use crate::say;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

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
    /// A feed for processes of which `parents` says who forked each.
    pub fn new(parents: std::collections::HashMap<i32, i32>) -> Feed {
        Feed {
            parents,
            ..Feed::default()
        }
    }

    /// Reads perf's output to its end (the reader thread). A thread of its own empties the
    /// pipe as fast as perf fills it, into memory: what takes time to read (the binaries a
    /// process maps, read when it is first seen: hundreds at once with -a) never makes perf
    /// wait, and lose samples, meanwhile. At most [`BACKLOG_MB`] wait to be read.
    pub(super) fn read(
        &self,
        stdout: Option<std::process::ChildStdout>,
        copy: Option<std::fs::File>,
    ) {
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
            sysroot: Vec::new(),
            kallsyms: None,
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

    pub(super) fn pids(&self) -> BTreeSet<i32> {
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
pub(super) fn widen(pipe: &std::process::ChildStdout) {
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
pub(super) fn keep_lines(err: std::process::ChildStderr, into: &Mutex<Vec<String>>) {
    use std::io::BufRead;
    for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
        let mut v = into.lock().unwrap_or_else(|e| e.into_inner());
        v.push(line);
        if v.len() > 50 {
            v.remove(0);
        }
    }
}
