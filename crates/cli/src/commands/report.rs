//! `perfpy report`: a perf.data recording → text, folded stacks, flamegraph, speedscope,
//! Firefox Profiler or pprof, with Python frames named and whole stacks unwound by perfpy
//! itself (no `perf inject`, no `perf report`).

use crate::cli::ReportArgs;
use crate::recording::{load, warn_about};
use crate::report::output::{self, Format, Meta};
use anyhow::{Context, Result};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use std::process::ExitCode;

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
            output::write(&profile, args.format, &meta, &mut w)?;
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
            output::write(&profile, args.format, &meta, &mut w)?;
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
