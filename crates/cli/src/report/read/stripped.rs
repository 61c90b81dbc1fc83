//! Stripped binaries without a debug file that the samples went through much: their own
//! functions have no names (only those they export do), each shows as one frame named after
//! the file (`[python3.11]`), and the report says so once, with how to get the names.

use super::arch::Arch;
use super::process::Processes;
use crate::report::elf::Names;
use crate::report::{Frame, Kind, Profile, Stripped};
use std::collections::HashMap;
use std::sync::Arc;

/// The share of the samples that must pass through a CPython interpreter's unnamed functions
/// for the report to say so: the interpreter runs the Python code, its frames are in most
/// stacks.
const PYTHON_SHARE: f64 = 0.01;
/// The same for any other binary, of the samples whose innermost user-space frame is one of
/// its unnamed functions, on the CPU (a wait in the C library's futex wrapper is no time spent
/// in it): only one that much of the time was spent in is worth the debug
/// package. (Passing through is not enough: every stack starts in the C library's unnamed
/// `__libc_start_call_main`.)
const OTHER_SHARE: f64 = 0.05;

impl<A: Arch> Processes<A> {
    /// The stripped binaries (without a debug file) whose unnamed frames are in at least
    /// [`PYTHON_SHARE`] (an interpreter) or innermost in [`OTHER_SHARE`] (another binary) of
    /// the samples' weight, the most first. Anonymous code (JIT code, perfpy's stubs) and the
    /// vdso are no files and never among them; nor are the ELF files `perf inject --jit`
    /// makes of JIT code.
    pub fn stripped(&self, profile: &Profile) -> Vec<Stripped> {
        let total: u64 = profile.samples.iter().map(|s| s.weight).sum();
        if total == 0 {
            return Vec::new();
        }
        let mut candidates: Vec<Stripped> = Vec::new();
        let mut by_frame: HashMap<u32, Vec<usize>> = HashMap::new();
        for (path, elf) in self.binaries() {
            let Names::Exports { others } = &elf.names else {
                continue;
            };
            let name = &elf.short_name;
            if name.starts_with("jitted-") && name.ends_with(".so") {
                continue;
            }
            let frame = Frame {
                kind: Kind::Native,
                name: Arc::from(format!("[{name}]")),
                module: Some(name.clone()),
                line: None,
            };
            let Some(id) = profile.frame_id(&frame) else {
                continue;
            };
            by_frame.entry(id).or_default().push(candidates.len());
            candidates.push(Stripped {
                path: path.to_string(),
                root: elf.root.clone(),
                frame: frame.name.to_string(),
                share: 0.0,
                others: others.clone(),
                python: crate::python::interpreter_file_version(path),
                build_id: elf.build_id.clone(),
                debuglink: elf.debuglink.clone(),
            });
        }
        if candidates.is_empty() {
            return Vec::new();
        }
        let mut weights = vec![0u64; candidates.len()];
        let candidates_ref = &candidates;
        for (stack, weight) in profile.stack_counts() {
            let frames = &profile.stacks[stack as usize];
            // Time off the CPU (a wait's stack ends in its reason) was not spent in the
            // functions it waited in.
            let kind = |f: u32| profile.frames[f as usize].kind;
            let waiting = frames.last().is_some_and(|&f| kind(f) == Kind::Wait);
            let innermost = frames
                .iter()
                .rev()
                .find(|&&f| matches!(kind(f), Kind::Native | Kind::Python))
                .filter(|_| !waiting);
            let mut seen: Vec<usize> = frames
                .iter()
                .filter_map(|f| by_frame.get(f).map(|c| (f, c)))
                .flat_map(|(f, c)| {
                    c.iter().copied().filter(move |&i| {
                        candidates_ref[i].python.is_some() || Some(f) == innermost
                    })
                })
                .collect();
            seen.sort_unstable();
            seen.dedup();
            for i in seen {
                weights[i] += weight;
            }
        }
        let mut out: Vec<Stripped> = candidates
            .into_iter()
            .zip(weights)
            .filter_map(|(mut s, w)| {
                s.share = w as f64 / total as f64;
                let least = if s.python.is_some() {
                    PYTHON_SHARE
                } else {
                    OTHER_SHARE
                };
                (w > 0 && s.share >= least).then_some(s)
            })
            .collect();
        out.sort_by(|a, b| b.share.total_cmp(&a.share).then(a.path.cmp(&b.path)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::symbolize::frame_for;
    use super::*;
    use crate::report::{Sample, Stats};
    use std::path::{Path, PathBuf};

    #[cfg(target_arch = "x86_64")]
    type Host = super::super::arch::X86_64;
    #[cfg(target_arch = "aarch64")]
    type Host = super::super::arch::Aarch64;

    /// A stripped copy of this test binary at `path` (no debug file anywhere), its first
    /// `.text` address, and its size.
    fn stripped_copy(path: &Path) -> (u64, u64) {
        let exe = std::env::current_exe().unwrap();
        let ok = std::process::Command::new("objcopy")
            .arg("--strip-all")
            .args([exe.as_os_str(), path.as_os_str()])
            .status()
            .expect("objcopy (binutils) runs")
            .success();
        assert!(ok);
        let data = std::fs::read(path).unwrap();
        let obj = object::File::parse(&*data).unwrap();
        use object::{Object, ObjectSection};
        let text = obj.section_by_name(".text").unwrap().address();
        (text, data.len() as u64)
    }

    /// `n` samples, each a stack of the frame at `addr` in process 1.
    fn sample_at(
        procs: &mut Processes<Host>,
        profile: &mut Profile,
        addr: u64,
        n: usize,
    ) -> Arc<str> {
        let mut stats = Stats::default();
        let proc = procs.with_names(1, &mut stats);
        let frame = frame_for(proc, profile, addr, false);
        let stack = profile.intern_stack(&[frame]);
        for _ in 0..n {
            profile.samples.push(Sample {
                time: 0,
                pid: 1,
                tid: 1,
                stack,
                weight: 1,
            });
        }
        profile.frames[frame as usize].name.clone()
    }

    #[test]
    fn only_files_the_samples_went_through_much_are_told_of() {
        let dir = std::env::temp_dir().join(format!("perfpy-stripped-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut procs = Processes::<Host>::new(Vec::new(), Default::default(), Vec::new());
        procs.get(1).space.jit = Some(Default::default());
        let mut stats = Stats::default();
        // Each file mapped whole, 256 MiB apart: its `.text` at `at + text`.
        let mut at = 0x1000_0000u64;
        let mut text_of = |name: &str, procs: &mut Processes<Host>| {
            let path = dir.join(name);
            let (text, len) = stripped_copy(&path);
            procs.mmap(1, at, len, 0, path.to_str().unwrap(), &mut stats);
            let addr = at + text + 0x40;
            at += 0x1000_0000;
            addr
        };
        let python = text_of("python3.99", &mut procs);
        let lib = text_of("libfoo.so", &mut procs);
        let jitted = text_of("jitted-1-1.so", &mut procs);
        // JIT code (anonymous) and the vdso: no files.
        procs.mmap(1, 0x7000_0000, 0x1000, 0, "//anon", &mut stats);
        procs.mmap(1, 0x7100_0000, 0x1000, 0, "[vdso]", &mut stats);

        let mut profile = Profile::default();
        assert_eq!(
            &*sample_at(&mut procs, &mut profile, python, 3),
            "[python3.99]"
        );
        assert_eq!(&*sample_at(&mut procs, &mut profile, lib, 4), "[libfoo.so]");
        assert_eq!(
            &*sample_at(&mut procs, &mut profile, jitted, 50),
            "[jitted-1-1.so]"
        );
        assert_eq!(
            &*sample_at(&mut procs, &mut profile, 0x7000_0010, 20),
            "[unknown]"
        );
        assert_eq!(
            &*sample_at(&mut procs, &mut profile, 0x7100_0010, 23),
            "[unknown]"
        );
        // 100 samples: the interpreter's 3% is enough, another library's 4% is not, and the
        // ELF files perf makes of JIT code never count, however many.
        let found = procs.stripped(&profile);
        let paths: Vec<&str> = found.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, [dir.join("python3.99").to_str().unwrap()]);
        let s = &found[0];
        assert_eq!(
            (s.frame.as_str(), s.python),
            ("[python3.99]", Some(Some((3, 99))))
        );
        assert!((s.share - 0.03).abs() < 1e-9, "{}", s.share);
        assert_eq!(s.root, PathBuf::from("/"));
        assert!(s.build_id.is_some() && s.others.is_empty());
        // Two more samples in the library: 6 of 102, the most first.
        sample_at(&mut procs, &mut profile, lib, 2);
        let found = procs.stripped(&profile);
        let names: Vec<&str> = found.iter().map(|s| s.frame.as_str()).collect();
        assert_eq!(names, ["[libfoo.so]", "[python3.99]"]);
        // 200 samples that start in the library (as every stack starts in the C library) and
        // end in the interpreter: they count for the interpreter only, 6 of 302 are too few
        // for the library.
        let id = |name: &str| {
            profile
                .frames
                .iter()
                .position(|f| &*f.name == name)
                .unwrap()
        };
        let (lib_frame, py_frame) = (id("[libfoo.so]") as u32, id("[python3.99]") as u32);
        let stack = profile.intern_stack(&[lib_frame, py_frame]);
        for _ in 0..200 {
            profile.samples.push(Sample {
                time: 0,
                pid: 1,
                tid: 1,
                stack,
                weight: 1,
            });
        }
        let found = procs.stripped(&profile);
        let names: Vec<&str> = found.iter().map(|s| s.frame.as_str()).collect();
        assert_eq!(names, ["[python3.99]"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
