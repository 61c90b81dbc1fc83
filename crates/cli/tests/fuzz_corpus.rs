//! Replays the fuzz corpus (`fuzz/corpus/<target>/`: the seeds, and every input a fuzz run
//! found to crash, kept as regression cases) through the same entry points the fuzz targets
//! call (`perfpy_cli::fuzzing`), without a fuzzer: a short, deterministic check that runs with
//! `cargo test`.

use perfpy_cli::fuzzing;
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
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
        .into_iter()
        .map(|f| {
            let data = std::fs::read(&f).unwrap();
            (f, data)
        })
        .collect()
}

#[test]
fn perf_map_corpus() {
    let scratch = fuzzing::scratch_dir("corpus-map");
    for (_, data) in corpus("perf_map") {
        fuzzing::perf_map(&data, &scratch);
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
fn jitdump_corpus() {
    let scratch = fuzzing::scratch_dir("corpus-jitdump");
    for (_, data) in corpus("jitdump") {
        fuzzing::jitdump(&data, &scratch);
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
fn perf_data_corpus() {
    // The seeds are real recordings: a finished one, the same with perf's header unfinished
    // (as a killed perf leaves it), and a DWARF one cut short; each gives samples.
    for (f, _) in corpus("perf_data") {
        let samples = fuzzing::perf_data(&f, vec![]);
        let crash = f
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("crash-");
        assert!(crash || samples > 0, "{}: no sample", f.display());
    }
}
