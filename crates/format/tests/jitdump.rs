//! Our jitdump and CFI, read back by independent readers: linux-perf-data's jitdump parser,
//! gimli's `.eh_frame` reader, and framehop's unwinder. The invariants are those CPython's own
//! jitdump test asserts (`TestJitdumpFileFormat`), plus unwinding through the stub.

use gimli::{
    BaseAddresses, CieOrFde, EhFrame, EhFrameHdr, LittleEndian, UnwindContext, UnwindSection,
};
use linux_perf_data::jitdump::{JitDumpReader, JitDumpRecord};
use perfpy_format::eh_frame::{self, round8, Arch, EH_FRAME_HDR_SIZE};
use perfpy_format::jitdump::{self, CodeLoad, DebugEntry};

const X86_STUB: [u8; 8] = [0x55, 0x48, 0x89, 0xe5, 0xff, 0xd1, 0x5d, 0xc3];
const A64_STUB_LEN: usize = 20;

/// A dump as the extension writes it: header, then for each stub its unwinding record, an
/// optional debug record and its load record, then CODE_CLOSE.
fn sample_dump(n: usize) -> (Vec<u8>, Vec<u64>) {
    let unwind = eh_frame::stub_unwind_info(Arch::X86_64, X86_STUB.len()).unwrap();
    let stride = jitdump::mapped_extent(X86_STUB.len(), &unwind).next_multiple_of(16) as u64;
    let mut out = Vec::new();
    jitdump::write_header(&mut out, Arch::X86_64.elf_machine(), 4242, 1000);
    let mut addrs = Vec::new();
    for i in 0..n {
        let addr = 0x7f00_0000_0000 + i as u64 * stride;
        addrs.push(addr);
        jitdump::write_unwinding_info(&mut out, 2000 + i as u64, &unwind);
        let name = format!("py::f{i}:/srv/app.py");
        jitdump::write_debug_info(
            &mut out,
            2000 + i as u64,
            addr,
            &[DebugEntry {
                addr,
                line: 10 + i as i32,
                file: "/srv/app.py",
            }],
        );
        jitdump::write_code_load(
            &mut out,
            2000 + i as u64,
            &CodeLoad {
                pid: 4242,
                tid: 4243,
                code_addr: addr,
                code_index: i as u64 + 1,
                name: &name,
                code: &X86_STUB,
            },
        );
    }
    jitdump::write_code_close(&mut out, 9999);
    (out, addrs)
}

/// The unwinding blob as perf's genelf reads it: `.eh_frame` first, the header last.
/// (linux-perf-data splits it header-first; rejoin its two halves and split at the end.)
fn split_blob(eh_frame_hdr: &[u8], eh_frame: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut blob = eh_frame_hdr.to_vec();
    blob.extend_from_slice(eh_frame);
    let hdr = blob.split_off(blob.len() - EH_FRAME_HDR_SIZE);
    (blob, hdr)
}

