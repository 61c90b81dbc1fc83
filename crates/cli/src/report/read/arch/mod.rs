//! The architecture seam: what unwinding and naming need to know about the CPU a recording
//! was made on, one [`Arch`] implementation each ([`X86_64`], [`Aarch64`]). Nothing else in
//! the reader names a register: it is generic over `A: Arch`, and [`super::Reader`] picks the
//! implementation from the recording's header. This module knows no process: the unwinder
//! ([`super::unwind`]) brings the two together. It also knows where a system call's
//! arguments are in perf's sampled registers ([`Arch::syscall_args`]), which the wait reasons
//! read ([`super::waits`]), and what `perf record --user-regs` calls those registers
//! ([`syscall_arg_registers`]), for the recordings whose call graphs sample none.

mod aarch64;
mod x86_64;

pub use aarch64::Aarch64;
pub use x86_64::X86_64;

use super::cfi;
use crate::report::elf::Bytes;
use framehop::{Module, Unwinder};
use linux_perf_data::linux_perf_event_reader::Regs;

/// What unwinding needs to know about a CPU architecture.
pub trait Arch: Send + 'static {
    /// The name perf.data gives it (`uname -m`).
    const NAME: &'static str;
    /// Its binaries' machine.
    const MACHINE: object::Architecture;
    /// Its DWARF registers, for the CFI evaluated in full ([`cfi`]).
    const CFI: cfi::Registers;
    type Regs: Clone + Send;
    type Cache: Default + Send;
    type Unwinder: Unwinder<Module = Module<Bytes>, UnwindRegs = Self::Regs, Cache = Self::Cache>
        + Default
        + Send;
    /// The instruction pointer, stack pointer and framehop's registers, from perf's sampled
    /// user registers.
    fn convert_regs(regs: &Regs<'_>) -> Option<(u64, u64, Self::Regs)>;
    fn sp(regs: &Self::Regs) -> u64;
    /// One step by the frame pointer, for a frame whose CFI framehop can't follow: the
    /// return address, with `regs` moved to the caller. `None` if the frame pointer doesn't
    /// point into the copied stack above the stack pointer.
    fn frame_pointer_step(
        regs: &mut Self::Regs,
        read: &mut dyn FnMut(u64) -> Result<u64, ()>,
    ) -> Option<u64>;
    /// The registers [`cfi::step`] works with: stack pointer, frame pointer, and (in the
    /// sampled frame only, `first`) the link register where the architecture has one.
    fn cfi_regs(regs: &Self::Regs, first: bool) -> cfi::Known;
    /// `regs` moved to the caller that [`cfi::step`] found; the return address.
    fn set_cfi_regs(regs: &mut Self::Regs, caller: &cfi::Caller) -> u64;

    /// perf's numbers of the registers that hold a system call's first four arguments as it
    /// enters the kernel (the kernel saves them on entry and leaves them while the call
    /// waits: a sample taken at the switch out of a thread in a system call has them).
    const SYSCALL_ARGS: [u64; 4];
    /// `perf record --user-regs`' names of the same registers.
    const SYSCALL_ARG_NAMES: [&'static str; 4];

    /// The first four arguments of the system call a thread was in, from the user registers
    /// perf sampled (`None` when it sampled none of them, or not all). Whether the thread was
    /// in a system call at all is for the sample's kernel frames (or its C library frames) to
    /// say: interrupted in user space, these registers hold anything.
    fn syscall_args(regs: &Regs<'_>) -> Option<SyscallArgs> {
        let mut args = [0; 4];
        for (arg, &reg) in args.iter_mut().zip(&Self::SYSCALL_ARGS) {
            *arg = regs.get(reg)?;
        }
        Some(SyscallArgs(args))
    }
}

/// The first four arguments of the system call a thread was waiting in, from its registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyscallArgs(pub [u64; 4]);

/// `perf record --user-regs`' names of the registers holding a system call's first four
/// arguments on the architecture perfpy was built for (the one it records on).
pub fn syscall_arg_registers() -> [&'static str; 4] {
    if cfg!(target_arch = "aarch64") {
        Aarch64::SYSCALL_ARG_NAMES
    } else {
        X86_64::SYSCALL_ARG_NAMES
    }
}

/// The architecture perfpy itself was built for, by perf's name for it.
pub fn host() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        Aarch64::NAME
    } else {
        X86_64::NAME
    }
}
