//! Command-line definitions.

use crate::perf;
use crate::report::output::Format;
use crate::report::NativeView;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "perfpy",
    version,
    about = "Profile Python with Linux perf: record, watch live, report with whole Python stacks, check the machine, clean up.",
    after_help = "EXAMPLES:\n  \
        perfpy record -- python app.py         record app.py; prints the hottest functions\n  \
        perfpy record --pid 4242 --duration 10 a running program, names switched on and off\n  \
        sudo perfpy record -a --duration 10    the whole machine, every Python process named\n  \
        perfpy top -p 4242                     live: the hottest functions, Python and native\n  \
        perfpy report                          top functions of perf.data, self and total\n  \
        perfpy report --format flamegraph      flamegraph.svg\n  \
        perfpy report --format pprof -o app.pb.gz\n  \
        perfpy doctor                          can perf profile Python here, and how?\n  \
        perfpy doctor --python ~/venv/bin/python\n  \
        perfpy clean                           list maps, dumps and jitted-*.so of dead processes\n  \
        perfpy clean --delete                  and delete them\n\n\
        perfpy record needs nothing installed in the program's interpreter (CPython\n\
        3.8-3.15): it lends it perfpy for the run. Or switch profiling on yourself with\n\
        PYTHONPERFSUPPORT=1 (perf map) or PYTHON_PERF_JIT_SUPPORT=1 (jitdump), as with\n\
        CPython 3.12+; the perfpy package brings both to CPython 3.8-3.15."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Runs a Python program under perf record with Python names switched on.
    ///
    /// Picks the backend and call-graph mode that work for this machine and interpreter and
    /// says why, runs `perf record`, keeps the program's perf map / jitdump next to the
    /// recording (out of /tmp; nothing goes to ~/.debug), and prints the hottest functions.
    /// Ctrl-C or SIGTERM stops the program and still gives the profile.
    Record(RecordArgs),
    /// A live view of the hottest functions, Python and native, refreshed every second.
    ///
    /// Of running programs (-p, or every Python process on the machine with -a: names are
    /// switched on in them as `record --pid` does, and off again when top ends) or of a
    /// program it starts. Keys: s/t sort by self/total, n hides native code, w shows the last
    /// seconds or everything since the start, Tab (and Shift-Tab) picks a process, space
    /// pauses, q (or Ctrl-C) quits. When standard output is not a terminal (or with --plain),
    /// a snapshot is printed every interval instead.
    Top(TopArgs),
    /// Reports on a recording: whole Python stacks, unwound and named by perfpy.
    ///
    /// Reads perf.data itself, unwinds each sample's stack (the binaries' CFI, the jitdump's
    /// unwind info, frame records of perf-map stubs) and names Python frames from the
    /// program's perf map or jitdump. No perf inject, no perf report, no files left behind.
    Report(ReportArgs),
    /// Checks perf, the kernel settings and a Python interpreter; says what to fix.
    ///
    /// Three sections: the facts of this machine and the interpreter; perfpy record here (its
    /// plan, and a real one-second recording); perf alone (PYTHONPERFSUPPORT with -g,
    /// PYTHON_PERF_JIT_SUPPORT with perf inject --jit). Each line is pass, warn or FAIL, with
    /// the fix. Exits 1 when profiling can't work.
    Doctor(DoctorArgs),
    /// Lists (and with --delete removes) perf-<pid>.map, jit-<pid>.dump and
    /// jitted-<pid>-<n>.so files of processes that no longer exist.
    Clean(CleanArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// jitdump with DWARF call graphs; perf map with --call-graph fp (or where only CPython
    /// 3.12's trampoline is available).
    Auto,
    /// /tmp/perf-<pid>.map (PYTHONPERFSUPPORT=1).
    Perf,
    /// /tmp/jit-<pid>.dump with unwind info (PYTHON_PERF_JIT_SUPPORT=1). Also spelt
    /// perf_jit, as CPython spells it.
    #[value(alias = "perf_jit")]
    PerfJit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Trampoline {
    /// perfpy's: installed in the interpreter, or else lent to it for the run; CPython's
    /// own (3.12+) where perfpy can be neither.
    Auto,
    /// perfpy's, installed or lent.
    Perfpy,
    /// CPython's built-in one (3.12+: PYTHONPERFSUPPORT / PYTHON_PERF_JIT_SUPPORT).
    Cpython,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Where the CPU time goes: a sample of every running thread -F times a second of CPU.
    Cpu,
    /// Where the time goes, running or waiting: the CPU samples, and each time a thread
    /// leaves the CPU, its stack and how long it stays off (perf's context-switch event and
    /// switch records). The report weighs both in time and says why each wait was. Needs
    /// root or kernel.perf_event_paranoid <= 1.
    Wall,
    /// Only the waits: each time a thread leaves the CPU, its stack, why and for how long.
    /// Needs root or kernel.perf_event_paranoid <= 1.
    OffCpu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CallGraph {
    /// dwarf, even where the interpreter has frame pointers: the C extensions it calls
    /// (numpy, BLAS, most wheels) have none.
    Auto,
    /// Frame pointers (`perf record -g`): small recordings; needs the interpreter and every
    /// library the program spends time in built with frame pointers.
    Fp,
    /// Copies of the user stack (`--call-graph dwarf`): works on every build; larger files.
    Dwarf,
}

#[derive(Args, Debug)]
#[command(after_help = "EXAMPLES:\n  \
    perfpy record -- python app.py --app-arg\n  \
    perfpy record --flamegraph -- python app.py        and write flamegraph.svg\n  \
    perfpy record --mode wall -- python app.py         where it waits, and why\n  \
    perfpy record -F 499 -o slow.data -- ./venv/bin/python -m mypkg\n  \
    perfpy record --pid 4242 --duration 10     a running program: names on for 10 s (3.14+)\n  \
    perfpy record -a --duration 5              every process on this machine, Python named\n\n\
    Running programs (--pid, -a): names are switched on in each Python process for the\n\
    recording and off after (CPython 3.14+: nothing to prepare; 3.8-3.13: started with\n\
    perfpy installed and PERFPY_ATTACH=1), also on Ctrl-C and SIGTERM; processes with names\n\
    on already are left as they are; the others are listed with how to have names.")]
#[command(group(clap::ArgGroup::new("running").args(["pid", "all"])))]
pub struct RecordArgs {
    /// What to record: CPU time, wall-clock time (CPU time and waits, each wait with its
    /// reason), or only the waits.
    #[arg(long, value_enum, default_value_t = Mode::Cpu)]
    pub mode: Mode,
    /// Samples per second (of CPU time).
    #[arg(short = 'F', long, value_name = "HZ", default_value_t = 999)]
    pub frequency: u32,
    /// Which file tells perf the Python names.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Whose trampoline names the functions. An interpreter without perfpy installed gets
    /// it lent for the run (from the package this command came with, through PYTHONPATH;
    /// nothing is written into its environment).
    #[arg(long, value_enum, default_value_t = Trampoline::Auto)]
    pub trampoline: Trampoline,
    /// How perf records call stacks.
    #[arg(long, value_enum, default_value_t = CallGraph::Auto)]
    pub call_graph: CallGraph,
    /// With DWARF call graphs: how much of each thread's stack perf copies with every sample.
    /// The default is perf's limit, which programs some 60 Python functions deep need on
    /// distributions' interpreters; a smaller copy makes perf's work lighter and loses the
    /// outer frames of deeper stacks, which `perfpy report` then counts and says.
    #[arg(long, value_name = "BYTES", default_value_t = perf::DEFAULT_STACK_COPY,
          value_parser = stack_size)]
    pub stack_size: u32,
    /// Write the recording uncompressed, for readers that can't take compressed ones: samply
    /// 0.13 (it reads no sample of them) and perf inject --jit (perf 6.1 and 7.2 lose the
    /// Python names; --keep-jit-files, which is for perf inject, records uncompressed). By
    /// default perf compresses as it records (zstd, `perf record -z`, where perf was built
    /// with it): some 100 times smaller, read by perfpy report, perf report and perf script.
    #[arg(long)]
    pub no_compress: bool,
    /// The recording to write.
    #[arg(short, long, value_name = "FILE", default_value = "perf.data")]
    pub output: PathBuf,
    /// The interpreter the command runs, when perfpy can't tell (a launcher script without
    /// a Python shebang).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// perf event to sample (default: perf's own choice, cycles or cpu-clock). With --mode
    /// cpu only: the other modes choose their events.
    #[arg(short, long, value_name = "EVENT")]
    pub event: Option<String>,
    /// Leave the perf map / jitdump in /tmp (for perf inject --jit and perf report)
    /// instead of moving them next to the recording; the recording is then written
    /// uncompressed, which perf inject --jit needs.
    #[arg(long)]
    pub keep_jit_files: bool,
    /// Record a running process instead of starting one. On CPython 3.14+ perfpy switches
    /// Python names on inside it for the recording and off again after (PEP 768's remote
    /// execution; needs ptrace permission); before 3.14 it must have been started with perfpy
    /// installed and PERFPY_ATTACH=1 (switchable the same way), or with names on
    /// (PYTHONPERFSUPPORT=1, PERFPY_BACKEND=perf_jit). What it forks meanwhile is recorded
    /// too, and switched off with it. Several: `-p 12,34` (or -p repeated).
    #[arg(
        short,
        long,
        value_name = "PID",
        conflicts_with = "command",
        value_delimiter = ','
    )]
    pub pid: Vec<u32>,
    /// Record the whole machine (`perf record -a`), with Python names switched on in every
    /// Python process on it (containers' too) as --pid does, and in those that start
    /// meanwhile where they can be; the report groups the samples by process. Needs root
    /// (or kernel.perf_event_paranoid at 0 or below, and ptrace permission).
    #[arg(short = 'a', long = "all", conflicts_with_all = ["command", "pid"])]
    pub all: bool,
    /// With --pid or -a: how long to record (default: until Ctrl-C).
    #[arg(long, value_name = "SECONDS", requires = "running")]
    pub duration: Option<f64>,
    /// How many functions the summary lists.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top: usize,
    /// Also write a flamegraph of the recording (default file: flamegraph.svg), as
    /// `perfpy report --format flamegraph` would.
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true,
          default_missing_value = "flamegraph.svg")]
    pub flamegraph: Option<PathBuf>,
    /// The program to run: `-- python app.py args...`. Everything from its first word on is
    /// the program's; an option of perfpy's must come before it. (A program whose name
    /// starts with `-` goes after `--`.)
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        required_unless_present_any = ["pid", "all"]
    )]
    pub command: Vec<OsString>,
    /// Read as it is written (`perfpy top`, which makes these arguments itself).
    #[arg(skip)]
    pub streaming: bool,
    /// Words perf runs the command through (`perfpy top`: a shell that gives the program
    /// other standard output and error than perf's, which is the recording).
    #[arg(skip)]
    pub wrapper: Vec<OsString>,
}

