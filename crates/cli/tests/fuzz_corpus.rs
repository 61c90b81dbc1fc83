//! Replays the fuzz corpus (`fuzz/corpus/<target>/`: the seeds, and every input a fuzz run
//! found to crash, kept as regression cases) through the same readers the fuzz targets drive,
//! without a fuzzer: a short, deterministic check that runs with `cargo test`.

use perfpy_cli::report::{jit, output, read, NativeView};
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files
}

fn scratch(name: &str, data: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("perfpy-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

#[test]
fn perf_map_corpus() {
    for f in corpus("perf_map") {
        let data = std::fs::read(&f).unwrap();
        let _ = perfpy_format::perf_map::parse(&String::from_utf8_lossy(&data)).count();
        let info = jit::load(&[scratch("perf-4242.map", &data)]);
        assert!(
            info.stubs.iter().all(|s| s.start <= s.end),
            "{}",
            f.display()
        );
    }
}

#[test]
fn jitdump_corpus() {
    for f in corpus("jitdump") {
        let data = std::fs::read(&f).unwrap();
        let _ = perfpy_format::jitdump::read(&data);
        let info = jit::load(&[scratch("jit-4242.dump", &data)]);
        assert!(
            info.stubs.iter().all(|s| s.start <= s.end),
            "{}",
            f.display()
        );
    }
}

#[test]
fn perf_data_corpus() {
    use clap::ValueEnum;
    // The seeds are real recordings: a finished one, the same with perf's header unfinished
    // (as a killed perf leaves it), and a DWARF one cut short.
    let mut read_any = false;
    for f in corpus("perf_data") {
        let opts = read::Options {
            jit_dirs: vec![],
            progress: false,
        };
        if let Ok(profile) = read::read(&f, &opts) {
            read_any |= profile.stats.samples > 0;
            let profile = profile.with_view(NativeView::Leaf);
            let meta = output::Meta {
                title: String::new(),
                top: 20,
            };
            for &format in output::Format::value_variants() {
                let _ = output::write(&profile, format, &meta, &mut std::io::sink());
            }
        }
    }
    assert!(read_any, "no seed gave a sample");
}
