//! Python names in running processes for the length of one recording: every Python process
//! on the host (`record -a`, `top -a`) or the ones asked for (`--pid`), and those they fork
//! meanwhile.
//!
//! ```text
//! start:  find them (discover) ─► names on already? leave them │ forked from one whose names
//!         are on? they are too │ else switch_on, all at once (one thread each: a process
//!         whose main thread is blocked takes up to 5 s)
//! during: every second, the processes new since the last look (a second old at least: a
//!         fork about to exec is not one): forked from a process perfpy switched on → its
//!         names came with the fork, to be switched off too; otherwise as at the start (host
//!         scope), or left alone (pids scope: only the targets' children are looked at)
//! end:    what perfpy switched on, the forked ones included, switched off: CPython's
//!         trampolines first (they write their jitdump out then), then, once the recording
//!         has its copy of the names, perfpy's, which close and remove their files as they go
//! ```

use super::discover::{self, Found, What};
use super::{names_on, switch_on, Names, Switched};
use crate::procfs::{self, Stat};
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Which processes a session covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every Python process on the host, those that start meanwhile included.
    Host,
    /// These processes, and what they fork meanwhile.
    Pids(Vec<u32>),
}

/// One process of the session.
pub struct Target {
    pub pid: u32,
    /// Its start time (with the pid, which process it is), and its parent then.
    pub start: u64,
    pub ppid: u32,
    pub cmdline: String,
    /// `CPython 3.12`.
    pub interpreter: String,
    pub state: State,
    /// What perfpy switched on in it, to switch off at the end.
    switched: Option<Switched>,
    /// Found after the start.
    pub late: bool,
}

/// Where a target's names stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// As [`switch_on`] left it.
    Names(Names),
    /// Forked from `parent` after perfpy switched names on there: on, and perfpy's to switch
    /// off.
    Inherited(u32),
    /// Forked from `parent`, whose names were on before perfpy came: on, left alone.
    FromParent(u32),
    /// Not touched, and why: this user may not look into it, or it refused (remote debugging
    /// disabled), or the switch failed.
    Untouched(String),
}

impl State {
    /// Whether the process is recorded with Python names.
    pub fn named(&self) -> bool {
        !matches!(self, State::Names(Names::Off(_)) | State::Untouched(_))
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Names(n) => n.fmt(f),
            State::Inherited(p) => write!(
                f,
                "names on: forked from pid {p}, where perfpy switched them on"
            ),
            State::FromParent(p) => {
                write!(
                    f,
                    "names on already: forked from pid {p}, whose names are on"
                )
            }
            State::Untouched(why) => write!(f, "left alone: {why}"),
        }
    }
}

/// A process younger than this is looked at again later: a fork about to run another program
/// maps its parent's interpreter for a moment (and a vfork child shares its parent's memory).
const SETTLED: Duration = Duration::from_millis(1000);

/// The processes of one recording.
pub struct Session {
    scope: Scope,
    backend: String,
    /// Processes never to touch (perfpy, perf).
    skip: Vec<u32>,
    pub targets: BTreeMap<u32, Target>,
    /// Processes looked at and found not to be Python (pid, start, name: an exec changes
    /// the name, not the start).
    not_python: HashSet<(u32, u64, String)>,
}

impl Session {
    /// Switches names on in the processes of `scope` with `backend` ("perf" or "perf_jit").
    /// With given pids, a process that can't be switched (no permission, remote debugging
    /// disabled, a switch that failed) is an error, after the others are switched off again;
    /// on the host it is listed, untouched.
    pub fn start(scope: Scope, backend: &str, reasons: &mut Vec<String>) -> Result<Session> {
        let mut s = Session {
            scope: scope.clone(),
            backend: backend.to_string(),
            skip: vec![std::process::id()],
            targets: BTreeMap::new(),
            not_python: HashSet::new(),
        };
        match scope {
            Scope::Pids(pids) => {
                for pid in pids {
                    let found = discover::examine(pid);
                    match switch_on(pid, backend) {
                        Ok(a) => {
                            let names = a.names.clone();
                            let switched = a.tell(reasons);
                            s.add(pid, found, State::Names(names), switched, false);
                        }
                        Err(e) => {
                            // Leave the others as they were before failing.
                            s.stop_first();
                            s.stop_rest(true);
                            return Err(e);
                        }
                    }
                }
            }
            Scope::Host => {
                let found = discover::all(&s.skip);
                s.take_in(found, false);
            }
        }
        Ok(s)
    }

