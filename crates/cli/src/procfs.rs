//! What `/proc` says about processes, for every command: whether a pid runs, and the pids a
//! process has in its PID namespaces.

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
