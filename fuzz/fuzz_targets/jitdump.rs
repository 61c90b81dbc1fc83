//! The jitdump reader: the format crate's record parser and the report's loader (names,
//! line numbers and each stub's unwind tables).
#![no_main]

use libfuzzer_sys::fuzz_target;
use perfpy_cli::report::jit;

fuzz_target!(|data: &[u8]| {
    let _ = perfpy_format::jitdump::read(data);
    let path = scratch("jit-4242.dump", data);
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
