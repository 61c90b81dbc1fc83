//! Switching names on in one running process, the first way that works (see the module
//! above), and what it did: in a few words ([`Names`], for listings of many processes) and in
//! a sentence ([`Attached::detail`], which `record --pid` says).

use super::process::Refusal;
use super::{dormant, names_file, names_on, pep768, script, Switched, SWITCH_TIMEOUT};
use crate::say;
use anyhow::{bail, Result};

/// What [`switch_on`] did in a process.
pub struct Attached {
    /// Names perfpy switched on (or asked for, if the process had not run the switch yet),
    /// to switch off after the recording.
    pub switched: Option<Switched>,
    /// Whether the process will be recorded with names.
    pub names: Names,
    /// What happened, in a sentence of its own (`record --pid` says it), and whether it is a
    /// warning.
    pub detail: String,
    pub warning: bool,
}

/// Whether a process has Python names for the recording, in a few words (for listings of
/// many processes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Names {
    /// On already before perfpy came (a perf map or jitdump, or a trampoline on): left on.
    AlreadyOn(String),
    /// Switched on for the recording, how.
    SwitchedOn(String),
    /// Asked for, but the process has not reached a safe point yet.
    Pending,
    /// Off, and the way to have them: the fix.
    Off(String),
}

impl std::fmt::Display for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Names::AlreadyOn(how) => write!(f, "names on already ({how})"),
            Names::SwitchedOn(how) => write!(f, "names switched on ({how})"),
            Names::Pending => f.write_str(
                "names asked for: its main thread is blocked in C, they come on when it runs \
                 Python again",
            ),
            Names::Off(fix) => write!(f, "no names: {fix}"),
        }
    }
}

impl Attached {
    fn said(switched: Option<Switched>, names: Names, detail: String, warning: bool) -> Self {
        Attached {
            switched,
            names,
            detail,
            warning,
        }
    }

    /// Says what happened the way `record --pid` does: the detail as a reason (or a warning),
    /// and the switch to undo after.
    pub fn tell(self, reasons: &mut Vec<String>) -> Option<Switched> {
        if self.warning {
            say::warn(&self.detail);
        } else {
            reasons.push(self.detail);
        }
        self.switched
    }
}

/// Switches Python names on in running process `pid` the first way that works (see above),
/// with `backend` ("perf" or "perf_jit"). `Err` when the process can't be switched and
/// mustn't be recorded as if it could: no permission, remote debugging disabled, or the switch
/// failed inside it.
pub fn switch_on(pid: u32, backend: &str) -> Result<Attached> {
    let rt = match pep768::locate(pid) {
        Ok(rt) if rt.at_least(3, 14) => rt,
        Ok(rt) => return dormant_on(pid, backend, &pep768::describe(&rt)),
        Err(Refusal::Permission(why)) => bail!("{why}"),
        Err(why) => return dormant_on(pid, backend, &why.to_string()),
    };
    let sent = match script::Switch::send(&rt, true, backend, false) {
        Ok(s) => s,
        Err(Refusal::Disabled) if names_on(pid) => {
            return Ok(Attached::said(
                None,
                Names::AlreadyOn(names_file(pid).into()),
                format!(
                    "pid {pid} ({}) has remote debugging disabled, but already writes Python \
                     names",
                    pep768::describe(&rt)
                ),
                false,
            ));
        }
        Err(Refusal::Disabled) => bail!(
            "cannot switch Python names on in pid {pid} ({}): {}. Restart it without that \
             setting, or with names on from the start (PYTHONPERFSUPPORT=1, or \
             PYTHON_PERF_JIT_SUPPORT=1 without frame pointers); it was left untouched",
            pep768::describe(&rt),
            Refusal::Disabled
        ),
        Err(why) => bail!("cannot switch Python names on in pid {pid}: {why}"),
    };
    match sent.wait(SWITCH_TIMEOUT) {
        Some(o) if o.error.is_some() => bail!(
            "pid {pid} could not switch Python names on: {}",
            o.error.unwrap_or_default()
        ),
        Some(o) if o.already => Ok(Attached::said(
            None,
            Names::AlreadyOn(format!("{}'s trampoline", o.trampoline)),
            format!(
                "pid {pid} ({}) had Python names on already ({}'s trampoline); left as it was",
                pep768::describe(&rt),
                o.trampoline
            ),
            false,
        )),
        Some(o) if !o.active => bail!(
            "pid {pid} ran the switch, but its trampoline did not come on (it printed a \
             warning to its own stderr)"
        ),
        Some(o) => Ok(Attached::said(
            Some(Switched::Remote {
                rt: rt.clone(),
                backend: backend.to_string(),
                pending: None,
                release: o.trampoline == "perfpy",
            }),
            Names::SwitchedOn(format!(
                "PEP 768, {}'s {} trampoline",
                o.trampoline,
                o.written(backend)
            )),
            format!(
                "switched Python names on in pid {pid} ({}, {}'s {} trampoline); \
                 functions already running are named from their next call",
                pep768::describe(&rt),
                o.trampoline,
                o.written(backend)
            ),
            false,
        )),
        None => Ok(Attached::said(
            Some(Switched::Remote {
                rt,
                backend: backend.to_string(),
                pending: Some(sent),
                // Whose trampoline will come on is not known yet: CPython's buffers its
                // jitdump until switched off, so this one goes off before the names are
                // collected, and keeps its files.
                release: false,
            }),
            Names::Pending,
            format!(
                "pid {pid} has not reached a safe point in {} s: its main thread is not \
                 running Python code (blocked in C: a sleep, a lock, a socket read). Names come \
                 on when it does; recording anyway",
                SWITCH_TIMEOUT.as_secs()
            ),
            true,
        )),
    }
}

