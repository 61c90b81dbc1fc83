//! The `perfpy` command's code, as a library: `main.rs` runs it, and the fuzz targets
//! (`fuzz/`) drive its readers (perf maps, jitdumps, perf.data) directly.

pub mod attach;
pub mod cli;
pub mod commands;
pub mod fuzzing;
pub mod lend;
pub mod perf;
pub mod plan;
pub mod procfs;
pub mod python;
pub mod recording;
pub mod report;
pub mod roster;
pub mod sampling;
pub mod say;
pub mod signals;
