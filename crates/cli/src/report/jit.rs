//! The Python names of a profiled process: its perf map (`perf-<pid>.map`) and jitdump
//! (`jit-<pid>.dump`), found where `perfpy record` keeps them, where the process wrote them,
//! or inside the process's own mount namespace while it still runs.

use super::elf::Bytes;
use perfpy_format::{files, jitdump, perf_map};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One named stub: `[start, end)` runs the Python function `name`.
#[derive(Debug, Clone)]
pub struct Stub {
    pub start: u64,
    pub end: u64,
    pub name: Arc<str>,
    /// The line the function is defined on, when the jitdump says (`JIT_CODE_DEBUG_INFO`).
    pub line: Option<u32>,
}

/// The unwind info a jitdump gives for one stub, laid out as perf's `jitted-*.so` would:
/// the code at `start`, its `.eh_frame` at `start + round_up(code_size, 8)`, then the header.
#[derive(Debug, Clone)]
pub struct StubUnwind {
    pub start: u64,
    pub code_size: u64,
    pub eh_frame: Bytes,
    pub eh_frame_hdr: Bytes,
}

#[derive(Debug, Default, Clone)]
pub struct JitInfo {
    pub stubs: Vec<Stub>,
    pub unwind: Vec<StubUnwind>,
    /// The files read, and how many bytes each had then.
    pub files: Vec<PathBuf>,
    pub sizes: Vec<u64>,
    /// What was wrong with them (unreadable, truncated, malformed lines).
    pub problems: Vec<String>,
}

/// Where the files of `pid` may be, most specific first: each directory of `dirs` (a
/// recording's side directory, `--jit-dir`), the process's own `/tmp` (through
/// `/proc/<pid>/root`, under its namespace pid, while it runs in a container or a chroot),
/// then `/tmp`.
pub fn candidates(pid: i32, dirs: &[PathBuf], marker: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let names = |p: i32| files::Kind::ALL.map(|k| k.file_name(p as u32));
    for d in dirs {
        for n in names(pid) {
            out.push(d.join(n));
        }
    }
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    if let Some(m) = marker {
        if let Ok(rel) = m.strip_prefix("/") {
            out.push(root.join(rel));
        }
        out.push(m.to_path_buf());
    }
    // Its own /tmp: a container's (under its namespace pid) or a chroot's (under its pid).
    let own = crate::procfs::namespace_pid(pid).or_else(|| {
        std::fs::read_link(&root)
            .ok()
            .filter(|r| r != Path::new("/"))
            .map(|_| pid)
    });
    if let Some(ns) = own {
        for n in names(ns) {
            out.push(root.join("tmp").join(n));
        }
    }
    for n in names(pid) {
        out.push(Path::new(files::DIR).join(n));
    }
    out
}

/// Reads the first perf map and the first jitdump among `paths` that exist.
pub fn load(paths: &[PathBuf]) -> JitInfo {
    let mut info = JitInfo::default();
    let (mut have_map, mut have_dump) = (false, false);
    for p in paths {
        let is_map = p.extension().is_some_and(|e| e == "map");
        if (is_map && have_map) || (!is_map && have_dump) {
            continue;
        }
        let Ok(data) = std::fs::read(p) else { continue };
        if is_map {
            have_map = true;
            load_map(&data, p, &mut info);
        } else {
            have_dump = true;
            load_dump(&data, p, &mut info);
        }
        info.files.push(p.clone());
        info.sizes.push(data.len() as u64);
    }
    info.stubs.sort_by_key(|s| s.start);
    info.unwind.sort_by_key(|u| u.start);
    info.unwind.dedup_by_key(|u| u.start);
    info
}

fn load_map(data: &[u8], path: &Path, info: &mut JitInfo) {
    let mut data = data;
    if !data.is_empty() && !data.ends_with(b"\n") {
        // The writer was stopped mid-line (killed, disk full): the line's name may be cut.
        let end = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        info.problems.push(format!(
            "{} ends in the middle of a line (its process was stopped while writing it); \
             that last entry is skipped",
            path.display()
        ));
        data = &data[..end];
    }
    let text = String::from_utf8_lossy(data);
    let mut bad = 0usize;
    for entry in perf_map::parse(&text) {
        match entry {
            Ok(e) if e.size > 0 => match user_end(e.start, e.size) {
                Some(end) => info.stubs.push(Stub {
                    start: e.start,
                    end,
                    name: Arc::from(e.name),
                    line: None,
                }),
                None => bad += 1, // not a user-space range
            },
            Ok(_) => {}
            Err(_) => bad += 1,
        }
    }
    if bad > 0 {
        info.problems.push(format!(
            "{}: {bad} lines are not perf map entries",
            path.display()
        ));
    }
}

