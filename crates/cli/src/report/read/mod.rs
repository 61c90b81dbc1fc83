//! `perf.data` → [`Profile`], in the order the data flows:
//!
//! ```text
//! records (linux-perf-data, in file order)
//!   COMM / FORK / MMAP2 ──► process: each pid's executable mappings and Python names
//!   SAMPLE ──► kernel part: symbolize (kallsyms)
//!              user part:   unwind (framehop: registers + stack copy), or the callchain (-g)
//!              each frame:  symbolize (perf map / jitdump stub, ELF symbol)
//!          ──► Profile: interned stack + sample
//! ```
//!
//! [`header`] reads what the file says of itself, [`events`] which event's samples the
//! report is of (one: samples of different events are never added up), [`process`] keeps the
//! address spaces, [`modules`] and [`unwind`] the unwinding, [`arch`] what is particular to
//! the CPU the recording was made on (x86_64, aarch64), [`symbolize`] the naming, [`stripped`]
//! the binaries whose functions went unnamed for want of their debug file, [`progress`] the
//! progress bar.

pub mod arch;
pub mod cfi;
pub mod events;
pub mod header;
pub mod modules;
pub mod names;
pub mod process;
pub mod progress;
pub mod repair;
pub mod sanitize;
pub mod stripped;
pub mod symbolize;
pub mod unwind;
pub mod waits;

mod reader;
mod reading;
mod records;

pub use reader::Reader;
pub use reading::Reading;
pub use records::Records;

use crate::report::Profile;
use anyhow::{bail, Context, Result};
use arch::Arch as _;
use linux_perf_data::PerfFileReader;
use process::Processes;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use symbolize::KernelNames;

pub struct Options {
    /// Directories searched first for `perf-<pid>.map` / `jit-<pid>.dump`.
    pub jit_dirs: Vec<PathBuf>,
    /// Show a progress bar (on a terminal, for large inputs).
    pub progress: bool,
    /// The event whose samples to report (`--event`); `None`: the file's first.
    pub event: Option<String>,
    /// Each process's parent, where the recording can't tell: processes forked before it
    /// began (a server's workers, when the server's processes are recorded as they run). A
    /// child runs the stubs its parent made before the fork, named in the parent's files.
    pub parents: std::collections::HashMap<i32, i32>,
    /// Where the recorded machine's files are (`--sysroot`): binaries are looked for under
    /// it first, as perf's `--symfs`.
    pub sysroot: Vec<PathBuf>,
    /// The recorded kernel's symbols (`--kallsyms`), for a recording made on another machine
    /// (or boot); default: this machine's `/proc/kallsyms` when it is the recorded boot.
    pub kallsyms: Option<PathBuf>,
}

/// Reads `path` into a profile: a perf.data file (repaired first if perf didn't finish it),
/// or a stream perf wrote to a pipe and someone saved (`perf record -o - > f`, `perfpy top
/// --output`).
pub fn read(path: &Path, opts: &Options) -> Result<Profile> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    if total == 0 {
        bail!(
            "{} is empty: perf wrote nothing into it (it was stopped before it started, or \
             the disk was full). Record again; `perfpy doctor` checks what perf needs",
            path.display()
        );
    }
    let unreadable = || format!("{} is not a perf.data file perfpy can read", path.display());
    let bar = progress::bar(opts.progress, path, total);
    if is_pipe_stream(&file) {
        let (counting, pos) = progress::Counting::new(BufReader::with_capacity(1 << 20, file));
        let reader = PerfFileReader::parse_pipe(counting).with_context(unreadable)?;
        let (mut records, mut state) = start(reader, opts, None).with_context(unreadable)?;
        records.measured = Some((pos, total));
        records.bar = bar;
        while records.next(&mut state) {}
        return Ok(state.finish());
    }
    let (file, damage) = repair::open(file, total).with_context(unreadable)?;
    let (counting, pos) = progress::Counting::new(file);
    let reader = PerfFileReader::parse_file(BufReader::with_capacity(1 << 20, counting))
        .with_context(|| format!("{} (a damaged recording?)", unreadable()))?;
    let (mut records, mut state) =
        start(reader, opts, damage).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))?;
    records.measured = Some((pos, total));
    records.bar = bar;
    while records.next(&mut state) {}
    Ok(state.finish())
}

/// Whether `file` holds what perf writes to a pipe: the magic and a 16-byte header, then
/// records (the attributes and features among them), instead of a header with sections.
fn is_pipe_stream(file: &std::fs::File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 16];
    file.read_exact_at(&mut head, 0).is_ok()
        && &head[..8] == b"PERFILE2"
        && u64::from_le_bytes(head[8..].try_into().unwrap_or_default()) == 16
}

/// A recording perf is writing now, read as it comes (`perf record -o -`'s standard output):
/// the records on one side, read without a lock, and the [`Reader`] they go into on the
/// other, which a live view locks to look at what has been read so far.
pub fn stream<R: Read>(input: R, opts: &Options) -> Result<(Records<R>, Reader)> {
    let reader = PerfFileReader::parse_pipe(input)
        .context("perf's output is not a recording perfpy can read")?;
    start(reader, opts, None)
}

/// Sets up the reading of `reader`'s records: the architecture checked, the event chosen,
/// the header's facts taken.
fn start<R: Read>(
    reader: PerfFileReader<R>,
    opts: &Options,
    damage: Option<repair::Damage>,
) -> Result<(Records<R>, Reader)> {
    let PerfFileReader {
        perf_file,
        record_iter,
    } = reader;
    let arch = match perf_file.arch() {
        Ok(Some(arch)) => arch.to_string(),
        // A stream perf writes to a pipe may say it late: it comes from this machine.
        _ => arch::host().to_string(),
    };
    if ![arch::X86_64::NAME, arch::Aarch64::NAME].contains(&arch.as_str()) {
        bail!(
            "it was recorded on {arch}; perfpy report unwinds x86_64 and aarch64 recordings \
             (use perf report there)"
        );
    }
    let mut profile = Profile::default();
    if let Some(d) = &damage {
        profile.stats.problems.push(d.describe());
    }
    let descs = perf_file.event_attributes().to_vec();
    let selection =
        events::selection(&descs, opts.event.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
    profile.measure = selection.measure;
    let described = selection.samples.or(selection.switches).unwrap_or(0);
    header::describe(&perf_file, described, &mut profile);
    let kernel = KernelNames::new(&mut profile, opts.kallsyms.clone());
    let reader = if arch == arch::Aarch64::NAME {
        Reader::Aarch64(reading(descs, profile, opts, kernel, selection))
    } else {
        Reader::X86_64(reading(descs, profile, opts, kernel, selection))
    };
    let records = Records {
        perf_file,
        iter: record_iter,
        measured: None,
        bar: None,
        n: 0,
        done: false,
    };
    Ok((records, reader))
}

fn reading<A: arch::Arch>(
    descs: Vec<linux_perf_data::AttributeDescription>,
    profile: Profile,
    opts: &Options,
    kernel: KernelNames,
    selection: events::Selection,
) -> Reading<A> {
    Reading {
        counts: vec![0; descs.len()],
        descs,
        profile,
        procs: Processes::new(
            opts.jit_dirs.clone(),
            opts.parents.clone(),
            opts.sysroot.clone(),
        ),
        kernel,
        selection,
        timeline: waits::Timeline::default(),
        damaged: 0,
    }
}
