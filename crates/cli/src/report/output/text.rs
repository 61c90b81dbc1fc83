//! The text report: a header line, then the Python functions' table and the native code's
//! (wall-clock and off-CPU profiles: [`super::wall`]).

use super::{Meta, Writer};
use crate::report::profile::tables::{
    native_rows, pct, process_rows, process_weights, python_rows, ProcessRow, Row,
};
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
    if profile.by_process {
        return by_process(profile, meta, out);
    }
    let counts = profile.stack_counts();
    functions(
        profile,
        &section(profile, &counts, total, |_| true),
        meta.top,
        out,
    )
}

/// What one table pair of the text report covers.
pub struct Section<'a> {
    /// The samples' weights by stack.
    pub counts: &'a [(u32, u64)],
    pub total: u64,
    /// How many of them ran Python functions without a name (running before names came on).
    pub unnamed: u64,
    /// The section's processes whose names were off.
    pub names_off: Vec<i32>,
}

fn section<'a>(
    profile: &Profile,
    counts: &'a [(u32, u64)],
    total: u64,
    of: impl Fn(i32) -> bool + Copy,
) -> Section<'a> {
    Section {
        counts,
        total,
        unnamed: profile.unnamed_python_samples(of),
        names_off: (profile.stats.names_off.iter())
            .filter(|o| of(o.pid))
            .map(|o| o.pid)
            .collect(),
    }
}

/// Processes whose share of the samples is below this get no section of their own.
const SECTION_SHARE: f64 = 1.0;
/// At most this many processes get a section.
const SECTIONS: usize = 10;

/// The report of a recording of several programs (the whole machine): each process's share,
/// then a section per process with its own tables, in shares of its samples.
fn by_process(profile: &Profile, meta: &Meta, out: &mut dyn Write) -> Result<()> {
    let total = profile.samples.len() as u64;
    let rows = process_rows(profile, &process_weights(profile));
    processes(&rows, total, meta.top, out)?;
    let shown: Vec<&ProcessRow> = sections(&rows, total);
    for r in &shown {
        writeln!(
            out,
            "\n== pid {}: {} ({:.1}% of all samples)",
            r.pid,
            r.name,
            pct(r.weight, total)
        )?;
        let pid = r.pid;
        let counts = profile.stack_counts_of(|p| p == pid);
        let s = section(profile, &counts, r.weight, |p| p == pid);
        functions(profile, &s, meta.top, out)?;
    }
    let rest = rows
        .iter()
        .filter(|r| r.pid != 0 && !shown.iter().any(|s| s.pid == r.pid))
        .count();
    if rest > 0 {
        writeln!(
            out,
            "\n({} more with less than {SECTION_SHARE}% of the samples each, or past the first \
             {SECTIONS}: perfpy report --pid PID shows one)",
            crate::say::count(rest, "process", "processes")
        )?;
    }
    Ok(())
}

/// The processes that get a section: not the idle task, at least 1% of the samples, the
/// first ten.
pub fn sections(rows: &[ProcessRow], total: u64) -> Vec<&ProcessRow> {
    rows.iter()
        .filter(|r| r.pid != 0 && pct(r.weight, total) >= SECTION_SHARE)
        .take(SECTIONS)
        .collect()
}

/// The processes' table: each one's share of the samples.
pub fn processes(rows: &[ProcessRow], total: u64, top: usize, out: &mut dyn Write) -> Result<()> {
    let top = top.max(SECTIONS);
    writeln!(out, "\nprocesses")?;
    writeln!(
        out,
        "  {:>6}  {:>8}  {:>8}  command",
        "share", "samples", "pid"
    )?;
    for r in rows.iter().take(top) {
        writeln!(
            out,
            "  {:>5.1}%  {:>8}  {:>8}  {}{}",
            pct(r.weight, total),
            r.weight,
            r.pid,
            r.name,
            if r.interpreter.is_empty() {
                String::new()
            } else {
                format!("  ({})", r.interpreter)
            }
        )?;
    }
    if rows.len() > top {
        writeln!(
            out,
            "  ... and {} more (perfpy report --pid PID for one)",
            rows.len() - top
        )?;
    }
    Ok(())
}

/// The Python functions' table and the native code's, of a section of the samples.
pub fn functions(
    profile: &Profile,
    s: &Section<'_>,
    top: usize,
    out: &mut dyn Write,
) -> Result<()> {
    let (counts, total) = (s.counts, s.total);
    let py = python_rows(profile, counts);
    let py_samples: u64 = py.iter().map(|r| r.self_samples).sum();
    let title = format!(
        "Python functions ({:.1}% of samples ran Python code)",
        pct(py_samples, total)
    );
    table(out, profile, total, &title, py.iter(), top, |f| {
        let (func, file) = f.python_parts();
        let place = match f.line {
            Some(line) => format!("{file}:{line}"),
            None => file.to_string(),
        };
        (func.to_string(), place)
    })?;
    let off = &s.names_off;
    if py.is_empty() && !off.is_empty() {
        let pids: Vec<String> = off.iter().map(i32::to_string).collect();
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
    let unnamed = s.unnamed;
    if unnamed > 0 {
        writeln!(
            out,
            "  {unnamed} samples ({:.1}%) also ran Python functions without a name: ones \
             already running when names came on (named from their next call), shown as the \
             interpreter's _PyEval_EvalFrameDefault",
            pct(unnamed, total)
        )?;
    }
    let native = native_rows(profile, counts);
    let title = "native code (self: the sampled instruction was there)";
    let hot = native.iter().filter(|r| r.self_samples > 0);
    table(out, profile, total, title, hot, top, |f| {
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
    total: u64,
    title: &str,
    rows: impl Iterator<Item = &'r Row>,
    top: usize,
    describe: impl Fn(&Frame) -> (String, String),
) -> Result<()> {
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
