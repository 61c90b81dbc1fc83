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
    let hdr = EhFrameHdr::new(hdr_data, NativeEndian).parse(&bases, 8).ok()?;
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
                EvaluationResult::RequiresMemory { address, .. } => e
                    .resume_with_memory(Value::Generic(read(address)?))
                    .ok()?,
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
    let saved = |rule: RegisterRule<usize>, read: &mut dyn FnMut(u64) -> Option<u64>| match rule
    {
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
