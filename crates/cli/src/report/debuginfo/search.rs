//! The debug file of a binary: each place [`super::paths`] names opened in turn, the first
//! of this very build (its build id, or the CRC-32 its `.gnu_debuglink` gives) kept.

use super::paths::{build_id_paths, debuglink_paths, parse_debuglink};
use std::path::{Path, PathBuf};

/// A debug file of a binary, mapped.
pub struct DebugFile {
    pub path: PathBuf,
    pub map: memmap2::Mmap,
}

/// What the search for a binary's debug file found.
#[derive(Default)]
pub struct Found {
    /// Its debug file.
    pub file: Option<DebugFile>,
    /// Files at the paths its build id or `.gnu_debuglink` name that are of another build (or
    /// not ELF): left alone.
    pub others: Vec<PathBuf>,
}
/// The CRC-32 `.gnu_debuglink` gives of its file (zlib's, as gdb computes it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}
/// The debug file of `obj` (read from `file`; `recorded`: its path in the recording), looked
/// for under `roots` in order: by build id first, then by `.gnu_debuglink`.
pub fn find(obj: &object::File<'_>, file: &Path, recorded: &Path, roots: &[PathBuf]) -> Found {
    use object::Object;
    let mut found = Found::default();
    let build_id = obj.build_id().ok().flatten();
    let arch = obj.architecture();
    // A file of another build, or of another CPU, is not this one's.
    let same_build = |map: &memmap2::Mmap| {
        let Ok(debug) = object::File::parse(&**map) else {
            return false;
        };
        debug.architecture() == arch
            && match (build_id, debug.build_id().ok().flatten()) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    };
    if let Some(id) = build_id {
        for path in build_id_paths(id, roots) {
            let Some(map) = map(&path) else { continue };
            if same_build(&map) {
                found.file = Some(DebugFile { path, map });
                return found;
            }
            found.others.push(path);
        }
    }
    let link = obj
        .section_by_name(".gnu_debuglink")
        .and_then(|s| object::ObjectSection::data(&s).ok())
        .and_then(|d| parse_debuglink(d, obj.is_little_endian()));
    if let Some((name, crc)) = link {
        for path in debuglink_paths(file, recorded, name, roots) {
            let Some(map) = map(&path) else { continue };
            if crc32(&map) == crc && same_build(&map) {
                found.file = Some(DebugFile { path, map });
                return found;
            }
            found.others.push(path);
        }
    }
    found
}

fn map(path: &Path) -> Option<memmap2::Mmap> {
    let file = std::fs::File::open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    // SAFETY: the file is mapped read-only and only read while the map lives (the symbols
    // taken from it are copied out). A file truncated by someone else meanwhile would fault,
    // as it would for perf or gdb; installed debug files don't change.
    unsafe { memmap2::Mmap::map(&file) }.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn crc_is_zlibs_crc32() {
        // The check value of CRC-32/ISO-HDLC, the CRC gdb and objcopy compute.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    /// A copy of this test binary split as distributions split theirs (`objcopy`): the
    /// stripped copy finds its debug file beside it, in `.debug/`, under a root's
    /// `/usr/lib/debug`, and by build id, and never one whose CRC differs.
    #[test]
    fn a_stripped_copy_finds_its_debug_file_and_only_its_own() {
        use object::Object;
        let dir = std::env::temp_dir().join(format!("perfpy-debuginfo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let exe = std::env::current_exe().unwrap();
        let bin = dir.join("bin/prog");
        let debug = dir.join("prog.debug");
        let objcopy = |args: &[&OsStr]| {
            let ok = std::process::Command::new("objcopy")
                .args(args)
                .status()
                .expect("objcopy (binutils) runs")
                .success();
            assert!(ok, "objcopy {args:?}");
        };
        objcopy(&[
            "--only-keep-debug".as_ref(),
            exe.as_os_str(),
            debug.as_os_str(),
        ]);
        let link = format!("--add-gnu-debuglink={}", debug.display());
        objcopy(&[
            "--strip-all".as_ref(),
            "--remove-section=.note.gnu.build-id".as_ref(),
            link.as_ref(),
            exe.as_os_str(),
            bin.as_os_str(),
        ]);
        let data = std::fs::read(&bin).unwrap();
        let obj = object::File::parse(&*data).unwrap();
        assert!(obj.build_id().unwrap().is_none());
        let section = obj.section_by_name(".gnu_debuglink").unwrap();
        let (name, crc) =
            parse_debuglink(object::ObjectSection::data(&section).unwrap(), true).unwrap();
        assert_eq!(name, "prog.debug");
        assert_eq!(crc, crc32(&std::fs::read(&debug).unwrap()));

        let recorded = Path::new("/opt/app/bin/prog");
        let root = dir.join("root");
        let roots = [root.clone(), PathBuf::from("/")];
        let found = |roots: &[PathBuf]| {
            let f = find(&obj, &bin, recorded, roots);
            (f.file.map(|f| f.path), f.others)
        };
        // Not found where gdb wouldn't look (the file is one directory up).
        assert_eq!(found(&roots), (None, vec![]));
        for place in [
            dir.join("bin/prog.debug"),
            dir.join("bin/.debug/prog.debug"),
            root.join("usr/lib/debug/opt/app/bin/prog.debug"),
        ] {
            std::fs::create_dir_all(place.parent().unwrap()).unwrap();
            std::fs::copy(&debug, &place).unwrap();
            assert_eq!(found(&roots), (Some(place.clone()), vec![]));
            // One more byte: another file (its CRC differs), whose symbols are not taken.
            let mut other = std::fs::read(&debug).unwrap();
            other.push(0);
            std::fs::write(&place, other).unwrap();
            assert_eq!(found(&roots), (None, vec![place.clone()]));
            std::fs::remove_file(&place).unwrap();
        }
        // The root's /usr/lib/debug is looked at only when that root is given.
        let place = root.join("usr/lib/debug/opt/app/bin/prog.debug");
        std::fs::copy(&debug, &place).unwrap();
        assert_eq!(found(&[PathBuf::from("/")]), (None, vec![]));
        std::fs::remove_file(&place).unwrap();

        // By build id: the test binary has one (the linker's --build-id), which --strip-all
        // keeps.
        let with_id = dir.join("bin/with-id");
        objcopy(&["--strip-all".as_ref(), exe.as_os_str(), with_id.as_os_str()]);
        let data = std::fs::read(&with_id).unwrap();
        let obj = object::File::parse(&*data).unwrap();
        let id = obj
            .build_id()
            .unwrap()
            .expect("the test binary has a build id");
        let place = build_id_paths(id, &roots[..1]).remove(0);
        std::fs::create_dir_all(place.parent().unwrap()).unwrap();
        // Another binary's file there (another build id) is not taken; this one's is.
        let sh = std::fs::read("/bin/sh").unwrap();
        let sh_id = object::File::parse(&*sh)
            .unwrap()
            .build_id()
            .unwrap()
            .map(<[u8]>::to_vec);
        assert!(
            sh_id.is_some_and(|s| s != id),
            "/bin/sh has a build id of its own"
        );
        std::fs::write(&place, &sh).unwrap();
        let f = find(&obj, &with_id, recorded, &roots);
        assert_eq!(
            (f.file.map(|f| f.path), f.others),
            (None, vec![place.clone()])
        );
        std::fs::copy(&debug, &place).unwrap();
        let f = find(&obj, &with_id, recorded, &roots);
        assert_eq!(f.file.map(|f| f.path), Some(place));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
