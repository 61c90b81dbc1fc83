//! The perf.data reading path of `perfpy report`: header repair, records, unwinding and
//! naming, and every output format.
#![no_main]

use clap::ValueEnum;
use libfuzzer_sys::fuzz_target;
use perfpy_cli::report::{output, read, NativeView};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("perfpy-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("perf.data");
    std::fs::write(&path, data).unwrap();
    let opts = read::Options {
        jit_dirs: vec![dir.clone()],
        progress: false,
    };
    if let Ok(profile) = read::read(&path, &opts) {
        let profile = profile.with_view(NativeView::Leaf);
        let meta = output::Meta {
            title: String::new(),
            top: 20,
        };
        for &format in output::Format::value_variants() {
            let _ = output::write(&profile, format, &meta, &mut std::io::sink());
        }
    }
});
