//! A session's processes: what perfpy found of each, where its names stand, and how that is
//! said (the listing's lines, the recording's `processes.json`).

use super::Session;
use crate::attach::{Names, Switched};

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
    pub(super) switched: Option<Switched>,
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

impl Session {
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
}
