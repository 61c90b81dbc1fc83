//! `perfpy report`: a perf.data recording → text, folded stacks, flamegraph, speedscope,
//! Firefox Profiler or pprof, with Python frames named and whole stacks unwound by perfpy
//! itself (no `perf inject`, no `perf report`).

use crate::cli::ReportArgs;
use crate::report::formats::{self, Format, Meta};
use crate::report::{reader, Profile};
use anyhow::{Context, Result};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where `perfpy record` keeps a recording's perf maps and jitdumps: next to it.
pub fn side_dir(data: &Path) -> PathBuf {
    let mut name = data.as_os_str().to_owned();
    name.push(".perfpy");
    PathBuf::from(name)
}

/// Reads `input` with the side directory and `extra_dirs` searched first for the Python names.
pub fn load(input: &Path, extra_dirs: &[PathBuf], progress: bool) -> Result<Profile> {
    if !input.exists() {
        anyhow::bail!(
            "{} does not exist; record one with `perfpy record -- python app.py` \
             (or pass -i PATH)",
            input.display()
        );
    }
    let mut jit_dirs = extra_dirs.to_vec();
    jit_dirs.push(side_dir(input));
    reader::read(input, &reader::Options { jit_dirs, progress })
}

/// Tells on stderr what could make the report incomplete, each with what to do.
pub fn warn_about(profile: &Profile) {
    let s = &profile.stats;
    if !s.pids_without_names.is_empty() {
        let pids: Vec<String> = s.pids_without_names.iter().map(|p| p.to_string()).collect();
        eprintln!(
            "perfpy: warning: no perf map or jitdump found for pid {}: their JIT code shows as \
             [unknown]. Record with `perfpy record`, or pass --jit-dir with the \
             perf-<pid>.map / jit-<pid>.dump files.",
            pids.join(", ")
        );
    }
    if !s.missing_binaries.is_empty() {
        let shown: Vec<&str> = s
            .missing_binaries
            .iter()
            .take(3)
            .map(String::as_str)
            .collect();
        eprintln!(
            "perfpy: warning: {} binar{} of the recording can't be read ({}{}): their frames \
             are unnamed and stacks through them may be cut. Report on the machine that recorded.",
            s.missing_binaries.len(),
            if s.missing_binaries.len() == 1 {
                "y"
            } else {
                "ies"
            },
            shown.join(", "),
            if s.missing_binaries.len() > 3 {
                ", ..."
            } else {
                ""
            }
        );
    }
    for p in &s.problems {
        eprintln!("perfpy: warning: {p}");
    }
    if s.lost_events > 0 {
        eprintln!(
            "perfpy: warning: perf lost {} events (the recording couldn't keep up); \
             lower the frequency with -F",
            s.lost_events
        );
    }
    if s.samples > 0 && s.truncated * 10 > s.samples {
        eprintln!(
            "perfpy: warning: {} of {} samples couldn't be unwound past their first frame",
            s.truncated, s.samples
        );
    }
}

pub fn run(args: &ReportArgs) -> Result<ExitCode> {
    let progress = std::io::stderr().is_terminal();
    let profile = load(&args.input, &args.jit_dir, progress)?;
    let mut profile = profile.with_view(args.native);
    if !args.pid.is_empty() {
        profile.samples.retain(|s| args.pid.contains(&s.pid));
    }
    warn_about(&profile);
    if profile.samples.is_empty() {
        anyhow::bail!(
            "{} has no samples{}",
            args.input.display(),
            if args.pid.is_empty() {
                ""
            } else {
                " for the pids given"
            }
        );
    }
    let meta = Meta {
        title: profile.command.clone().unwrap_or_default(),
        top: args.top,
    };
    let output = args
        .output
        .clone()
        .or_else(|| args.format.default_output().map(PathBuf::from));
    match output {
        Some(path) if path.as_os_str() != "-" => {
            let file = std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = std::io::BufWriter::new(file);
            formats::write(&profile, args.format, &meta, &mut w)?;
            w.flush()
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "perfpy: wrote {} ({} samples){}",
                path.display(),
                profile.samples.len(),
                open_hint(args.format, &path)
            );
        }
        _ => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            formats::write(&profile, args.format, &meta, &mut w)?;
            w.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
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
