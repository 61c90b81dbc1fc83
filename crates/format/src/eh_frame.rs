//! DWARF call-frame information for a trampoline, laid out the way perf's jitdump expects it.
//!
//! `perf inject --jit` builds one small ELF per `JIT_CODE_LOAD` record: `.text` holds the code
//! (padded to 8 bytes), followed by the `.eh_frame` and the 20-byte `.eh_frame_hdr` carried by
//! the `JIT_CODE_UNWINDING_INFO` record that came just before it. Every pointer in these
//! sections is relative (`pcrel`/`datarel`), so the same bytes describe a stub at any address:
//!
//! ```text
//! 0                      round8(code)            round8(code) + eh_frame.len()
//! | code ... | pad       | CIE | FDE | 0000      | eh_frame_hdr (20 bytes) |
//! ```
//!
//! The CFI describes perfpy's stubs (see the trampoline crate), which build a frame record:
//!
//! * x86_64 `push rbp; mov rbp,rsp; call *rcx; pop rbp; ret`: CFA = rsp+8, then rsp+16 with rbp
//!   saved at CFA-16, then rbp+16 while the call is in flight, then rsp+8 again.
//! * aarch64 `stp x29,x30,[sp,#-16]!; mov x29,sp; blr x3; ldp x29,x30,[sp],#16; ret`:
//!   CFA = sp, then sp+16 with x29/x30 at CFA-16/-8, then x29+16, then sp again.

use gimli::write::{
    Address, CallFrameInstruction, CommonInformationEntry, EhFrame, EndianVec,
    FrameDescriptionEntry, FrameTable,
};
use gimli::{AArch64, Encoding, Format, LittleEndian, Register, X86_64};

/// Which CFI to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// x86_64, System V.
    X86_64,
    /// aarch64, AAPCS64.
    Aarch64,
}

impl Arch {
    /// The architecture this crate was compiled for, if supported.
    pub const fn host() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    /// The ELF `e_machine` value (`EM_X86_64` = 62, `EM_AARCH64` = 183).
    pub const fn elf_machine(self) -> u32 {
        match self {
            Arch::X86_64 => 62,
            Arch::Aarch64 => 183,
        }
    }
}

/// Size of `.eh_frame_hdr` for a single FDE.
pub const EH_FRAME_HDR_SIZE: usize = 20;

/// Unwind information for one stub, position independent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubUnwindInfo {
    /// `.eh_frame`: one CIE, one FDE, and the zero terminator.
    pub eh_frame: Vec<u8>,
    /// `.eh_frame_hdr` pointing at that FDE.
    pub eh_frame_hdr: [u8; EH_FRAME_HDR_SIZE],
    /// Offset of the FDE inside `eh_frame` (the CIE's length).
    pub fde_offset: usize,
}

/// Rounds `n` up to a multiple of 8.
pub const fn round8(n: usize) -> usize {
    (n + 7) & !7
}

/// Offset of the `pc_begin` field inside an FDE, from the FDE's start (length + CIE pointer).
const FDE_PC_BEGIN_OFFSET: usize = 8;

/// CFI for a stub of `code_size` bytes built from the template of `arch`.
pub fn stub_unwind_info(
    arch: Arch,
    code_size: usize,
) -> Result<StubUnwindInfo, gimli::write::Error> {
    let rows: &[(u32, CallFrameInstruction)] = match arch {
        Arch::X86_64 => &[
            (1, CallFrameInstruction::CfaOffset(16)),
            (1, CallFrameInstruction::Offset(X86_64::RBP, -16)),
            (4, CallFrameInstruction::CfaRegister(X86_64::RBP)),
            (7, CallFrameInstruction::Cfa(X86_64::RSP, 8)),
            (7, CallFrameInstruction::Restore(X86_64::RBP)),
        ],
        Arch::Aarch64 => &[
            (4, CallFrameInstruction::CfaOffset(16)),
            (4, CallFrameInstruction::Offset(AArch64::X29, -16)),
            (4, CallFrameInstruction::Offset(AArch64::X30, -8)),
            (8, CallFrameInstruction::CfaRegister(AArch64::X29)),
            (16, CallFrameInstruction::Cfa(AArch64::SP, 0)),
            (16, CallFrameInstruction::Restore(AArch64::X29)),
            (16, CallFrameInstruction::Restore(AArch64::X30)),
        ],
    };
    unwind_info(arch, code_size, rows)
}

/// CFI for CPython's own x86_64 trampoline (`Python/asm_trampoline.S`: an optional
/// `endbr64`, `sub $8,%rsp; call *%rcx; add $8,%rsp; ret`), given its bytes as the
/// interpreter's binary holds them between `_Py_trampoline_func_start` and `_end`. It keeps no
/// frame record, so a reader of a perf map written by CPython needs this to unwind through it
/// without frame pointers. `None` if the bytes are not that template.
pub fn cpython_x86_64_trampoline_unwind_info(template: &[u8]) -> Option<StubUnwindInfo> {
    const SUB8: [u8; 4] = [0x48, 0x83, 0xec, 0x08];
    const ADD8: [u8; 4] = [0x48, 0x83, 0xc4, 0x08];
    let find = |pat: &[u8]| template.windows(pat.len()).position(|w| w == pat);
    let after_sub = find(&SUB8)? + SUB8.len();
    let after_add = find(&ADD8)? + ADD8.len();
    if after_add <= after_sub || !template.contains(&0xc3) {
        return None;
    }
    let rows = [
        (after_sub as u32, CallFrameInstruction::CfaOffset(16)),
        (after_add as u32, CallFrameInstruction::CfaOffset(8)),
    ];
    unwind_info(Arch::X86_64, template.len(), &rows).ok()
}

