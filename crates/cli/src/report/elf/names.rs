//! Where a binary's function names come from: its own symbol table, else its separate debug
//! file's (found by [`debuginfo`]), else only the functions it exports.

use crate::report::debuginfo;
use object::{Object, ObjectSymbol, SymbolKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where an ELF file's function names come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Names {
    /// Its own full symbol table (`.symtab`).
    Own,
    /// A separate debug file's (see [`debuginfo`]), with its own addresses: a debug file's
    /// symbols are at the addresses of the binary they were split from, which is mapped.
    DebugFile(PathBuf),
    /// It is stripped, and no debug file of it was found: only the functions it exports
    /// (`.dynsym`) have names. `others`: files where its debug file would be, of another build.
    Exports { others: Vec<PathBuf> },
}

/// The function symbols of `obj` (read from `path`; `recorded`: its path in the recording)
/// sorted by start address, `(start, end, name)`, one per address, and where their names came
/// from: a stripped file's debug file is looked for under `roots`.
pub(super) fn function_symbols(
    obj: &object::File<'_>,
    path: &Path,
    recorded: &Path,
    roots: &[PathBuf],
) -> (Vec<(u64, u64, Arc<str>)>, Names) {
    let mut symbols: Vec<(u64, u64, Arc<str>)> = Vec::new();
    let add = |symbols: &mut Vec<(u64, u64, Arc<str>)>, sym: object::Symbol<'_, '_>| {
        if sym.kind() != SymbolKind::Text || !sym.is_definition() || sym.address() == 0 {
            return;
        }
        if let Ok(name) = sym.name() {
            if !name.is_empty() {
                symbols.push((sym.address(), sym.address() + sym.size(), Arc::from(name)));
            }
        }
    };
    obj.symbols().for_each(|s| add(&mut symbols, s));
    let own = !symbols.is_empty();
    obj.dynamic_symbols().for_each(|s| add(&mut symbols, s));
    // A stripped file's full symbol table may be installed separately (Debian's -dbg and
    // -dbgsym packages, Fedora's -debuginfo), found by build id or .gnu_debuglink. Its
    // symbols have the addresses of the file it was split from: they go with this file's
    // segments, and this file's sections (a debug file's .text holds no bytes).
    let names = if own {
        Names::Own
    } else {
        let found = debuginfo::find(obj, path, recorded, roots);
        match found.file {
            Some(debug) => {
                if let Ok(dobj) = object::File::parse(&*debug.map) {
                    dobj.symbols().for_each(|s| add(&mut symbols, s));
                }
                Names::DebugFile(debug.path)
            }
            None => Names::Exports {
                others: found.others,
            },
        }
    };
    // Prefer sized symbols and, among equals, the shorter (public) name.
    symbols.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then((b.1 - b.0).cmp(&(a.1 - a.0)))
            .then(a.2.len().cmp(&b.2.len()))
    });
    symbols.dedup_by_key(|s| s.0);
    (symbols, names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::elf::tests::mapping_of;
    use crate::report::elf::Elf;

    /// This test binary stripped as distributions strip theirs, its symbols in a debug file
    /// beside it: the copy names every function as the original does, at the same addresses
    /// (the debug file's symbols with the stripped file's segments); without the debug file,
    /// only what it exports.
    #[test]
    fn a_stripped_copy_names_its_functions_from_its_debug_file() {
        let exe = std::env::current_exe().unwrap();
        let dir = std::env::temp_dir().join(format!("perfpy-elf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (copy, debug) = (dir.join("prog"), dir.join("prog.debug"));
        let objcopy = |args: &[&std::ffi::OsStr]| {
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
            link.as_ref(),
            exe.as_os_str(),
            copy.as_os_str(),
        ]);
        let here = [PathBuf::from("/")];
        let original = Elf::load(&exe, &exe, &here).unwrap();
        let stripped = Elf::load(&copy, Path::new("/opt/prog"), &here).unwrap();
        assert_eq!(stripped.names, Names::DebugFile(debug.clone()));
        assert!(original.symbols.len() > 1000, "{}", original.symbols.len());
        assert_eq!(stripped.symbols.len(), original.symbols.len());
        for &(start, end, ref name) in &original.symbols {
            for at in [start, start + (end - start) / 2] {
                assert_eq!(
                    stripped.symbol(at),
                    original.symbol(at),
                    "{name} at {at:#x}"
                );
            }
        }
        // Mapped where the original is mapped, an address of ours names our function.
        let f = a_stripped_copy_names_its_functions_from_its_debug_file as *const () as u64;
        let (start, offset) = mapping_of(&exe, f);
        let base = stripped.base_avma(start, offset);
        assert_eq!(base, original.base_avma(start, offset));
        let name = stripped
            .symbol(f - base)
            .expect("named from the debug file");
        assert!(name.contains("a_stripped_copy_names"), "{name}");

        // Without it: stripped, and the function is not named.
        std::fs::remove_file(&debug).unwrap();
        let bare = Elf::load(&copy, Path::new("/opt/prog"), &here).unwrap();
        assert_eq!(bare.names, Names::Exports { others: vec![] });
        assert!(bare
            .symbol(f - base)
            .is_none_or(|n| !n.contains("a_stripped_copy")));
        assert_eq!(bare.debuglink.as_deref(), Some("prog.debug"));
        assert_eq!(bare.build_id, original.build_id);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