fn load_dump(data: &[u8], path: &Path, info: &mut JitInfo) {
    let parsed = match jitdump::read(data) {
        Ok(p) => p,
        Err(e) => {
            info.problems.push(format!("{}: {e}", path.display()));
            return;
        }
    };
    let named = path
        .file_name()
        .and_then(|n| files::parse_file_name(&n.to_string_lossy()))
        .map(|(_, pid)| pid);
    if let Some(pid) = named.filter(|&p| p != parsed.header.pid) {
        info.problems.push(format!(
            "{} was written by process {}, not {pid} (its header says so: a copy, or a stale \
             file of a reused pid); its names are not used",
            path.display(),
            parsed.header.pid
        ));
        return;
    }
    if let Some(e) = parsed.error {
        info.problems.push(format!(
            "{}: {e} (the records before it are used)",
            path.display()
        ));
    }
    let mut pending: Option<(Bytes, Bytes)> = None;
    let mut debug: Option<(u64, u32)> = None;
    for r in parsed.records {
        match r {
            jitdump::Record::DebugInfo {
                code_addr, entries, ..
            } => {
                debug = entries
                    .first()
                    .and_then(|&(_, line, _)| u32::try_from(line).ok())
                    .filter(|&l| l > 0)
                    .map(|l| (code_addr, l));
            }
            jitdump::Record::UnwindingInfo {
                eh_frame,
                eh_frame_hdr,
                ..
            } => pending = Some((Arc::from(eh_frame), Arc::from(eh_frame_hdr))),
            jitdump::Record::CodeLoad {
                code_addr,
                name,
                code,
                ..
            } => {
                let size = code.len() as u64;
                let Some(end) = user_end(code_addr, size) else {
                    info.problems.push(format!(
                        "{}: a code record at {code_addr:#x} lies outside user space; it is \
                         skipped",
                        path.display()
                    ));
                    pending = None;
                    continue;
                };
                if let Some((eh_frame, eh_frame_hdr)) = pending.take() {
                    info.unwind.push(StubUnwind {
                        start: code_addr,
                        code_size: size,
                        eh_frame,
                        eh_frame_hdr,
                    });
                }
                if size > 0 {
                    let line = debug
                        .take()
                        .filter(|&(addr, _)| addr == code_addr)
                        .map(|(_, l)| l);
                    info.stubs.push(Stub {
                        start: code_addr,
                        end,
                        // CPython's own dumps carry line breaks raw: they'd split folded
                        // stacks and text rows.
                        name: Arc::from(perf_map::symbol_name(&name)),
                        line,
                    });
                }
            }
            _ => {}
        }
    }
}

/// The end of `[start, start + size)` if the range lies in user space (below 2^57, which
/// covers x86_64's five-level paging and aarch64's 52-bit addresses). A stub's unwind data
/// is mapped after its code, so this also keeps that arithmetic from overflowing.
fn user_end(start: u64, size: u64) -> Option<u64> {
    start.checked_add(size).filter(|&end| end <= 1 << 57)
}

/// The stub containing `addr` in a list sorted by start.
pub fn find(stubs: &[Stub], addr: u64) -> Option<&Stub> {
    let i = stubs.partition_point(|s| s.start <= addr);
    let s = stubs.get(i.checked_sub(1)?)?;
    (addr < s.end).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_map_and_a_dump() {
        let dir = std::env::temp_dir().join(format!("perfpy-jit-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let map = dir.join("perf-42.map");
        std::fs::write(
            &map,
            "1000 10 py::foo:/x.py\n2000 8 py::bar:/x.py\nnot a line\n",
        )
        .unwrap();
        let mut dump = Vec::new();
        jitdump::write_header(&mut dump, 62, 42, 1);
        let unwind =
            perfpy_format::eh_frame::stub_unwind_info(perfpy_format::eh_frame::Arch::X86_64, 8)
                .unwrap();
        jitdump::write_unwinding_info(&mut dump, 2, &unwind);
        jitdump::write_debug_info(
            &mut dump,
            2,
            0x5000,
            &[jitdump::DebugEntry {
                addr: 0x5000,
                line: 12,
                file: "/x.py",
            }],
        );
        jitdump::write_code_load(
            &mut dump,
            3,
            &jitdump::CodeLoad {
                pid: 42,
                tid: 42,
                code_addr: 0x5000,
                code_index: 0,
                name: "py::baz:/x.py",
                code: &[0x55, 0x48, 0x89, 0xe5, 0xff, 0xd1, 0x5d, 0xc3],
            },
        );
        std::fs::write(dir.join("jit-42.dump"), &dump).unwrap();

        let info = load(&candidates(42, std::slice::from_ref(&dir), None));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(info.files.len(), 2);
        assert_eq!(info.problems.len(), 1, "{:?}", info.problems);
        assert_eq!(&*find(&info.stubs, 0x1005).unwrap().name, "py::foo:/x.py");
        assert_eq!(&*find(&info.stubs, 0x5007).unwrap().name, "py::baz:/x.py");
        assert_eq!(find(&info.stubs, 0x5007).unwrap().line, Some(12));
        assert_eq!(find(&info.stubs, 0x1005).unwrap().line, None);
        assert!(find(&info.stubs, 0x1010).is_none());
        assert!(find(&info.stubs, 0x500).is_none());
        assert_eq!(info.unwind.len(), 1);
        assert_eq!(info.unwind[0].start, 0x5000);
        assert_eq!(info.unwind[0].eh_frame_hdr.len(), 20);
    }
}
