//! The jitdump format (`/tmp/jit-<pid>.dump`), as perf's
//! `tools/perf/Documentation/jitdump-specification.txt` defines it, writer side.
//!
//! A file is a 40-byte header followed by records, all in native byte order. Each record
//! starts with `{u32 id, u32 total_size, u64 timestamp}`. For each stub perfpy writes a
//! `JIT_CODE_UNWINDING_INFO` record immediately followed by the `JIT_CODE_LOAD` it describes
//! (perf attaches pending unwind info to the next load), and `JIT_CODE_CLOSE` at exit.
//!
//! Differences from CPython 3.13's writer, on purpose: `elf_mach` is the real machine (3.13.0
//! writes 0), the header timestamp is `CLOCK_MONOTONIC` like the records, and the caller
//! writes each stub's pair of records in one `write(2)` (no stdio buffer to lose or to
//! duplicate across `fork()`).

use crate::eh_frame::{StubUnwindInfo, EH_FRAME_HDR_SIZE};

/// `"JiTD"` read as a native-endian u32.
pub const MAGIC: u32 = 0x4A69_5444;
/// The only version perf accepts.
pub const VERSION: u32 = 1;
/// Size of the file header.
pub const HEADER_SIZE: usize = 40;
/// Size of every record's header.
pub const RECORD_HEADER_SIZE: usize = 16;

/// Record ids.
pub mod id {
    /// `JIT_CODE_LOAD`: code was loaded at an address.
    pub const CODE_LOAD: u32 = 0;
    /// `JIT_CODE_MOVE`.
    pub const CODE_MOVE: u32 = 1;
    /// `JIT_CODE_DEBUG_INFO`: source lines for the next loaded code.
    pub const CODE_DEBUG_INFO: u32 = 2;
    /// `JIT_CODE_CLOSE`: the writer is done.
    pub const CODE_CLOSE: u32 = 3;
    /// `JIT_CODE_UNWINDING_INFO`: `.eh_frame` + `.eh_frame_hdr` for the next loaded code.
    pub const CODE_UNWINDING_INFO: u32 = 4;
}

/// Size of the fixed part of `JIT_CODE_LOAD` after the record header
/// (`pid, tid, vma, code_addr, code_size, code_index`).
const CODE_LOAD_FIXED: usize = 4 + 4 + 8 + 8 + 8 + 8;
/// Size of the fixed part of `JIT_CODE_UNWINDING_INFO` after the record header
/// (`unwinding_size, eh_frame_hdr_size, mapped_size`).
const UNWINDING_FIXED: usize = 8 * 3;

/// Rounds `n` up to a multiple of `to` (a power of two).
const fn round_up(n: usize, to: usize) -> usize {
    (n + to - 1) & !(to - 1)
}

/// Appends the file header.
pub fn write_header(out: &mut Vec<u8>, elf_mach: u32, pid: u32, timestamp: u64) {
    put32(out, MAGIC);
    put32(out, VERSION);
    put32(out, HEADER_SIZE as u32);
    put32(out, elf_mach);
    put32(out, 0); // pad1
    put32(out, pid);
    put64(out, timestamp);
    put64(out, 0); // flags: no JITDUMP_FLAGS_ARCH_TIMESTAMP
}

fn record_header(out: &mut Vec<u8>, id: u32, total_size: usize, timestamp: u64) {
    put32(out, id);
    put32(out, total_size as u32);
    put64(out, timestamp);
}

/// Bytes of the region perf maps for code with this unwind info: `round8(code) + mapped_size`.
/// Stubs must be at least this far apart, or the injected mappings overlap.
pub fn mapped_extent(code_size: usize, unwind: &StubUnwindInfo) -> usize {
    round_up(code_size, 8) + unwinding_mapped_size(unwind)
}

/// `mapped_size` of an unwinding record: its data rounded up to 16.
pub fn unwinding_mapped_size(unwind: &StubUnwindInfo) -> usize {
    round_up(unwind.eh_frame.len() + EH_FRAME_HDR_SIZE, 16)
}

