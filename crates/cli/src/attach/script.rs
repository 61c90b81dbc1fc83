//! Switching Python names on in a running CPython 3.14+ process for the length of a
//! recording, and off again: `perfpy record --pid`.
//!
//! Each switch is a small script, run by the process's main thread at its next safe point
//! ([`super::pep768::exec`]). It uses perfpy's trampoline where the process can import perfpy,
//! CPython's own otherwise, leaves alone a trampoline that was already on (and then the
//! switch-off leaves it on too), and writes what it did to a marker file next to itself,
//! which perfpy waits for. The script deletes itself when it has run; both files live in the
//! process's own `/tmp` (through `/proc/<pid>/root`, so a container's works too), which a
//! [`Switch`] holds open: a process that exits before it runs its switch leaves a script
//! that perfpy can still remove, even from a container that is gone.

use super::pep768::{self, Runtime};
use super::process::Refusal;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What the process said after running a switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The trampoline is active after the script ran.
    pub active: bool,
    /// Whose: "perfpy" or "cpython".
    pub trampoline: String,
    /// Which backend it writes ("perf" or "perf_jit"; empty if the script didn't say).
    pub backend: String,
    /// It was already on before the switch-on (so the switch-off must leave it on).
    pub already: bool,
    pub error: Option<String>,
}

impl Outcome {
    /// The backend the trampoline writes: what the script said, else what was asked.
    pub fn written<'a>(&'a self, asked: &'a str) -> &'a str {
        if self.backend.is_empty() {
            asked
        } else {
            &self.backend
        }
    }
}

