//! aarch64 (AAPCS64): `bl` leaves the return address in the link register (x30), which a
//! function that calls others saves with the caller's frame pointer (x29) as a frame record
//! (`stp x29, x30, [sp, #-N]!; mov x29, sp`). Return addresses saved by code built with
//! pointer authentication carry a signature in their top bits, stripped here. A system call's
//! arguments are in x0-x5 (its number in x8); x0 takes the result only when the call returns.

use super::{cfi, Arch};
use framehop::aarch64::{PtrAuthMask, UnwindRegsAarch64};
use linux_perf_data::linux_perf_event_reader::constants::{
    PERF_REG_ARM64_LR, PERF_REG_ARM64_PC, PERF_REG_ARM64_SP, PERF_REG_ARM64_X0, PERF_REG_ARM64_X1,
    PERF_REG_ARM64_X2, PERF_REG_ARM64_X29, PERF_REG_ARM64_X3,
};
use linux_perf_data::linux_perf_event_reader::Regs;

pub struct Aarch64;

/// User space is below 2^48 (Linux's 48-bit virtual addresses; 52-bit ones are handed only to
/// programs that ask for them): the bits above hold a return address's pointer-authentication
/// code (measured: Debian sid's arm64 CPython 3.14 saves return addresses with bits above 47 set).
const ADDRESS_BITS: u64 = (1 << 48) - 1;

impl Arch for Aarch64 {
    const NAME: &'static str = "aarch64";
    const MACHINE: object::Architecture = object::Architecture::Aarch64;
    const CFI: cfi::Registers = cfi::Registers {
        sp: 31,
        fp: 29,
        ra: 30,
        ra_pushed: false,
        vendor: gimli::Vendor::AArch64,
    };
    type Regs = UnwindRegsAarch64;
    type Cache = framehop::aarch64::CacheAarch64;
    type Unwinder = framehop::aarch64::UnwinderAarch64<crate::report::elf::Bytes>;
    const SYSCALL_ARGS: [u64; 4] = [
        PERF_REG_ARM64_X0,
        PERF_REG_ARM64_X1,
        PERF_REG_ARM64_X2,
        PERF_REG_ARM64_X3,
    ];
    // As `perf record --user-regs=?` lists them (perf 5.11 on: 5.10 names no arm64 register).
    const SYSCALL_ARG_NAMES: [&'static str; 4] = ["x0", "x1", "x2", "x3"];

    fn convert_regs(regs: &Regs<'_>) -> Option<(u64, u64, Self::Regs)> {
        let (pc, sp, fp, lr) = (
            regs.get(PERF_REG_ARM64_PC)?,
            regs.get(PERF_REG_ARM64_SP)?,
            regs.get(PERF_REG_ARM64_X29)?,
            regs.get(PERF_REG_ARM64_LR)?,
        );
        let mask = PtrAuthMask(ADDRESS_BITS);
        Some((
            pc,
            sp,
            UnwindRegsAarch64::new_with_ptr_auth_mask(mask, lr, sp, fp),
        ))
    }

    fn sp(regs: &Self::Regs) -> u64 {
        regs.sp()
    }

    fn frame_pointer_step(
        regs: &mut Self::Regs,
        read: &mut dyn FnMut(u64) -> Result<u64, ()>,
    ) -> Option<u64> {
        // A frame record: [x29] is the caller's x29, [x29 + 8] the return address. The
        // caller's sp is at least x29 + 16 (the record sits at the bottom of the frame).
        let (sp, fp) = (regs.sp(), regs.fp());
        if fp < sp || fp % 16 != 0 {
            return None;
        }
        let ra = regs
            .lr_mask()
            .strip_ptr_auth(read(fp.checked_add(8)?).ok()?);
        let caller_fp = read(fp).ok()?;
        regs.set_lr(ra);
        regs.set_sp(fp + 16);
        regs.set_fp(caller_fp);
        Some(ra)
    }

    fn cfi_regs(regs: &Self::Regs, first: bool) -> cfi::Known {
        // Past the sampled frame, x30 is the return address into this frame, not out of it:
        // a rule-less x30 ("same value") holds only where the sample was taken.
        cfi::Known {
            sp: regs.sp(),
            fp: regs.fp(),
            lr: first.then(|| regs.lr()),
        }
    }

    fn set_cfi_regs(regs: &mut Self::Regs, caller: &cfi::Caller) -> u64 {
        let ra = regs.lr_mask().strip_ptr_auth(caller.ra);
        regs.set_lr(ra);
        regs.set_sp(caller.sp);
        regs.set_fp(caller.fp);
        ra
    }
}
