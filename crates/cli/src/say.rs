//! perfpy's own lines on standard error, which it shares with the program it runs: each
//! begins with `perfpy:`, so the two can be told apart.

/// Something that makes the result worse than it could be, and what to do about it.
pub fn warn(message: &str) {
    eprintln!("perfpy: warning: {message}");
}

/// What perfpy did or found.
pub fn note(message: &str) {
    eprintln!("perfpy: {message}");
}

/// `n` and the noun, singular or plural: `count(1, "file", "files")` is "1 file".
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
