//! One unwinding step by evaluating a function's DWARF rules in full, for the frames framehop
//! won't step: it evaluates CFA expressions only when they need no memory, but GCC's stack
//! realignment (`lea r13, [rsp+16]; and rsp, -32; push [r13-8]; push rbp; mov rbp, rsp`, as in
//! numpy's AVX2 sorts) defines the CFA as `*(rbp - 24)` and the caller's rbp as `[rbp]`.
//!
//! Only the stack and frame pointers are known past the first frame (and the link register in
//! the first, on aarch64), so rules over other registers give up. The architecture's DWARF
//! register numbers come from its [`super::arch::Arch`].

use crate::report::elf::EhFrameSections;
use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, EvaluationResult, Location, NativeEndian,
    RegisterRule, UnwindContext, UnwindSection, Value,
};

/// An architecture's DWARF register numbers.
pub struct Registers {
    pub sp: u16,
    pub fp: u16,
    /// The return address column.
    pub ra: u16,
    /// Whether a call pushes the return address just below the CFA (x86_64) rather than
    /// leaving it in a register (aarch64's x30), for a row with no rule for it.
    pub ra_pushed: bool,
    /// Whose CFI opcodes: aarch64's 0x2d is `DW_CFA_AARCH64_negate_ra_state` (pointer
    /// authentication, in every function of a binary built with `-mbranch-protection`),
    /// which framehop reads as another vendor's and fails on: those frames are stepped here.
    pub vendor: gimli::Vendor,
}

/// The registers known in a frame.
#[derive(Clone, Copy)]
pub struct Known {
    pub sp: u64,
    pub fp: u64,
    /// The link register, where it still holds this frame's return address.
    pub lr: Option<u64>,
}

/// The caller's registers: where this frame returns to, its stack and frame pointers.
#[derive(Debug, PartialEq, Eq)]
pub struct Caller {
    pub ra: u64,
    pub sp: u64,
    pub fp: u64,
}

