//! x86_64 (System V): `a0..a2` arrive in `rdi`, `rsi`, `rdx`; the evaluator in `rcx`.
//!
//! ```text
//! offset  bytes     instruction
//!   0     55        push %rbp          ; frame record: saved rbp ...
//!   1     48 89 e5  mov  %rsp,%rbp     ; ... and rbp -> it; rsp is now 16-byte aligned
//!   4     ff d1     call *%rcx         ; evaluator(rdi, rsi, rdx); leaves stub+6 on the stack
//!   6     5d        pop  %rbp
//!   7     c3        ret
//! ```
//!
//! CPython 3.12/3.13 use `sub $8,%rsp; call *%rcx; add $8,%rsp; ret`, which keeps the stack
//! aligned but builds no frame record, so a frame-pointer walk skips the stub's caller.
//! The form above is the one CPython adopted later (gh-136541).

use super::{round16, Template};

/// The x86_64 trampoline (8 bytes).
pub const CODE: [u8; 8] = [0x55, 0x48, 0x89, 0xe5, 0xff, 0xd1, 0x5d, 0xc3];

/// Offset of the instruction after `call`: the return address the evaluator sees.
pub const RETURN_OFFSET: usize = 6;

/// x86_64 template; unused slot bytes are `int3`.
pub const TEMPLATE: Template = Template {
    arch: "x86_64",
    code: &CODE,
    stride: round16(CODE.len()),
    fill: 0xcc,
};