#[test]
fn independent_reader_parses_every_record() {
    let (bytes, addrs) = sample_dump(50);
    let mut reader = JitDumpReader::new(std::io::Cursor::new(bytes)).unwrap();
    let h = reader.header().clone();
    assert_eq!(&h.magic, b"DTiJ"); // 0x4A695444 little-endian
    assert_eq!(
        (h.version, h.total_size, h.elf_machine_arch, h.pid),
        (1, 40, 62, 4242)
    );
    assert_eq!((h.timestamp, h.flags), (1000, 0));

    let expected = eh_frame::stub_unwind_info(Arch::X86_64, X86_STUB.len()).unwrap();
    let mut kinds = Vec::new();
    let mut loads = 0;
    while let Some(raw) = reader.next_record().unwrap() {
        match raw.parse().unwrap() {
            JitDumpRecord::CodeUnwindingInfo(u) => {
                kinds.push('U');
                let (eh, hdr) = split_blob(&u.eh_frame_hdr.as_slice(), &u.eh_frame.as_slice());
                assert_eq!(eh, expected.eh_frame);
                assert_eq!(hdr, expected.eh_frame_hdr);
                assert_eq!(u.mapped_size as usize, (eh.len() + 20).next_multiple_of(16));
            }
            JitDumpRecord::CodeDebugInfo(d) => {
                kinds.push('D');
                assert_eq!(d.entries.len(), 1);
                assert_eq!(&*d.entries[0].file_path.as_slice(), b"/srv/app.py");
            }
            JitDumpRecord::CodeLoad(l) => {
                kinds.push('L');
                assert_eq!((l.pid, l.tid), (4242, 4243));
                assert_eq!(l.vma, addrs[loads]);
                assert_eq!(l.code_addr, addrs[loads]);
                assert_eq!(l.code_index, loads as u64 + 1);
                assert_eq!(
                    &*l.function_name.as_slice(),
                    format!("py::f{loads}:/srv/app.py").as_bytes()
                );
                assert_eq!(&*l.code_bytes.as_slice(), &X86_STUB);
                loads += 1;
            }
            JitDumpRecord::CodeClose => kinds.push('C'),
            other => panic!("unexpected record {other:?}"),
        }
    }
    assert_eq!(loads, 50);
    // Every unwinding record is followed by its code's debug and load records.
    let expected_kinds: String = "UDL".repeat(50) + "C";
    assert_eq!(kinds.into_iter().collect::<String>(), expected_kinds);
}

#[test]
fn records_are_8_byte_aligned_where_padded_and_sized_exactly() {
    let (bytes, _) = sample_dump(3);
    let mut off = jitdump::HEADER_SIZE;
    while off < bytes.len() {
        let id = u32::from_ne_bytes(bytes[off..off + 4].try_into().unwrap());
        let size = u32::from_ne_bytes(bytes[off + 4..off + 8].try_into().unwrap()) as usize;
        match id {
            jitdump::id::CODE_UNWINDING_INFO | jitdump::id::CODE_DEBUG_INFO => {
                assert_eq!(size % 8, 0)
            }
            jitdump::id::CODE_LOAD => {
                // 56 bytes of fixed fields, the name and its NUL, then the code: unpadded.
                assert_eq!(size, 56 + "py::f0:/srv/app.py".len() + 1 + X86_STUB.len());
            }
            jitdump::id::CODE_CLOSE => assert_eq!(size, 16),
            other => panic!("record id {other}"),
        }
        off += size;
    }
    assert_eq!(off, bytes.len());
}

