//! The jitdump format (`/tmp/jit-<pid>.dump`), as perf's
//! `tools/perf/Documentation/jitdump-specification.txt` defines it: the writer
//! ([`write_header`], [`write_code_load`], ...) and the reader ([`read`]).
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
/// Where the header keeps the writer's pid.
const HEADER_PID: std::ops::Range<usize> = 20..24;

/// A dump's header, told it was written by process `to` where it says `from`: a dump a
/// process in a PID namespace wrote under its pid there, copied out under its pid here (the
/// one the recording knows it by). False, and the bytes untouched, when the header doesn't
/// say `from`.
pub fn renumber(dump: &mut [u8], from: u32, to: u32) -> bool {
    let Some(field) = dump.get_mut(HEADER_PID) else {
        return false;
    };
    if u32::from_le_bytes([field[0], field[1], field[2], field[3]]) != from {
        return false;
    }
    field.copy_from_slice(&to.to_le_bytes());
    true
}

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
    /// Symbol name (a NUL is appended; line breaks and NULs inside it are escaped as in the
    /// perf map, by [`crate::perf_map::symbol_name`]).
    pub name: &'a str,
    /// The code bytes as perf should see them.
    pub code: &'a [u8],
}

/// Appends a `JIT_CODE_LOAD` record.
pub fn write_code_load(out: &mut Vec<u8>, timestamp: u64, load: &CodeLoad<'_>) {
    let name = crate::perf_map::symbol_name(load.name);
    let name = name.as_bytes();
    let total = RECORD_HEADER_SIZE + CODE_LOAD_FIXED + name.len() + 1 + load.code.len();
    record_header(out, id::CODE_LOAD, total, timestamp);
    put32(out, load.pid);
    put32(out, load.tid);
    put64(out, load.code_addr); // vma
    put64(out, load.code_addr);
    put64(out, load.code.len() as u64);
    put64(out, load.code_index);
    out.extend_from_slice(name);
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

/// A parsed record, reader side.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Record {
    /// `JIT_CODE_LOAD`.
    CodeLoad {
        timestamp: u64,
        pid: u32,
        tid: u32,
        code_addr: u64,
        code_index: u64,
        name: String,
        code: Vec<u8>,
    },
    /// `JIT_CODE_UNWINDING_INFO`, split as perf's genelf reads it: `.eh_frame` first, the
    /// `.eh_frame_hdr` last (linux-perf-data 0.13 splits it the other way round).
    UnwindingInfo {
        timestamp: u64,
        eh_frame: Vec<u8>,
        eh_frame_hdr: Vec<u8>,
        mapped_size: u64,
    },
    /// `JIT_CODE_DEBUG_INFO`: `(address, line, file)` entries for the next loaded code.
    DebugInfo {
        timestamp: u64,
        code_addr: u64,
        entries: Vec<(u64, i32, String)>,
    },
    /// `JIT_CODE_CLOSE`.
    Close { timestamp: u64 },
    /// A record this reader does not interpret (`JIT_CODE_MOVE`, vendor records).
    Other { id: u32, timestamp: u64 },
}

/// The file header, reader side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub elf_mach: u32,
    pub pid: u32,
    pub timestamp: u64,
    pub flags: u64,
}

/// Why a jitdump can't be read (from the given byte offset on).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// Not a jitdump, or not one in this machine's byte order.
    BadMagic([u8; 4]),
    /// A version other than 1.
    UnsupportedVersion(u32),
    /// The data ends inside a record (a writer that was killed mid-write, or a truncated
    /// copy); everything before `offset` was read.
    Truncated { offset: usize },
    /// A record whose declared size or fields don't fit.
    Malformed { offset: usize, what: &'static str },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::BadMagic(m) => write!(f, "not a jitdump (magic {m:02x?})"),
            ReadError::UnsupportedVersion(v) => {
                write!(f, "jitdump version {v}; only version 1 exists")
            }
            ReadError::Truncated { offset } => {
                write!(f, "jitdump ends inside the record at byte {offset}")
            }
            ReadError::Malformed { offset, what } => {
                write!(f, "jitdump record at byte {offset}: {what}")
            }
        }
    }
}

impl std::error::Error for ReadError {}

fn get32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn get64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8).map(|s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_ne_bytes(a)
    })
}