/// Before 3.14: perfpy's dormant attach, if the process was started with `PERFPY_ATTACH=1`;
/// otherwise the process is recorded as it is, and told how to make it switchable.
fn dormant_on(pid: u32, backend: &str, what: &str) -> Result<Attached> {
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
            return Ok(if names_on(pid) {
                Attached::said(None, Names::AlreadyOn(names_file(pid).into()), line, false)
            } else {
                Attached::said(
                    None,
                    Names::Off(
                        "start it with PERFPY_ATTACH=1 (perfpy installed in its interpreter) \
                         to switch them on and off from outside, or with PYTHONPERFSUPPORT=1 \
                         / PERFPY_BACKEND=perf_jit to have them from the start; before \
                         CPython 3.14 nothing else can switch them on"
                            .into(),
                    ),
                    format!("{line}. Recording it as it is, without Python names"),
                    true,
                )
            });
        }
        Err(Refusal::Permission(why)) => bail!("{why}"),
        Err(why) => {
            return Ok(Attached::said(
                None,
                Names::Off(why.to_string()),
                format!("can't switch names on in pid {pid} ({why})"),
                false,
            ))
        }
    };
    let switched = Some(Switched::Dormant { pid, block });
    match dormant::request(pid, block, dormant::Request::On(backend), SWITCH_TIMEOUT) {
        Ok(Some(dormant::State::AlreadyOn)) => Ok(Attached::said(
            None,
            Names::AlreadyOn("perfpy's trampoline".into()),
            format!(
                "pid {pid} ({what}) had Python names on already (perfpy's trampoline); left as \
                 it was"
            ),
            false,
        )),
        Ok(Some(dormant::State::On)) => Ok(Attached::said(
            switched,
            Names::SwitchedOn(format!("PERFPY_ATTACH, perfpy's {backend} trampoline")),
            format!(
                "switched Python names on in pid {pid} ({what}, perfpy's {backend} trampoline, \
                 PERFPY_ATTACH); functions already running are named from their next call"
            ),
            false,
        )),
        Ok(Some(dormant::State::Off)) => bail!(
            "pid {pid} ran the switch, but its trampoline did not come on (its stderr says why)"
        ),
        Ok(None) => Ok(Attached::said(
            switched,
            Names::Pending,
            format!(
                "pid {pid} has not reached a safe point in {} s: its main thread is not running \
                 Python code (blocked in C: a sleep, a lock, a socket read). Names come on when \
                 it does; recording anyway",
                SWITCH_TIMEOUT.as_secs()
            ),
            true,
        )),
        Err(why) => bail!("cannot switch Python names on in pid {pid}: {why}"),
    }
}
