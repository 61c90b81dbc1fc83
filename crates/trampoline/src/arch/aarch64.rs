//! aarch64 (AAPCS64): `a0..a2` arrive in `x0..x2`; the evaluator in `x3`.
//!
//! ```text
//! offset  bytes (LE)    instruction
//!   0     fd 7b bf a9   stp x29, x30, [sp, #-16]!   ; frame record {fp, lr}
//!   4     fd 03 00 91   mov x29, sp                 ; fp -> it
//!   8     60 00 3f d6   blr x3                      ; evaluator(x0, x1, x2); lr = stub+12
//!  12     fd 7b c1 a8   ldp x29, x30, [sp], #16
//!  16     c0 03 5f d6   ret
//! ```
//!
//! After writing copies of this code the instruction cache must be flushed (the data and
//! instruction caches are not coherent on aarch64); the arena does that.

use super::{round16, Template};

/// The aarch64 trampoline (20 bytes).
pub const CODE: [u8; 20] = [
    0xfd, 0x7b, 0xbf, 0xa9, // stp x29, x30, [sp, #-16]!
    0xfd, 0x03, 0x00, 0x91, // mov x29, sp
    0x60, 0x00, 0x3f, 0xd6, // blr x3
    0xfd, 0x7b, 0xc1, 0xa8, // ldp x29, x30, [sp], #16
    0xc0, 0x03, 0x5f, 0xd6, // ret
];

/// Offset of the instruction after `blr`: the link register the evaluator sees.
pub const RETURN_OFFSET: usize = 12;

/// aarch64 template; unused slot bytes are zero (`udf #0` if ever executed).
pub const TEMPLATE: Template = Template {
    arch: "aarch64",
    code: &CODE,
    stride: round16(CODE.len()),
    fill: 0x00,
};

#[cfg(test)]
mod tests {
    //! Encodes each instruction from the field layout in the Arm ARM and compares it with
    //! the template, so the bytes are checked on any host, not only on aarch64.

    const FP: u32 = 29;
    const LR: u32 = 30;
    const SP: u32 = 31;

    /// STP/LDP (64-bit, pre/post-index): opc=10 101 0 idx L imm7 Rt2 Rn Rt.
    fn ldst_pair(load: bool, pre_index: bool, imm_bytes: i32, rt: u32, rt2: u32, rn: u32) -> u32 {
        let idx = if pre_index { 0b011 } else { 0b001 };
        let imm7 = ((imm_bytes / 8) as u32) & 0x7f;
        (0b10 << 30)
            | (0b101 << 27)
            | (idx << 23)
            | ((load as u32) << 22)
            | (imm7 << 15)
            | (rt2 << 10)
            | (rn << 5)
            | rt
    }

    /// MOV Xd, SP is ADD Xd, SP, #0: sf=1 op=0 S=0 100010 sh=0 imm12 Rn Rd.
    fn mov_from_sp(rd: u32) -> u32 {
        (1 << 31) | (0b100010 << 23) | (SP << 5) | rd
    }

    /// BLR Xn: 1101011 0 0 01 11111 0000 0 0 Rn 00000.
    fn blr(rn: u32) -> u32 {
        0xd63f_0000 | (rn << 5)
    }

    /// RET (X30).
    fn ret() -> u32 {
        0xd65f_0000 | (LR << 5)
    }

    #[test]
    fn template_bytes_encode_the_documented_instructions() {
        let words = [
            ldst_pair(false, true, -16, FP, LR, SP),
            mov_from_sp(FP),
            blr(3),
            ldst_pair(true, false, 16, FP, LR, SP),
            ret(),
        ];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(bytes, super::CODE);
        assert_eq!(super::RETURN_OFFSET, 12);
        assert_eq!(super::TEMPLATE.stride, 32);
    }
}
