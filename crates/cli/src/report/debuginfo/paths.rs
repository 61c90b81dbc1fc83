//! Where a binary's debug file may be, in gdb's order: the path its build id names under each
//! root, and the places the file name its `.gnu_debuglink` gives is looked for.

use super::DEBUG_DIR;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The file name and CRC-32 a `.gnu_debuglink` section holds: the name, NUL-terminated and
/// padded with NULs to a multiple of 4 bytes, then the CRC in the file's byte order. `None` for
/// a section that doesn't hold them, or names a path rather than a file name.
pub fn parse_debuglink(section: &[u8], little_endian: bool) -> Option<(&OsStr, u32)> {
    let nul = section.iter().position(|&b| b == 0)?;
    let name = &section[..nul];
    if name.is_empty() || name.contains(&b'/') || name == b"." || name == b".." {
        return None;
    }
    let at = (nul + 1).next_multiple_of(4);
    let crc: [u8; 4] = section.get(at..at + 4)?.try_into().ok()?;
    let crc = if little_endian {
        u32::from_le_bytes(crc)
    } else {
        u32::from_be_bytes(crc)
    };
    Some((OsStr::from_bytes(name), crc))
}

/// Where a build id's debug file is, under each of `roots`.
pub fn build_id_paths(build_id: &[u8], roots: &[PathBuf]) -> Vec<PathBuf> {
    if build_id.len() < 2 {
        return Vec::new();
    }
    let hex: String = build_id.iter().map(|b| format!("{b:02x}")).collect();
    roots
        .iter()
        .map(|r| {
            r.join(DEBUG_DIR)
                .join(".build-id")
                .join(&hex[..2])
                .join(format!("{}.debug", &hex[2..]))
        })
        .collect()
}

/// Where gdb looks for the file `.gnu_debuglink` names (`name`) of the binary read from `file`
/// (`recorded`: its path as the recording has it): `file`'s directory, its `.debug/`, and each
/// root's `/usr/lib/debug` + `recorded`'s directory. `file` itself is never one.
pub fn debuglink_paths(
    file: &Path,
    recorded: &Path,
    name: &OsStr,
    roots: &[PathBuf],
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = file.parent() {
        out.push(dir.join(name));
        out.push(dir.join(".debug").join(name));
    }
    let dir = recorded.parent().unwrap_or(Path::new("/"));
    let rel = dir.strip_prefix("/").unwrap_or(dir);
    for r in roots {
        out.push(r.join(DEBUG_DIR).join(rel).join(name));
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| p != file && seen.insert(p.clone()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debuglink_section_parsed_as_gdb_writes_it() {
        // "python3.11.debug" is 16 bytes: a NUL, 3 bytes of padding, then the CRC.
        let mut le = b"python3.11.debug\0\0\0\0".to_vec();
        le.extend_from_slice(&0x1234_5678u32.to_le_bytes());
        let (name, crc) = parse_debuglink(&le, true).unwrap();
        assert_eq!((name, crc), (OsStr::new("python3.11.debug"), 0x1234_5678));
        let mut be = b"libx.so.debug\0\0\0".to_vec(); // 13 + NUL → 14, padded to 16
        be.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        assert_eq!(parse_debuglink(&be, false).unwrap().1, 0xdead_beef);
        // The CRC is read at the padded offset, not right after the NUL.
        assert_eq!(parse_debuglink(&be, true).unwrap().1, 0xefbe_adde);
        // Cut short, unterminated, empty or a path: nothing.
        assert!(parse_debuglink(&le[..le.len() - 1], true).is_none());
        assert!(parse_debuglink(b"noterminator", true).is_none());
        assert!(parse_debuglink(b"\0\0\0\0\x01\x02\x03\x04", true).is_none());
        assert!(parse_debuglink(b"../x\0\0\0\0\x01\x02\x03\x04", true).is_none());
        assert!(parse_debuglink(b"..\0\0\x01\x02\x03\x04", true).is_none());
    }

    #[test]
    fn paths_looked_at_in_gdbs_order_under_each_root() {
        let roots = [PathBuf::from("/sys/root"), PathBuf::from("/")];
        let got = debuglink_paths(
            Path::new("/sys/root/usr/bin/python3.11"),
            Path::new("/usr/bin/python3.11"),
            OsStr::new("python3.11.debug"),
            &roots,
        );
        let want: Vec<PathBuf> = [
            "/sys/root/usr/bin/python3.11.debug",
            "/sys/root/usr/bin/.debug/python3.11.debug",
            "/sys/root/usr/lib/debug/usr/bin/python3.11.debug",
            "/usr/lib/debug/usr/bin/python3.11.debug",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(got, want);
        // A link naming the binary itself never gives the binary.
        let got = debuglink_paths(
            Path::new("/opt/x/libx.so"),
            Path::new("/opt/x/libx.so"),
            OsStr::new("libx.so"),
            &[PathBuf::from("/")],
        );
        assert!(!got.contains(&PathBuf::from("/opt/x/libx.so")), "{got:?}");
        assert_eq!(
            build_id_paths(&[0xab, 0xcd, 0xef], &roots),
            [
                PathBuf::from("/sys/root/usr/lib/debug/.build-id/ab/cdef.debug"),
                PathBuf::from("/usr/lib/debug/.build-id/ab/cdef.debug"),
            ]
        );
    }
}
