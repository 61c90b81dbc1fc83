//! Profiling an interpreter that doesn't have perfpy: `perfpy record` lends it the perfpy
//! package this command was installed with, for the duration of the run, through the
//! environment only.
//!
//! The wheel carries the extension built for every CPython it supports
//! (`_native.cpython-3XY-x86_64-linux-gnu.so`, one per version) and this command in
//! `perfpy/_bin/`. For a run, [`HookDir`] makes a private directory holding two symlinks:
//! `perfpy` (the package) and `sitecustomize.py` (the package's `_sitecustomize.py`), and
//! `record` puts it first on the program's `PYTHONPATH`. At start-up the interpreter imports
//! that `sitecustomize`, which switches perfpy on (`PERFPY_BACKEND`), takes the directory off
//! `sys.path` again and runs the program's own `sitecustomize`, if it has one. The directory
//! is removed when the recording ends; the program's environment gets no file.

use crate::python::PythonFacts;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Overrides where the package to lend is (a directory holding `__init__.py`,
/// `_sitecustomize.py` and the `_native*.so` builds), for a command not run from a wheel.
pub const PACKAGE_VAR: &str = "PERFPY_PACKAGE_DIR";

/// Whether perfpy can be lent to an interpreter, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lend {
    /// The package at this path has a build for the interpreter.
    Yes(PathBuf),
    /// Why not, for messages.
    No(String),
}

impl Lend {
    pub fn is_yes(&self) -> bool {
        matches!(self, Lend::Yes(_))
    }
}

/// The package this command can lend: `$PERFPY_PACKAGE_DIR`, else the package the command
/// was installed in (`<package>/_bin/perfpy`).
pub fn package() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os(PACKAGE_VAR) {
        let dir = PathBuf::from(dir);
        return if is_package(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "{PACKAGE_VAR}={} is not a perfpy package (no __init__.py and \
                 _sitecustomize.py there)",
                dir.display()
            ))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("can't find this command: {e}"))?;
    exe.parent()
        .and_then(Path::parent)
        .filter(|p| is_package(p))
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            format!(
                "this perfpy command ({}) was not installed from a perfpy wheel, so it has no \
                 builds of the extension to lend",
                exe.display()
            )
        })
}

fn is_package(dir: &Path) -> bool {
    dir.join("__init__.py").is_file() && dir.join("_sitecustomize.py").is_file()
}

/// Whether the package can be lent to the interpreter described by `facts`: perfpy is not
/// installed there, and the package holds the build that interpreter's import system looks
/// for (its `EXT_SUFFIX`).
pub fn lend_to(facts: &PythonFacts) -> Lend {
    if facts.perfpy.is_some() {
        return Lend::No("perfpy is installed there".into());
    }
    let package = match package() {
        Ok(p) => p,
        Err(why) => return Lend::No(why),
    };
    if facts.ext_suffix.is_empty() {
        return Lend::No(format!(
            "{} did not say which extension builds it loads",
            facts.executable
        ));
    }
    let build = package.join(format!("_native{}", facts.ext_suffix));
    if build.is_file() {
        Lend::Yes(package)
    } else {
        Lend::No(format!(
            "the perfpy package at {} has no build for Python {} (no {}; its builds: {})",
            package.display(),
            facts.version,
            build.file_name().unwrap_or_default().to_string_lossy(),
            builds(&package).join(", ")
        ))
    }
}

/// The extension builds in `package`, by file name.
fn builds(package: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(package)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("_native.") && n.ends_with(".so"))
        .collect();
    names.sort();
    names
}

/// Prefix of the hook directories, in the temporary directory (`perfpy clean` knows it).
pub const HOOK_PREFIX: &str = "perfpy-lend-";

/// The start-up hook directory of one run; removed when dropped.
#[derive(Debug)]
pub struct HookDir {
    path: PathBuf,
}

