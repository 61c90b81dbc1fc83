//! What `/proc` says about processes, for every command: which run, whether a pid runs,
//! each one's parent, start time and command line, and the pids a process has in its PID
//! namespaces.

use std::path::Path;

/// Whether process `pid` exists (in this PID namespace) and has not exited: a zombie, whose
/// files are closed and who writes nothing more, does not run.
pub fn running(pid: u32) -> bool {
    match std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) {
        // `pid (comm) S ...`: the state follows the last `)` (comm may hold one).
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => Path::new("/proc").join(pid.to_string()).exists(),
    }
}

/// What `/proc/<pid>/stat` says of a process that perfpy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// The executable's name, as the kernel keeps it (15 bytes at most).
    pub comm: String,
    /// Its one-letter state (`R`, `S`, `Z`, ...).
    pub state: char,
    pub ppid: u32,
    /// When it started, in clock ticks after boot: with the pid, which process this is (a
    /// pid is reused, a start time with it is not).
    pub start: u64,
}

impl Stat {
    /// Parses a `/proc/<pid>/stat` line: `pid (comm) S ppid ...`, the start time 22nd.
    pub fn parse(text: &str) -> Option<Stat> {
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        let comm = text.get(open + 1..close)?.to_string();
        let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
        Some(Stat {
            comm,
            state: rest.first()?.chars().next()?,
            ppid: rest.get(1)?.parse().ok()?,
            start: rest.get(19)?.parse().ok()?,
        })
    }

    pub fn of(pid: u32) -> Option<Stat> {
        Stat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }
}

/// When process `pid` started, on the wall clock (its start time after the boot time).
pub fn started_at(pid: u32) -> Option<std::time::SystemTime> {
    let start = Stat::of(pid)?.start;
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let after_boot = std::time::Duration::from_millis(start * 1000 / ticks);
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(boot) + after_boot)
}

/// Where a file process `pid` names `path` may be from here, most likely first: through its
/// root (`/proc/<pid>/root`: a container's mount namespace, whose paths the kernel gives as
/// the container sees them), as it is (the same file system), and, for a process in a chroot
/// of this file system whose mounts are its own, through its root with the root's own path
/// taken off (the kernel gives such a path from the real root).
pub fn paths_of(pid: u32, path: &Path) -> Vec<std::path::PathBuf> {
    let proc_root = Path::new("/proc").join(pid.to_string()).join("root");
    let rel = path.strip_prefix("/").unwrap_or(path);
    let mut out = vec![proc_root.join(rel), path.to_path_buf()];
    if let Ok(root) = std::fs::read_link(&proc_root) {
        if root != Path::new("/") {
            if let Ok(inside) = path.strip_prefix(&root) {
                out.push(proc_root.join(inside));
            }
        }
    }
    out
}

/// Every process's pid, in this PID namespace.
pub fn pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids
}

/// A process's command line, its words joined by spaces (`None`: gone, or a kernel thread).
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// The `NSpid:` line of a `/proc/<pid>/status`: the process's pid in each PID namespace it
/// is in, outermost (this one) first.
pub fn ns_pids(status: &str) -> Vec<i32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The pid `pid` has inside its own (innermost) PID namespace, if it differs.
pub fn namespace_pid(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let inner = *ns_pids(&status).last()?;
    (inner != pid).then_some(inner)
}

/// How many PID namespaces deep this process is (1: not in a container's).
pub fn own_namespace_depth() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let pids = ns_pids(&status);
    (!pids.is_empty()).then_some(pids.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stat_lines_whatever_the_name_holds() {
        let line = "4242 (gunicorn: wo) ker) S 4200 4200 4200 0 -1 4194560 1 0 0 0 3 1 0 0 20 \
                    0 1 0 987654 1000 100";
        let s = Stat::parse(line).unwrap();
        assert_eq!(s.comm, "gunicorn: wo) ker");
        assert_eq!((s.state, s.ppid, s.start), ('S', 4200, 987654));
        let me = Stat::of(std::process::id()).unwrap();
        assert!(me.start > 0);
        let started = started_at(std::process::id()).unwrap();
        let age = std::time::SystemTime::now()
            .duration_since(started)
            .unwrap();
        assert!(age < std::time::Duration::from_secs(600), "{age:?}");
        assert!(pids().contains(&std::process::id()));
        assert!(cmdline(std::process::id()).is_some());
    }

    #[test]
    fn reads_nspid_lines() {
        let status = "Name:\tpython\nPid:\t4242\nNSpid:\t4242\t17\t1\nPPid:\t1\n";
        assert_eq!(ns_pids(status), [4242, 17, 1]);
        assert_eq!(ns_pids("Name:\tx\n"), Vec::<i32>::new());
        assert!(running(std::process::id()));
        // A child that exited but was not waited for is a zombie: not running.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        for _ in 0..200 {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            if state.contains(") Z") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!running(pid));
        child.wait().unwrap();
        assert!(!running(pid));
        assert_eq!(namespace_pid(std::process::id() as i32), None);
        assert!(own_namespace_depth().is_some_and(|d| d >= 1));
    }
}
