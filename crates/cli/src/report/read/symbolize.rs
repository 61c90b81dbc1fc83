//! Naming frames: a Python stub by its process's perf map or jitdump, native code by its
//! binary's symbols (or its build-id debug file's), the kernel by `/proc/kallsyms` when the
//! recorded kernel is the one running here.

use super::arch::Arch;
use super::process::Proc;
use crate::report::jit;
use crate::report::{Frame, Kind, Profile};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The frame id for `addr` in `proc` (a return address is looked up one byte back, inside
/// the call).
pub fn frame_for<A: Arch>(
    proc: &mut Proc<A>,
    profile: &mut Profile,
    addr: u64,
    is_return: bool,
) -> u32 {
    if let Some(&(id, unnamed)) = proc.names.get(&(addr, is_return)) {
        proc.unnamed += u64::from(unnamed);
        return id;
    }
    let lookup = if is_return {
        addr.wrapping_sub(1)
    } else {
        addr
    };
    let mut unnamed = false;
    let frame = python_frame(proc, lookup)
        .or_else(|| native_frame(proc, lookup))
        .unwrap_or_else(|| {
            unnamed = proc.space.in_anon_code(lookup);
            Frame::named(Kind::Native, "[unknown]")
        });
    proc.had_unnamed_anon |= unnamed;
    proc.unnamed += u64::from(unnamed);
    let id = profile.intern_frame(frame);
    proc.names.insert((addr, is_return), (id, unnamed));
    id
}

fn python_frame<A: Arch>(proc: &Proc<A>, addr: u64) -> Option<Frame> {
    proc.space.jit_infos().find_map(|info| {
        jit::find(&info.stubs, addr).map(|stub| Frame {
            kind: Kind::Python,
            name: stub.name.clone(),
            module: None,
            line: stub.line,
        })
    })
}

fn native_frame<A: Arch>(proc: &Proc<A>, addr: u64) -> Option<Frame> {
    let maps = &proc.space.mappings;
    let i = maps.partition_point(|m| m.start <= addr);
    let m = maps.get(i.checked_sub(1)?).filter(|m| addr < m.end)?;
    let module = m
        .elf
        .as_ref()
        .map(|e| e.short_name.clone())
        .unwrap_or_else(|| Arc::from(m.path.rsplit('/').next().unwrap_or(&m.path)));
    let name = m
        .elf
        .as_ref()
        .and_then(|e| e.symbol(addr.wrapping_sub(m.base)).cloned())
        .unwrap_or_else(|| Arc::from(format!("[{module}]")));
    Some(Frame {
        kind: Kind::Native,
        name,
        module: Some(module),
        line: None,
    })
}

/// Kernel frames: by symbol when this machine's kernel is the recorded one, else one
/// `[kernel]` frame for the whole kernel part of a sample.
pub struct KernelNames {
    /// Where the recording says the kernel's text starts: its `[kernel.kallsyms]SYMBOL`
    /// mapping's start, and SYMBOL (`_text` on x86_64, `_stext` on aarch64).
    pub text: Option<(u64, String)>,
    /// This machine's kernel symbols (or those of `--kallsyms`), when they belong to the
    /// recorded kernel (`None`: not looked at yet).
    kallsyms: Option<Option<Arc<Kallsyms>>>,
    /// A file of the recorded kernel's symbols, instead of this machine's.
    file: Option<std::path::PathBuf>,
    /// Frame ids by address.
    names: HashMap<u64, u32>,
    /// The `[kernel]` frame.
    whole: u32,
}

impl KernelNames {
    pub fn new(profile: &mut Profile, file: Option<std::path::PathBuf>) -> KernelNames {
        // Reading /proc/kallsyms (the kernel formats some 100,000 lines) takes about a fifth of
        // a short report: begin it now, beside the records, for the first kernel frame.
        if file.is_none() && THIS_BOOT.get().is_none() {
            std::thread::spawn(|| THIS_BOOT.get_or_init(Kallsyms::read));
        }
        let whole = profile.intern_frame(Frame::named(Kind::Kernel, "[kernel]"));
        KernelNames {
            text: None,
            kallsyms: None,
            file,
            names: HashMap::new(),
            whole,
        }
    }

    /// The frames of a sample's kernel part (leaf first): each named, or `[kernel]` alone.
    pub fn frames(&mut self, profile: &mut Profile, addrs: &[u64]) -> Vec<u32> {
        if addrs.is_empty() {
            return Vec::new();
        }
        let named: Option<Vec<u32>> = addrs.iter().map(|&a| self.frame(profile, a)).collect();
        named.unwrap_or_else(|| vec![self.whole])
    }

    fn frame(&mut self, profile: &mut Profile, addr: u64) -> Option<u32> {
        if self.kallsyms.is_none() {
            self.kallsyms = Some(self.text.as_ref().and_then(|(at, symbol)| {
                match &self.file {
                    Some(file) => Kallsyms::parse(&std::fs::read_to_string(file).ok()?)
                        .filter(|k| k.starts_at(symbol, *at)),
                    None => Kallsyms::load(symbol, *at),
                }
            }));
        }
        let syms = self.kallsyms.as_ref().and_then(Option::as_ref)?;
        if let Some(&id) = self.names.get(&addr) {
            return Some(id);
        }
        let name = syms.name(addr)?.clone();
        let id = profile.intern_frame(Frame {
            kind: Kind::Kernel,
            name,
            module: Some(Arc::from("[kernel]")),
            line: None,
        });
        self.names.insert(addr, id);
        Some(id)
    }
}

/// `/proc/kallsyms`' text symbols, sorted.
struct Kallsyms {
    /// Where the kernel's text starts in this boot: `_text` and `_stext` (either may be
    /// missing: aarch64 lists no `_text`).
    text: Option<u64>,
    stext: Option<u64>,
    symbols: Vec<(u64, Arc<str>)>,
}

/// `/proc/kallsyms` as this process read it (once: a recording read again, or the fuzz
/// targets' many, don't parse its 100,000 lines each time).
static THIS_BOOT: OnceLock<Option<Arc<Kallsyms>>> = OnceLock::new();

impl Kallsyms {
    /// This machine's kernel symbols, if readable (not hidden by `kptr_restrict`) and if the
    /// kernel's `symbol` is at `at` as in the recording: the same boot (KASLR moves it).
    fn load(symbol: &str, at: u64) -> Option<Arc<Kallsyms>> {
        let here = THIS_BOOT.get_or_init(Kallsyms::read).clone()?;
        here.starts_at(symbol, at).then_some(here)
    }

    /// Whether the kernel's text anchor `symbol` (`_text` or `_stext`) is at `at`.
    fn starts_at(&self, symbol: &str, at: u64) -> bool {
        match symbol {
            "_text" => self.text == Some(at),
            "_stext" => self.stext == Some(at),
            _ => false,
        }
    }

    fn read() -> Option<Arc<Kallsyms>> {
        Kallsyms::parse(&std::fs::read_to_string("/proc/kallsyms").ok()?)
    }

    /// Text symbols of a kallsyms listing, with where the kernel's text starts.
    fn parse(data: &str) -> Option<Arc<Kallsyms>> {
        let mut symbols = Vec::new();
        let (mut text, mut stext) = (None, None);
        for line in data.lines() {
            let mut f = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if !matches!(kind, "t" | "T" | "w" | "W") {
                continue;
            }
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            match name {
                "_text" => text = Some(addr),
                "_stext" => stext = Some(addr),
                _ => {}
            }
            if addr != 0 {
                symbols.push((addr, Arc::from(name)));
            }
        }
        let (text, stext) = (text.filter(|&t| t != 0), stext.filter(|&t| t != 0));
        if symbols.is_empty() || text.is_none() && stext.is_none() {
            return None;
        }
        symbols.sort_by_key(|s| s.0);
        Some(Arc::new(Kallsyms {
            text,
            stext,
            symbols,
        }))
    }

    fn name(&self, addr: u64) -> Option<&Arc<str>> {
        let i = self.symbols.partition_point(|s| s.0 <= addr);
        Some(&self.symbols.get(i.checked_sub(1)?)?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::arch::X86_64;
    use super::super::process::Space;
    use super::*;

    #[test]
    fn only_unnamed_jit_code_calls_for_the_missing_names_warning() {
        let space = Space {
            anon_code: vec![(0x7000_0000, 0x7000_1000)],
            ..Space::default()
        };
        let mut proc = Proc::<X86_64>::new(space);
        let mut profile = Profile::default();
        // A return address outside every mapping (one a guessed frame can give): not JIT code.
        frame_for(&mut proc, &mut profile, 0x1234, true);
        assert!(!proc.had_unnamed_anon);
        frame_for(&mut proc, &mut profile, 0x7000_0010, false);
        assert!(proc.had_unnamed_anon);
    }

    #[test]
    fn kallsyms_only_for_the_recorded_boot() {
        // A kernel text address no boot of this machine has: never used.
        assert!(Kallsyms::load("_text", 0x1234).is_none());
        let text = std::fs::read_to_string("/proc/kallsyms")
            .ok()
            .and_then(|d| {
                d.lines()
                    .find(|l| l.ends_with(" _text"))
                    .and_then(|l| u64::from_str_radix(l.split(' ').next()?, 16).ok())
            })
            .filter(|&a| a != 0);
        if let Some(text) = text {
            let syms = Kallsyms::load("_text", text).expect("this boot's symbols");
            let name = syms.name(text + 1).expect("a symbol at the kernel's start");
            assert!(name.starts_with('_'), "{name}");
        }
    }

    #[test]
    fn an_aarch64_listing_is_anchored_at_stext() {
        // arm64's /proc/kallsyms has no _text; perf names the kernel's mapping after _stext.
        let listing = "ffffd85504000000 t _head\nffffd85504010000 T _stext\n\
                       ffffd85504010040 T do_el0_svc\nffffd85504010100 t helper\n";
        let k = Kallsyms::parse(listing).unwrap();
        assert!(k.starts_at("_stext", 0xffffd85504010000));
        assert!(!k.starts_at("_text", 0xffffd85504010000));
        assert_eq!(&**k.name(0xffffd85504010044).unwrap(), "do_el0_svc");
    }
}