impl RecordArgs {
    /// Whether running processes are recorded (`--pid`, `-a`) rather than a program started.
    pub fn attaching(&self) -> bool {
        self.all || !self.pid.is_empty()
    }
}

/// `--stack-size`: a number of bytes perf can copy, rounded up to whole 8-byte words as perf
/// does.
fn stack_size(text: &str) -> Result<u32, String> {
    let n: u32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of bytes"))?;
    if n == 0 || n > perf::MAX_STACK_COPY {
        return Err(format!(
            "perf copies between 8 and {} bytes of stack; {n} is out of range",
            perf::MAX_STACK_COPY
        ));
    }
    Ok(n.div_ceil(8) * 8)
}

#[derive(Args, Debug)]
#[command(after_help = "EXAMPLES:\n  \
    perfpy report                              top functions in perf.data\n  \
    perfpy report --format collapsed > app.folded\n  \
    perfpy report --format flamegraph -o app.svg\n  \
    perfpy report --format speedscope          profile.speedscope.json\n  \
    perfpy report --format firefox             profile.firefox.json\n  \
    perfpy report --format pprof               profile.pb.gz (Pyroscope, Parca, go tool pprof)\n  \
    perfpy report --native all                 keep the interpreter's frames between Python frames\n  \
    perfpy report --sysroot ./arm64-root --kallsyms kallsyms.txt\n  \
                                               a recording made on another machine (an aarch64 one)")]
