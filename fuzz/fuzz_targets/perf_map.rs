//! The perf map reader: the format crate's line parser and the report's loader (which also
//! handles a file cut mid-line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use perfpy_cli::report::jit;

fuzz_target!(|data: &[u8]| {
    for entry in perfpy_format::perf_map::parse(&String::from_utf8_lossy(data)).flatten() {
        let _ = entry.start.checked_add(entry.size);
    }
    let path = scratch("perf-4242.map", data);
    let info = jit::load(&[path]);
    for s in &info.stubs {
        assert!(s.start <= s.end);
    }
});

fn scratch(name: &str, data: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("perfpy-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}
