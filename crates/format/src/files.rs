//! Where perf looks for a process's announcements: `/tmp/perf-<pid>.map` and
//! `/tmp/jit-<pid>.dump`. The names are built and parsed here only, for the writer (the
//! extension), the reader (`perfpy report`) and the housekeeping (`perfpy record`, `clean`).
//!
//! ```
//! use perfpy_format::files::{self, Kind};
//!
//! assert_eq!(Kind::PerfMap.file_name(4242), "perf-4242.map");
//! assert_eq!(files::parse_file_name("jit-17.dump"), Some((Kind::Jitdump, 17)));
//! assert_eq!(files::parse_file_name("jit-17.dump.tmp"), None);
//! ```

use std::path::PathBuf;

/// The directory perf reads maps from and `perf inject --jit` expects dumps in.
pub const DIR: &str = "/tmp";

/// Which of the two files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `perf-<pid>.map`: text lines, [`crate::perf_map`].
    PerfMap,
    /// `jit-<pid>.dump`: binary records, [`crate::jitdump`].
    Jitdump,
}

impl Kind {
    /// Both kinds, perf map first.
    pub const ALL: [Kind; 2] = [Kind::PerfMap, Kind::Jitdump];

    fn affixes(self) -> (&'static str, &'static str) {
        match self {
            Kind::PerfMap => ("perf-", ".map"),
            Kind::Jitdump => ("jit-", ".dump"),
        }
    }

    /// `perf-<pid>.map` or `jit-<pid>.dump`.
    pub fn file_name(self, pid: u32) -> String {
        let (prefix, suffix) = self.affixes();
        format!("{prefix}{pid}{suffix}")
    }

    /// The path perf reads for `pid`, in [`DIR`].
    pub fn path(self, pid: u32) -> PathBuf {
        PathBuf::from(DIR).join(self.file_name(pid))
    }
}

/// The kind and pid of a file named as [`Kind::file_name`] names it; `None` for any other name.
pub fn parse_file_name(name: &str) -> Option<(Kind, u32)> {
    Kind::ALL.into_iter().find_map(|kind| {
        let (prefix, suffix) = kind.affixes();
        let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((kind, digits.parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in Kind::ALL {
            for pid in [1, 42, u32::MAX] {
                assert_eq!(parse_file_name(&kind.file_name(pid)), Some((kind, pid)));
            }
        }
        assert_eq!(Kind::Jitdump.path(7), PathBuf::from("/tmp/jit-7.dump"));
    }

    #[test]
    fn other_names_are_refused() {
        for name in [
            "perf-.map",
            "perf-12.map.bak",
            "perf-+12.map",
            "perf-1a.map",
            "jit-12.map",
            "jitted-12-3.so",
            "perf-99999999999.map",
            "perf-12.dump",
        ] {
            assert_eq!(parse_file_name(name), None, "{name}");
        }
    }
}
