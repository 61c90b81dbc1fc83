//! A session while perf records: the processes that start meanwhile, looked for every
//! second on a thread of its own, and once more at the end.

use super::{switch_each, Scope, Session, State, Target};
use crate::attach::discover::{self, Found};
use crate::procfs::{self, Stat};
use std::collections::{BTreeMap, HashSet};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A process younger than this is looked at again later: a fork about to run another program
/// maps its parent's interpreter for a moment (and a vfork child shares its parent's memory).
const SETTLED: Duration = Duration::from_millis(1000);

impl Session {
    /// The Python processes new since the last look (settled ones: a second old at least),
    /// in this session's scope, brought in. Their pids.
    pub fn look_again(&mut self) -> Vec<u32> {
        let new = self.new_processes();
        self.take_in(new, true)
    }

    /// The Python processes new since the last look, in this session's scope.
    pub(super) fn new_processes(&mut self) -> Vec<Found> {
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
    pub(super) fn last_look(&mut self) {
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
