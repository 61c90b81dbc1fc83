//! Separate debug files: the full symbol table of a stripped binary, installed apart from it
//! (Debian's `-dbg` and `-dbgsym` packages, Fedora's `-debuginfo`, `objcopy --only-keep-debug`),
//! found as gdb finds it — by the binary's build id (`/usr/lib/debug/.build-id/ab/cdef….debug`),
//! then by its `.gnu_debuglink` (a file name and the file's CRC-32: beside the binary, in
//! `.debug/` beside it, under `/usr/lib/debug` + the binary's directory) — under each root its
//! files may be in: the `--sysroot` it was found in, the other `--sysroot`s, this machine's `/`.
//! A file found is used only if it is of this very build (its build id, or the CRC the binary
//! names). And, for a binary with none, what to say: how to get one.

use crate::report::profile::Stripped;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where debug files are installed, under a root.
const DEBUG_DIR: &str = "usr/lib/debug";

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

/// The CRC-32 `.gnu_debuglink` gives of its file (zlib's, as gdb computes it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
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

/// The distributions whose debug packages perfpy can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distro {
    Debian,
    Ubuntu,
    /// Fedora, RHEL and their rebuilds (CentOS, Rocky, AlmaLinux, Oracle Linux): `dnf
    /// debuginfo-install`.
    Fedora,
}

/// The distribution of the file system at `root`, from its `os-release` (`ID`, else the first
/// of `ID_LIKE` perfpy knows); `None` when it has none, or it names none of [`Distro`].
pub fn distro(root: &Path) -> Option<Distro> {
    ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(root.join(p)).ok())
        .and_then(|text| distro_of(&text))
}