pub struct ReportArgs {
    /// The recording (perf record's or perfpy record's).
    #[arg(short, long, value_name = "FILE", default_value = "perf.data")]
    pub input: PathBuf,
    /// What to write.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Where to write ("-": standard output). Default: standard output for text and
    /// collapsed, flamegraph.svg, profile.speedscope.json, profile.firefox.json or
    /// profile.pb.gz for the others.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Which native frames to keep.
    #[arg(long, value_enum, default_value_t = NativeView::Leaf)]
    pub native: NativeView,
    /// Only these processes (repeatable).
    #[arg(long, value_name = "PID")]
    pub pid: Vec<i32>,
    /// A directory with perf-<pid>.map / jit-<pid>.dump files, searched before
    /// <input>.perfpy/ and /tmp (repeatable).
    #[arg(long, value_name = "DIR")]
    pub jit_dir: Vec<PathBuf>,
    /// A recording made on another machine (an aarch64 server's, read here): a copy of its
    /// files (its root, or a directory holding some of its binaries at their paths), searched
    /// before this machine's, as perf's --symfs. Repeatable: searched in order.
    #[arg(long, value_name = "DIR")]
    pub sysroot: Vec<PathBuf>,
    /// The recorded kernel's symbols (a copy of its /proc/kallsyms, taken while it ran), to
    /// name kernel frames of a recording made on another machine or in another boot.
    #[arg(long, value_name = "FILE")]
    pub kallsyms: Option<PathBuf>,
    /// How many functions the text table lists.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,
    /// Which event's samples to report, in a recording of several (`perf record -e cpu-clock
    /// -e sched:sched_switch`): perf's name for it (`sched:sched_switch`), without its
    /// modifiers (`cpu-clock` for `cpu-clock:ppp`), or its generic name (`context-switches`
    /// for `cs`). Samples of different events count different things, so a report is of one.
    /// Default: the first event; the report lists the others.
    #[arg(long, value_name = "NAME")]
    pub event: Option<String>,
    /// Wall-clock and off-CPU profiles: leave out the idle threads, those on the CPU for less
    /// than 1% of their time (a pool's workers waiting on their queue). They are counted in
    /// a note.
    #[arg(long, overrides_with = "idle")]
    pub no_idle: bool,
    /// Keep every thread, idle ones included (the default).
    #[arg(long, overrides_with = "no_idle")]
    pub idle: bool,
    /// The text report: each process's share of the samples, then each one's own tables
    /// (the default for system-wide recordings, `perfpy record -a`).
    #[arg(long)]
    pub by_process: bool,
}

