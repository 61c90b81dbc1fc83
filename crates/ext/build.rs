fn main() {
    // Emits Py_3_8 .. Py_3_15 ("this version or newer") and Py_GIL_DISABLED for the
    // interpreter selected by PYO3_PYTHON (maturin sets it per target).
    pyo3_build_config::use_pyo3_cfgs();
    // The version past the last family `cpython/mod.rs` knows, refused there.
    println!("cargo::rustc-check-cfg=cfg(Py_3_16)");
}