/// CFI for `code_size` bytes of code with the given rows (`(code offset, instruction)`, on top
/// of the architecture's CIE), laid out as a stub's: the code, `.eh_frame` at
/// `round8(code_size)`, then `.eh_frame_hdr`. For tests of CFI readers.
pub fn unwind_info(
    arch: Arch,
    code_size: usize,
    rows: &[(u32, CallFrameInstruction)],
) -> Result<StubUnwindInfo, gimli::write::Error> {
    let encoding = Encoding {
        format: Format::Dwarf32,
        version: 1,
        address_size: 8,
    };
    let mut cie = match arch {
        Arch::X86_64 => {
            let mut cie = CommonInformationEntry::new(encoding, 1, -8, X86_64::RA);
            cie.add_instruction(CallFrameInstruction::Cfa(X86_64::RSP, 8));
            cie.add_instruction(CallFrameInstruction::Offset(X86_64::RA, -8));
            cie
        }
        Arch::Aarch64 => {
            let mut cie = CommonInformationEntry::new(encoding, 4, -8, AArch64::X30);
            cie.add_instruction(CallFrameInstruction::Cfa(AArch64::SP, 0));
            cie
        }
    };
    cie.fde_address_encoding = gimli::DW_EH_PE_pcrel | gimli::DW_EH_PE_sdata4;
    // The code starts round8(code_size) bytes before .eh_frame. gimli stores a pcrel pointer
    // as `value - offset of the field`, so the value is the code's position relative to the
    // start of .eh_frame.
    let code_start = -(round8(code_size) as i64);
    let mut fde =
        FrameDescriptionEntry::new(Address::Constant(code_start as u64), code_size as u32);
    for (offset, instruction) in rows {
        fde.add_instruction(*offset, instruction.clone());
    }
    let mut table = FrameTable::default();
    let cie_id = table.add_cie(cie);
    table.add_fde(cie_id, fde);
    let mut eh = EhFrame(EndianVec::new(LittleEndian));
    table.write_eh_frame(&mut eh)?;
    let mut eh_frame = eh.0.into_vec();
    // gimli writes no terminator; readers that walk the section need one.
    eh_frame.extend_from_slice(&[0; 4]);
    let fde_offset = cie_length(&eh_frame);
    let eh_frame_hdr = eh_frame_hdr(code_size, eh_frame.len(), fde_offset);
    Ok(StubUnwindInfo {
        eh_frame,
        eh_frame_hdr,
        fde_offset,
    })
}

/// Length of the first entry (the CIE), including its length field.
fn cie_length(eh_frame: &[u8]) -> usize {
    let len = u32::from_le_bytes([eh_frame[0], eh_frame[1], eh_frame[2], eh_frame[3]]);
    len as usize + 4
}

/// The `.eh_frame_hdr` that follows `.eh_frame` (all offsets relative to the header's start).
fn eh_frame_hdr(
    code_size: usize,
    eh_frame_len: usize,
    fde_offset: usize,
) -> [u8; EH_FRAME_HDR_SIZE] {
    let mut h = [0u8; EH_FRAME_HDR_SIZE];
    h[0] = 1; // version
    h[1] = (gimli::DW_EH_PE_pcrel | gimli::DW_EH_PE_sdata4).0; // eh_frame_ptr encoding
    h[2] = gimli::DW_EH_PE_udata4.0; // fde_count encoding
    h[3] = (gimli::DW_EH_PE_datarel | gimli::DW_EH_PE_sdata4).0; // table encoding
                                                                 // eh_frame_ptr is pcrel: relative to its own field, at offset 4.
    let eh_frame_ptr = -((eh_frame_len + 4) as i32);
    let from = -((round8(code_size) + eh_frame_len) as i32);
    let to = fde_offset as i32 - eh_frame_len as i32;
    h[4..8].copy_from_slice(&eh_frame_ptr.to_le_bytes());
    h[8..12].copy_from_slice(&1u32.to_le_bytes());
    h[12..16].copy_from_slice(&from.to_le_bytes());
    h[16..20].copy_from_slice(&to.to_le_bytes());
    h
}

/// Where the FDE's `pc_begin` points, relative to that field: what CPython's jitdump test
/// checks (`-(round8(code_size) + offset of the field in .eh_frame)`).
pub fn expected_pc_begin(code_size: usize, fde_offset: usize) -> i32 {
    -((round8(code_size) + fde_offset + FDE_PC_BEGIN_OFFSET) as i32)
}

/// The DWARF register numbers used above, for readers and tests.
pub fn registers(arch: Arch) -> (Register, Register, Register) {
    match arch {
        Arch::X86_64 => (X86_64::RSP, X86_64::RBP, X86_64::RA),
        Arch::Aarch64 => (AArch64::SP, AArch64::X29, AArch64::X30),
    }
}
