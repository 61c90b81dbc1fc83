//! A perf.data header checked against its file before linux-perf-data reads it: every count
//! and size it would allocate for (attributes, their ids, feature sections, the strings and
//! event descriptions inside them) must fit in the bytes that are there. A damaged or hostile
//! file could otherwise ask for gigabytes (found by fuzzing: an event description claiming
//! 4 billion events). Feature sections that don't check out are dropped from the header (perf
//! writes them last, and the records don't need them); an attribute section that doesn't is an
//! error. And a record linux-perf-event-reader would panic on is found before it is parsed.

use linux_perf_data::linux_perf_event_reader::constants::PERF_RECORD_MISC_MMAP_BUILD_ID;
use linux_perf_data::linux_perf_event_reader::{RawEventRecord, RecordType};
use std::fs::File;
use std::io::{Error, ErrorKind};
use std::os::unix::fs::FileExt;

const ATTR_SIZE: usize = 16;
const ATTRS: usize = 24;
const DATA: usize = 40;
const EVENT_TYPES: usize = 56;
const FEATURES: usize = 72;
const VERSION: usize = 5;
const ARCH: usize = 6;
const CMDLINE: usize = 11;
const EVENT_DESC: usize = 12;

fn u32_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as u64)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]))
}

fn invalid(what: String) -> Error {
    Error::new(ErrorKind::InvalidData, what)
}

fn within(offset: u64, size: u64, len: u64) -> bool {
    offset.checked_add(size).is_some_and(|end| end <= len)
}

/// Checks `header` (a little-endian `PERFILE2` one) against the `len`-byte `file`, dropping
/// the feature sections that don't fit; whether it changed anything.
pub fn check(file: &File, len: u64, header: &mut [u8; 104]) -> std::io::Result<bool> {
    let attr_size = u64_at(header, ATTR_SIZE);
    let (attrs, attrs_size) = (u64_at(header, ATTRS), u64_at(header, ATTRS + 8));
    // Each attribute entry: the attr, then the file section of its ids.
    if !(16 + 64..=4096).contains(&attr_size) || !within(attrs, attrs_size, len) {
        return Err(invalid(format!(
            "its attribute section ({attrs_size} bytes of {attr_size}-byte entries at {attrs}) \
             does not fit in its {len} bytes"
        )));
    }
    let mut entry = vec![0u8; attr_size as usize];
    for i in 0..attrs_size / attr_size {
        file.read_exact_at(&mut entry, attrs + i * attr_size)?;
        let ids = attr_size as usize - 16;
        if !within(u64_at(&entry, ids), u64_at(&entry, ids + 8), len) {
            return Err(invalid(format!(
                "the ids of its event {i} lie outside the file"
            )));
        }
    }
    let mut changed = false;
    // The legacy event types section (read where no event descriptions are): entries of an
    // attr and the file section of its ids, like the attribute section's but 16 bytes longer.
    let (types, types_size) = (u64_at(header, EVENT_TYPES), u64_at(header, EVENT_TYPES + 8));
    let type_entry = attr_size + 16;
    let mut ids = [0u8; 16];
    let types_fit = types_size == 0
        || within(types, types_size, len)
            && (0..types_size / type_entry).all(|i| {
                file.read_exact_at(&mut ids, types + i * type_entry + attr_size)
                    .is_ok()
                    && within(u64_at(&ids, 0), u64_at(&ids, 8), len)
            });
    if !types_fit {
        header[EVENT_TYPES + 8..EVENT_TYPES + 16].fill(0);
        changed = true;
    }
    // The feature table follows the data: one (offset, size) per set bit, in bit order.
    let mut table_at = u64_at(header, DATA).saturating_add(u64_at(header, DATA + 8));
    for bit in 0..256 {
        let (byte, mask) = (FEATURES + bit / 8, 1u8 << (bit % 8));
        if header[byte] & mask == 0 {
            continue;
        }
        let mut entry = [0u8; 16];
        let keep = file.read_exact_at(&mut entry, table_at).is_ok() && {
            let (offset, size) = (u64_at(&entry, 0), u64_at(&entry, 8));
            within(offset, size, len) && section_ok(file, bit, offset, size)
        };
        table_at = table_at.saturating_add(16);
        if !keep {
            // Clearing a bit shifts the table: drop this and every later feature.
            for later in bit..256 {
                header[FEATURES + later / 8] &= !(1u8 << (later % 8));
            }
            changed = true;
            break;
        }
    }
    Ok(changed)
}

