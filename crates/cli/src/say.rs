//! perfpy's own lines on standard error, which it shares with the program it runs: each
//! begins with `perfpy:`, so the two can be told apart. A standard error that is gone (the
//! terminal closed: SIGHUP) loses them; it never stops perfpy, which may still have names to
//! switch off in running programs.

/// `eprintln!` that never panics: a line on standard error, or nothing when it can't be
/// written.
#[macro_export]
macro_rules! eline {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Something that makes the result worse than it could be, and what to do about it.
pub fn warn(message: &str) {
    crate::eline!("perfpy: warning: {message}");
}

/// What perfpy did or found.
pub fn note(message: &str) {
    crate::eline!("perfpy: {message}");
}

/// `n` and the noun, singular or plural: `count(1, "file", "files")` is "1 file".
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