/// The caller of a frame at `svma` (the file's address of the frame's pc, or of its return
/// address minus one), given this frame's registers.
pub fn step(
    sections: &EhFrameSections<'_>,
    svma: u64,
    regs: &Registers,
    known: Known,
    read: &mut dyn FnMut(u64) -> Option<u64>,
) -> Option<Caller> {
    let Known { sp, fp: bp, lr } = known;
    let (eh_svma, eh_data) = sections.eh_frame;
    let (hdr_svma, hdr_data) = sections.eh_frame_hdr;
    let mut bases = BaseAddresses::default()
        .set_eh_frame(eh_svma)
        .set_eh_frame_hdr(hdr_svma);
    if let Some(text) = sections.text {
        bases = bases.set_text(text);
    }
    let mut eh = EhFrame::new(eh_data, NativeEndian);
    eh.set_vendor(regs.vendor);
    let hdr = EhFrameHdr::new(hdr_data, NativeEndian)
        .parse(&bases, 8)
        .ok()?;
    let table = hdr.table()?;
    let fde = table
        .fde_for_address(&eh, &bases, svma, EhFrame::cie_from_offset)
        .ok()?;
    let mut ctx = UnwindContext::new();
    let row = fde
        .unwind_info_for_address(&eh, &bases, &mut ctx, svma)
        .ok()?;
    let encoding = fde.cie().encoding();
    let reg = |r: gimli::Register| match r.0 {
        r if r == regs.sp => Some(sp),
        r if r == regs.fp => Some(bp),
        r if r == regs.ra => lr,
        _ => None,
    };
    let eval = |expr: gimli::Expression<gimli::EndianSlice<'_, NativeEndian>>,
                initial: Option<u64>,
                read: &mut dyn FnMut(u64) -> Option<u64>|
     -> Option<u64> {
        let mut e = expr.evaluation(encoding);
        if let Some(v) = initial {
            e.set_initial_value(v);
        }
        let mut result = e.evaluate().ok()?;
        // A bound on the steps of a malformed expression.
        for _ in 0..64 {
            result = match result {
                EvaluationResult::Complete => break,
                EvaluationResult::RequiresRegister { register, .. } => e
                    .resume_with_register(Value::Generic(reg(register)?))
                    .ok()?,
                EvaluationResult::RequiresMemory { address, .. } => {
                    e.resume_with_memory(Value::Generic(read(address)?)).ok()?
                }
                _ => return None,
            };
        }
        match e.as_result().last()?.location {
            Location::Address { address } => Some(address),
            _ => None,
        }
    };
    let cfa = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => {
            reg(*register)?.checked_add_signed(*offset)?
        }
        CfaRule::Expression(expr) => eval(expr.get(&eh).ok()?, None, read)?,
    };
    let saved = |rule: RegisterRule<usize>, read: &mut dyn FnMut(u64) -> Option<u64>| match rule {
        RegisterRule::Offset(off) => read(cfa.checked_add_signed(off)?),
        RegisterRule::ValOffset(off) => cfa.checked_add_signed(off),
        RegisterRule::Expression(expr) => {
            let at = eval(expr.get(&eh).ok()?, Some(cfa), read)?;
            read(at)
        }
        _ => None,
    };
    let mut in_lr = false;
    let ra = match row.register(gimli::Register(regs.ra)) {
        Some(RegisterRule::Undefined) => return None, // the outermost frame
        Some(RegisterRule::SameValue) | None if !regs.ra_pushed => {
            in_lr = true;
            lr?
        }
        Some(rule) => saved(rule, read)?,
        None => read(cfa.checked_sub(8)?)?, // x86_64's call pushes it just below the CFA
    };
    let caller_bp = match row.register(gimli::Register(regs.fp)) {
        None | Some(RegisterRule::Undefined) | Some(RegisterRule::SameValue) => bp,
        Some(rule) => saved(rule, read).unwrap_or(bp),
    };
    // The stack must grow back towards its root, except from a sampled leaf that keeps its
    // return address in the link register and pushed nothing.
    (cfa > sp || in_lr && cfa == sp).then_some(Caller {
        ra,
        sp: cfa,
        fp: caller_bp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::read::arch::{self, Arch as _};
    use gimli::write::{CallFrameInstruction as I, Expression};
    use gimli::{AArch64, X86_64};
    use perfpy_format::eh_frame::{round8, unwind_info, Arch};

    /// Steps an x86_64 frame at `pc` of a 64-byte function with `rows`, over `memory`:
    /// `(ra, sp, bp)`.
    fn run(
        rows: &[(u32, I)],
        pc: u64,
        sp: u64,
        bp: u64,
        memory: &[(u64, u64)],
    ) -> Option<(u64, u64, u64)> {
        let known = Known {
            sp,
            fp: bp,
            lr: None,
        };
        run_on(Arch::X86_64, &arch::X86_64::CFI, rows, pc, known, memory)
            .map(|c| (c.ra, c.sp, c.fp))
    }

    fn run_on(
        on: Arch,
        regs: &Registers,
        rows: &[(u32, I)],
        pc: u64,
        known: Known,
        memory: &[(u64, u64)],
    ) -> Option<Caller> {
        let info = unwind_info(on, 64, rows).unwrap();
        let eh = round8(64) as u64;
        let sections = EhFrameSections {
            eh_frame: (eh, &info.eh_frame),
            eh_frame_hdr: (eh + info.eh_frame.len() as u64, &info.eh_frame_hdr),
            text: Some(0),
        };
        let mut read = |a: u64| memory.iter().find(|(at, _)| *at == a).map(|&(_, v)| v);
        step(&sections, pc, regs, known, &mut read)
    }

    #[test]
    fn a_realigned_stack_cfa_read_from_memory() {
        // GCC's DRAP: CFA = *(rbp - 24), the caller's rbp at [rbp], the return address just
        // below the CFA (the CIE's rule).
        let mut cfa = Expression::new();
        cfa.op_breg(X86_64::RBP, -24);
        cfa.op(gimli::constants::DW_OP_deref);
        let mut saved_bp = Expression::new();
        saved_bp.op_breg(X86_64::RBP, 0);
        let rows = [
            (8, I::CfaExpression(cfa)),
            (8, I::Expression(X86_64::RBP, saved_bp)),
        ];
        let memory = [
            (0x7100 - 24, 0x7200),
            (0x7200 - 8, 0x4000),
            (0x7100, 0x7300),
        ];
        assert_eq!(
            run(&rows, 0x10, 0x7000, 0x7100, &memory),
            Some((0x4000, 0x7200, 0x7300))
        );
        // Before the row: the CIE's rsp + 8.
        assert_eq!(
            run(&rows, 0x2, 0x7000, 0x7100, &[(0x7000, 0x4444)]),
            Some((0x4444, 0x7008, 0x7100))
        );
        // Memory outside the copied stack: no step.
        assert_eq!(run(&rows, 0x10, 0x7000, 0x7100, &[]), None);
    }

    #[test]
    fn a_cfa_over_an_unknown_register_gives_up() {
        // `lea r13, [rsp + 16]; and rsp, -32`: CFA = r13, which past the first frame nobody
        // knows.
        let rows = [(4, I::Cfa(X86_64::R13, 0))];
        assert_eq!(run(&rows, 0x10, 0x7000, 0x7100, &[(0x6ff8, 1)]), None);
        // An address outside every FDE: no step.
        assert_eq!(run(&rows, 0x400, 0x7000, 0x7100, &[]), None);
    }

    #[test]
    fn aarch64_frame_records_and_the_link_register() {
        // `stp x29, x30, [sp, #-32]!; mov x29, sp`: CFA = sp + 32, then x29 + 32, x29 and
        // x30 saved at CFA-32 and CFA-24.
        let rows = [
            (4, I::CfaOffset(32)),
            (4, I::Offset(AArch64::X29, -32)),
            (4, I::Offset(AArch64::X30, -24)),
            (8, I::CfaRegister(AArch64::X29)),
        ];
        let regs = &arch::Aarch64::CFI;
        let memory = [(0x7000, 0x7400), (0x7008, 0x4000)];
        let at = |pc, sp, fp, lr| {
            run_on(
                Arch::Aarch64,
                regs,
                &rows,
                pc,
                Known { sp, fp, lr },
                &memory,
            )
        };
        let caller = |ra, sp, fp| Some(Caller { ra, sp, fp });
        // In the body: by the frame record.
        assert_eq!(
            at(0x20, 0x7000, 0x7000, None),
            caller(0x4000, 0x7020, 0x7400)
        );
        // At the entry of the sampled frame: the return address is still in x30.
        assert_eq!(
            at(0x0, 0x7100, 0x7300, Some(0x5000)),
            caller(0x5000, 0x7100, 0x7300)
        );
        // There, past the sampled frame, x30 is nobody's: no step.
        assert_eq!(at(0x0, 0x7100, 0x7300, None), None);
    }
}