    fn add(
        &mut self,
        pid: u32,
        found: Option<Found>,
        state: State,
        switched: Option<Switched>,
        late: bool,
    ) {
        let stat = found
            .as_ref()
            .map(|f| f.stat.clone())
            .or_else(|| Stat::of(pid));
        self.targets.insert(
            pid,
            Target {
                pid,
                start: stat.as_ref().map_or(0, |s| s.start),
                ppid: stat.as_ref().map_or(0, |s| s.ppid),
                cmdline: found
                    .as_ref()
                    .map(|f| f.cmdline.clone())
                    .or_else(|| procfs::cmdline(pid))
                    .unwrap_or_default(),
                interpreter: found.as_ref().map(Found::interpreter).unwrap_or_default(),
                state,
                switched,
                late,
            },
        );
    }

    /// Brings Python processes into the session: those whose names are on stay so, those
    /// forked from a named one are named, the rest are switched on, all at once.
    fn take_in(&mut self, found: Vec<Found>, late: bool) -> Vec<u32> {
        let (mut added, to_switch) = self.classify(found, late);
        let results = switch_each(to_switch, &self.backend);
        added.extend(self.admit(results, late));
        added
    }

    /// Adds the processes of `found` whose names need no switch; the others, to switch.
    fn classify(&mut self, found: Vec<Found>, late: bool) -> (Vec<u32>, Vec<Found>) {
        let mut to_switch = Vec::new();
        let mut added = Vec::new();
        // Parents before their children.
        let mut found = found;
        found.sort_by_key(|f| (f.stat.start, f.pid));
        for f in found {
            let pid = f.pid;
            if let What::Hidden(why) = &f.what {
                let why = why.clone();
                self.add(pid, Some(f), State::Untouched(why), None, late);
            } else if let Some(parent) = self.named_parent(pid, true) {
                self.add(pid, Some(f), State::Inherited(parent), None, late);
            } else if names_on(pid) {
                let how = Names::AlreadyOn(super::names_file(pid).into());
                self.add(pid, Some(f), State::Names(how), None, late);
            } else if let Some(parent) = self.named_parent(pid, false) {
                self.add(pid, Some(f), State::FromParent(parent), None, late);
            } else {
                to_switch.push(f);
                continue;
            }
            added.push(pid);
        }
        (added, to_switch)
    }

    /// Adds the processes switched (or not) by [`switch_each`].
    fn admit(&mut self, results: Vec<(Found, Result<super::Attached>)>, late: bool) -> Vec<u32> {
        let mut added = Vec::new();
        for (f, r) in results {
            let pid = f.pid;
            match r {
                Ok(_) if !procfs::running(pid) => continue, // it exited meanwhile
                Ok(a) => {
                    let names = a.names.clone();
                    self.add(pid, Some(f), State::Names(names), a.switched, late);
                }
                Err(_) if !procfs::running(pid) => continue, // it exited meanwhile
                Err(e) => {
                    let why = format!("{e:#}");
                    self.add(pid, Some(f), State::Untouched(why), None, late);
                }
            }
            added.push(pid);
        }
        added
    }

    /// The target `pid` was forked from (its parent, or further up) whose names perfpy
    /// switched on (`ours`), or were on already (`!ours`).
    fn named_parent(&self, pid: u32, ours: bool) -> Option<u32> {
        discover::descends_from(pid, &|p| {
            self.targets.get(&p).is_some_and(|t| {
                let perfpys = t.switched.is_some() || matches!(t.state, State::Inherited(_));
                let on = t.state.named();
                if ours {
                    perfpys
                } else {
                    on && !perfpys
                }
            })
        })
    }