#[derive(Args, Debug)]
#[command(after_help = "EXAMPLES:\n  \
    perfpy top -p 4242                 a running program (CPython 3.14+, or PERFPY_ATTACH=1)\n  \
    perfpy top -a                      every process on this machine, Python named\n  \
    perfpy top -- python app.py        start it, and watch it\n  \
    perfpy top -p 4242 --mode wall     where the time goes, waits included\n  \
    perfpy top -a --plain --duration 30 --window all > top.log\n\n\
    KEYS:\n  \
    s / t        sort by self / by total\n  \
    n            hide or show native code\n  \
    w            the last seconds, or everything since the start\n  \
    Tab          next process (Shift-Tab: previous); the first is all of them\n  \
    space, p     pause the display (recording goes on)\n  \
    q, Ctrl-C    quit (names switched on are switched off)")]
#[command(group(clap::ArgGroup::new("running").args(["pid", "all"])))]
pub struct TopArgs {
    /// Running processes to watch: `-p 12,34` (or -p repeated). CPython 3.14+ needs nothing;
    /// 3.8-3.13 must have been started with perfpy installed and PERFPY_ATTACH=1, or with
    /// names on.
    #[arg(
        short,
        long,
        value_name = "PID",
        value_delimiter = ',',
        conflicts_with = "command"
    )]
    pub pid: Vec<u32>,
    /// Watch the whole machine: every process, with Python names switched on in every Python
    /// process (as `record -a`). Needs root.
    #[arg(short = 'a', long = "all", conflicts_with_all = ["command", "pid"])]
    pub all: bool,
    /// What to show: CPU time, or wall-clock time (CPU time and waits, each with its reason).
    #[arg(long, value_enum, default_value_t = Mode::Cpu)]
    pub mode: Mode,
    /// Samples per second (of CPU time).
    #[arg(short = 'F', long, value_name = "HZ", default_value_t = 999)]
    pub frequency: u32,
    /// How much time the view covers: the last SECONDS, or `all` (since the start). `w`
    /// switches between the two.
    #[arg(long, value_name = "SECONDS|all", default_value = "10", value_parser = window)]
    pub window: crate::commands::top::Window,
    /// Seconds between refreshes (and between snapshots without a terminal).
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = interval)]
    pub interval: f64,
    /// Stop after this many seconds (default: until q, Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Print snapshots (the report's text tables) instead of a live screen, even on a
    /// terminal.
    #[arg(long)]
    pub plain: bool,
    /// Rows per table.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,
    /// What the tables are sorted by, at the start.
    #[arg(long, value_enum, default_value_t = crate::commands::top::Sort::Own)]
    pub sort: crate::commands::top::Sort,
    /// Start with native code hidden (`n` shows it).
    #[arg(long)]
    pub no_native: bool,
    /// Also keep what perf recorded in FILE, with the Python names beside it in
    /// FILE.perfpy/, for `perfpy report -i FILE` afterwards.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// With a program started by top on a live screen: where its standard output and error
    /// go (default: nowhere; the screen is top's). Without a screen they go to top's stderr.
    #[arg(long, value_name = "FILE")]
    pub program_output: Option<PathBuf>,
    /// How perf records call stacks.
    #[arg(long, value_enum, default_value_t = CallGraph::Auto)]
    pub call_graph: CallGraph,
    /// With DWARF call graphs: how much of each thread's stack perf copies with every sample.
    #[arg(long, value_name = "BYTES", default_value_t = perf::DEFAULT_STACK_COPY,
          value_parser = stack_size)]
    pub stack_size: u32,
    /// The interpreter the command runs, when perfpy can't tell.
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// The program to start and watch: `-- python app.py args...`.
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        required_unless_present_any = ["pid", "all"]
    )]
    pub command: Vec<OsString>,
}

