//! The perf.data reading path of `perfpy report`: header repair, records, unwinding and
//! naming, and every output format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perfpy_cli::fuzzing;

fuzz_target!(|data: &[u8]| {
    let dir = fuzzing::scratch_dir("fuzz");
    let path = dir.join("perf.data");
    std::fs::write(&path, data).unwrap();
    fuzzing::perf_data(&path, vec![dir]);
});