    /// The Python processes new since the last look (settled ones: a second old at least),
    /// in this session's scope, brought in. Their pids.
    pub fn look_again(&mut self) -> Vec<u32> {
        let new = self.new_processes();
        self.take_in(new, true)
    }

    /// The Python processes new since the last look, in this session's scope.
    fn new_processes(&mut self) -> Vec<Found> {
        let ticks = clock_ticks();
        let now = uptime_ticks();
        let mut new = Vec::new();
        for pid in procfs::pids() {
            if self.skip.contains(&pid) {
                continue;
            }
            let Some(stat) = Stat::of(pid) else { continue };
            if self
                .targets
                .get(&pid)
                .is_some_and(|t| t.start == stat.start)
            {
                continue;
            }
            let key = (pid, stat.start, stat.comm.clone());
            if self.not_python.contains(&key) {
                continue;
            }
            let young = now.is_some_and(|now| {
                now.saturating_sub(stat.start) * 1000 < SETTLED.as_millis() as u64 * ticks
            });
            if young {
                continue;
            }
            if let Scope::Pids(_) = self.scope {
                let ours = |p: u32| self.targets.contains_key(&p);
                if discover::descends_from(pid, &ours).is_none() {
                    self.not_python.insert(key);
                    continue;
                }
            }
            match discover::examine(pid) {
                Some(f) => new.push(f),
                None => {
                    self.not_python.insert(key);
                }
            }
        }
        new
    }

    /// The processes forked from switched ones since the last look, however young, brought in
    /// as such (their names came with the fork, and go off with the others); nothing else.
    fn last_look(&mut self) {
        for pid in procfs::pids() {
            if self.skip.contains(&pid) {
                continue;
            }
            let Some(stat) = Stat::of(pid) else { continue };
            if self
                .targets
                .get(&pid)
                .is_some_and(|t| t.start == stat.start)
            {
                continue;
            }
            let Some(parent) = self.named_parent(pid, true) else {
                continue;
            };
            if let Some(f) = discover::examine(pid) {
                self.add(pid, Some(f), State::Inherited(parent), None, true);
            }
        }
    }

    /// Targets perfpy switched names on in, or that have them because of it: their files
    /// are perfpy's doing (moved out of /tmp, or removed by the switch-off).
    pub fn owned(&self) -> BTreeSet<i32> {
        self.targets
            .values()
            .filter(|t| t.switched.is_some() || matches!(t.state, State::Inherited(_)))
            .map(|t| t.pid as i32)
            .collect()
    }

    /// Whether the session will switch anything off.
    pub fn has_switches(&self) -> bool {
        !self.owned().is_empty()
    }

    /// Before the names are collected: the processes forked from switched ones up to now
    /// looked for, and the switch-offs that must come before collecting (CPython's
    /// trampolines, which write their jitdump only then) done.
    pub fn stop_first(&mut self) {
        if self.has_switches() {
            self.last_look();
        }
        let backend = self.backend.clone();
        for t in self.targets.values_mut() {
            if matches!(t.state, State::Inherited(_))
                && t.switched.is_none()
                && procfs::running(t.pid)
            {
                t.switched = Switched::inherited(t.pid, &backend);
            }
        }
        let first: Vec<Switched> = self
            .targets
            .values_mut()
            .filter(|t| t.switched.as_ref().is_some_and(|s| !s.releases()))
            .filter_map(|t| t.switched.take())
            .collect();
        off_all(first, false);
    }

    /// After the names are collected: the rest switched off; with `release_files`, perfpy's
    /// trampolines close and remove their files as they do.
    pub fn stop_rest(&mut self, release_files: bool) {
        let rest: Vec<Switched> = self
            .targets
            .values_mut()
            .filter_map(|t| t.switched.take())
            .collect();
        off_all(rest, release_files);
    }

