//! Finding perf, reading its version and what it was built with, and the limits of what
//! it records.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The most user stack perf copies with a sample (`--call-graph dwarf,65528`): a 16-bit size,
/// rounded down to whole words.
pub const MAX_STACK_COPY: u32 = 65528;

/// The user stack `perfpy record` has perf copy with each sample by default: all it can. A
/// program 60 Python functions deep under perfpy's trampoline needs 26 to 32 KiB of stack on
/// CPython 3.8-3.13 built -O3 (pyenv), and 55-56 KiB on Debian's 3.14 and 3.15, whose
/// evaluator frames are larger; with calls through C between them, more than 64 KiB
/// (`benches/stack_size.py`; the README's table). Only the whole copy keeps 99% of such
/// stacks whole on every interpreter measured. Compression (`-z`) makes the unused part of
/// each copy cost next to nothing in the file.
pub const DEFAULT_STACK_COPY: u32 = MAX_STACK_COPY;

/// A perf version as `perf version` prints it. Distribution strings vary: `6.1.187`,
/// `6.7-3` (Debian revision, not a patch level), `6.7.5-200.fc39.x86_64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    /// The patch level, when the string has one (`6.7-3` has none).
    pub patch: Option<u32>,
}

impl Version {
    /// Parses the first `MAJOR.MINOR[.PATCH]` in `text`.
    pub fn parse(text: &str) -> Option<Version> {
        let start = text.find(|c: char| c.is_ascii_digit())?;
        let rest = &text[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let mut parts = rest[..end].split('.').filter(|p| !p.is_empty());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok());
        Some(Version {
            major,
            minor,
            patch,
        })
    }

    /// Whether perf's DWARF unwinder handles `perf inject --jit` code (the fixes of the
    /// "perf tools: Random fixes for DWARF unwind" series: 6.8, backported to 6.7.2 and to
    /// the 6.1 stable series in 2024). `None`: can't tell from the version. The one place
    /// perfpy judges this; [`DWARF_JIT_UNWINDING_FROM`] says it in messages.
    pub fn dwarf_jit_unwinding(self) -> Option<bool> {
        let v = (self.major, self.minor);
        if v >= (6, 8) {
            return Some(true);
        }
        match (v, self.patch) {
            ((6, 7), Some(p)) => Some(p >= 2),
            // 6.1.187 is verified; stable 6.1 releases from mid-2024 carry the backport.
            ((6, 1), Some(p)) if p >= 187 => Some(true),
            ((6, 1), _) => None,
            _ if v < (6, 1) => Some(false),
            _ => None,
        }
    }
}

/// The perf releases from which [`Version::dwarf_jit_unwinding`] judges perf able to unwind
/// `perf inject --jit` code with DWARF, for messages (a unit test holds the two together).
pub const DWARF_JIT_UNWINDING_FROM: &str = "6.8, 6.7.2, 6.1.187";

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.patch {
            Some(p) => write!(f, "{}.{}.{p}", self.major, self.minor),
            None => write!(f, "{}.{}", self.major, self.minor),
        }
    }
}

/// The first file called `name` in a directory of PATH.
pub fn on_path(name: impl AsRef<std::path::Path>) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name.as_ref()))
        .find(|p| p.is_file())
}

/// `perf` on PATH.
pub fn locate() -> Option<PathBuf> {
    on_path("perf")
}

/// Whether the perf at `perf` compresses recordings as it writes them (`perf record -z`,
/// zstd), from `perf version --build-options`; `None` when it doesn't say.
pub fn compresses(perf: &Path) -> Option<bool> {
    let out = Command::new(perf)
        .args(["version", "--build-options"])
        .output()
        .ok()?;
    zstd_built_in(&String::from_utf8_lossy(&out.stdout))
}

/// The `zstd: [ on  ]` line of `perf version --build-options`.
fn zstd_built_in(build_options: &str) -> Option<bool> {
    let line = build_options
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("zstd:"))?;
    Some(line.trim_start().starts_with("[ on"))
}

/// `perf version`'s output, trimmed.
pub fn version_text(perf: &std::path::Path) -> std::io::Result<String> {
    let out = Command::new(perf).arg("version").output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_distribution_version_strings() {
        // perf 7 (Debian sid's linux-perf 7.2.13-1 prints "perf version 7.2.13").
        let v = Version::parse("perf version 7.2.13").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (7, 2, Some(13)));
        assert_eq!(v.dwarf_jit_unwinding(), Some(true));
        let v = |s| Version::parse(s).unwrap();
        assert_eq!(
            v("perf version 6.1.187"),
            Version {
                major: 6,
                minor: 1,
                patch: Some(187)
            }
        );
        assert_eq!(
            v("perf version 6.7-3"),
            Version {
                major: 6,
                minor: 7,
                patch: None
            }
        );
        assert_eq!(
            v("perf version 6.7.5-200.fc39.x86_64"),
            Version {
                major: 6,
                minor: 7,
                patch: Some(5)
            }
        );
        assert_eq!(
            v("perf version 5.15.143"),
            Version {
                major: 5,
                minor: 15,
                patch: Some(143)
            }
        );
        assert!(Version::parse("perf version unknown").is_none());
    }

    #[test]
    fn reads_zstd_from_the_build_options() {
        let on = "perf version 6.1.187\n                  zlib: [ on  ]  # HAVE_ZLIB_SUPPORT\n\
                  \x20                 zstd: [ on  ]  # HAVE_ZSTD_SUPPORT\n";
        assert_eq!(zstd_built_in(on), Some(true));
        let off = "perf version 5.10\n                  zstd: [ OFF ]  # HAVE_ZSTD_SUPPORT\n";
        assert_eq!(zstd_built_in(off), Some(false));
        assert_eq!(zstd_built_in("perf version 4.9\n"), None);
        assert_eq!(zstd_built_in("libzstd: [ on ]"), None);
    }

    #[test]
    fn dwarf_jit_unwinding_by_version() {
        let v = |s| Version::parse(s).unwrap().dwarf_jit_unwinding();
        assert_eq!(v("6.8"), Some(true));
        assert_eq!(v("6.18.3"), Some(true));
        assert_eq!(v("6.7.2"), Some(true));
        assert_eq!(v("6.7.1"), Some(false));
        assert_eq!(v("6.7-3"), None); // Debian revision: can't tell
        assert_eq!(v("6.1.187"), Some(true));
        assert_eq!(v("6.1.50"), None);
        assert_eq!(v("5.15.143"), Some(false));
        assert_eq!(v("6.5.0"), None);
    }

    #[test]
    fn the_versions_messages_name_are_the_ones_judged_able() {
        for named in DWARF_JIT_UNWINDING_FROM.split(", ") {
            let v = Version::parse(named).unwrap();
            assert_eq!(v.dwarf_jit_unwinding(), Some(true), "{named}");
            // The release before it is not judged able.
            let before = Version {
                patch: v.patch.map(|p| p - 1),
                minor: if v.patch.is_some() {
                    v.minor
                } else {
                    v.minor - 1
                },
                ..v
            };
            assert_ne!(before.dwarf_jit_unwinding(), Some(true), "{before}");
        }
    }
}