/// `--window`: a number of seconds, or `all`.
fn window(text: &str) -> Result<crate::commands::top::Window, String> {
    use crate::commands::top::Window;
    if text == "all" || text == "0" {
        return Ok(Window::All);
    }
    match text.parse::<u64>() {
        Ok(n) => Ok(Window::Last(n)),
        Err(_) => Err(format!("{text:?} is neither a number of seconds nor `all`")),
    }
}

/// `--interval`: at least a tenth of a second.
fn interval(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.1..=3600.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "{text:?}: give a number of seconds from 0.1 to 3600"
        )),
    }
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// The interpreter to check (default: python3 on PATH).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Skip the one-second test recording.
    #[arg(long)]
    pub no_record: bool,
}

#[derive(Args, Debug)]
pub struct CleanArgs {
    /// Delete the files listed (otherwise only list them).
    #[arg(long)]
    pub delete: bool,
    /// Where the files are (perf only looks in /tmp).
    #[arg(long, value_name = "DIR", default_value = "/tmp")]
    pub dir: PathBuf,
    /// Also remove perf's build-id cache entries of those jitted-*.so files
    /// ($HOME/.debug/<dir>/jitted-<pid>-<n>.so).
    #[arg(long)]
    pub build_id_cache: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn backend_takes_cpythons_spelling_too() {
        for spelling in ["perf-jit", "perf_jit"] {
            let cli = Cli::parse_from(["perfpy", "record", "--backend", spelling, "--", "python"]);
            let Command::Record(a) = cli.command else {
                panic!("not record")
            };
            assert_eq!(a.backend, Backend::PerfJit, "{spelling}");
        }
        assert!(Cli::try_parse_from(["perfpy", "record", "--backend", "jit", "--", "x"]).is_err());
    }

