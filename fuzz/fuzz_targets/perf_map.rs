//! The perf map reader: the format crate's line parser and the report's loader (which also
//! handles a file cut mid-line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use perfpy_cli::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::perf_map(data, &fuzzing::scratch_dir("fuzz")));
