//! How much of perf's stack copy (`--call-graph dwarf,SIZE`) a recording's samples needed to
//! be unwound whole, as `perfpy report` unwinds them: one JSON object on stdout, for
//! `benches/stack_size.py`.
//!
//!     cargo run -p perfpy-cli --example stack_use -- perf.data [--pid PID]
//!
//! `whole_kib[k]`: samples unwound to their root that used more than `k - 1` and at most `k`
//! KiB of the copy; `cut`: samples whose stack went on past the copy.

use perfpy_cli::recording;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: stack_use <perf.data> [--pid PID]");
        std::process::exit(2);
    };
    let pid: Option<i32> = args
        .iter()
        .position(|a| a == "--pid")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse().ok());
    let profile = match recording::load(
        std::path::Path::new(path),
        &[],
        None,
        false,
        &Default::default(),
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{path}: {e:#}");
            std::process::exit(1);
        }
    };
    let s = &profile.stats;
    let samples = match pid {
        Some(pid) => profile.samples.iter().filter(|x| x.pid == pid).count() as u64,
        None => s.samples,
    };
    let out = serde_json::json!({
        "samples": samples,
        "copy": s.stack.copy,
        "whole_kib": s.stack.whole_kib,
        "cut": s.stack.cut,
        "lost_events": s.lost_events,
    });
    println!("{out}");
}