impl HookDir {
    /// Makes `$TMPDIR/perfpy-lend-<pid>-<n>/` (mode 0700, so no other user can plant code in
    /// it) holding `perfpy` and `sitecustomize.py`, symlinks into `package`.
    pub fn create(package: &Path) -> std::io::Result<HookDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        let mut n = 0u32;
        let path = loop {
            let p = base.join(format!("{HOOK_PREFIX}{}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => break p,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(e),
            }
        };
        let dir = HookDir { path };
        let package = std::fs::canonicalize(package)?;
        std::os::unix::fs::symlink(&package, dir.path.join("perfpy"))?;
        std::os::unix::fs::symlink(
            package.join("_sitecustomize.py"),
            dir.path.join("sitecustomize.py"),
        )?;
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The program's `PYTHONPATH`: this directory first, then what it had.
    pub fn pythonpath(&self, existing: Option<OsString>) -> OsString {
        let mut v = self.path.clone().into_os_string();
        if let Some(old) = existing.filter(|o| !o.is_empty()) {
            v.push(":");
            v.push(old);
        }
        v
    }
}

impl Drop for HookDir {
    fn drop(&mut self) {
        // The interpreter may have written __pycache__/ here.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The interpreter options among `args` (the command's arguments after the interpreter)
/// that make it skip the hook: `-E`/`-I` ignore `PYTHONPATH`, `-S` skips `sitecustomize`.
pub fn options_skipping_the_hook(args: &[OsString]) -> Vec<char> {
    let mut found = Vec::new();
    let mut it = args.iter().map(|a| a.to_string_lossy());
    while let Some(arg) = it.next() {
        if arg == "--" || !arg.starts_with('-') || arg == "-" || arg.starts_with("--") {
            break; // the script, or a long option (none of which matter here)
        }
        for (i, c) in arg[1..].char_indices() {
            match c {
                'E' | 'I' | 'S' if !found.contains(&c) => found.push(c),
                // Options that take a value: the rest of the argument, or the next one.
                'X' | 'W' => {
                    if i + 2 == arg.len() {
                        it.next();
                    }
                    break;
                }
                // -c CMD / -m MOD end the interpreter's options.
                'c' | 'm' => return found,
                _ => {}
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn finds_the_options_that_skip_the_hook() {
        assert!(options_skipping_the_hook(&args(&["app.py", "-E"])).is_empty());
        assert_eq!(options_skipping_the_hook(&args(&["-E", "app.py"])), ['E']);
        assert_eq!(
            options_skipping_the_hook(&args(&["-bIS", "app.py"])),
            ['I', 'S']
        );
        assert!(options_skipping_the_hook(&args(&["-X", "E", "app.py"])).is_empty());
        assert!(options_skipping_the_hook(&args(&["-XS", "-W", "I", "app.py"])).is_empty());
        assert!(options_skipping_the_hook(&args(&["-c", "-E"])).is_empty());
        assert_eq!(
            options_skipping_the_hook(&args(&["-u", "-S", "-m", "x"])),
            ['S']
        );
    }

    #[test]
    fn the_hook_dir_is_private_and_goes_away() {
        use std::os::unix::fs::PermissionsExt;
        let pkg = std::env::temp_dir().join(format!("perfpy-lend-test-{}", std::process::id()));
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join("__init__.py"), "").unwrap();
        std::fs::write(pkg.join("_sitecustomize.py"), "").unwrap();
        let dir = HookDir::create(&pkg).unwrap();
        let path = dir.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(path.join("perfpy/__init__.py").is_file());
        assert!(path.join("sitecustomize.py").is_file());
        assert_eq!(
            dir.pythonpath(Some("/a:/b".into())),
            OsString::from(format!("{}:/a:/b", path.display()))
        );
        assert_eq!(
            dir.pythonpath(Some("".into())),
            path.clone().into_os_string()
        );
        drop(dir);
        assert!(!path.exists());
        assert!(
            pkg.join("__init__.py").is_file(),
            "the package itself is left alone"
        );
        std::fs::remove_dir_all(&pkg).unwrap();
    }
}