fn check_cie_and_fde(arch: Arch, code_size: usize) {
    let info = eh_frame::stub_unwind_info(arch, code_size).unwrap();
    let eh = EhFrame::new(&info.eh_frame, LittleEndian);
    // Section addresses as in perf's synthesized ELF: code at 0, .eh_frame at round8(code).
    let eh_svma = round8(code_size) as u64;
    let hdr_svma = eh_svma + info.eh_frame.len() as u64;
    let bases = BaseAddresses::default()
        .set_eh_frame(eh_svma)
        .set_eh_frame_hdr(hdr_svma);
    let mut entries = eh.entries(&bases);
    let mut cies = 0;
    let mut fdes = 0;
    while let Some(entry) = entries.next().unwrap() {
        match entry {
            CieOrFde::Cie(cie) => {
                cies += 1;
                assert_eq!(cie.version(), 1);
                assert!(cie.augmentation().is_some(), "augmentation \"zR\"");
                assert_eq!(
                    cie.fde_address_encoding(),
                    Some(gimli::DW_EH_PE_pcrel | gimli::DW_EH_PE_sdata4)
                );
                let (caf, daf) = match arch {
                    Arch::X86_64 => (1, -8),
                    Arch::Aarch64 => (4, -8),
                };
                assert_eq!(
                    (cie.code_alignment_factor(), cie.data_alignment_factor()),
                    (caf, daf)
                );
                assert_eq!(cie.return_address_register(), eh_frame::registers(arch).2);
            }
            CieOrFde::Fde(partial) => {
                fdes += 1;
                let fde = partial
                    .parse(|_, bases, o| eh.cie_from_offset(bases, o))
                    .unwrap();
                assert_eq!(
                    fde.initial_address(),
                    0,
                    "the FDE covers the code, at the start of the ELF"
                );
                assert_eq!(fde.len(), code_size as u64, "FDE range = code size");
            }
        }
    }
    assert_eq!((cies, fdes), (1, 1));
    // The raw pc_begin field: -(round8(code_size) + its own offset), CPython's formula.
    let pc_begin_at = info.fde_offset + 8;
    let raw = i32::from_le_bytes(
        info.eh_frame[pc_begin_at..pc_begin_at + 4]
            .try_into()
            .unwrap(),
    );
    assert_eq!(raw, eh_frame::expected_pc_begin(code_size, info.fde_offset));
    // CIE id 0 and the zero terminator.
    assert_eq!(&info.eh_frame[4..8], &[0, 0, 0, 0]);
    assert_eq!(&info.eh_frame[info.eh_frame.len() - 4..], &[0, 0, 0, 0]);

    // The header: version 1, encodings, and a table that finds the FDE for every code byte.
    let h = &info.eh_frame_hdr;
    assert_eq!(&h[..4], &[1, 0x1b, 0x03, 0x3b]);
    let from = i32::from_le_bytes(h[12..16].try_into().unwrap());
    assert_eq!(from, -((round8(code_size) + info.eh_frame.len()) as i32));
    let parsed = EhFrameHdr::new(h, LittleEndian).parse(&bases, 8).unwrap();
    assert_eq!(parsed.eh_frame_ptr(), gimli::Pointer::Direct(eh_svma));
    let table = parsed.table().unwrap();
    for pc in 0..code_size as u64 {
        let fde = table
            .fde_for_address(&eh, &bases, pc, |s, b, o| s.cie_from_offset(b, o))
            .unwrap();
        assert!(fde.contains(pc));
    }
}

#[test]
fn x86_64_cie_fde_and_header() {
    check_cie_and_fde(Arch::X86_64, X86_STUB.len());
}

#[test]
fn aarch64_cie_fde_and_header() {
    check_cie_and_fde(Arch::Aarch64, A64_STUB_LEN);
}

/// The CFA rule at each instruction boundary of the x86_64 stub.
#[test]
fn x86_64_rows_follow_the_frame_record() {
    let info = eh_frame::stub_unwind_info(Arch::X86_64, X86_STUB.len()).unwrap();
    let eh = EhFrame::new(&info.eh_frame, LittleEndian);
    let bases = BaseAddresses::default().set_eh_frame(8);
    let mut ctx = UnwindContext::new();
    let (rsp, rbp, _) = eh_frame::registers(Arch::X86_64);
    let expect = [
        (0, rsp, 8),
        (1, rsp, 16),
        (4, rbp, 16),
        (5, rbp, 16),
        (6, rbp, 16),
        (7, rsp, 8),
    ];
    for (pc, reg, off) in expect {
        let row = eh
            .unwind_info_for_address(&bases, &mut ctx, pc, |s, b, o| s.cie_from_offset(b, o))
            .unwrap();
        assert_eq!(
            *row.cfa(),
            gimli::CfaRule::RegisterAndOffset {
                register: reg,
                offset: off
            },
            "pc {pc}"
        );
    }
}

