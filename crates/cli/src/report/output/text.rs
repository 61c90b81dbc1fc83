//! The text report: a header line, then the Python functions' table and the native code's
//! (wall-clock and off-CPU profiles: [`super::wall`]).

use super::{Meta, Writer};
use crate::report::profile::tables::{native_table, pct, python_table, Row};
use crate::report::{Frame, Profile};
use anyhow::Result;
use std::collections::HashSet;
use std::io::Write;

pub struct Text;

impl Writer for Text {
    fn write(&self, profile: &Profile, meta: &Meta, out: &mut dyn Write) -> Result<()> {
        text(profile, meta, out)
    }
}

fn text(profile: &Profile, meta: &Meta, out: &mut dyn Write) -> Result<()> {
    if profile.measure.is_time() {
        return super::wall::text(profile, meta, out);
    }
    let total = profile.samples.len() as u64;
    let pids: HashSet<i32> = profile.samples.iter().map(|s| s.pid).collect();
    let several = profile.events.len() > 1;
    let event = profile.events.iter().find(|e| e.reported);
    writeln!(
        out,
        "{total} {}samples in {} process{}{}{}{}",
        event
            .filter(|_| several)
            .map(|e| format!("{} ", e.name))
            .unwrap_or_default(),
        pids.len(),
        if pids.len() == 1 { "" } else { "es" },
        profile
            .perf_version
            .as_deref()
            .map(|v| format!(", perf {v}"))
            .unwrap_or_default(),
        profile
            .frequency
            .map(|f| format!(", {f} Hz"))
            .unwrap_or_default(),
        if meta.title.is_empty() {
            String::new()
        } else {
            format!(": {}", meta.title)
        }
    )?;
    if let Some(others) = super::other_events(profile) {
        writeln!(out, "  {others}")?;
    }
    let py = python_table(profile);
    let py_samples: u64 = py.iter().map(|r| r.self_samples).sum();
    let title = format!(
        "Python functions ({:.1}% of samples ran Python code)",
        pct(py_samples, total)
    );
    table(out, profile, &title, py.iter(), meta.top, |f| {
        let (func, file) = f.python_parts();
        let place = match f.line {
            Some(line) => format!("{file}:{line}"),
            None => file.to_string(),
        };
        (func.to_string(), place)
    })?;
    let off = &profile.stats.names_off;
    if py.is_empty() && !off.is_empty() {
        let pids: Vec<String> = off.iter().map(|o| o.pid.to_string()).collect();
        writeln!(
            out,
            "  (none: Python names were off in {} {}: no perf map or jitdump, so perf saw only \
             the interpreter's own functions; `perfpy record -- <command>` switches them on)",
            if off.len() == 1 { "pid" } else { "pids" },
            pids.join(", ")
        )?;
    } else if py.is_empty() {
        writeln!(out, "  (none: no sample has a Python frame)")?;
    }
    let unnamed = profile.samples_with_unnamed_python();
    if unnamed > 0 {
        writeln!(
            out,
            "  {unnamed} samples ({:.1}%) also ran Python functions without a name: ones \
             already running when names came on (named from their next call), shown as the \
             interpreter's _PyEval_EvalFrameDefault",
            pct(unnamed, total)
        )?;
    }
    let native = native_table(profile);
    let title = "native code (self: the sampled instruction was there)";
    let hot = native.iter().filter(|r| r.self_samples > 0);
    table(out, profile, title, hot, meta.top, |f| {
        (
            f.name.to_string(),
            f.module.as_deref().unwrap_or("").to_string(),
        )
    })
}

/// One table of the text report: self%, total%, self samples, the function and where it is.
fn table<'r>(
    out: &mut dyn Write,
    profile: &Profile,
    title: &str,
    rows: impl Iterator<Item = &'r Row>,
    top: usize,
    describe: impl Fn(&Frame) -> (String, String),
) -> Result<()> {
    let total = profile.samples.len() as u64;
    writeln!(out, "\n{title}")?;
    writeln!(
        out,
        "  {:>6}  {:>6}  {:>8}  function",
        "self", "total", "samples"
    )?;
    for r in rows.take(top) {
        let (name, place) = describe(&profile.frames[r.frame as usize]);
        writeln!(
            out,
            "  {:>5.1}%  {:>5.1}%  {:>8}  {name}  {place}",
            pct(r.self_samples, total),
            pct(r.total_samples, total),
            r.self_samples,
        )?;
    }
    Ok(())
}
