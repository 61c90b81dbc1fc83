//! A recording and the files that go with it: `perf.data`, and its side directory
//! `perf.data.perfpy/` where `perfpy record` keeps the program's perf maps and jitdumps (so
//! /tmp keeps nothing and `perfpy report` finds them). Shared by `record` and `report`.

use crate::perf::MAX_STACK_COPY;
use crate::report::{jit, read, NamesOff, ProcessInfo, Profile};
use crate::say;
use anyhow::{Context, Result};
use perfpy_format::files;
use std::path::{Path, PathBuf};

/// The side directory's file of the processes of a recording of running programs (their
/// command lines, interpreters and names: `perfpy record -a`, `--pid`, `perfpy top`).
pub const PROCESSES: &str = "processes.json";

/// Where `perfpy record` keeps a recording's perf maps and jitdumps: next to it.
pub fn side_dir(data: &Path) -> PathBuf {
    let mut name = data.as_os_str().to_owned();
    name.push(".perfpy");
    PathBuf::from(name)
}

/// Where the files of a recording made on another machine are (`report --sysroot`,
/// `--kallsyms`); default: this machine's.
#[derive(Debug, Default, Clone)]
pub struct Elsewhere {
    pub sysroot: Vec<PathBuf>,
    pub kallsyms: Option<PathBuf>,
}

/// Reads `input`'s samples of `event` (`None`: its first event), with the side directory
/// and `extra_dirs` searched first for the Python names.
pub fn load(
    input: &Path,
    extra_dirs: &[PathBuf],
    event: Option<&str>,
    progress: bool,
    elsewhere: &Elsewhere,
) -> Result<Profile> {
    if !input.exists() {
        anyhow::bail!(
            "{} does not exist; record one with `perfpy record -- python app.py` \
             (or pass -i PATH)",
            input.display()
        );
    }
    let mut jit_dirs = extra_dirs.to_vec();
    jit_dirs.push(side_dir(input));
    let processes = processes(&side_dir(input));
    let opts = read::Options {
        jit_dirs,
        progress,
        event: event.map(str::to_string),
        parents: processes
            .values()
            .filter(|p| p.ppid > 0)
            .map(|p| (p.pid, p.ppid))
            .collect(),
        sysroot: elsewhere.sysroot.clone(),
        kallsyms: elsewhere.kallsyms.clone(),
    };
    let mut profile = read::read(input, &opts)?;
    profile.processes = processes;
    Ok(profile)
}

/// The processes `perfpy record` found, from a side directory's [`PROCESSES`] (none if it
/// has no such file, or one that can't be read).
pub fn processes(side: &Path) -> std::collections::HashMap<i32, ProcessInfo> {
    let Ok(text) = std::fs::read_to_string(side.join(PROCESSES)) else {
        return Default::default();
    };
    let list: Vec<ProcessInfo> = serde_json::from_str(&text).unwrap_or_default();
    list.into_iter().map(|p| (p.pid, p)).collect()
}

/// How many processes with names off are told about one by one.
const NAMES_OFF_SHOWN: usize = 5;

/// How many stripped binaries are told about one by one.
const STRIPPED_SHOWN: usize = 3;