fn cstr(b: &[u8], at: usize) -> Option<(String, usize)> {
    let rest = b.get(at..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    Some((
        String::from_utf8_lossy(&rest[..end]).into_owned(),
        at + end + 1,
    ))
}

/// A jitdump as read: everything up to the first problem, and the problem if there was one
/// (a dump whose writer was killed mid-record still yields all its complete records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub header: Header,
    pub records: Vec<Record>,
    /// What stopped the reader before the end of the data, if anything.
    pub error: Option<ReadError>,
}

/// Reads a jitdump. Fails only if the header is unusable.
pub fn read(data: &[u8]) -> Result<Parsed, ReadError> {
    let magic = data.get(..4).ok_or(ReadError::Truncated { offset: 0 })?;
    if get32(data, 0) != Some(MAGIC) {
        let mut m = [0u8; 4];
        m.copy_from_slice(magic);
        return Err(ReadError::BadMagic(m));
    }
    let fields = (
        get32(data, 4),
        get32(data, 8),
        get32(data, 12),
        get32(data, 20),
        get64(data, 24),
        get64(data, 32),
    );
    let (Some(version), Some(header_size), Some(elf_mach), Some(pid), Some(timestamp), Some(flags)) =
        fields
    else {
        return Err(ReadError::Truncated { offset: 0 });
    };
    if version != VERSION {
        return Err(ReadError::UnsupportedVersion(version));
    }
    let header = Header {
        elf_mach,
        pid,
        timestamp,
        flags,
    };
    let mut records = Vec::new();
    let mut off = header_size as usize;
    let error = loop {
        if off >= data.len() {
            break None;
        }
        let (Some(id), Some(size), Some(ts)) =
            (get32(data, off), get32(data, off + 4), get64(data, off + 8))
        else {
            break Some(ReadError::Truncated { offset: off });
        };
        let size = size as usize;
        if size < RECORD_HEADER_SIZE {
            break Some(ReadError::Malformed {
                offset: off,
                what: "size smaller than a record header",
            });
        }
        let Some(body) = data.get(off + RECORD_HEADER_SIZE..off + size) else {
            break Some(ReadError::Truncated { offset: off });
        };
        let Some(record) = parse_record(id, ts, body) else {
            break Some(ReadError::Malformed {
                offset: off,
                what: "fields don't fit the record",
            });
        };
        records.push(record);
        off += size;
    };
    Ok(Parsed {
        header,
        records,
        error,
    })
}

fn parse_record(id: u32, timestamp: u64, b: &[u8]) -> Option<Record> {
    Some(match id {
        id::CODE_LOAD => {
            let (name, code_at) = cstr(b, CODE_LOAD_FIXED)?;
            let code_size = get64(b, 24)? as usize;
            Record::CodeLoad {
                timestamp,
                pid: get32(b, 0)?,
                tid: get32(b, 4)?,
                code_addr: get64(b, 16)?,
                code_index: get64(b, 32)?,
                name,
                code: b.get(code_at..code_at + code_size)?.to_vec(),
            }
        }
        id::CODE_UNWINDING_INFO => {
            let data_size = get64(b, 0)? as usize;
            let hdr_size = get64(b, 8)? as usize;
            let blob = b.get(UNWINDING_FIXED..UNWINDING_FIXED + data_size)?;
            let split = data_size.checked_sub(hdr_size)?;
            Record::UnwindingInfo {
                timestamp,
                eh_frame: blob[..split].to_vec(),
                eh_frame_hdr: blob[split..].to_vec(),
                mapped_size: get64(b, 16)?,
            }
        }
        id::CODE_DEBUG_INFO => {
            let code_addr = get64(b, 0)?;
            let n = get64(b, 8)? as usize;
            let mut entries = Vec::with_capacity(n.min(1024));
            let mut at = 16;
            for _ in 0..n {
                let addr = get64(b, at)?;
                let line = get32(b, at + 8)? as i32;
                let (file, next) = cstr(b, at + 16)?;
                entries.push((addr, line, file));
                at = next;
            }
            Record::DebugInfo {
                timestamp,
                code_addr,
                entries,
            }
        }
        id::CODE_CLOSE => Record::Close { timestamp },
        other => Record::Other {
            id: other,
            timestamp,
        },
    })
}
