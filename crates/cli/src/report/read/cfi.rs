//! One unwinding step by evaluating a function's DWARF rules in full, for the frames framehop
//! won't step: it evaluates CFA expressions only when they need no memory, but GCC's stack
//! realignment (`lea r13, [rsp+16]; and rsp, -32; push [r13-8]; push rbp; mov rbp, rsp`, as in
//! numpy's AVX2 sorts) defines the CFA as `*(rbp - 24)` and the caller's rbp as `[rbp]`.
//!
//! Only rsp and rbp are known past the first frame, so rules over other registers give up.

use crate::report::elf::EhFrameSections;
use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, EvaluationResult, Location, NativeEndian,
    RegisterRule, UnwindContext, UnwindSection, Value,
};

const RSP: u16 = 7;
const RBP: u16 = 6;
const RA: u16 = 16;

/// The caller's `(ip, sp, bp)` for a frame at `svma` (the file's address of the frame's pc, or
/// of its return address minus one), given this frame's `sp` and `bp`.
pub fn step(
    sections: &EhFrameSections<'_>,
    svma: u64,
    sp: u64,
    bp: u64,
    read: &mut dyn FnMut(u64) -> Option<u64>,
) -> Option<(u64, u64, u64)> {
    let (eh_svma, eh_data) = sections.eh_frame;
    let (hdr_svma, hdr_data) = sections.eh_frame_hdr;
    let mut bases = BaseAddresses::default()
        .set_eh_frame(eh_svma)
        .set_eh_frame_hdr(hdr_svma);
    if let Some(text) = sections.text {
        bases = bases.set_text(text);
    }
    let eh = EhFrame::new(eh_data, NativeEndian);
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
        RSP => Some(sp),
        RBP => Some(bp),
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
    let ra = match row.register(gimli::Register(RA)) {
        Some(RegisterRule::Undefined) => return None, // the outermost frame
        Some(rule) => saved(rule, read)?,
        None => read(cfa.checked_sub(8)?)?, // x86_64's call pushes it just below the CFA
    };
    let caller_bp = match row.register(gimli::Register(RBP)) {
        None | Some(RegisterRule::Undefined) | Some(RegisterRule::SameValue) => bp,
        Some(rule) => saved(rule, read).unwrap_or(bp),
    };
    (cfa > sp).then_some((ra, cfa, caller_bp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gimli::write::{CallFrameInstruction as I, Expression};
    use gimli::X86_64;
    use perfpy_format::eh_frame::{round8, unwind_info, Arch};

    /// Steps a frame at `pc` of a 64-byte function with `rows`, over `memory`.
    fn run(
        rows: &[(u32, I)],
        pc: u64,
        sp: u64,
        bp: u64,
        memory: &[(u64, u64)],
    ) -> Option<(u64, u64, u64)> {
        let info = unwind_info(Arch::X86_64, 64, rows).unwrap();
        let eh = round8(64) as u64;
        let sections = EhFrameSections {
            eh_frame: (eh, &info.eh_frame),
            eh_frame_hdr: (eh + info.eh_frame.len() as u64, &info.eh_frame_hdr),
            text: Some(0),
        };
        let mut read = |a: u64| memory.iter().find(|(at, _)| *at == a).map(|&(_, v)| v);
        step(&sections, pc, sp, bp, &mut read)
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
}
