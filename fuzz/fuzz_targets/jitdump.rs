//! The jitdump reader: the format crate's record parser and the report's loader (names,
//! line numbers and each stub's unwind tables).
#![no_main]

use libfuzzer_sys::fuzz_target;
use perfpy_cli::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::jitdump(data, &fuzzing::scratch_dir("fuzz")));
