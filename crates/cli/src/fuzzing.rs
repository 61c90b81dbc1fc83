//! What the fuzz targets (`fuzz/`) and the replay of their corpus (`tests/fuzz_corpus.rs`)
//! feed each input to: the readers, as `perfpy report` runs them on files from disk. A panic
//! is a finding; so is a stub whose range runs backwards.

use crate::report::{jit, output, read, NativeView};
use clap::ValueEnum;
use std::path::{Path, PathBuf};

/// A scratch directory of this process's own, for the files an input is written to.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("perfpy-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory in the temporary directory");
    dir
}

/// The perf map line parser, then the report's loader (which also takes a file cut mid-line).
pub fn perf_map(data: &[u8], scratch: &Path) {
    for entry in perfpy_format::perf_map::parse(&String::from_utf8_lossy(data)).flatten() {
        let _ = entry.start.checked_add(entry.size);
    }
    load(scratch, "perf-4242.map", data);
}

/// The jitdump record parser, then the report's loader (names, lines, each stub's unwind
/// tables).
pub fn jitdump(data: &[u8], scratch: &Path) {
    let _ = perfpy_format::jitdump::read(data);
    load(scratch, "jit-4242.dump", data);
}

fn load(scratch: &Path, name: &str, data: &[u8]) {
    let path = scratch.join(name);
    std::fs::write(&path, data).expect("the scratch file written");
    let info = jit::load(&[path]);
    for s in &info.stubs {
        assert!(s.start <= s.end, "a stub ending before it starts: {s:?}");
    }
}

/// The perf.data reading path (header repair and checks, records, unwinding, naming), then
/// every output format. Returns how many samples were read: 0 if the file was refused.
pub fn perf_data(path: &Path, jit_dirs: Vec<PathBuf>) -> u64 {
    let opts = read::Options {
        jit_dirs,
        parents: Default::default(),
        progress: false,
        event: None,
        sysroot: Vec::new(),
        kallsyms: None,
    };
    let Ok(profile) = read::read(path, &opts) else {
        return 0;
    };
    let samples = profile.stats.samples;
    let profile = profile.with_view(NativeView::Leaf);
    let meta = output::Meta {
        title: String::new(),
        top: 20,
    };
    for &format in output::Format::value_variants() {
        let _ = output::write(&profile, format, &meta, &mut std::io::sink());
    }
    samples
}
