//! The file formats through which a process tells `perf` about code it generated at run time.
//!
//! This crate is pure Rust with no Python and no process policy: it knows how the bytes look
//! and what the files are called, not when they are written. The extension writes with it, the tests and
//! tools read with it, so writer and reader cannot drift apart.
//!
//! * [`perf_map`]: `/tmp/perf-<pid>.map`, one text line per code region:
//!   `<start hex> <size hex> <symbol>`. perf reads it when it symbolizes samples of that pid.
//!
//! * [`jitdump`]: `/tmp/jit-<pid>.dump`, binary records that carry each stub's code and name,
//!   read by `perf inject --jit`.
//! * [`files`]: where those files are, `perf-<pid>.map` and `jit-<pid>.dump` in `/tmp`.
//! * [`eh_frame`]: the DWARF call-frame information (`.eh_frame` + `.eh_frame_hdr`) a jitdump
//!   carries for each stub, so perf's DWARF unwinder can step through it.
//!
//! ```
//! use perfpy_format::perf_map;
//!
//! let mut line = Vec::new();
//! perf_map::write_entry(&mut line, 0x7f00_1234_5670, 8, "py::foo:/srv/app.py");
//! assert_eq!(line, b"7f0012345670 8 py::foo:/srv/app.py\n");
//!
//! let entry = perf_map::parse_line("7f0012345670 8 py::foo:/srv/app.py").unwrap();
//! assert_eq!((entry.start, entry.size, entry.name), (0x7f00_1234_5670, 8, "py::foo:/srv/app.py"));
//! ```

pub mod eh_frame;
pub mod files;
pub mod jitdump;
pub mod perf_map;
