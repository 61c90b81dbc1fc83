//! `perf.data` → named, whole call stacks, without `perf inject` or `perf report`, in three
//! steps:
//!
//! * [`read`]: the recording's records, each process's mappings and Python names,
//!   framehop unwinding, symbolization;
//! * [`profile`]: the result, a [`Profile`] of interned frames and stacks, and its tables;
//! * [`output`]: one writer per format.
//!
//! [`elf`] and [`jit`] are the symbol sources: binaries (sections, symbols, CPython's
//! trampoline CFI) and perf maps / jitdumps; [`debuginfo`] finds a stripped binary's separate
//! debug file.

pub mod debuginfo;
pub mod elf;
pub mod jit;
pub mod output;
pub mod profile;
pub mod read;

pub use profile::{
    Frame, Kind, Measure, NamesOff, NativeView, ProcessInfo, Profile, Sample, StackUse, Stats,
    Stripped,
};
