//! What the report needs from an ELF file mapped by a profiled process: the unwind sections
//! (for framehop) and the function symbols (for names, gathered by `names`), read once per
//! file.

mod names;

pub use names::Names;

use crate::report::debuginfo;
use framehop::ExplicitModuleSectionInfo;
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};
use std::collections::HashMap;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

/// Section bytes shared by every process that maps the file.
pub type Bytes = Arc<[u8]>;

/// An ELF file's call frame information, by address.
pub struct EhFrameSections<'a> {
    pub eh_frame: (u64, &'a [u8]),
    pub eh_frame_hdr: (u64, &'a [u8]),
    pub text: Option<u64>,
}

/// CFI for every stub copied from a trampoline template of `code_size` bytes (the same bytes
/// serve every copy: the FDE's address is relative).
#[derive(Debug, Clone)]
pub struct TrampolineCfi {
    pub code_size: u64,
    pub eh_frame: Bytes,
    pub eh_frame_hdr: Bytes,
}

fn trampoline_cfi(file: &object::File<'_>) -> Option<TrampolineCfi> {
    if file.architecture() != object::Architecture::X86_64 {
        return None;
    }
    let find = |name: &str| {
        file.symbols()
            .chain(file.dynamic_symbols())
            .find(|s| s.name() == Ok(name))
    };
    let start = find("_Py_trampoline_func_start")?;
    let end = find("_Py_trampoline_func_end")?;
    let section = file.section_by_index(start.section_index()?).ok()?;
    let data = section.data().ok()?;
    let from = start.address().checked_sub(section.address())? as usize;
    let to = end.address().checked_sub(section.address())? as usize;
    let template = data.get(from..to)?;
    let info = perfpy_format::eh_frame::cpython_x86_64_trampoline_unwind_info(template)?;
    Some(TrampolineCfi {
        code_size: template.len() as u64,
        eh_frame: Arc::from(info.eh_frame),
        eh_frame_hdr: Arc::from(&info.eh_frame_hdr[..]),
    })
}

struct Section {
    svma: Range<u64>,
    data: Bytes,
}

pub struct Elf {
    /// The file name without its directory, for frames without a symbol.
    pub short_name: Arc<str>,
    /// The CPU its code is for.
    pub machine: object::Architecture,
    /// Where its functions' names come from.
    pub names: Names,
    /// The root of the file system it was read from: `/`, a `--sysroot`, a container's.
    pub root: PathBuf,
    /// Its build id, in hex.
    pub build_id: Option<String>,
    /// The file name its `.gnu_debuglink` gives (its debug file's).
    pub debuglink: Option<String>,
    /// `(file offset, file size, virtual address)` of each `PT_LOAD` segment.
    segments: Vec<(u64, u64, u64)>,
    text: Option<Section>,
    eh_frame: Option<Section>,
    eh_frame_hdr: Option<Section>,
    debug_frame: Option<Bytes>,
    /// The unwind info of CPython's own perf trampoline, derived from its template in this
    /// binary (`_Py_trampoline_func_start`..`_end`), if it has one.
    pub cpython_trampoline: Option<TrampolineCfi>,
    /// Function symbols sorted by start address: `(start, end, name)`; `end == start` when the
    /// symbol has no size.
    symbols: Vec<(u64, u64, Arc<str>)>,
}

fn section(file: &object::File<'_>, name: &str) -> Option<Section> {
    let s = file.section_by_name(name)?;
    let data = s.uncompressed_data().ok()?;
    if data.is_empty() {
        return None;
    }
    Some(Section {
        svma: s.address()..s.address() + data.len() as u64,
        data: Arc::from(&*data),
    })
}

/// The binaries this process has read, by path, file identity (device, inode, size, mtime) and
/// the roots searched for its debug file: a recording read again (`record` rereads it once the
/// program's stragglers exit) or many times (the fuzz targets) reads each binary once, and a
/// file replaced since is read anew.
static LOADED: LazyLock<Mutex<Loaded>> = LazyLock::new(Mutex::default);
type Loaded = HashMap<(PathBuf, FileId, Vec<PathBuf>), Option<Arc<Elf>>>;

/// Device, inode, size and mtime (seconds, nanoseconds).
type FileId = (u64, u64, u64, i64, i64);

impl Elf {
    /// [`Elf::load`], shared: a file already read (and unchanged) is not read again.
    pub fn load_shared(path: &Path, recorded: &Path, roots: &[PathBuf]) -> Option<Arc<Elf>> {
        let m = std::fs::metadata(path).ok()?;
        let key = (
            path.to_path_buf(),
            (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()),
            roots.to_vec(),
        );
        if let Some(elf) = LOADED.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return elf.clone();
        }
        // Read without the lock held; two threads reading the same file both get a whole one.
        let elf = Elf::load(path, recorded, roots).map(Arc::new);
        LOADED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, elf.clone());
        elf
    }

    /// Reads the file at `path` (`recorded`: its path as the recording has it); `None` if it
    /// isn't there or isn't ELF. A stripped file's debug file is looked for under `roots` (the
    /// first: the root `path` is in), as [`debuginfo::find`] says.
    pub fn load(path: &Path, recorded: &Path, roots: &[PathBuf]) -> Option<Elf> {
        let file = std::fs::File::open(path).ok()?;
        // SAFETY: the file is mapped read-only and only read while the map lives; every
        // section we keep is copied out. A file truncated by someone else meanwhile would
        // fault, as it would for perf itself; binaries of a finished recording don't change.
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        let obj = object::File::parse(&*map).ok()?;
        let segments = obj
            .segments()
            .map(|s| {
                let (off, size) = s.file_range();
                (off, size, s.address())
            })
            .collect();
        let (symbols, names) = names::function_symbols(&obj, path, recorded, roots);
        let short_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let root = roots.first().cloned().unwrap_or_else(|| PathBuf::from("/"));
        let build_id = obj
            .build_id()
            .ok()
            .flatten()
            .map(|id| id.iter().map(|b| format!("{b:02x}")).collect());
        let debuglink = obj
            .section_by_name(".gnu_debuglink")
            .and_then(|s| s.data().ok())
            .and_then(|d| debuginfo::parse_debuglink(d, obj.is_little_endian()))
            .map(|(name, _)| name.to_string_lossy().into_owned());
        Some(Elf {
            short_name: Arc::from(short_name),
            machine: obj.architecture(),
            names,
            root,
            build_id,
            debuglink,
            segments,
            text: section(&obj, ".text"),
            eh_frame: section(&obj, ".eh_frame"),
            eh_frame_hdr: section(&obj, ".eh_frame_hdr"),
            debug_frame: section(&obj, ".debug_frame").map(|s| s.data),
            cpython_trampoline: trampoline_cfi(&obj),
            symbols,
        })
    }

    /// The address at which the file's virtual address 0 would sit, given that the bytes at
    /// `file_offset` are mapped at `map_start`.
    pub fn base_avma(&self, map_start: u64, file_offset: u64) -> u64 {
        // Mappings start at page boundaries, so the page holding a segment's first byte may
        // hold the previous segment's last bytes too: the later segment is the one mapped.
        let seg = self.segments.iter().rev().find(|&&(off, size, _)| {
            off & !0xfff <= file_offset && file_offset < off + size.max(1)
        });
        match seg {
            Some(&(off, _, vaddr)) => map_start
                .wrapping_add(off)
                .wrapping_sub(file_offset)
                .wrapping_sub(vaddr),
            None => map_start.wrapping_sub(file_offset),
        }
    }

    /// The function containing virtual address `svma`.
    pub fn symbol(&self, svma: u64) -> Option<&Arc<str>> {
        let i = self.symbols.partition_point(|s| s.0 <= svma);
        let (start, end, name) = self.symbols.get(i.checked_sub(1)?)?;
        let next = self.symbols.get(i).map_or(u64::MAX, |s| s.0);
        let inside = if end > start {
            svma < *end
        } else {
            svma < next && svma - start < 0x10000
        };
        inside.then_some(name)
    }

    /// `.eh_frame` and `.eh_frame_hdr` (address and bytes each), and `.text`'s address: what
    /// [`crate::report::read::cfi`] evaluates rules from.
    pub fn eh_frame(&self) -> Option<EhFrameSections<'_>> {
        let (eh, hdr) = (self.eh_frame.as_ref()?, self.eh_frame_hdr.as_ref()?);
        Some(EhFrameSections {
            eh_frame: (eh.svma.start, &eh.data),
            eh_frame_hdr: (hdr.svma.start, &hdr.data),
            text: self.text.as_ref().map(|t| t.svma.start),
        })
    }

    /// The sections framehop unwinds with.
    pub fn section_info(&self) -> ExplicitModuleSectionInfo<Bytes> {
        ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma: self.text.as_ref().map(|s| s.svma.clone()),
            text: self.text.as_ref().map(|s| s.data.clone()),
            eh_frame_svma: self.eh_frame.as_ref().map(|s| s.svma.clone()),
            eh_frame: self.eh_frame.as_ref().map(|s| s.data.clone()),
            eh_frame_hdr_svma: self.eh_frame_hdr.as_ref().map(|s| s.svma.clone()),
            eh_frame_hdr: self.eh_frame_hdr.as_ref().map(|s| s.data.clone()),
            debug_frame: self.debug_frame.clone(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the code at `f` is mapped from this test binary: the mapping's start and file
    /// offset, from /proc/self/maps (the binary is position independent).
    pub(super) fn mapping_of(exe: &Path, f: u64) -> (u64, u64) {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let exe_s = exe.to_string_lossy();
        let line = maps
            .lines()
            .find(|l| {
                let mut parts = l.split_whitespace();
                let range = parts.next().unwrap();
                let (lo, hi) = range.split_once('-').unwrap();
                let (lo, hi) = (
                    u64::from_str_radix(lo, 16).unwrap(),
                    u64::from_str_radix(hi, 16).unwrap(),
                );
                l.ends_with(&*exe_s) && lo <= f && f < hi
            })
            .expect("the function lies in a mapping of the test binary");
        let mut parts = line.split_whitespace();
        let start =
            u64::from_str_radix(parts.next().unwrap().split('-').next().unwrap(), 16).unwrap();
        let offset = u64::from_str_radix(parts.nth(1).unwrap(), 16).unwrap();
        (start, offset)
    }

    #[test]
    fn reads_this_test_binary() {
        let exe = std::env::current_exe().unwrap();
        let elf = Elf::load(&exe, &exe, &[PathBuf::from("/")]).expect("the test binary is ELF");
        assert_eq!(elf.names, Names::Own);
        assert!(elf.eh_frame.is_some() && elf.text.is_some());
        // The address of a function of ours names that function.
        let f = reads_this_test_binary as *const () as u64;
        let (start, offset) = mapping_of(&exe, f);
        let base = elf.base_avma(start, offset);
        let name = elf.symbol(f - base).expect("symbol found");
        assert!(name.contains("reads_this_test_binary"), "{name}");
        assert!(elf.symbol(0).is_none());
    }
}
