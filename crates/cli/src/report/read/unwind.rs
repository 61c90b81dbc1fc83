//! Unwinding a sample's user stack (`--call-graph dwarf`: registers and a stack copy) with
//! framehop, over the process's modules ([`super::modules`]), with the steps framehop can't
//! take done here (a CFA read from memory, a frame pointer), and how each unwind ended (at the
//! stack's root, or where the copy ran out).
//!
//! What is particular to the CPU is its [`Arch`] (which framehop unwinder, how perf's sampled
//! registers become its registers, the frame record).

use super::arch::Arch;
use super::process::{Proc, Space};
use framehop::{FrameAddress, Unwinder};
use linux_perf_data::linux_perf_event_reader::Regs;

/// Deepest stack kept; deeper ones are cut at the root side.
pub const MAX_DEPTH: usize = 2048;

/// A sample's user stack, leaf first: `(address, is a return address)`.
pub struct Unwound {
    pub frames: Vec<(u64, bool)>,
    /// The unwinder gave up at the first frame.
    pub truncated: bool,
    /// How the walk ended.
    pub end: End,
}

/// How an unwind ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// At the stack's root (the program's or the thread's start): a whole stack, which
    /// needed `used` bytes of the stack copy.
    Root { used: u64 },
    /// The next step needed stack beyond the copy, and the copy was as long as perf was asked
    /// for: the stack was deeper than that, and its outer frames are missing.
    CopyRanOut,
    /// Anything else: no rule for a frame, a return address outside all code, the depth cap.
    Lost,
}

