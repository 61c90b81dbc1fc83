//! What perf samples and how it writes it, for every command that runs `perf record`: the
//! events of each mode, the call graphs, the stack copy, compression, perf's buffer.

use crate::cli::Mode;
use crate::perf;
use crate::plan::CallGraph;
use crate::report::read::arch;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// How perf writes the recording, whichever way it reaches the program.
pub struct Writing {
    /// `-z`: zstd as it records.
    pub compress: bool,
    /// With DWARF call graphs, the stack copied with each sample.
    pub stack_size: u32,
    /// Why, for the user.
    pub reasons: Vec<String>,
}

/// How perf at `perf` will write a recording: `no_compress` asked, `keep_jit_files` (for
/// perf inject, which can't read compressed ones), `stack_size` bytes copied per sample.
pub fn writing(no_compress: bool, keep_jit_files: bool, stack_size: u32, perf: &Path) -> Writing {
    let mut reasons = Vec::new();
    let compress = if no_compress {
        false
    } else if keep_jit_files {
        reasons.push(
            "uncompressed: --keep-jit-files is for perf inject --jit, which can't read \
             compressed recordings"
                .to_string(),
        );
        false
    } else {
        match perf::compresses(perf) {
            Some(true) => true,
            Some(false) => {
                reasons.push(
                    "uncompressed: this perf was built without zstd (`perfpy doctor` says more)"
                        .to_string(),
                );
                false
            }
            None => {
                reasons.push(
                    "uncompressed: this perf doesn't say whether it was built with zstd"
                        .to_string(),
                );
                false
            }
        }
    };
    Writing {
        compress,
        stack_size,
        reasons,
    }
}

/// What perf samples: the mode's events, at `frequency`, or `event` in CPU mode.
pub struct Sampling {
    pub mode: Mode,
    pub frequency: u32,
    pub event: Option<String>,
    /// Read as it is written (`perfpy top`): perf wakes for every record instead of when its
    /// buffer is half full (`--no-buffering`), or a quiet program's samples would wait
    /// seconds.
    pub streaming: bool,
    /// Every CPU (`-a`).
    pub system_wide: bool,
    /// With frame-pointer call graphs, which sample no register, in the modes that sample
    /// the context switches: the registers holding a system call's first arguments too
    /// (`--user-regs`), which tell a `select` of no descriptor (a sleep: `time.sleep` on
    /// CPython 3.8-3.10) from a wait for the network. DWARF call graphs sample them all.
    pub syscall_regs: bool,
}

/// Whether the perf at `perf` samples the registers of a system call's arguments by name
/// (`perf record --user-regs=?` lists the names it knows: perf 5.10 none on arm64).
pub fn samples_syscall_regs(perf: &Path) -> bool {
    let Ok(out) = Command::new(perf)
        .args(["record", "--user-regs=?"])
        .output()
    else {
        return false;
    };
    // perf prints it on standard error, before its usage; standard output is read too.
    let text = [out.stderr, out.stdout].concat();
    lists_registers(
        &String::from_utf8_lossy(&text),
        &arch::syscall_arg_registers(),
    )
}

/// Whether `perf record --user-regs=?`'s output (`available registers: AX BX …`) lists all
/// of `names` (perf compares them ignoring case).
fn lists_registers(output: &str, names: &[&str]) -> bool {
    let Some(listed) = output
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("available registers:"))
    else {
        return false;
    };
    names
        .iter()
        .all(|n| listed.split_whitespace().any(|r| r.eq_ignore_ascii_case(n)))
}

/// `perf record`'s options, writing to `output` (`-` : standard output, perf's pipe mode), up
/// to (not including) what it records: `--` and a command, `-p`, or `-a`.
pub fn args(
    sampling: &Sampling,
    call_graph: CallGraph,
    writing: &Writing,
    output: &std::ffi::OsStr,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["record".into()];
    a.extend(events(sampling).into_iter().map(OsString::from));
    a.extend([
        // CLOCK_MONOTONIC, as the jitdump's timestamps: perf inject --jit needs it.
        "-k".into(),
        "1".into(),
        // No copies of the binaries in ~/.debug.
        "--no-buildid-cache".into(),
        "--call-graph".into(),
        match call_graph {
            CallGraph::FramePointers => "fp".into(),
            CallGraph::Dwarf => format!("dwarf,{}", writing.stack_size).into(),
        },
        "-o".into(),
        output.to_os_string(),
    ]);
    if writing.compress {
        a.push("-z".into());
    }
    // The CPU mode's own buffer (the others have theirs in `events`): larger where every
    // sample copies a stack.
    let dwarf = call_graph == CallGraph::Dwarf;
    if sampling.mode == Mode::Cpu && (dwarf || sampling.streaming || sampling.system_wide) {
        a.extend(buffer().into_iter().map(OsString::from));
    }
    if sampling.streaming {
        a.push("--no-buffering".into());
    }
    if !kernel_callchains_allowed() {
        a.push("--user-callchains".into());
    }
    if sampling.syscall_regs && sampling.mode != Mode::Cpu && !dwarf {
        a.push(format!("--user-regs={}", arch::syscall_arg_registers().join(",")).into());
    }
    a
}

