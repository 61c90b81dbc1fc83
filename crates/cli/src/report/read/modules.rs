//! framehop's modules for a process's address space: one per mapped binary (its
//! `.eh_frame`), one per jitdump stub (the stub's own CFI), and one per CPython perf-map stub
//! (CFI derived from the interpreter's trampoline template). perfpy's perf-map stubs need no
//! module: framehop's fallback for code without CFI follows the frame record they keep.

use super::arch::Arch;
use super::process::Space;
use crate::report::elf::Bytes;
use framehop::{ExplicitModuleSectionInfo, Module, Unwinder};
use std::collections::HashSet;

/// framehop's unwinder for `space`.
pub fn unwinder<A: Arch>(space: &Space) -> A::Unwinder {
    let mut modules: Vec<Module<Bytes>> = Vec::new();
    for m in &space.mappings {
        let info = match &m.elf {
            Some(elf) => elf.section_info(),
            None => ExplicitModuleSectionInfo::default(),
        };
        modules.push(Module::new(
            m.path.to_string(),
            m.start..m.end,
            m.base,
            info,
        ));
    }
    let mut seen = HashSet::new();
    for info in space.jit_infos() {
        for u in &info.unwind {
            if seen.insert(u.start) {
                modules.push(stub_module(
                    u.start,
                    u.code_size,
                    &u.eh_frame,
                    &u.eh_frame_hdr,
                ));
            }
        }
    }
    // Perf-map stubs of CPython's own trampoline keep no frame record: give each the CFI
    // derived from the template in the interpreter's binary. They are told apart by size: a
    // copy of the template is exactly as long as it (perfpy's stubs, which do keep a frame
    // record, are 8 bytes; CPython's `sub`/`add` template is 11 or 15; a template that builds
    // a frame record gets no derived CFI at all).
    let cpython = space
        .mappings
        .iter()
        .find_map(|m| m.elf.as_ref().and_then(|e| e.cpython_trampoline.clone()));
    if let Some(cfi) = cpython {
        for info in space.jit_infos() {
            for stub in &info.stubs {
                if stub.end - stub.start == cfi.code_size && seen.insert(stub.start) {
                    modules.push(stub_module(
                        stub.start,
                        cfi.code_size,
                        &cfi.eh_frame,
                        &cfi.eh_frame_hdr,
                    ));
                }
            }
        }
    }
    // Adding in address order keeps framehop's sorted insert at the end: linear in the number
    // of modules even with tens of thousands of stubs.
    modules.sort_by_key(|m| m.avma_range().start);
    let mut unwinder = A::Unwinder::default();
    let mut last_end = 0;
    for m in modules {
        if m.avma_range().start < last_end {
            continue; // a stub inside a file mapping: the file wins
        }
        last_end = m.avma_range().end;
        unwinder.add_module(m);
    }
    unwinder
}

/// A module for one stub whose CFI is laid out as in perf's `jitted-*.so`: code at 0, its
/// `.eh_frame` at the next multiple of 8, the header after it.
fn stub_module(
    start: u64,
    code_size: u64,
    eh_frame: &Bytes,
    eh_frame_hdr: &Bytes,
) -> Module<Bytes> {
    let eh_start = code_size.div_ceil(8) * 8;
    let hdr_start = eh_start + eh_frame.len() as u64;
    let section_info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: Some(0..code_size),
        eh_frame_svma: Some(eh_start..hdr_start),
        eh_frame: Some(eh_frame.clone()),
        eh_frame_hdr_svma: Some(hdr_start..hdr_start + eh_frame_hdr.len() as u64),
        eh_frame_hdr: Some(eh_frame_hdr.clone()),
        ..Default::default()
    };
    Module::new(String::new(), start..start + code_size, start, section_info)
}
