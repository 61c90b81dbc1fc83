//! Recordings that perf didn't finish: killed (`SIGKILL`, OOM), out of disk, or cut short by a
//! copy. perf writes its header first with an empty data section and rewrites it, with the
//! feature sections after the data, only when it exits; a cut copy keeps the final header but
//! loses the data's tail and everything after it. Either way the records that are there are
//! good. [`open`] finds where the last complete record ends and serves the file with a header
//! that says so (and no feature sections), so every complete record is read.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

/// `struct perf_file_header`: magic, size, attr_size, attrs, data, event_types, features.
const HEADER_LEN: usize = 104;
const DATA_OFFSET: usize = 40;
const DATA_SIZE: usize = 48;
const FEATURES: std::ops::Range<usize> = 72..104;
/// `struct perf_event_header`: type (u32), misc (u16), size (u16).
const EVENT_HEADER_LEN: u64 = 8;

/// What was wrong with a recording, for the warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Bytes after the last complete record (a record cut in the middle, and what the header
    /// promised beyond the end of the file).
    pub cut_bytes: u64,
    /// The header still said "no data": perf never finished writing it.
    pub unfinished: bool,
    /// Where the last complete record ends.
    pub readable: u64,
}

impl Damage {
    pub fn describe(&self) -> String {
        let why = if self.unfinished {
            "perf did not finish writing it (killed, or out of disk)"
        } else {
            "it is cut short (a partial copy, or out of disk)"
        };
        let lost = match self.cut_bytes {
            0 => "no record was cut".to_string(),
            n if self.unfinished => format!("the last {n} bytes were a cut record"),
            n => format!("{:.1} MB of records after them are missing", n as f64 / 1e6),
        };
        format!(
            "the recording is incomplete: {why}. Read every complete record (the first {:.1} \
             MB); {lost}, and perf's closing metadata (command line, build ids) is missing",
            self.readable as f64 / 1e6,
        )
    }
}

/// A perf.data file, served with a repaired header when perf didn't finish it.
pub struct Repaired {
    file: File,
    header: Option<[u8; HEADER_LEN]>,
    pos: u64,
}