    fn record(words: &[&str]) -> Result<RecordArgs, clap::Error> {
        let argv = ["perfpy", "record"].iter().chain(words);
        match Cli::try_parse_from(argv)?.command {
            Command::Record(a) => Ok(a),
            other => panic!("not record: {other:?}"),
        }
    }

    #[test]
    fn a_mistyped_option_is_refused_by_name_not_run_as_the_program() {
        let e = record(&["--outptu", "w.data", "--", "python", "app.py"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
        let text = e.render().to_string();
        assert!(text.contains("'--outptu'"), "{text}");
        assert!(
            text.contains("a similar argument exists: '--output'"),
            "{text}"
        );
        let e = record(&["-F", "99", "--nothing-like-it", "python", "app.py"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    #[test]
    fn the_programs_own_words_are_the_programs() {
        let words = |a: RecordArgs| -> Vec<String> {
            a.command
                .iter()
                .map(|w| w.to_string_lossy().into_owned())
                .collect()
        };
        // After `--`, a program whose name starts with `-`.
        let a = record(&["--", "-odd-name", "--flag"]).unwrap();
        assert_eq!(words(a), ["-odd-name", "--flag"]);
        // From the program's first word on, its options (even ones perfpy has too).
        let a = record(&[
            "-F",
            "99",
            "python",
            "-X",
            "importtime",
            "app.py",
            "-o",
            "x",
        ])
        .unwrap();
        assert_eq!(a.frequency, 99);
        assert_eq!(a.output, PathBuf::from("perf.data"));
        assert_eq!(
            words(a),
            ["python", "-X", "importtime", "app.py", "-o", "x"]
        );
        let a = record(&["-o", "y.data", "--", "python", "-c", "pass"]).unwrap();
        assert_eq!(a.output, PathBuf::from("y.data"));
        assert_eq!(words(a), ["python", "-c", "pass"]);
    }

    #[test]
    fn stack_sizes_are_perfs() {
        assert_eq!(
            record(&["--", "p"]).unwrap().stack_size,
            perf::DEFAULT_STACK_COPY
        );
        assert_eq!(
            record(&["--stack-size", "65528", "--", "p"])
                .unwrap()
                .stack_size,
            65528
        );
        assert_eq!(
            record(&["--stack-size", "1001", "--", "p"])
                .unwrap()
                .stack_size,
            1008
        );
        for bad in ["0", "65529", "64k"] {
            let e = record(&["--stack-size", bad, "--", "p"]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
        }
        assert!(record(&["--stack-size", "-8", "--", "p"]).is_err());
    }

    #[test]
    fn clean_defaults_to_listing_tmp() {
        let cli = Cli::parse_from(["perfpy", "clean"]);
        let Command::Clean(a) = cli.command else {
            panic!("not clean")
        };
        assert!(!a.delete && !a.build_id_cache);
        assert_eq!(a.dir, PathBuf::from("/tmp"));
    }
}