const SCRIPT: &str = r#"# Written by `perfpy record --pid`; it deletes itself once it has run.
def __perfpy_switch(action, backend, release, script, marker):
    import json, os, sys
    result = {"active": False, "trampoline": "", "backend": backend, "already": False,
              "error": None}
    try:
        try:
            import perfpy
        except Exception:
            perfpy = None
        mine = perfpy is not None and perfpy.is_stack_trampoline_active()
        theirs = sys.is_stack_trampoline_active()
        if action == "on":
            if mine or theirs:
                result["already"] = True
                used = "perfpy" if mine else "cpython"
            elif perfpy is not None:
                perfpy.activate_stack_trampoline(backend)
                used = "perfpy"
            else:
                # CPython's own writes its jitdump through a stdio buffer that it flushes
                # only when the process exits, so a recording of a running process would find
                # most of its names missing: its perf map, flushed line by line, instead.
                result["backend"] = "perf"
                sys.activate_stack_trampoline("perf")
                used = "cpython"
        else:
            used = "perfpy" if mine else "cpython"
            if mine:
                perfpy.deactivate_stack_trampoline()
                # Names perfpy switched on for the recording, which has its copy: the files
                # are closed and removed (a later switch-on writes new ones).
                native = getattr(perfpy, "_native", None)
                if release and hasattr(native, "release_files"):
                    for path in native.release_files():
                        try:
                            os.unlink(path)
                        except OSError:
                            pass
            if theirs:
                sys.deactivate_stack_trampoline()
        result["trampoline"] = used
        result["active"] = bool((perfpy is not None and perfpy.is_stack_trampoline_active())
                                or sys.is_stack_trampoline_active())
    except BaseException as e:
        result["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        try:
            os.unlink(script)
        except OSError:
            pass
        # perfpy stopped waiting for this marker (it left an .abandoned file): none is written,
        # or the one written is removed, so nothing stays behind in /tmp.
        abandoned = marker + ".abandoned"
        if not os.path.exists(abandoned):
            with open(marker + ".part", "w") as f:
                json.dump(result, f)
            os.replace(marker + ".part", marker)
        if os.path.exists(abandoned):
            for f in (marker, abandoned):
                try:
                    os.unlink(f)
                except OSError:
                    pass
__perfpy_switch(ACTION, BACKEND, RELEASE, SCRIPT, MARKER)
del __perfpy_switch
"#;

/// One switch sent to a process: the process's `/tmp`, held open, and its files' names there.
pub struct Switch {
    tmp: std::fs::File,
    name: String,
}

impl Switch {
    /// Writes the script into the process's `/tmp` and asks the process to run it. A
    /// switch-off with `release` also closes and removes the files perfpy's trampoline wrote
    /// (for names this recording switched on, once they are copied).
    pub fn send(rt: &Runtime, on: bool, backend: &str, release: bool) -> Result<Switch, Refusal> {
        let pid = rt.pid;
        let tmp = std::fs::File::open(format!("/proc/{pid}/root/tmp"))
            .map_err(|e| Refusal::Other(format!("cannot open the /tmp of process {pid}: {e}")))?;
        let mut switch = Switch {
            tmp,
            name: String::new(),
        };
        switch.name = (0..1000u32)
            .map(|n| format!("perfpy-switch-{}-{pid}-{n}", std::process::id()))
            .find(|name| !switch.here(&format!("{name}.py")).exists())
            .ok_or_else(|| Refusal::Other("no free script name in /tmp".into()))?;
        let there = format!("/tmp/{}", switch.name);
        let quote = |s: &str| format!("{s:?}"); // Rust's escaping is valid Python for these
        let script = SCRIPT
            .replace(
                "ACTION, ",
                &format!("{}, ", quote(if on { "on" } else { "off" })),
            )
            .replace("BACKEND, ", &format!("{}, ", quote(backend)))
            .replace("RELEASE, ", if release { "True, " } else { "False, " })
            .replace("SCRIPT, ", &format!("{}, ", quote(&format!("{there}.py"))))
            .replace("MARKER)", &format!("{})", quote(&format!("{there}.json"))));
        let script_here = switch.file("py");
        write_new(&script_here, &script).map_err(|e| {
            Refusal::Other(format!(
                "cannot write {there}.py in the /tmp of process {pid}: {e}"
            ))
        })?;
        if let Err(e) = pep768::exec(rt, &format!("{there}.py")) {
            let _ = std::fs::remove_file(&script_here);
            return Err(e);
        }
        Ok(switch)
    }

    /// `name` in the process's `/tmp`, through the descriptor held open (which still reaches
    /// it once the process, or its container, is gone).
    fn here(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}/{name}", self.tmp.as_raw_fd()))
    }

    /// The switch's file with this extension (`py`, `json`, `json.abandoned`).
    fn file(&self, extension: &str) -> PathBuf {
        self.here(&format!("{}.{extension}", self.name))
    }

    /// Gives up waiting for a switch the process has not run yet: it will still run it at its
    /// next safe point, and then removes its marker instead of leaving it for no reader.
    pub fn abandon(self) {
        let abandoned = self.file("json.abandoned");
        if write_new(&abandoned, "").is_err() {
            return;
        }
        // The process may have written its marker just before seeing the .abandoned file.
        let marker = self.file("json");
        if marker.exists() {
            let _ = std::fs::remove_file(&marker);
            let _ = std::fs::remove_file(&abandoned);
        }
    }

    /// Removes a script that was replaced before the process ran it, or that a process
    /// which exited never ran, and any marker it left.
    pub fn discard(self) {
        for ext in ["py", "json", "json.part", "json.abandoned"] {
            let _ = std::fs::remove_file(self.file(ext));
        }
    }

    /// Waits up to `timeout` for the process to have run the script.
    pub fn wait(&self, timeout: Duration) -> Option<Outcome> {
        let started = Instant::now();
        let marker = self.file("json");
        loop {
            if let Ok(text) = std::fs::read_to_string(&marker) {
                let _ = std::fs::remove_file(&marker);
                return Some(parse(&text));
            }
            if started.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A new file, readable by the process (which may run as another user).
fn write_new(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)?;
    f.write_all(text.as_bytes())
}

fn parse(text: &str) -> Outcome {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    Outcome {
        active: v["active"].as_bool().unwrap_or(false),
        trampoline: v["trampoline"].as_str().unwrap_or("").to_string(),
        backend: v["backend"].as_str().unwrap_or("").to_string(),
        already: v["already"].as_bool().unwrap_or(false),
        error: v["error"].as_str().map(str::to_string).or_else(|| {
            v.is_null()
                .then(|| format!("the switch's marker is not JSON: {text:?}"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_process_wrote() {
        let o = parse(
            r#"{"active": true, "trampoline": "cpython", "backend": "perf", "already": false,
                      "error": null}"#,
        );
        assert_eq!(
            o,
            Outcome {
                active: true,
                trampoline: "cpython".into(),
                backend: "perf".into(),
                already: false,
                error: None
            }
        );
        assert!(parse("garbage").error.is_some());
    }

    #[test]
    fn the_script_is_filled_in_as_python_literals() {
        assert!(SCRIPT.contains("__perfpy_switch(ACTION, BACKEND, RELEASE, SCRIPT, MARKER)"));
    }
}