/// Tells on stderr what could make the report incomplete, each with what to do.
pub fn warn_about(profile: &Profile) {
    let s = &profile.stats;
    for off in s.names_off.iter().take(NAMES_OFF_SHOWN) {
        say::warn(&names_off(profile, off));
    }
    if s.names_off.len() > NAMES_OFF_SHOWN {
        say::warn(&format!(
            "and in {} more processes, for the same reason",
            s.names_off.len() - NAMES_OFF_SHOWN
        ));
    }
    if !s.pids_without_names.is_empty() {
        let pids: Vec<String> = s.pids_without_names.iter().map(|p| p.to_string()).collect();
        say::warn(&format!(
            "no perf map or jitdump found for pid {}: their JIT code shows as [unknown]. \
             Record with `perfpy record`, or pass --jit-dir with the perf-<pid>.map / \
             jit-<pid>.dump files.",
            pids.join(", ")
        ));
    }
    if !s.missing_binaries.is_empty() {
        let shown: Vec<&str> = s
            .missing_binaries
            .iter()
            .take(3)
            .map(String::as_str)
            .collect();
        say::warn(&format!(
            "{} binar{} of the recording can't be read ({}{}): their frames are unnamed and \
             stacks through them may be cut. Report on the machine that recorded, or give a \
             copy of its files with --sysroot DIR.",
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
        ));
    }
    if !s.foreign_binaries.is_empty() {
        say::warn(&format!(
            "{} of the recorded binaries {} built for another CPU than the recording's ({}{}): \
             it was made on another machine. Give a copy of that machine's files with \
             --sysroot DIR (its root, or the directories holding its binaries).",
            s.foreign_binaries.len(),
            if s.foreign_binaries.len() == 1 {
                "is"
            } else {
                "are"
            },
            s.foreign_binaries[0],
            if s.foreign_binaries.len() > 1 {
                ", ..."
            } else {
                ""
            }
        ));
    }
    for stripped in s.stripped.iter().take(STRIPPED_SHOWN) {
        say::warn(&crate::report::debuginfo::stripped_warning(stripped));
    }
    if s.stripped.len() > STRIPPED_SHOWN {
        let more: Vec<&str> = s.stripped[STRIPPED_SHOWN..]
            .iter()
            .map(|b| b.path.as_str())
            .collect();
        say::warn(&format!(
            "stripped too, without a debug file: {} (the same fix)",
            more.join(", ")
        ));
    }
    for p in &s.problems {
        say::warn(p);
    }
    if s.lost_events > 0 {
        say::warn(&if profile.measure.is_time() {
            format!(
                "perf lost {} events (the recording couldn't keep up): some waits or CPU time \
                 are missing. Every context switch copies a stack: a smaller --stack-size, or \
                 recording as root (perfpy then gives perf a larger buffer), loses fewer",
                s.lost_events
            )
        } else {
            format!(
                "perf lost {} events (the recording couldn't keep up); lower the frequency \
                 with -F",
                s.lost_events
            )
        });
    }
    if let Some(w) = stacks_cut(s) {
        say::warn(&w);
    }
    if s.samples > 0 && s.truncated * 10 > s.samples {
        say::warn(&format!(
            "{} of {} samples couldn't be unwound past their first frame",
            s.truncated, s.samples
        ));
    }
}

/// What to say when at least 1% of the samples' stacks went on past perf's copy of them.
fn stacks_cut(s: &crate::report::Stats) -> Option<String> {
    let copy = s.stack.copy?;
    let cut = s.stack.cut;
    if cut == 0 || cut * 100 < s.samples {
        return None;
    }
    let fix = if copy < MAX_STACK_COPY {
        format!(
            "Record with `perfpy record --stack-size {MAX_STACK_COPY}` (or `perf record \
             --call-graph dwarf,{MAX_STACK_COPY}`), the most perf copies"
        )
    } else {
        "That is the most perf can copy: a program this deep needs frame pointers \
         (`perfpy record --call-graph fp` on an interpreter built with them) for whole stacks"
            .to_string()
    };
    Some(format!(
        "{cut} of {} samples ({:.1}%) had stacks deeper than the {} bytes perf copied of \
         them: their outer frames are missing (the program's start, and in a deep program its \
         outer Python functions). {fix}",
        s.samples,
        100.0 * cut as f64 / s.samples as f64,
        copy
    ))
}

