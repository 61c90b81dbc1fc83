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

mod target;
mod watch;

pub use target::{line, State, Target};
pub use watch::Watching;

use super::discover::{self, Found, What};
use super::{names_on, switch_on, Names, Switched};
use crate::procfs::{self, Stat};
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Which processes a session covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every Python process on the host, those that start meanwhile included.
    Host,
    /// These processes, and what they fork meanwhile.
    Pids(Vec<u32>),
}

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
