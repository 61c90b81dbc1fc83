//! Separate debug files: the full symbol table of a stripped binary, installed apart from it
//! (Debian's `-dbg` and `-dbgsym` packages, Fedora's `-debuginfo`, `objcopy --only-keep-debug`),
//! found as gdb finds it — by the binary's build id (`/usr/lib/debug/.build-id/ab/cdef….debug`),
//! then by its `.gnu_debuglink` (a file name and the file's CRC-32: beside the binary, in
//! `.debug/` beside it, under `/usr/lib/debug` + the binary's directory) — under each root its
//! files may be in: the `--sysroot` it was found in, the other `--sysroot`s, this machine's `/`.
//! A file found is used only if it is of this very build (its build id, or the CRC the binary
//! names). And, for a binary with none, what to say: how to get one.
//!
//! * `paths`: where a binary's debug file may be, by its build id and its `.gnu_debuglink`;
//! * `search`: the first file there of this very build, mapped;
//! * `advice`: for a binary with none, what to say.

mod advice;
mod paths;
mod search;

pub use advice::{distro, distro_of, stripped_warning, stripped_warning_for, Distro};
pub use paths::{build_id_paths, debuglink_paths, parse_debuglink};
pub use search::{crc32, find, DebugFile, Found};

/// Where debug files are installed, under a root.
const DEBUG_DIR: &str = "usr/lib/debug";
