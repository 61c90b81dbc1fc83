//! `perfpy top` without a terminal (or `--plain`): a snapshot every interval, in the text
//! report's own tables (the same lines `perfpy report` prints, so logs and scripts read both
//! alike), and a last one when top ends.

use super::live::{self, Live, Snapshot, View};
use super::{perf_now, Context, Ended};
use crate::report::output::text::{self, Section};
use crate::report::output::wall::duration;
use crate::report::profile::tables::{pct, process_rows};
use crate::report::Profile;
use std::io::Write;
use std::time::Duration;

/// Prints a snapshot every interval until the view should end.
pub(super) fn run(ctx: &Context<'_>, live: &mut Live, view: &View) -> Ended {
    let every = Duration::from_secs_f64(ctx.args.interval);
    let mut next = ctx.started + every;
    loop {
        while std::time::Instant::now() < next {
            if let Some(end) = ctx.should_end() {
                return end;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        next += every;
        ctx.take(live);
        if snapshot(ctx, live, view, "").is_err() {
            return Ended::Done; // standard output is gone (a closed pipe)
        }
    }
}

/// The last snapshot, once perf has stopped and everything it wrote is read.
pub(super) fn last(ctx: &Context<'_>, live: &mut Live, view: &View) {
    let _ = snapshot(ctx, live, view, ", final");
}

fn snapshot(ctx: &Context<'_>, live: &Live, view: &View, tag: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let now = perf_now();
    let clock = chrono_now();
    let written = ctx.feed.with(|r| {
        let profile = r.profile();
        let weights = live.weights(view.window, now.max(live.newest));
        let mut text = Vec::new();
        let _ = write_snapshot(ctx, profile, live, view, &weights, &clock, tag, &mut text);
        text
    });
    match written {
        Some(text) => out.write_all(&text)?,
        None => writeln!(
            out,
            "== perfpy top {clock}{tag}: waiting for perf's first records"
        )?,
    }
    out.flush()
}

#[allow(clippy::too_many_arguments)]
fn write_snapshot(
    ctx: &Context<'_>,
    profile: &Profile,
    live: &Live,
    view: &View,
    weights: &std::collections::HashMap<(i32, u32), u64>,
    clock: &str,
    tag: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let total: u64 = weights.values().sum();
    let time = profile.measure.is_time();
    writeln!(
        out,
        "== perfpy top {clock}{tag}: {}, {}{}{}, {} lost",
        view.window,
        if time {
            duration(total)
        } else {
            format!("{total} samples")
        },
        match view.window {
            live::Window::All => String::new(),
            live::Window::Last(_) => format!(" ({} samples since the start)", live.samples),
        },
        profile
            .frequency
            .map(|f| format!(", {f} Hz"))
            .unwrap_or_default(),
        profile.stats.lost_events
    )?;
    let rows = process_rows(profile, &live::by_process(weights));
    let several = ctx.args.all || rows.iter().filter(|r| r.pid != 0).count() > 1;
    let top = ctx.args.top;
    if !several {
        return section(profile, weights, view, None, total, top, &[], out);
    }
    let off = ctx.names_off();
    text::processes(&rows, total, top, out)?;
    for r in text::sections(&rows, total) {
        writeln!(
            out,
            "\n== pid {}: {} ({:.1}% of all samples)",
            r.pid,
            r.name,
            pct(r.weight, total)
        )?;
        section(
            profile,
            weights,
            view,
            Some(r.pid),
            r.weight,
            top,
            &off,
            out,
        )?;
    }
    writeln!(out)?;
    Ok(())
}

/// One process's tables (`None`: all of them), as the report prints them; `off`: the
/// processes recorded without Python names.
#[allow(clippy::too_many_arguments)]
fn section(
    profile: &Profile,
    weights: &std::collections::HashMap<(i32, u32), u64>,
    view: &View,
    pid: Option<i32>,
    total: u64,
    top: usize,
    off: &[i32],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if profile.measure.is_time() {
        let one = View {
            process: pid,
            ..*view
        };
        return wall(&live::snapshot(profile, weights, &one, top), out);
    }
    let counts = live::counts(weights, pid);
    let names_off: Vec<i32> = pid.filter(|p| off.contains(p)).into_iter().collect();
    let unnamed = if names_off.is_empty() {
        counts
            .iter()
            .filter(|(s, _)| profile.unnamed_python_frames(&profile.stacks[*s as usize]))
            .map(|c| c.1)
            .sum()
    } else {
        0
    };
    let s = Section {
        counts: &counts,
        total,
        unnamed,
        names_off,
    };
    text::functions(profile, &s, top, out)?;
    if pid.is_none() {
        writeln!(out)?;
    }
    Ok(())
}

/// A wall-clock view's tables: each function's share of the time, and what it waited on.
fn wall(s: &Snapshot, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "\nPython functions (self: the innermost Python function)"
    )?;
    writeln!(
        out,
        "  {:>6}  {:>6}  {:>9}  function  file  waiting on",
        "self", "total", "wall ms"
    )?;
    for l in &s.python {
        writeln!(
            out,
            "  {:>5.1}%  {:>5.1}%  {:>9.1}  {}  {}  {}",
            pct(l.own, s.total),
            pct(l.total, s.total),
            l.own as f64 / 1e6,
            l.name,
            l.place,
            l.waits
        )?;
    }
    if !s.native.is_empty() {
        writeln!(
            out,
            "\nnative code (self: the sampled instruction was there)"
        )?;
        writeln!(
            out,
            "  {:>6}  {:>6}  {:>9}  function",
            "self", "total", "ms"
        )?;
        for l in &s.native {
            writeln!(
                out,
                "  {:>5.1}%  {:>5.1}%  {:>9.1}  {}  {}",
                pct(l.own, s.total),
                pct(l.total, s.total),
                l.own as f64 / 1e6,
                l.name,
                l.place
            )?;
        }
    }
    Ok(())
}

/// The wall-clock time of day, `HH:MM:SS` (UTC), for snapshot headers.
pub(super) fn chrono_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day / 60 % 60, day % 60)
}