    /// The processes and their names, one line each (the recorded programs, for listings and
    /// the recording's side file).
    pub fn listing(&self) -> Vec<String> {
        self.targets.values().map(line).collect()
    }

    /// What the recording's side file keeps of each process: its command line, interpreter,
    /// and names.
    pub fn describe(&self) -> serde_json::Value {
        let procs: Vec<serde_json::Value> = self
            .targets
            .values()
            .map(|t| {
                serde_json::json!({
                    "pid": t.pid,
                    "ppid": t.ppid,
                    "cmdline": t.cmdline,
                    "interpreter": t.interpreter,
                    "names": t.state.to_string(),
                    "named": t.state.named(),
                })
            })
            .collect();
        serde_json::Value::Array(procs)
    }

    /// Watches for new processes in the background, every second, until stopped; each new
    /// one is told to `tell`.
    pub fn watch(self, tell: impl Fn(&Target) + Send + 'static) -> Watching {
        let session = Arc::new(Mutex::new(self));
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = session.clone();
        let thread = std::thread::spawn(move || {
            let lock = || shared.lock().unwrap_or_else(|e| e.into_inner());
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_secs(1))
            {
                // The switches of new processes wait for them (up to 5 s) without the lock,
                // which others take to look at the session.
                let (mut added, to_switch, backend) = {
                    let mut s = lock();
                    let new = s.new_processes();
                    let (added, to_switch) = s.classify(new, true);
                    (added, to_switch, s.backend.clone())
                };
                let results = switch_each(to_switch, &backend);
                let mut s = lock();
                added.extend(s.admit(results, true));
                for pid in added {
                    if let Some(t) = s.targets.get(&pid) {
                        tell(t);
                    }
                }
            }
        });
        Watching {
            session,
            stop,
            thread: Some(thread),
        }
    }

    /// Never to be touched: this process too (perf, once it runs).
    pub fn skip(&mut self, pid: u32) {
        self.skip.push(pid);
    }
}

/// A target's line in a listing: `pid 4242 python3.11 worker.py (CPython 3.11): no names:
/// start it with ...`.
pub fn line(t: &Target) -> String {
    let mut cmd = t.cmdline.clone();
    if cmd.chars().count() > 60 {
        cmd = cmd.chars().take(57).collect::<String>() + "...";
    }
    let interp = if t.interpreter.is_empty() {
        String::new()
    } else {
        format!(" ({})", t.interpreter)
    };
    format!("pid {} {cmd}{interp}: {}", t.pid, t.state)
}

/// A session watched in the background (see [`Session::watch`]).
pub struct Watching {
    pub session: Arc<Mutex<Session>>,
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Watching {
    /// Stops watching (waiting for a look in progress to end); the session.
    pub fn stop(mut self) -> Session {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut guard = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let empty = Session {
            scope: guard.scope.clone(),
            backend: guard.backend.clone(),
            skip: Vec::new(),
            targets: BTreeMap::new(),
            not_python: HashSet::new(),
        };
        std::mem::replace(&mut *guard, empty)
    }
}

/// Switches names on in each, all at once (each may wait up to 5 s for its process).
fn switch_each(found: Vec<Found>, backend: &str) -> Vec<(Found, Result<super::Attached>)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = found
            .into_iter()
            .map(|f| {
                scope.spawn(move || {
                    let r = switch_on(f.pid, backend);
                    (f, r)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}

/// Switches each off, all at once (each may wait up to 5 s for its process).
fn off_all(switches: Vec<Switched>, release_files: bool) {
    std::thread::scope(|scope| {
        for s in switches {
            scope.spawn(move || s.off(release_files));
        }
    });
}

/// The kernel's clock ticks per second (`/proc/<pid>/stat`'s unit).
fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// How long the machine has been up, in clock ticks.
fn uptime_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some((secs * clock_ticks() as f64) as u64)
}
