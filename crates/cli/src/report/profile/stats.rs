//! What a report says beside its samples: how the recording was read (counters, stack use,
//! processes with names off), and what `perfpy record` found of the processes it recorded.

/// Counters about how the recording was read, for the report's footer.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub samples: u64,
    /// Samples whose user stack couldn't be unwound past the first frame.
    pub truncated: u64,
    pub lost_events: u64,
    /// Binaries mapped by the profiled processes that couldn't be read.
    pub missing_binaries: Vec<String>,
    /// Files at the recorded binaries' paths that are built for another CPU (a recording
    /// made on another machine, read without its `--sysroot`).
    pub foreign_binaries: Vec<String>,
    /// pids with samples in Python stubs for which no perf map or jitdump was found.
    pub pids_without_names: Vec<i32>,
    /// Processes that ran Python with its names off (no switch, no perf map or jitdump).
    pub names_off: Vec<NamesOff>,
    /// Stripped binaries without a debug file whose unnamed functions many samples pass
    /// through, the most first.
    pub stripped: Vec<Stripped>,
    /// How much of the stack copies (`--call-graph dwarf`) the unwinds used.
    pub stack: StackUse,
    /// The perf maps and jitdumps read.
    pub jit_files: Vec<std::path::PathBuf>,
    pub problems: Vec<String>,
}

/// How deep the user stacks were, against the copy of them perf took with each sample
/// (`--call-graph dwarf,SIZE`).
#[derive(Debug, Default, Clone)]
pub struct StackUse {
    /// The copy's size perf was asked for, in bytes (`None`: no stack copies).
    pub copy: Option<u32>,
    /// Samples unwound to their root, by how much of the copy they used: index `k` counts
    /// those that needed more than `k - 1` and at most `k` KiB.
    pub whole_kib: Vec<u64>,
    /// Samples whose stack went on past the copy: their outer frames are missing.
    pub cut: u64,
}

impl StackUse {
    /// Counts a sample unwound to its root that used `bytes` of its stack copy.
    pub fn whole(&mut self, bytes: u64) {
        let kib = bytes.div_ceil(1024) as usize;
        if self.whole_kib.len() <= kib {
            self.whole_kib.resize(kib + 1, 0);
        }
        self.whole_kib[kib] += 1;
    }

    /// Samples unwound to their root.
    pub fn whole_samples(&self) -> u64 {
        self.whole_kib.iter().sum()
    }

    /// The smallest copy, in KiB, that would have held the whole stack of `share` (0 to 1) of
    /// the samples unwound to their root.
    pub fn kib_for(&self, share: f64) -> usize {
        let need = (self.whole_samples() as f64 * share).ceil() as u64;
        let mut seen = 0;
        for (kib, n) in self.whole_kib.iter().enumerate() {
            seen += n;
            if seen >= need {
                return kib;
            }
        }
        self.whole_kib.len().saturating_sub(1)
    }
}

/// A process that ran Python with its names off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamesOff {
    pub pid: i32,
    /// The interpreter's `(major, minor)`, when its file name says it.
    pub version: Option<(u32, u32)>,
}

/// A stripped binary of the recording, with no debug file found: only the functions it
/// exports have names, the others show as one frame named after the file (`[python3.11]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Stripped {
    /// Its path, as the recording has it.
    pub path: String,
    /// The root of the file system its file was read from: `/` (this machine's), a
    /// `--sysroot`, a running container's `/proc/<pid>/root`.
    pub root: std::path::PathBuf,
    /// What its unnamed functions show as: `[python3.11]`.
    pub frame: String,
    /// The share of the samples (of their weight) that pass through them (an interpreter) or
    /// whose innermost user-space frame is one of them (another binary), 0 to 1.
    pub share: f64,
    /// Files at the paths its build id or `.gnu_debuglink` name, of another build of it.
    pub others: Vec<std::path::PathBuf>,
    /// A CPython interpreter's binary (`python3.11`, `libpython3.11.so.1.0`), with its
    /// `(major, minor)` when the file name says it.
    pub python: Option<Option<(u32, u32)>>,
    /// Its build id, in hex.
    pub build_id: Option<String>,
    /// The file name its `.gnu_debuglink` gives.
    pub debuglink: Option<String>,
}

/// A recorded process as `perfpy record --pid`/`-a` found it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct ProcessInfo {
    pub pid: i32,
    /// Its parent when it was found (0: not known).
    #[serde(default)]
    pub ppid: i32,
    #[serde(default)]
    pub cmdline: String,
    /// `CPython 3.12`.
    #[serde(default)]
    pub interpreter: String,
    /// Whether its Python names were on, and how (`names switched on (PEP 768, ...)`).
    #[serde(default)]
    pub names: String,
}
