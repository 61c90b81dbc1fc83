//! What to say of a stripped binary without a debug file: what it costs, and how to get one
//! (the package of its debug symbols, when its distribution's `os-release` says which).

use super::DEBUG_DIR;
use crate::report::profile::Stripped;
use std::path::Path;

/// The distributions whose debug packages perfpy can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distro {
    Debian,
    Ubuntu,
    /// Fedora, RHEL and their rebuilds (CentOS, Rocky, AlmaLinux, Oracle Linux): `dnf
    /// debuginfo-install`.
    Fedora,
}

/// The distribution of the file system at `root`, from its `os-release` (`ID`, else the first
/// of `ID_LIKE` perfpy knows); `None` when it has none, or it names none of [`Distro`].
pub fn distro(root: &Path) -> Option<Distro> {
    ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(root.join(p)).ok())
        .and_then(|text| distro_of(&text))
}

/// [`distro`] of an `os-release` file's text.
pub fn distro_of(os_release: &str) -> Option<Distro> {
    let value = |key: &str| {
        os_release.lines().find_map(|l| {
            let v = l.trim().strip_prefix(key)?.strip_prefix('=')?;
            Some(v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        })
    };
    let of = |id: &str| match id {
        "debian" => Some(Distro::Debian),
        "ubuntu" => Some(Distro::Ubuntu),
        "fedora" | "rhel" | "centos" | "rocky" | "almalinux" | "ol" => Some(Distro::Fedora),
        _ => None,
    };
    value("ID")
        .as_deref()
        .and_then(of)
        .or_else(|| value("ID_LIKE")?.split_whitespace().find_map(of))
}

/// Whether `path` is where a distribution's packages put binaries (not `/usr/local`, `/opt`,
/// a home, a virtual environment's copy): only there can perfpy tell which package has its
/// debug symbols.
fn packaged(path: &str) -> bool {
    !path.starts_with("/usr/local/")
        && ["/usr/", "/lib/", "/lib64/", "/lib32/", "/bin/", "/sbin/"]
            .iter()
            .any(|d| path.starts_with(d))
}

/// What to say of a stripped binary without a debug file: what happened, why, and how to get
/// its names (the package of its debug symbols, when its distribution says which).
pub fn stripped_warning(s: &Stripped) -> String {
    let distro = if packaged(&s.path) {
        distro(&s.root)
    } else {
        None
    };
    stripped_warning_for(s, distro)
}

/// [`stripped_warning`] with the distribution given.
pub fn stripped_warning_for(s: &Stripped, distro: Option<Distro>) -> String {
    let here = s.root == Path::new("/");
    let percent = 100.0 * s.share;
    let how = if s.python.is_some() {
        "pass through them"
    } else {
        "are in them"
    };
    let mut out = format!(
        "{} is stripped and has no debug file perfpy could find: its own functions show as {} \
         ({percent:.0}% of the samples {how}; only the functions it exports have their names).",
        s.path, s.frame
    );
    if let Some(other) = s.others.first() {
        out.push_str(&format!(
            " {} is not its debug file: it is of another build of it.",
            other.display()
        ));
    }
    let version = s
        .python
        .flatten()
        .map(|(a, b)| format!("{a}.{b}"))
        .unwrap_or_else(|| "3".to_string());
    let install = match (distro, s.python.is_some()) {
        (Some(Distro::Debian | Distro::Ubuntu), true) => {
            format!("`apt install python{version}-dbg`")
        }
        (Some(Distro::Debian), false) => format!(
            "the -dbgsym package (from Debian's debug archive) of the package `dpkg -S {}` \
             names, or its -dbg package where there is one",
            s.path
        ),
        (Some(Distro::Ubuntu), false) => format!(
            "the -dbgsym package (from Ubuntu's ddebs archive) of the package `dpkg -S {}` \
             names",
            s.path
        ),
        (Some(Distro::Fedora), _) => {
            format!("`dnf debuginfo-install $(rpm -qf {})`", s.path)
        }
        (None, _) => String::new(),
    };
    let debug_dir = s.root.join(DEBUG_DIR);
    if !install.is_empty() {
        if here {
            out.push_str(&format!(
                " To name them, install its debug symbols: {install}, which puts them in {}, \
                 where perfpy looks.",
                debug_dir.display()
            ));
        } else if s.root.starts_with("/proc") {
            out.push_str(&format!(
                " To name them, install its debug symbols in the container it runs in \
                 ({install}): perfpy reads them there ({}) while it runs.",
                debug_dir.display()
            ));
        } else {
            out.push_str(&format!(
                " To name them, install its debug symbols where it runs ({install}) and copy \
                 that machine's /usr/lib/debug to {}, where perfpy looks.",
                debug_dir.display()
            ));
        }
        return out;
    }
    // Not a distribution's file (or one perfpy can't tell the package of): where perfpy
    // looks, for a debug file made from the build before it was stripped.
    let mut places = Vec::new();
    if let Some(id) = s.build_id.as_deref().filter(|id| id.len() > 2) {
        places.push(format!(
            "{}/.build-id/{}/{}.debug",
            debug_dir.display(),
            &id[..2],
            &id[2..]
        ));
    }
    if let Some(name) = &s.debuglink {
        let dir = Path::new(&s.path).parent().unwrap_or(Path::new("/"));
        places.push(format!(
            "{name} (the name its .gnu_debuglink gives) in {}, in its .debug/ or in {}{}",
            if here {
                dir.display().to_string()
            } else {
                format!("{}'s copy of {}", s.root.display(), dir.display())
            },
            debug_dir.display(),
            dir.display()
        ));
    }
    out.push_str(
        " To name them, install its debug symbols (its distribution's debug package for it, \
         or `objcopy --only-keep-debug` of the build before it was stripped)",
    );
    if places.is_empty() {
        out.push_str(" as a file perfpy finds through a .gnu_debuglink");
    } else {
        out.push_str(&format!(" as {}", places.join(", or as ")));
    }
    out.push_str("; or profile a build that isn't stripped.");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn distributions_from_os_release() {
        assert_eq!(
            distro_of("ID=debian\nVERSION_ID=\"12\"\n"),
            Some(Distro::Debian)
        );
        assert_eq!(
            distro_of("NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n"),
            Some(Distro::Ubuntu)
        );
        assert_eq!(
            distro_of("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n"),
            Some(Distro::Fedora)
        );
        assert_eq!(
            distro_of("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n"),
            Some(Distro::Ubuntu)
        );
        // IDS= is not ID=.
        assert_eq!(distro_of("IDS=debian\n"), None);
        assert_eq!(distro_of("ID=alpine\n"), None);
        assert_eq!(distro_of(""), None);
    }

    fn stripped(path: &str, root: &str) -> Stripped {
        Stripped {
            path: path.to_string(),
            root: PathBuf::from(root),
            frame: format!("[{}]", path.rsplit('/').next().unwrap()),
            share: 0.42,
            others: Vec::new(),
            python: crate::python::interpreter_file_version(path),
            build_id: Some("abcdef".to_string()),
            debuglink: None,
        }
    }

    #[test]
    fn the_warning_names_the_package_only_where_the_distribution_says_it() {
        let py = stripped("/usr/bin/python3.9", "/");
        let w = stripped_warning_for(&py, Some(Distro::Debian));
        assert!(w.starts_with("/usr/bin/python3.9 is stripped"), "{w}");
        assert!(w.contains("show as [python3.9] (42% of the samples"), "{w}");
        assert!(
            w.contains("`apt install python3.9-dbg`, which puts them in /usr/lib/debug"),
            "{w}"
        );
        let lib = stripped("/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0", "/");
        let w = stripped_warning_for(&lib, Some(Distro::Ubuntu));
        assert!(w.contains("`apt install python3.11-dbg`"), "{w}");
        let w = stripped_warning_for(&lib, Some(Distro::Fedora));
        assert!(
            w.contains(
                "`dnf debuginfo-install $(rpm -qf /usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0)`"
            ),
            "{w}"
        );
        let libc = stripped("/usr/lib/x86_64-linux-gnu/libc.so.6", "/");
        let w = stripped_warning_for(&libc, Some(Distro::Debian));
        assert!(
            w.contains("-dbgsym package")
                && w.contains("`dpkg -S /usr/lib/x86_64-linux-gnu/libc.so.6`"),
            "{w}"
        );
        // Unknown distribution: where perfpy looks, with this binary's build id.
        let w = stripped_warning_for(&py, None);
        assert!(!w.contains("apt") && !w.contains("dnf"), "{w}");
        assert!(w.contains("/usr/lib/debug/.build-id/ab/cdef.debug"), "{w}");
        // Another machine's files (--sysroot): its debug files go there.
        let far = stripped("/usr/bin/python3.11", "/copy");
        let w = stripped_warning_for(&far, Some(Distro::Debian));
        assert!(
            w.contains("copy that machine's /usr/lib/debug to /copy/usr/lib/debug"),
            "{w}"
        );
        // Not a distribution's file: never a package, whatever the machine runs.
        let own = stripped("/opt/py/bin/python3.11", "/");
        assert!(!packaged(&own.path) && !packaged("/usr/local/bin/python3.11"));
        assert!(packaged("/usr/bin/python3.11") && packaged("/lib/x86_64-linux-gnu/libc.so.6"));
        let mut linked = own.clone();
        linked.debuglink = Some("python3.11.debug".to_string());
        linked.others = vec![PathBuf::from("/opt/py/bin/python3.11.debug")];
        let w = stripped_warning_for(&linked, None);
        assert!(
            w.contains(
                "/opt/py/bin/python3.11.debug is not its debug file: it is of another build"
            ),
            "{w}"
        );
        assert!(
            w.contains("python3.11.debug (the name its .gnu_debuglink gives) in /opt/py/bin, in its .debug/ or in /usr/lib/debug/opt/py/bin"),
            "{w}"
        );
    }
}
