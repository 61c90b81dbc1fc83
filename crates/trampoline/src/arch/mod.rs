//! Machine-code templates, one module per architecture with the same surface.
//!
//! Every template is the body of this C function, compiled by hand:
//!
//! ```c
//! PyObject *trampoline(void *a0, void *a1, intptr_t a2, evaluator_fn evaluator) {
//!     return evaluator(a0, a1, a2);
//! }
//! ```
//!
//! The evaluator is the *last* argument so the first three argument registers are already
//! right for the inner call. Each copy lives at its own address, so the return address it
//! leaves on the stack names the Python function. Each builds a real frame record, so a
//! frame-pointer unwinder walks from the evaluator through the stub into its caller.

pub mod aarch64;
pub mod x86_64;

/// A trampoline template and how copies of it are laid out in an arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// Architecture name, as Rust's `target_arch` spells it.
    pub arch: &'static str,
    /// The machine code of one trampoline. Its length is the size reported to perf.
    pub code: &'static [u8],
    /// Distance between two copies in an arena (16-byte aligned, like CPython 3.13).
    pub stride: usize,
    /// Byte that fills the unused tail of each slot (traps if ever executed).
    pub fill: u8,
}

/// The template for the architecture this crate was compiled for, if it has one.
pub const fn host() -> Option<&'static Template> {
    #[cfg(target_arch = "x86_64")]
    {
        Some(&x86_64::TEMPLATE)
    }
    #[cfg(target_arch = "aarch64")]
    {
        Some(&aarch64::TEMPLATE)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        None
    }
}

/// Rounds `n` up to a multiple of 16.
pub(crate) const fn round16(n: usize) -> usize {
    (n + 15) & !15
}
