//! Writing a [`Profile`]: one file per format, each behind [`Writer`].
//!
//! | format | file | read by |
//! |---|---|---|
//! | [`Format::Text`] | [`text`] | people: the hottest Python and native functions |
//! | [`Format::Collapsed`] | [`collapsed`] | flamegraph.pl, inferno, speedscope, Pyroscope |
//! | [`Format::Flamegraph`] | [`flamegraph`] | a browser (inferno's SVG) |
//! | [`Format::Speedscope`] | [`speedscope`] | speedscope |
//! | [`Format::Firefox`] | [`firefox`] | the Firefox Profiler, `samply load` |
//! | [`Format::Pprof`] | [`pprof`] | `go tool pprof`, Pyroscope, Parca |

pub mod collapsed;
pub mod firefox;
pub mod flamegraph;
pub mod pprof;
pub mod speedscope;
pub mod text;
pub mod wall;

use super::Profile;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One output format.
pub trait Writer {
    fn write(&self, profile: &Profile, meta: &Meta, out: &mut dyn Write) -> Result<()>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The hottest functions, self and total (Python first, then native code).
    Text,
    /// Folded stacks, one `root;...;leaf count` line per stack (flamegraph.pl, inferno,
    /// speedscope, Pyroscope's `folded` ingestion).
    Collapsed,
    /// A flamegraph SVG (inferno).
    Flamegraph,
    /// speedscope's JSON file format (https://www.speedscope.app).
    Speedscope,
    /// The Firefox Profiler's processed format (https://profiler.firefox.com, `samply load`).
    Firefox,
    /// gzipped pprof protobuf (`go tool pprof`, Pyroscope, Parca).
    Pprof,
}

impl Format {
    /// The file name `perfpy report` writes to when `-o` isn't given (text and collapsed go
    /// to standard output).
    pub fn default_output(self) -> Option<&'static str> {
        match self {
            Format::Text | Format::Collapsed => None,
            Format::Flamegraph => Some("flamegraph.svg"),
            Format::Speedscope => Some("profile.speedscope.json"),
            Format::Firefox => Some("profile.firefox.json"),
            Format::Pprof => Some("profile.pb.gz"),
        }
    }
}

impl Format {
    /// The writer for this format.
    pub fn writer(self) -> &'static dyn Writer {
        match self {
            Format::Text => &text::Text,
            Format::Collapsed => &collapsed::Collapsed,
            Format::Flamegraph => &flamegraph::Flamegraph,
            Format::Speedscope => &speedscope::Speedscope,
            Format::Firefox => &firefox::Firefox,
            Format::Pprof => &pprof::Pprof,
        }
    }
}

/// What a recording of several events holds besides the one reported, with how to report
/// another; `None` for a recording of one event.
pub fn other_events(profile: &Profile) -> Option<String> {
    let others: Vec<_> = profile.events.iter().filter(|e| !e.reported).collect();
    let listed: Vec<String> = others
        .iter()
        .map(|e| {
            format!(
                "{} of {}",
                crate::say::count(e.samples as usize, "sample", "samples"),
                e.name
            )
        })
        .collect();
    let pick = match others.as_slice() {
        [] => return None,
        [one] => format!("`--event {}` reports them", one.name),
        _ => "`--event NAME` reports one of them".to_string(),
    };
    Some(format!(
        "the recording also holds {}, counted apart: {pick}",
        listed.join(", ")
    ))
}

/// What a writer needs beyond the profile.
pub struct Meta {
    /// What was profiled (the recording's command line), for titles.
    pub title: String,
    /// Rows per table (text).
    pub top: usize,
}

/// Writes `profile` in `format`.
pub fn write(profile: &Profile, format: Format, meta: &Meta, out: &mut dyn Write) -> Result<()> {
    format.writer().write(profile, meta, out)
}

/// The threads of a profile, busiest first: `(pid, tid)` and their samples in time order.
pub(super) fn threads(profile: &Profile) -> Vec<((i32, i32), Vec<usize>)> {
    let mut by: HashMap<(i32, i32), Vec<usize>> = HashMap::new();
    for (i, s) in profile.samples.iter().enumerate() {
        by.entry((s.pid, s.tid)).or_default().push(i);
    }
    let mut v: Vec<_> = by.into_iter().collect();
    for (_, idx) in &mut v {
        idx.sort_by_key(|&i| profile.samples[i].time);
    }
    v.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    v
}

pub(super) fn thread_label(profile: &Profile, pid: i32, tid: i32) -> String {
    let name = profile
        .thread_names
        .get(&tid)
        .or_else(|| profile.process_names.get(&pid))
        .map(String::as_str)
        .unwrap_or("?");
    format!("{name} (pid {pid}, tid {tid})")
}

/// Writes `profile` as `format` to `output` (`-` or none: standard output, unless the
/// format has a default file).
pub fn save(profile: &Profile, format: Format, output: Option<PathBuf>, top: usize) -> Result<()> {
    let meta = Meta {
        title: profile.command.clone().unwrap_or_default(),
        top,
    };
    let output = output.or_else(|| format.default_output().map(PathBuf::from));
    match output {
        Some(path) if path.as_os_str() != "-" => {
            let file = std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = std::io::BufWriter::new(file);
            write(profile, format, &meta, &mut w)?;
            w.flush()
                .with_context(|| format!("writing {}", path.display()))?;
            let total: u64 = profile.samples.iter().map(|s| s.weight).sum();
            crate::eline!(
                "perfpy: wrote {} ({}){}",
                path.display(),
                match profile.measure {
                    crate::report::Measure::Samples => format!("{total} samples"),
                    crate::report::Measure::Wall =>
                        format!("{} of wall time", wall::duration(total)),
                    crate::report::Measure::OffCpu => format!("{} off CPU", wall::duration(total)),
                },
                open_hint(format, &path)
            );
        }
        _ => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            write(profile, format, &meta, &mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}

fn open_hint(format: Format, path: &Path) -> String {
    match format {
        Format::Flamegraph => "; open it in a browser".into(),
        Format::Speedscope => "; load it at https://www.speedscope.app".into(),
        Format::Firefox => format!(
            "; load it at https://profiler.firefox.com or with `samply load {}`",
            path.display()
        ),
        Format::Pprof => format!("; view it with `go tool pprof -http=: {}`", path.display()),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests;