mod unwind {
    use super::*;
    use framehop::aarch64::{CacheAarch64, UnwindRegsAarch64, UnwinderAarch64};
    use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
    use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};

    const STUB: u64 = 0x7f00_1000_0000;
    const SP: u64 = 0x7ffe_0000_1000;
    const CALLER_RET: u64 = 0x5555_0000_1234;
    const CALLER_FP: u64 = 0x7ffe_0000_2000;
    const GARBAGE_FP: u64 = 0xdead_0000_0000;

    fn module(arch: Arch, code_size: usize) -> Module<Vec<u8>> {
        let info = eh_frame::stub_unwind_info(arch, code_size).unwrap();
        module_with(&info, code_size)
    }

    /// A module for one stub at `STUB`, laid out as perf's jitted-*.so: code, then its
    /// `.eh_frame` at the next multiple of 8, then the header.
    fn module_with(info: &eh_frame::StubUnwindInfo, code_size: usize) -> Module<Vec<u8>> {
        let eh_start = round8(code_size) as u64;
        let hdr_start = eh_start + info.eh_frame.len() as u64;
        let end = hdr_start + EH_FRAME_HDR_SIZE as u64;
        let section_info = ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma: Some(0..code_size as u64),
            eh_frame_svma: Some(eh_start..hdr_start),
            eh_frame: Some(info.eh_frame.clone()),
            eh_frame_hdr_svma: Some(hdr_start..end),
            eh_frame_hdr: Some(info.eh_frame_hdr.to_vec()),
            ..Default::default()
        };
        Module::new("jitted-stub".into(), STUB..STUB + end, STUB, section_info)
    }

    /// Unwinds one x86_64 frame at `pc` (a return address or not) with `words` on the stack;
    /// the caller's address and the registers after it.
    fn unwind_x86_64(
        unwinder: &UnwinderX86_64<Vec<u8>>,
        cache: &mut CacheX86_64,
        (pc, sp, bp): (u64, u64, u64),
        is_return: bool,
        words: &[(u64, u64)],
    ) -> (Option<u64>, UnwindRegsX86_64) {
        let mut regs = UnwindRegsX86_64::new(pc, sp, bp);
        let address = if is_return {
            FrameAddress::from_return_address(pc).unwrap()
        } else {
            FrameAddress::from_instruction_pointer(pc)
        };
        let next = unwinder
            .unwind_frame(address, &mut regs, cache, &mut stack(words))
            .unwrap();
        (next, regs)
    }

    fn stack(words: &[(u64, u64)]) -> impl FnMut(u64) -> Result<u64, ()> + '_ {
        move |addr| {
            words
                .iter()
                .find(|(a, _)| *a == addr)
                .map(|(_, v)| *v)
                .ok_or(())
        }
    }

    /// Unwinds one frame of the x86_64 stub at `pc`, where the CFI alone knows the answer:
    /// rbp holds garbage except where the stub has set it, so a frame-pointer fallback fails.
    #[test]
    fn x86_64_through_the_stub_to_the_planted_return_address() {
        let mut unwinder = UnwinderX86_64::new();
        unwinder.add_module(module(Arch::X86_64, X86_STUB.len()));
        let mut cache = CacheX86_64::new();
        // (pc, sp, bp, stack contents, whether pc is a return address)
        type Case = (u64, u64, u64, Vec<(u64, u64)>, bool);
        let cases: Vec<Case> = vec![
            // At entry: the return address is on top of the stack.
            (STUB, SP, GARBAGE_FP, vec![(SP, CALLER_RET)], false),
            // After push rbp: saved rbp on top, return address above it.
            (
                STUB + 1,
                SP - 8,
                GARBAGE_FP,
                vec![(SP - 8, CALLER_FP), (SP, CALLER_RET)],
                false,
            ),
            // In the evaluator: the stub's frame record is complete (return address stub+6).
            (
                STUB + 6,
                SP - 8,
                SP - 8,
                vec![(SP - 8, CALLER_FP), (SP, CALLER_RET)],
                true,
            ),
            // At ret: rbp restored, return address on top.
            (STUB + 7, SP, CALLER_FP, vec![(SP, CALLER_RET)], false),
        ];
        for (pc, sp, bp, words, is_return) in cases {
            let (next, regs) =
                unwind_x86_64(&unwinder, &mut cache, (pc, sp, bp), is_return, &words);
            assert_eq!(next, Some(CALLER_RET), "pc = stub+{}", pc - STUB);
            assert_eq!(regs.sp(), SP + 8, "pc = stub+{}", pc - STUB);
            if pc - STUB >= 1 {
                assert_eq!(regs.bp(), CALLER_FP, "pc = stub+{}", pc - STUB);
            }
        }
    }

    /// CPython's own trampoline keeps no frame record; with the CFI perfpy derives from its
    /// template, unwinding from the return address inside it (after `call *%rcx`) finds the
    /// caller with rbp untouched (garbage in a build without frame pointers).
    #[test]
    fn x86_64_through_cpython_trampoline_with_derived_cfi() {
        const TEMPLATE: [u8; 11] = [
            0x48, 0x83, 0xec, 0x08, 0xff, 0xd1, 0x48, 0x83, 0xc4, 0x08, 0xc3,
        ];
        let info = eh_frame::cpython_x86_64_trampoline_unwind_info(&TEMPLATE).unwrap();
        let mut unwinder = UnwinderX86_64::new();
        unwinder.add_module(module_with(&info, TEMPLATE.len()));
        let mut cache = CacheX86_64::new();
        // In the evaluator: sp points at the 8 bytes the stub reserved, the caller's return
        // address above them.
        let words = vec![(SP - 8, 0x1234), (SP, CALLER_RET)];
        for (pc, sp, is_return) in [
            (STUB + 6, SP - 8, true),
            (STUB, SP, false),
            (STUB + 10, SP, false),
        ] {
            let (next, regs) = unwind_x86_64(
                &unwinder,
                &mut cache,
                (pc, sp, GARBAGE_FP),
                is_return,
                &words,
            );
            assert_eq!(next, Some(CALLER_RET), "pc = stub+{}", pc - STUB);
            assert_eq!(regs.sp(), SP + 8);
            assert_eq!(regs.bp(), GARBAGE_FP);
        }
        // Not the template: no CFI.
        assert!(eh_frame::cpython_x86_64_trampoline_unwind_info(&[0x55, 0xc3]).is_none());
    }

    #[test]
    fn aarch64_through_the_stub_to_the_planted_return_address() {
        let mut unwinder = UnwinderAarch64::new();
        unwinder.add_module(module(Arch::Aarch64, A64_STUB_LEN));
        let mut cache = CacheAarch64::new();
        // In the evaluator (return address stub+12): the stub stored {fp, lr} at sp and set
        // fp = sp. lr now points into the stub; the caller's lr is on the stack.
        let frame = SP - 16;
        let words = vec![(frame, CALLER_FP), (frame + 8, CALLER_RET)];
        let mut regs = UnwindRegsAarch64::new(STUB + 12, frame, frame);
        let next = unwinder
            .unwind_frame(
                FrameAddress::from_return_address(STUB + 12).unwrap(),
                &mut regs,
                &mut cache,
                &mut stack(&words),
            )
            .unwrap();
        assert_eq!(next, Some(CALLER_RET));
        assert_eq!(regs.sp(), SP);
        assert_eq!(regs.fp(), CALLER_FP);

        // After stp, before mov x29, sp: fp still holds garbage; only the CFI knows.
        let mut regs = UnwindRegsAarch64::new(GARBAGE_FP, frame, GARBAGE_FP);
        let next = unwinder
            .unwind_frame(
                FrameAddress::from_instruction_pointer(STUB + 4),
                &mut regs,
                &mut cache,
                &mut stack(&words),
            )
            .unwrap();
        assert_eq!(next, Some(CALLER_RET));
        assert_eq!(regs.sp(), SP);

        // Sampled at the ldp (the evaluator has returned; lr still points into the stub).
        let mut regs = UnwindRegsAarch64::new(STUB + 12, frame, frame);
        let next = unwinder
            .unwind_frame(
                FrameAddress::from_instruction_pointer(STUB + 12),
                &mut regs,
                &mut cache,
                &mut stack(&words),
            )
            .unwrap();
        assert_eq!(next, Some(CALLER_RET));
        assert_eq!((regs.sp(), regs.fp()), (SP, CALLER_FP));

        // Sampled at the ret: everything restored, the return address is in lr.
        let mut regs = UnwindRegsAarch64::new(CALLER_RET, SP, CALLER_FP);
        let next = unwinder
            .unwind_frame(
                FrameAddress::from_instruction_pointer(STUB + 16),
                &mut regs,
                &mut cache,
                &mut stack(&[]),
            )
            .unwrap();
        assert_eq!(next, Some(CALLER_RET));
        assert_eq!(regs.sp(), SP);
    }
}