/// What to say of a process that ran Python with its names off: that they were, what that
/// looks like, and the ways to switch them on that its version has.
fn names_off(profile: &Profile, off: &NamesOff) -> String {
    let pid = off.pid;
    let name = profile.process_names.get(&pid).map(String::as_str);
    let version = off.version.map(|(a, b)| format!("CPython {a}.{b}"));
    let what: Vec<&str> = name.into_iter().chain(version.as_deref()).collect();
    let builtin = off.version.is_some_and(|v| v >= (3, 12));
    let remote = off.version.is_some_and(|v| v >= (3, 14));
    // The recorded command is this process's when it is the only one sampled, and when perf
    // kept it (perf 7.2 keeps only its own path in the header).
    let alone = profile.samples.iter().all(|s| s.pid == pid);
    let command = profile
        .command
        .as_deref()
        .filter(|c| alone && !c.split(' ').next().is_some_and(|w| w.ends_with("perf")))
        .unwrap_or("<command>");
    format!(
        "Python names were off in pid {pid}{}: it wrote no perf map or jitdump, so its Python \
         functions show as the interpreter's (_PyEval_EvalFrameDefault). To name them, record \
         with `perfpy record -- {command}`, which switches them on; or start the program with \
         {}; or, for a program that runs, `perfpy record --pid {pid}`{}",
        if what.is_empty() {
            String::new()
        } else {
            format!(" ({})", what.join(", "))
        },
        if builtin {
            "PYTHONPERFSUPPORT=1 (-X perf) or PYTHON_PERF_JIT_SUPPORT=1 (-X perf_jit)"
        } else {
            "perfpy installed in its interpreter and PYTHONPERFSUPPORT=1 (-X perf)"
        },
        if remote {
            ""
        } else {
            ", if it was started with perfpy installed and PERFPY_ATTACH=1 (CPython 3.14+ needs \
             nothing)"
        }
    )
}

/// What [`collect_jit_files`] did.
#[derive(Debug, Default)]
pub struct Collected {
    /// The files moved (or copied, for a process that still runs), by their old path.
    pub moved: Vec<PathBuf>,
    /// The files that couldn't be, and why.
    pub failed: Vec<(PathBuf, String)>,
}

/// Moves (or copies, for a process that still runs, and for those of `copy_only`) the maps
/// and dumps of `pids` into `dir`; one that can't be moved doesn't keep the others from
/// being.
pub fn collect_jit_files(
    pids: &[i32],
    copy_only: &std::collections::BTreeSet<i32>,
    dir: &Path,
) -> Collected {
    let mut done = Collected::default();
    for &pid in pids {
        let alive =
            copy_only.contains(&pid) || u32::try_from(pid).is_ok_and(crate::procfs::running);
        for src in jit::candidates(pid, &[], None) {
            let Ok(meta) = std::fs::symlink_metadata(&src) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let kind = if src.extension().is_some_and(|e| e == "map") {
                files::Kind::PerfMap
            } else {
                files::Kind::Jitdump
            };
            let dst = dir.join(kind.file_name(pid as u32));
            if dst.exists() {
                continue; // the namespace path and /tmp were the same file
            }
            match move_or_copy(&src, &dst, alive) {
                Ok(()) => {
                    if kind == files::Kind::Jitdump {
                        under_host_pid(&src, &dst, pid as u32);
                    }
                    done.moved.push(src)
                }
                Err(e) => done.failed.push((src, format!("{e:#}"))),
            }
        }
    }
    done
}

/// A jitdump copied from a container's `/tmp` (`src`: `jit-<namespace pid>.dump`) as `dst`,
/// told it is process `pid`'s, as the recording knows the process.
fn under_host_pid(src: &Path, dst: &Path, pid: u32) {
    let inner = src
        .file_name()
        .and_then(|n| files::parse_file_name(&n.to_string_lossy()))
        .map(|(_, p)| p);
    let Some(inner) = inner.filter(|&p| p != pid) else {
        return;
    };
    if let Ok(mut data) = std::fs::read(dst) {
        if perfpy_format::jitdump::renumber(&mut data, inner, pid) {
            let _ = std::fs::write(dst, data);
        }
    }
}

/// Moves `src` to `dst` (a copy and a removal across file systems), or only copies it when
/// its process still runs.
fn move_or_copy(src: &Path, dst: &Path, alive: bool) -> Result<()> {
    if let Some(dir) = dst.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if alive || std::fs::rename(src, dst).is_err() {
        std::fs::copy(src, dst).with_context(|| format!("cannot copy it to {}", dst.display()))?;
        if !alive {
            std::fs::remove_file(src).context("cannot remove it after copying it")?;
        }
    }
    Ok(())
}
