//! x86_64: instruction, stack and frame pointer; `call` pushes the return address. A system
//! call's arguments are in rdi, rsi, rdx, r10, r8, r9 (its number in rax, which the kernel
//! overwrites on entry and perf doesn't sample as it was).

use super::{cfi, Arch};
use linux_perf_data::linux_perf_event_reader::constants::{
    PERF_REG_X86_BP, PERF_REG_X86_DI, PERF_REG_X86_DX, PERF_REG_X86_IP, PERF_REG_X86_R10,
    PERF_REG_X86_SI, PERF_REG_X86_SP,
};
use linux_perf_data::linux_perf_event_reader::Regs;

pub struct X86_64;

impl Arch for X86_64 {
    const NAME: &'static str = "x86_64";
    const MACHINE: object::Architecture = object::Architecture::X86_64;
    const CFI: cfi::Registers = cfi::Registers {
        sp: 7,
        fp: 6,
        ra: 16,
        ra_pushed: true,
        vendor: gimli::Vendor::Default,
    };
    type Regs = framehop::x86_64::UnwindRegsX86_64;
    type Cache = framehop::x86_64::CacheX86_64;
    type Unwinder = framehop::x86_64::UnwinderX86_64<crate::report::elf::Bytes>;
    const SYSCALL_ARGS: [u64; 4] = [
        PERF_REG_X86_DI,
        PERF_REG_X86_SI,
        PERF_REG_X86_DX,
        PERF_REG_X86_R10,
    ];
    // As `perf record --user-regs=?` lists them.
    const SYSCALL_ARG_NAMES: [&'static str; 4] = ["DI", "SI", "DX", "R10"];

    fn convert_regs(regs: &Regs<'_>) -> Option<(u64, u64, Self::Regs)> {
        let (ip, sp, bp) = (
            regs.get(PERF_REG_X86_IP)?,
            regs.get(PERF_REG_X86_SP)?,
            regs.get(PERF_REG_X86_BP)?,
        );
        Some((ip, sp, framehop::x86_64::UnwindRegsX86_64::new(ip, sp, bp)))
    }

    fn sp(regs: &Self::Regs) -> u64 {
        regs.sp()
    }

    fn frame_pointer_step(
        regs: &mut Self::Regs,
        read: &mut dyn FnMut(u64) -> Result<u64, ()>,
    ) -> Option<u64> {
        // `push rbp; mov rbp, rsp`: [rbp] is the caller's rbp, [rbp + 8] the return address.
        let (sp, bp) = (regs.sp(), regs.bp());
        if bp < sp || bp % 8 != 0 {
            return None;
        }
        let ra = read(bp.checked_add(8)?).ok()?;
        let caller_bp = read(bp).ok()?;
        regs.set_ip(ra);
        regs.set_sp(bp + 16);
        regs.set_bp(caller_bp);
        Some(ra)
    }

    fn cfi_regs(regs: &Self::Regs, _first: bool) -> cfi::Known {
        cfi::Known {
            sp: regs.sp(),
            fp: regs.bp(),
            lr: None,
        }
    }

    fn set_cfi_regs(regs: &mut Self::Regs, caller: &cfi::Caller) -> u64 {
        regs.set_ip(caller.ra);
        regs.set_sp(caller.sp);
        regs.set_bp(caller.fp);
        caller.ra
    }
}