/// Whether the counts inside a feature section perfpy reads fit in it. Simpleperf's
/// sections (Android) are not read.
fn section_ok(file: &File, bit: usize, offset: u64, size: u64) -> bool {
    if bit >= 128 {
        return false;
    }
    if !matches!(bit, VERSION | ARCH | CMDLINE | EVENT_DESC) {
        return true; // linux-perf-data only copies its bytes
    }
    let Ok(size) = usize::try_from(size) else {
        return false;
    };
    let mut s = vec![0u8; size];
    if file.read_exact_at(&mut s, offset).is_err() {
        return false;
    }
    let string_at = |at: usize| -> Option<usize> {
        let n = u32_at(&s, at)? as usize;
        at.checked_add(4)?
            .checked_add(n)
            .filter(|&end| end <= s.len())
    };
    match bit {
        VERSION | ARCH => string_at(0).is_some(),
        CMDLINE => {
            let Some(n) = u32_at(&s, 0) else { return false };
            let mut at = 4;
            (0..n).all(|_| string_at(at).map(|end| at = end).is_some())
        }
        _ => {
            // nr, attr_size, then per event: attr, nr_ids, a string, the ids.
            let (Some(n), Some(attr_size)) = (u32_at(&s, 0), u32_at(&s, 4)) else {
                return false;
            };
            let mut at = 8usize;
            (0..n).all(|_| {
                let step = || -> Option<usize> {
                    let ids_at = at.checked_add(attr_size as usize)?;
                    let nr_ids = u32_at(&s, ids_at)? as usize;
                    let end = string_at(ids_at + 4)?.checked_add(nr_ids.checked_mul(8)?)?;
                    (end <= s.len()).then_some(end)
                };
                step().map(|end| at = end).is_some()
            })
        }
    }
}

/// Whether parsing `record` would panic rather than fail: linux-perf-event-reader asserts that
/// an MMAP2 record's build id is at most 20 bytes, and a damaged file can claim more (found
/// by fuzzing). perf never writes such a record.
pub fn record_would_panic(record: &RawEventRecord<'_>) -> bool {
    // pid, tid (4 bytes each), address, length, page offset (8 each), then the build id's size.
    const BUILD_ID_SIZE: usize = 32;
    record.record_type == RecordType::MMAP2
        && record.misc & PERF_RECORD_MISC_MMAP_BUILD_ID != 0
        && record
            .data
            .get(BUILD_ID_SIZE..BUILD_ID_SIZE + 1)
            .is_some_and(|b| b.as_slice()[0] > 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header, one 80-byte attribute entry, one 8-byte record, then `tail` (the feature
    /// table and sections) as a scratch file; the header's features are `features` (bits 0-15).
    fn recording(features: u16, tail: impl Fn(u64) -> Vec<u8>) -> (File, u64, [u8; 104]) {
        let mut h = [0u8; 104];
        h[..8].copy_from_slice(b"PERFILE2");
        h[16..24].copy_from_slice(&80u64.to_le_bytes());
        h[24..32].copy_from_slice(&104u64.to_le_bytes());
        h[32..40].copy_from_slice(&80u64.to_le_bytes());
        h[40..48].copy_from_slice(&184u64.to_le_bytes());
        h[48..56].copy_from_slice(&8u64.to_le_bytes());
        h[72..74].copy_from_slice(&features.to_le_bytes());
        let mut bytes = h.to_vec();
        bytes.extend([0u8; 80]);
        bytes.extend([9, 0, 0, 0, 0, 0, 8, 0]);
        bytes.extend(tail(bytes.len() as u64));
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("perfpy-sanitize-{}-{n}", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let f = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        (f, bytes.len() as u64, h)
    }

    #[test]
    fn an_attribute_section_outside_the_file_is_an_error() {
        let (f, len, mut h) = recording(0, |_| vec![]);
        h[32..40].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let err = check(&f, len, &mut h).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
    }

    #[test]
    fn an_event_description_claiming_billions_of_events_is_dropped() {
        // EVENT_DESC (bit 12) whose section says nr = 0xffffffff in 8 bytes: linux-perf-data
        // would reserve ~800 GB for it (what fuzzing found).
        let (f, len, mut h) = recording(1 << 12, |at| {
            let mut t = (at + 16).to_le_bytes().to_vec();
            t.extend(8u64.to_le_bytes());
            t.extend(u32::MAX.to_le_bytes());
            t.extend(64u32.to_le_bytes());
            t
        });
        assert!(check(&f, len, &mut h).unwrap());
        assert_eq!(&h[72..74], &[0, 0]);
    }

    #[test]
    fn a_command_line_that_fits_is_kept() {
        // CMDLINE (bit 11): two strings, "perf" and "record", each a length and its bytes.
        let (f, len, mut h) = recording(1 << 11, |at| {
            let mut body = 2u32.to_le_bytes().to_vec();
            for s in ["perf", "record"] {
                body.extend((s.len() as u32).to_le_bytes());
                body.extend(s.as_bytes());
            }
            let mut t = (at + 16).to_le_bytes().to_vec();
            t.extend((body.len() as u64).to_le_bytes());
            t.extend(body);
            t
        });
        assert!(!check(&f, len, &mut h).unwrap());
        assert_eq!(&h[72..74], &(1u16 << 11).to_le_bytes());
    }
}