mod reader {
    use super::*;
    use perfpy_format::jitdump::{read, ReadError, Record};

    #[test]
    fn reads_back_what_the_writer_wrote() {
        let (bytes, addrs) = sample_dump(20);
        let parsed = read(&bytes).unwrap();
        assert_eq!(parsed.error, None);
        let (header, records) = (parsed.header, parsed.records);
        assert_eq!(
            (header.elf_mach, header.pid, header.timestamp, header.flags),
            (62, 4242, 1000, 0)
        );
        let unwind = eh_frame::stub_unwind_info(Arch::X86_64, X86_STUB.len()).unwrap();
        let loads: Vec<_> = records
            .iter()
            .filter_map(|r| match r {
                Record::CodeLoad {
                    code_addr,
                    name,
                    code,
                    code_index,
                    ..
                } => Some((*code_addr, name.clone(), code.clone(), *code_index)),
                _ => None,
            })
            .collect();
        assert_eq!(loads.len(), 20);
        for (i, (addr, name, code, index)) in loads.iter().enumerate() {
            assert_eq!(
                (*addr, name.as_str(), code.as_slice(), *index),
                (
                    addrs[i],
                    format!("py::f{i}:/srv/app.py").as_str(),
                    &X86_STUB[..],
                    i as u64 + 1
                )
            );
        }
        let Record::UnwindingInfo {
            eh_frame,
            eh_frame_hdr,
            ..
        } = &records[0]
        else {
            panic!("{:?}", records[0])
        };
        assert_eq!(
            (eh_frame, eh_frame_hdr.as_slice()),
            (&unwind.eh_frame, &unwind.eh_frame_hdr[..])
        );
        let Record::DebugInfo { entries, .. } = &records[1] else {
            panic!("{:?}", records[1])
        };
        assert_eq!(entries, &vec![(addrs[0], 10, "/srv/app.py".to_string())]);
        assert!(matches!(
            records.last(),
            Some(Record::Close { timestamp: 9999 })
        ));
    }

    #[test]
    fn truncated_dump_keeps_what_was_complete() {
        let (bytes, _) = sample_dump(5);
        let cut = &bytes[..bytes.len() - 30]; // inside the last load record
        let parsed = read(cut).unwrap();
        assert!(
            matches!(parsed.error, Some(ReadError::Truncated { .. })),
            "{:?}",
            parsed.error
        );
        let loads = parsed
            .records
            .iter()
            .filter(|r| matches!(r, Record::CodeLoad { .. }))
            .count();
        assert_eq!(loads, 4);
    }

    #[test]
    fn rejects_other_files() {
        assert!(matches!(
            read(b"ELF\x7fxxxx").unwrap_err(),
            ReadError::BadMagic(_)
        ));
        let mut v2 = Vec::new();
        jitdump::write_header(&mut v2, 62, 1, 0);
        v2[4] = 2;
        assert_eq!(read(&v2).unwrap_err(), ReadError::UnsupportedVersion(2));
    }
}