/// Unwinds the user stack of a sample of `proc`: `stack` is the copy perf took at `sp`, of
/// which `valid` bytes hold the stack (fewer than its length when the stack ended sooner).
pub fn unwind<A: Arch>(
    proc: &mut Proc<A>,
    regs: &Regs<'_>,
    stack: &[u8],
    valid: usize,
) -> Option<Unwound> {
    let (ip, sp, unwind_regs) = A::convert_regs(regs)?;
    let valid = valid.min(stack.len());
    let copy_full = valid == stack.len();
    // The farthest stack byte read, and whether a read went past the copy in this step.
    let used = std::cell::Cell::new(0u64);
    let ran_out = std::cell::Cell::new(false);
    let stack = &stack[..valid];
    let mut read_stack = |addr: u64| -> Result<u64, ()> {
        let off = addr.checked_sub(sp).ok_or(())? as usize;
        let Some(word) = stack.get(off..off.saturating_add(8)) else {
            ran_out.set(true);
            return Err(());
        };
        used.set(used.get().max(off as u64 + 8));
        Ok(u64::from_le_bytes(word.try_into().map_err(|_| ())?))
    };
    if proc.unwinder.is_none() {
        proc.unwinder = Some(super::modules::unwinder::<A>(&proc.space));
        proc.cache = A::Cache::default();
    }
    let unwinder = proc.unwinder.as_ref()?;
    let space = &proc.space;
    let mut regs = unwind_regs;
    let mut address = FrameAddress::from_instruction_pointer(ip);
    let mut frames = Vec::with_capacity(64);
    let mut truncated = false;
    let mut end = End::Lost;
    // The previous frame and the registers it was stepped from.
    let mut prev: Option<(FrameAddress, A::Regs)> = None;
    let lookup = |a: FrameAddress| match a {
        FrameAddress::InstructionPointer(a) => a,
        FrameAddress::ReturnAddress(a) => a.get() - 1,
    };
    while frames.len() < MAX_DEPTH {
        frames.push(match address {
            FrameAddress::InstructionPointer(a) => (a, false),
            FrameAddress::ReturnAddress(a) => (a.get(), true),
        });
        let mut before = regs.clone();
        ran_out.set(false);
        let mut step = unwinder.unwind_frame(address, &mut regs, &mut proc.cache, &mut read_stack);
        let stepped_into_code = matches!(step, Ok(Some(ra)) if is_code(space, ra));
        if !stepped_into_code {
            // framehop follows most CFI, but not a CFA it must read from memory (GCC's stack
            // realignment, as in numpy's AVX2 and AVX-512 sorts): there it steps by the frame
            // pointer, which finds the return address but not the stack pointer, and the frame
            // after goes wrong: no rule, a return address outside all code, or a zero read
            // where the return address isn't, which looks like the stack's end. Redo the
            // previous frame by its full rules (cfi.rs) and retry; an end that stays an end
            // is kept as it was.
            if let Some((paddr, pregs)) = &prev {
                let mut fixed = pregs.clone();
                let first = frames.len() == 2;
                let again =
                    full_cfi_step::<A>(space, lookup(*paddr), first, &mut fixed, &mut read_stack);
                if again == Some(address.address()) && A::sp(&fixed) != A::sp(&before) {
                    let mut retried = fixed.clone();
                    let next = unwinder.unwind_frame(
                        address,
                        &mut retried,
                        &mut proc.cache,
                        &mut read_stack,
                    );
                    let better = match (&step, &next) {
                        (Ok(None), Ok(Some(ra))) => is_code(space, *ra),
                        (Ok(None), _) => false,
                        _ => true,
                    };
                    if better {
                        before = fixed;
                        regs = retried;
                        step = next;
                    }
                }
            }
        }
        let ra = match step {
            Ok(Some(ra)) if is_code(space, ra) => ra,
            Ok(None) => {
                end = End::Root { used: used.get() };
                break;
            }
            // Still no step: this frame's own rules in full, else its frame pointer; a step
            // counts only if it lands in code.
            _ => {
                regs = before.clone();
                let first = frames.len() == 1;
                match full_cfi_step::<A>(space, lookup(address), first, &mut regs, &mut read_stack)
                    .filter(|&ra| is_code(space, ra))
                    .or_else(|| {
                        regs = before.clone();
                        A::frame_pointer_step(&mut regs, &mut read_stack)
                            .filter(|&ra| is_code(space, ra))
                    }) {
                    Some(ra) => ra,
                    None => {
                        truncated = frames.len() <= 1;
                        if ran_out.get() && copy_full {
                            end = End::CopyRanOut;
                        }
                        break;
                    }
                }
            }
        };
        prev = Some((address, before));
        match FrameAddress::from_return_address(ra) {
            Some(next) => address = next,
            None => {
                end = End::Root { used: used.get() };
                break;
            }
        }
    }
    Some(Unwound {
        frames,
        truncated,
        end,
    })
}

/// Whether `addr` is in one of `space`'s executable mappings or Python stubs.
fn is_code(space: &Space, addr: u64) -> bool {
    let maps = &space.mappings;
    let i = maps.partition_point(|m| m.start <= addr);
    i > 0 && addr < maps[i - 1].end
        || space.in_anon_code(addr)
        || space
            .jit_infos()
            .any(|j| crate::report::jit::find(&j.stubs, addr).is_some())
}

/// One step by the frame's DWARF rules evaluated in full ([`super::cfi`]), for the frame
/// whose pc (or return address - 1) is `lookup` (`first`: the sampled one): the return
/// address, `regs` moved.
fn full_cfi_step<A: Arch>(
    space: &Space,
    lookup: u64,
    first: bool,
    regs: &mut A::Regs,
    read: &mut dyn FnMut(u64) -> Result<u64, ()>,
) -> Option<u64> {
    let maps = &space.mappings;
    let i = maps.partition_point(|m| m.start <= lookup).checked_sub(1)?;
    let m = maps.get(i).filter(|m| lookup < m.end)?;
    let sections = m.elf.as_ref()?.eh_frame()?;
    let svma = lookup.checked_sub(m.base)?;
    let mut read = |a: u64| read(a).ok();
    let caller = super::cfi::step(
        &sections,
        svma,
        &A::CFI,
        A::cfi_regs(regs, first),
        &mut read,
    )?;
    Some(A::set_cfi_regs(regs, &caller))
}
