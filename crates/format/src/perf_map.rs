//! The perf map format: `/tmp/perf-<pid>.map`.
//!
//! perf's `tools/perf/Documentation/jit-interface.txt` defines it as one line per symbol,
//! `START SIZE symbolname`, with START and SIZE in hex. CPython (3.12+) writes
//! `fprintf("%" PRIxPTR " %x %s\n", addr, size, name)`: lowercase hex, no `0x`, a single
//! space between fields, and the name runs to the end of the line (it may contain spaces,
//! as in `py::<module>:<frozen importlib._bootstrap>`). [`write_entry`] produces exactly that,
//! so every tool that reads CPython's maps reads ours.
//!
//! The only characters a name cannot carry are line breaks, which perf would read as the
//! start of a new line, and NUL. [`write_entry`] writes them as `\n`, `\r` and `\0` (see
//! [`symbol_name`]; CPython writes them raw, and a crafted file name forges map entries).

use std::fmt;

/// One parsed line of a perf map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// First address of the code region.
    pub start: u64,
    /// Length of the region in bytes.
    pub size: u64,
    /// The symbol perf shows for addresses in `[start, start + size)`.
    pub name: &'a str,
}

/// Why a line is not a perf map entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The line has fewer than three space-separated fields.
    MissingField(String),
    /// The start or size field is not hexadecimal.
    BadHex(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::MissingField(l) => {
                write!(f, "perf map line has fewer than 3 fields: {l:?}")
            }
            ParseError::BadHex(l) => {
                write!(f, "perf map line has a non-hex address or size: {l:?}")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Appends one map line for `[start, start + size)` named `name` to `out`.
///
/// The output is byte-for-byte what CPython writes for the same values, except that line
/// breaks inside `name` are escaped (see the module docs).
pub fn write_entry(out: &mut Vec<u8>, start: u64, size: u64, name: &str) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{start:x} {size:x} ");
    push_name(out, name);
    out.push(b'\n');
}

/// Appends `name` with its line breaks escaped.
fn push_name(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(symbol_name(name).as_bytes());
}

/// `name` as a symbol every line-based reader keeps whole: a line break (`\n`, `\r`) becomes
/// the two characters `\n` / `\r`, and a NUL (which ends a C string early) `\0`. A file name
/// or qualname can hold any of them; written raw, a line break in a file name would let a
/// script forge a map entry, and would split a folded stack or a `perf script` line. Both
/// the perf map and the jitdump writers use this.
pub fn symbol_name(name: &str) -> std::borrow::Cow<'_, str> {
    if !name.bytes().any(|b| matches!(b, b'\n' | b'\r' | 0)) {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Parses one line (without its trailing newline).
///
/// Accepts what perf accepts: an optional `0x` prefix on both numbers and any amount of
/// space between the first two fields. The name is everything after the size field and
/// its following space.
pub fn parse_line(line: &str) -> Result<Entry<'_>, ParseError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut rest = line.trim_start();
    fn next_field<'a>(rest: &mut &'a str) -> Option<&'a str> {
        let end = rest.find(' ')?;
        let field = &rest[..end];
        *rest = rest[end..].trim_start_matches(' ');
        Some(field)
    }
    let start = next_field(&mut rest).ok_or_else(|| ParseError::MissingField(line.into()))?;
    let size = next_field(&mut rest).ok_or_else(|| ParseError::MissingField(line.into()))?;
    if rest.is_empty() {
        return Err(ParseError::MissingField(line.into()));
    }
    let hex = |s: &str| {
        let s = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        u64::from_str_radix(s, 16).map_err(|_| ParseError::BadHex(line.into()))
    };
    Ok(Entry {
        start: hex(start)?,
        size: hex(size)?,
        name: rest,
    })
}

/// Iterates over the entries of a whole map file, skipping blank lines.
pub fn parse(text: &str) -> impl Iterator<Item = Result<Entry<'_>, ParseError>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(start: u64, size: u64, name: &str) -> String {
        let mut v = Vec::new();
        write_entry(&mut v, start, size, name);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn matches_cpython_printf_format() {
        // CPython 3.12.1 wrote exactly this line for a function `foo` (size 0xb).
        assert_eq!(
            line(0x7fcc3e0bd7bc, 0xb, "py::foo:/tmp/probe/s.py"),
            "7fcc3e0bd7bc b py::foo:/tmp/probe/s.py\n"
        );
        // test_perfmaps.py expectations: `%x` of 5678 and 6789.
        assert_eq!(line(0x1234, 5678, "entry1"), "1234 162e entry1\n");
        assert_eq!(line(0x2345, 6789, "entry2"), "2345 1a85 entry2\n");
    }

    #[test]
    fn names_keep_spaces_and_lose_line_breaks() {
        let l = line(0x10, 8, "py::<module>:<frozen importlib._bootstrap>");
        assert_eq!(l, "10 8 py::<module>:<frozen importlib._bootstrap>\n");
        let l = line(0x10, 8, "py::f:/tmp/a\nb\r.py");
        assert_eq!(l, "10 8 py::f:/tmp/a\\nb\\r.py\n");
        assert_eq!(l.matches('\n').count(), 1);
        // A file name forging an entry stays inside its own line.
        let l = line(0x10, 8, "py::f:x\n7f00 10 py::forged:/etc/passwd\0.py");
        assert_eq!(l, "10 8 py::f:x\\n7f00 10 py::forged:/etc/passwd\\0.py\n");
        assert_eq!(parse(&l).count(), 1);
        assert!(matches!(
            symbol_name("plain"),
            std::borrow::Cow::Borrowed("plain")
        ));
    }

    #[test]
    fn round_trips() {
        for (s, z, n) in [
            (0u64, 1u64, "x"),
            (u64::MAX, 0xffff_ffff, "py::A.b.<locals>.c:/x y.py"),
            (0x7f00_0000_0010, 8, "py::<lambda>:<string>"),
        ] {
            let text = line(s, z, n);
            let e = parse_line(&text).unwrap();
            assert_eq!(
                e,
                Entry {
                    start: s,
                    size: z,
                    name: n
                }
            );
        }
    }

    #[test]
    fn parser_accepts_what_perf_accepts_and_rejects_garbage() {
        let e = parse_line("0x10  0X8 sym with spaces").unwrap();
        assert_eq!((e.start, e.size, e.name), (0x10, 8, "sym with spaces"));
        assert!(matches!(
            parse_line("10 8"),
            Err(ParseError::MissingField(_))
        ));
        assert!(matches!(parse_line("zz 8 a"), Err(ParseError::BadHex(_))));
        let all: Vec<_> = parse("1 2 a\n\n3 4 b\n").collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 2);
    }
}