/// Opens `file` (`len` bytes) for reading its records, repairing its header if it needs it.
pub fn open(file: File, len: u64) -> std::io::Result<(Repaired, Option<Damage>)> {
    let mut header = [0u8; HEADER_LEN];
    let (damage, sanitized) = match file.read_exact_at(&mut header, 0) {
        Ok(()) if &header[..8] == b"PERFILE2" => {
            let damage = check(&file, len, &mut header)?;
            (damage, super::sanitize::check(&file, len, &mut header)?)
        }
        // Too short, big-endian or not perf.data at all: let the parser say what it is.
        _ => (None, false),
    };
    let repaired = Repaired {
        file,
        header: (damage.is_some() || sanitized).then_some(header),
        pos: 0,
    };
    Ok((repaired, damage))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Whether the header's data section matches the file; if not, rewrites it in `header` to
/// cover the complete records that are there.
fn check(file: &File, len: u64, header: &mut [u8; HEADER_LEN]) -> std::io::Result<Option<Damage>> {
    let offset = u64_at(header, DATA_OFFSET);
    let size = u64_at(header, DATA_SIZE);
    let features = header[FEATURES]
        .iter()
        .map(|b| b.count_ones() as u64)
        .sum::<u64>();
    // perf puts the feature sections' table (16 bytes each) right after the data.
    let table_end = offset
        .saturating_add(size)
        .saturating_add(features.saturating_mul(16));
    let unfinished = size == 0;
    if !unfinished && table_end <= len {
        return Ok(None);
    }
    if offset < HEADER_LEN as u64 || offset > len {
        return Ok(None); // not a layout this can repair; the parser will explain
    }
    let promised = if unfinished { len } else { offset + size };
    let readable = last_complete_record(file, offset, promised.min(len))?;
    header[DATA_SIZE..DATA_SIZE + 8].copy_from_slice(&(readable - offset).to_le_bytes());
    header[FEATURES].fill(0);
    Ok(Some(Damage {
        cut_bytes: promised - readable,
        unfinished,
        readable,
    }))
}

/// Walks the records from `start` by their headers' sizes; where the last one that ends by
/// `end` ends.
fn last_complete_record(file: &File, start: u64, end: u64) -> std::io::Result<u64> {
    // Read ahead in large chunks: the records' headers are spread through the file.
    const CHUNK: usize = 1 << 20;
    let mut buf = vec![0u8; CHUNK];
    let (mut buf_start, mut buf_len) = (u64::MAX, 0usize);
    let mut at = start;
    loop {
        if at + EVENT_HEADER_LEN > end {
            return Ok(at);
        }
        if at < buf_start || at + EVENT_HEADER_LEN > buf_start + buf_len as u64 {
            buf_start = at;
            buf_len = read_some_at(file, &mut buf, at)?;
            if buf_len < EVENT_HEADER_LEN as usize {
                return Ok(at);
            }
        }
        let i = (at - buf_start) as usize;
        let size = u16::from_le_bytes([buf[i + 6], buf[i + 7]]) as u64;
        if size < EVENT_HEADER_LEN || at + size > end {
            return Ok(at); // a cut record, or garbage where the data stops
        }
        at += size;
    }
}

fn read_some_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], at + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Read for Repaired {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = match &self.header {
            Some(h) if self.pos < HEADER_LEN as u64 => {
                let from = self.pos as usize;
                let n = buf.len().min(HEADER_LEN - from);
                buf[..n].copy_from_slice(&h[from..from + n]);
                n
            }
            _ => self.file.read_at(buf, self.pos)?,
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Repaired {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let len = self.file.metadata()?.len();
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Where the test files' records start: the header, then one 80-byte attribute entry.
    const DATA0: u64 = HEADER_LEN as u64 + 80;

    /// A perf.data-shaped file: a header, one attribute entry, records of `sizes`, then
    /// `tail` bytes (the feature table), with the header's data size `said`.
    fn file(sizes: &[u16], said: Option<u64>, features: u8, cut: u64) -> (File, u64) {
        let data: Vec<u8> = sizes
            .iter()
            .flat_map(|&s| {
                let mut r = vec![0u8; s as usize];
                r[..4].copy_from_slice(&9u32.to_le_bytes());
                r[6..8].copy_from_slice(&s.to_le_bytes());
                r
            })
            .collect();
        let offset = DATA0;
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(b"PERFILE2");
        h[DATA_OFFSET..DATA_OFFSET + 8].copy_from_slice(&offset.to_le_bytes());
        let size = said.unwrap_or(data.len() as u64);
        h[DATA_SIZE..DATA_SIZE + 8].copy_from_slice(&size.to_le_bytes());
        h[FEATURES.start] = features;
        h[16..24].copy_from_slice(&80u64.to_le_bytes()); // attr_size
        h[24..32].copy_from_slice(&(HEADER_LEN as u64).to_le_bytes()); // attrs: offset
        h[32..40].copy_from_slice(&80u64.to_le_bytes()); // attrs: size
        let mut bytes = h.to_vec();
        // One event's attr (64 bytes) and its ids' file section (empty).
        bytes.extend([0u8; 80]);
        bytes.extend(&data);
        bytes.extend(vec![0u8; 16 * features.count_ones() as usize]);
        bytes.truncate(bytes.len() - cut as usize);
        let mut f = scratch();
        f.write_all(&bytes).unwrap();
        let len = bytes.len() as u64;
        (f, len)
    }

    /// An unnamed read-write file (created, then unlinked).
    fn scratch() -> File {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("perfpy-repair-test-{}-{n}", std::process::id()));
        let f = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    fn served_header(r: &mut Repaired) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        r.seek(SeekFrom::Start(0)).unwrap();
        r.read_exact(&mut h).unwrap();
        h
    }

    #[test]
    fn a_finished_recording_is_served_as_it_is() {
        let (f, len) = file(&[24, 40, 16], None, 0b11, 0);
        let (_, damage) = open(f, len).unwrap();
        assert_eq!(damage, None);
    }

    #[test]
    fn a_cut_copy_keeps_its_complete_records_and_drops_the_features() {
        // 24 + 40 + the first 10 of 16 bytes: the cut record and the feature table are gone.
        let (f, len) = file(&[24, 40, 16], None, 0b11, 6 + 32);
        let (mut r, damage) = open(f, len).unwrap();
        let d = damage.unwrap();
        assert!(!d.unfinished);
        assert_eq!(d.readable, DATA0 + 64);
        assert_eq!(d.cut_bytes, 10 + 6);
        let h = served_header(&mut r);
        assert_eq!(u64_at(&h, DATA_SIZE), 64);
        assert!(h[FEATURES].iter().all(|&b| b == 0));
        // Past the header, the file's own bytes.
        let mut rec = [0u8; 8];
        r.seek(SeekFrom::Start(DATA0 + 24)).unwrap();
        r.read_exact(&mut rec).unwrap();
        assert_eq!(u16::from_le_bytes([rec[6], rec[7]]), 40);
    }

    #[test]
    fn an_unfinished_header_covers_every_complete_record() {
        // Killed perf: data size still 0, features set but never written.
        let (f, len) = file(&[24, 40, 16], Some(0), 0b1, 16 + 3);
        let (mut r, damage) = open(f, len).unwrap();
        let d = damage.unwrap();
        assert!(d.unfinished);
        assert_eq!(d.readable, DATA0 + 64);
        assert_eq!(d.cut_bytes, 13);
        assert_eq!(u64_at(&served_header(&mut r), DATA_SIZE), 64);
        assert!(d.describe().contains("perf did not finish writing it"));
    }

    #[test]
    fn garbage_sizes_stop_the_walk_instead_of_looping() {
        let (f, len) = file(&[24, 40], Some(0), 0, 0);
        // A zero size after the records (what a preallocated, unwritten tail reads as).
        f.write_all_at(&[0u8; 64], len).unwrap();
        let (_, damage) = open(f, len + 64).unwrap();
        assert_eq!(damage.unwrap().readable, DATA0 + 64);
    }
}