/// What perf samples in each mode. The CPU samples keep `-F`; the context switches are all
/// sampled (a period of 1, with their stacks), and the switch records (`--switch-events`)
/// say when each thread left the CPU and came back, and whether it was preempted. (`-F` and
/// a period can't be mixed on perf's command line; per-event terms can.)
fn events(args: &Sampling) -> Vec<String> {
    let ticks = format!("cpu-clock/freq={}/", args.frequency);
    let switches = [
        "-e".into(),
        CONTEXT_SWITCHES.into(),
        "--switch-events".into(),
    ];
    match args.mode {
        Mode::Cpu => {
            let mut a = vec!["-F".into(), args.frequency.to_string()];
            if let Some(e) = &args.event {
                a.extend(["-e".into(), e.clone()]);
            }
            a
        }
        Mode::Wall => [vec!["-e".into(), ticks], switches.to_vec(), buffer()].concat(),
        Mode::OffCpu => [switches.to_vec(), buffer()].concat(),
    }
}

/// perf's ring buffer per CPU for the modes that sample every context switch: a thread
/// switching often (a lock passed back and forth, threads starting) writes a stack copy per
/// switch in bursts that overflow perf's default 512 KiB and lose samples (measured: 3-17
/// lost events a run of the wall-clock test program with the default, none with 8 MiB).
/// Also for every DWARF recording: 512 KiB is 8 samples of 64 KiB stacks, and a program's
/// start (its exec, the mappings of its libraries, the first samples) comes in a burst: on a
/// slow machine (an emulated arm64 one) perf lost that burst with the default buffer, and the
/// program's binaries with it (every frame unnamed). And for the whole machine (-a), and for a
/// recording read as it is written (`top`), where perf waits on its reader now and then.
/// 64 MiB shared by the CPUs, between 1 and 8 MiB each; only where perf may lock that much
/// (root), else perf's default.
fn buffer() -> Vec<String> {
    // SAFETY: geteuid has no preconditions and can't fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        return Vec::new();
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let mib = (64 / cpus).clamp(1, 8).next_power_of_two().min(8);
    vec!["-m".into(), format!("{mib}M")]
}

/// Whether the kernel gives this user's perf the kernel's part of a call chain: as root, or
/// at `perf_event_paranoid` 1 or below. Where it doesn't, perf must ask for the user part only
/// (`--user-callchains`): some kernels (Debian 13's 6.12) refuse a call graph that doesn't
/// leave the kernel's part out to such a user (EACCES), even of an event limited to user
/// space, while others (Debian 12's 6.1) let it through; without the kernel's frames either
/// way.
fn kernel_callchains_allowed() -> bool {
    // SAFETY: geteuid has no preconditions and can't fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .is_some_and(|level| level <= 1)
}

/// The context-switch event as `perfpy record` spells it (and `perfpy report` recognises).
pub const CONTEXT_SWITCHES: &str = "cs/period=1/";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_registers_perf_can_sample() {
        // perf 6.1 on x86_64 (on standard error, before the usage).
        let x86 = "available registers: AX BX CX DX SI DI BP SP IP FLAGS CS SS R8 R9 R10 R11 \
                   R12 R13 R14 R15 \n\n Usage: perf record [<options>] [<command>]\n";
        assert!(lists_registers(x86, &["DI", "SI", "DX", "R10"]));
        assert!(lists_registers(x86, &["di", "si"]));
        assert!(!lists_registers(x86, &["x0"]));
        // perf 5.10 on arm64 lists none; 5.11 on lists x0-x30, lr, sp, pc.
        assert!(!lists_registers(
            "available registers: \n",
            &["x0", "x1", "x2", "x3"]
        ));
        let arm = "available registers: x0 x1 x2 x3 x4 x5 x6 x7 x8 x9 x10 lr sp pc \n";
        assert!(lists_registers(arm, &["x0", "x1", "x2", "x3"]));
        // A perf without the option at all.
        assert!(!lists_registers(
            "  Error: unknown option `user-regs'\n",
            &["DI"]
        ));
    }

    fn sampling(mode: Mode, syscall_regs: bool) -> Sampling {
        Sampling {
            mode,
            frequency: 999,
            event: None,
            streaming: false,
            system_wide: false,
            syscall_regs,
        }
    }

    fn user_regs(s: &Sampling, call_graph: CallGraph) -> Vec<String> {
        let writing = Writing {
            compress: false,
            stack_size: 8192,
            reasons: Vec::new(),
        };
        args(s, call_graph, &writing, "-".as_ref())
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .filter(|a| a.starts_with("--user-regs"))
            .collect()
    }

    #[test]
    fn frame_pointer_waits_sample_the_syscall_registers() {
        let fp = CallGraph::FramePointers;
        let names = arch::syscall_arg_registers().join(",");
        for mode in [Mode::Wall, Mode::OffCpu] {
            assert_eq!(
                user_regs(&sampling(mode, true), fp),
                [format!("--user-regs={names}")]
            );
            // Where perf can't, or DWARF samples them all already (a --user-regs would
            // replace DWARF's registers with these few), or in CPU mode: none.
            assert!(user_regs(&sampling(mode, false), fp).is_empty());
            assert!(user_regs(&sampling(mode, true), CallGraph::Dwarf).is_empty());
        }
        assert!(user_regs(&sampling(Mode::Cpu, true), fp).is_empty());
    }
}