/// Appends a `JIT_CODE_UNWINDING_INFO` record: `.eh_frame` first, then `.eh_frame_hdr`, padded
/// to 8 bytes (perf's genelf reads the header from the *end* of the blob).
pub fn write_unwinding_info(out: &mut Vec<u8>, timestamp: u64, unwind: &StubUnwindInfo) {
    let data = unwind.eh_frame.len() + EH_FRAME_HDR_SIZE;
    let total = round_up(RECORD_HEADER_SIZE + UNWINDING_FIXED + data, 8);
    let start = out.len();
    record_header(out, id::CODE_UNWINDING_INFO, total, timestamp);
    put64(out, data as u64); // unwinding_size
    put64(out, EH_FRAME_HDR_SIZE as u64); // eh_frame_hdr_size
    put64(out, unwinding_mapped_size(unwind) as u64); // mapped_size
    out.extend_from_slice(&unwind.eh_frame);
    out.extend_from_slice(&unwind.eh_frame_hdr);
    out.resize(start + total, 0);
}

/// One `JIT_CODE_LOAD` record's fields.
#[derive(Debug, Clone, Copy)]
pub struct CodeLoad<'a> {
    pub pid: u32,
    pub tid: u32,
    /// Address of the code (also written as `vma`).
    pub code_addr: u64,
    /// Unique, increasing index; perf names the injected ELF `jitted-<pid>-<index>.so`.
    pub code_index: u64,
    /// Symbol name (a NUL is appended).
    pub name: &'a str,
    /// The code bytes as perf should see them.
    pub code: &'a [u8],
}

/// Appends a `JIT_CODE_LOAD` record.
pub fn write_code_load(out: &mut Vec<u8>, timestamp: u64, load: &CodeLoad<'_>) {
    let name = load.name.as_bytes();
    let total = RECORD_HEADER_SIZE + CODE_LOAD_FIXED + name.len() + 1 + load.code.len();
    record_header(out, id::CODE_LOAD, total, timestamp);
    put32(out, load.pid);
    put32(out, load.tid);
    put64(out, load.code_addr); // vma
    put64(out, load.code_addr);
    put64(out, load.code.len() as u64);
    put64(out, load.code_index);
    // A NUL inside the name would end it early for every reader: replace it.
    out.extend(name.iter().map(|&b| if b == 0 { b'?' } else { b }));
    out.push(0);
    out.extend_from_slice(load.code);
}

/// One line-table entry of a `JIT_CODE_DEBUG_INFO` record.
#[derive(Debug, Clone, Copy)]
pub struct DebugEntry<'a> {
    /// Code address the entry describes.
    pub addr: u64,
    /// Source line.
    pub line: i32,
    /// Source file name.
    pub file: &'a str,
}

/// Appends a `JIT_CODE_DEBUG_INFO` record for the code at `code_addr` (written before the
/// `JIT_CODE_LOAD` of that code).
pub fn write_debug_info(
    out: &mut Vec<u8>,
    timestamp: u64,
    code_addr: u64,
    entries: &[DebugEntry<'_>],
) {
    let body: usize = entries.iter().map(|e| 8 + 4 + 4 + e.file.len() + 1).sum();
    let total = round_up(RECORD_HEADER_SIZE + 16 + body, 8);
    let start = out.len();
    record_header(out, id::CODE_DEBUG_INFO, total, timestamp);
    put64(out, code_addr);
    put64(out, entries.len() as u64);
    for e in entries {
        put64(out, e.addr);
        put32(out, e.line as u32);
        put32(out, 0); // discriminator
        out.extend(e.file.bytes().map(|b| if b == 0 { b'?' } else { b }));
        out.push(0);
    }
    out.resize(start + total, 0);
}

/// Appends a `JIT_CODE_CLOSE` record.
pub fn write_code_close(out: &mut Vec<u8>, timestamp: u64) {
    record_header(out, id::CODE_CLOSE, RECORD_HEADER_SIZE, timestamp);
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_ne_bytes());
}

fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_ne_bytes());
}