/// [`distro`] of an `os-release` file's text.
pub fn distro_of(os_release: &str) -> Option<Distro> {
    let value = |key: &str| {
        os_release.lines().find_map(|l| {
            let v = l.trim().strip_prefix(key)?.strip_prefix('=')?;
            Some(v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        })
    };
    let of = |id: &str| match id {
        "debian" => Some(Distro::Debian),
        "ubuntu" => Some(Distro::Ubuntu),
        "fedora" | "rhel" | "centos" | "rocky" | "almalinux" | "ol" => Some(Distro::Fedora),
        _ => None,
    };
    value("ID")
        .as_deref()
        .and_then(of)
        .or_else(|| value("ID_LIKE")?.split_whitespace().find_map(of))
}

/// Whether `path` is where a distribution's packages put binaries (not `/usr/local`, `/opt`,
/// a home, a virtual environment's copy): only there can perfpy tell which package has its
/// debug symbols.
fn packaged(path: &str) -> bool {
    !path.starts_with("/usr/local/")
        && ["/usr/", "/lib/", "/lib64/", "/lib32/", "/bin/", "/sbin/"]
            .iter()
            .any(|d| path.starts_with(d))
}

/// What to say of a stripped binary without a debug file: what happened, why, and how to get
/// its names (the package of its debug symbols, when its distribution says which).
pub fn stripped_warning(s: &Stripped) -> String {
    let distro = if packaged(&s.path) {
        distro(&s.root)
    } else {
        None
    };
    stripped_warning_for(s, distro)
}

/// [`stripped_warning`] with the distribution given.
pub fn stripped_warning_for(s: &Stripped, distro: Option<Distro>) -> String {
    let here = s.root == Path::new("/");
    let percent = 100.0 * s.share;
    let mut out = format!(
        "{} is stripped and has no debug file perfpy could find: its own functions show as {} \
         ({percent:.0}% of the samples pass through them; only the functions it exports have \
         their names).",
        s.path, s.frame
    );
    if let Some(other) = s.others.first() {
        out.push_str(&format!(
            " {} is not its debug file: it is of another build of it.",
            other.display()
        ));
    }
    let version = s
        .python
        .flatten()
        .map(|(a, b)| format!("{a}.{b}"))
        .unwrap_or_else(|| "3".to_string());
    let install = match (distro, s.python.is_some()) {
        (Some(Distro::Debian | Distro::Ubuntu), true) => {
            format!("`apt install python{version}-dbg`")
        }
        (Some(Distro::Debian), false) => format!(
            "the -dbgsym package (from Debian's debug archive) of the package `dpkg -S {}` \
             names, or its -dbg package where there is one",
            s.path
        ),
        (Some(Distro::Ubuntu), false) => format!(
            "the -dbgsym package (from Ubuntu's ddebs archive) of the package `dpkg -S {}` \
             names",
            s.path
        ),
        (Some(Distro::Fedora), _) => {
            format!("`dnf debuginfo-install $(rpm -qf {})`", s.path)
        }
        (None, _) => String::new(),
    };
    let debug_dir = s.root.join(DEBUG_DIR);
    if !install.is_empty() {
        if here {
            out.push_str(&format!(
                " To name them, install its debug symbols: {install}, which puts them in {}, \
                 where perfpy looks.",
                debug_dir.display()
            ));
        } else if s.root.starts_with("/proc") {
            out.push_str(&format!(
                " To name them, install its debug symbols in the container it runs in \
                 ({install}): perfpy reads them there ({}) while it runs.",
                debug_dir.display()
            ));
        } else {
            out.push_str(&format!(
                " To name them, install its debug symbols where it runs ({install}) and copy \
                 that machine's /usr/lib/debug to {}, where perfpy looks.",
                debug_dir.display()
            ));
        }
        return out;
    }
    // Not a distribution's file (or one perfpy can't tell the package of): where perfpy
    // looks, for a debug file made from the build before it was stripped.
    let mut places = Vec::new();
    if let Some(id) = s.build_id.as_deref().filter(|id| id.len() > 2) {
        places.push(format!(
            "{}/.build-id/{}/{}.debug",
            debug_dir.display(),
            &id[..2],
            &id[2..]
        ));
    }
    if let Some(name) = &s.debuglink {
        let dir = Path::new(&s.path).parent().unwrap_or(Path::new("/"));
        places.push(format!(
            "{name} (the name its .gnu_debuglink gives) in {}, in its .debug/ or in {}{}",
            if here {
                dir.display().to_string()
            } else {
                format!("{}'s copy of {}", s.root.display(), dir.display())
            },
            debug_dir.display(),
            dir.display()
        ));
    }
    out.push_str(
        " To name them, install its debug symbols (its distribution's debug package for it, \
         or `objcopy --only-keep-debug` of the build before it was stripped)",
    );
    if places.is_empty() {
        out.push_str(" as a file perfpy finds through a .gnu_debuglink");
    } else {
        out.push_str(&format!(" as {}", places.join(", or as ")));
    }
    out.push_str("; or profile a build that isn't stripped.");
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
    fn crc_is_zlibs_crc32() {
        // The check value of CRC-32/ISO-HDLC, the CRC gdb and objcopy compute.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
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

    #[test]
    fn distributions_from_os_release() {
        assert_eq!(
            distro_of("ID=debian\nVERSION_ID=\"12\"\n"),
            Some(Distro::Debian)
        );
        assert_eq!(
            distro_of("NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n"),
            Some(Distro::Ubuntu)
        );
        assert_eq!(
            distro_of("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n"),
            Some(Distro::Fedora)
        );
        assert_eq!(
            distro_of("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n"),
            Some(Distro::Ubuntu)
        );
        // IDS= is not ID=.
        assert_eq!(distro_of("IDS=debian\n"), None);
        assert_eq!(distro_of("ID=alpine\n"), None);
        assert_eq!(distro_of(""), None);
    }

    fn stripped(path: &str, root: &str) -> Stripped {
        Stripped {
            path: path.to_string(),
            root: PathBuf::from(root),
            frame: format!("[{}]", path.rsplit('/').next().unwrap()),
            share: 0.42,
            others: Vec::new(),
            python: crate::python::interpreter_file_version(path),
            build_id: Some("abcdef".to_string()),
            debuglink: None,
        }
    }

    #[test]
    fn the_warning_names_the_package_only_where_the_distribution_says_it() {
        let py = stripped("/usr/bin/python3.9", "/");
        let w = stripped_warning_for(&py, Some(Distro::Debian));
        assert!(w.starts_with("/usr/bin/python3.9 is stripped"), "{w}");
        assert!(w.contains("show as [python3.9] (42% of the samples"), "{w}");
        assert!(
            w.contains("`apt install python3.9-dbg`, which puts them in /usr/lib/debug"),
            "{w}"
        );
        let lib = stripped("/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0", "/");
        let w = stripped_warning_for(&lib, Some(Distro::Ubuntu));
        assert!(w.contains("`apt install python3.11-dbg`"), "{w}");
        let w = stripped_warning_for(&lib, Some(Distro::Fedora));
        assert!(
            w.contains(
                "`dnf debuginfo-install $(rpm -qf /usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0)`"
            ),
            "{w}"
        );
        let libc = stripped("/usr/lib/x86_64-linux-gnu/libc.so.6", "/");
        let w = stripped_warning_for(&libc, Some(Distro::Debian));
        assert!(
            w.contains("-dbgsym package")
                && w.contains("`dpkg -S /usr/lib/x86_64-linux-gnu/libc.so.6`"),
            "{w}"
        );
        // Unknown distribution: where perfpy looks, with this binary's build id.
        let w = stripped_warning_for(&py, None);
        assert!(!w.contains("apt") && !w.contains("dnf"), "{w}");
        assert!(w.contains("/usr/lib/debug/.build-id/ab/cdef.debug"), "{w}");
        // Another machine's files (--sysroot): its debug files go there.
        let far = stripped("/usr/bin/python3.11", "/copy");
        let w = stripped_warning_for(&far, Some(Distro::Debian));
        assert!(
            w.contains("copy that machine's /usr/lib/debug to /copy/usr/lib/debug"),
            "{w}"
        );
        // Not a distribution's file: never a package, whatever the machine runs.
        let own = stripped("/opt/py/bin/python3.11", "/");
        assert!(!packaged(&own.path) && !packaged("/usr/local/bin/python3.11"));
        assert!(packaged("/usr/bin/python3.11") && packaged("/lib/x86_64-linux-gnu/libc.so.6"));
        let mut linked = own.clone();
        linked.debuglink = Some("python3.11.debug".to_string());
        linked.others = vec![PathBuf::from("/opt/py/bin/python3.11.debug")];
        let w = stripped_warning_for(&linked, None);
        assert!(
            w.contains(
                "/opt/py/bin/python3.11.debug is not its debug file: it is of another build"
            ),
            "{w}"
        );
        assert!(
            w.contains("python3.11.debug (the name its .gnu_debuglink gives) in /opt/py/bin, in its .debug/ or in /usr/lib/debug/opt/py/bin"),
            "{w}"
        );
    }
}
