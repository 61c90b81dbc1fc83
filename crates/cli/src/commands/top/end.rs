//! How top ends: perf stopped, then what was switched on switched off, as `record` does, and
//! the names perfpy's switches made moved beside `--output` or removed.

use crate::recording;
use crate::roster::Roster;
use crate::say;
use std::collections::BTreeSet;
use std::process::Child;
use std::time::{Duration, Instant};

/// How long perf may take to write out what it has once asked to stop: on a loaded or slow
/// machine (an emulated one, DWARF stacks of every CPU) that is many seconds.
const STOPPING: Duration = Duration::from_secs(30);

/// Stops perf if it still runs (it then writes out what it has and exits), and waits for it;
/// kills it if it takes longer than [`STOPPING`]. Its exit status, and whether it was killed.
pub(super) fn stop_perf(child: &mut Child) -> (Option<std::process::ExitStatus>, bool) {
    if let Ok(Some(status)) = child.try_wait() {
        return (Some(status), false);
    }
    // SAFETY: kill(2) on our child, not yet reaped.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let asked = Instant::now();
    while asked.elapsed() < STOPPING {
        if let Ok(Some(status)) = child.try_wait() {
            return (Some(status), false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    say::warn(&format!(
        "perf did not stop within {} s of being asked; killing it (what it had not written \
         yet is not shown)",
        STOPPING.as_secs()
    ));
    let _ = child.kill();
    (child.wait().ok(), true)
}

/// After perf: names switched off in running processes (CPython's trampolines first, then,
/// once collected, perfpy's, which remove their files), and the files of processes whose
/// names are perfpy's doing moved beside `--output`, or removed.
pub(super) fn finish(
    watching: Option<crate::attach::session::Watching>,
    pids: &[i32],
    roster: Option<&Roster>,
    output: Option<&std::path::Path>,
) {
    let mut session = watching.map(|w| w.stop());
    if let Some(s) = session.as_mut() {
        s.stop_first();
    }
    let mut all: BTreeSet<i32> = pids.iter().copied().collect();
    all.extend(roster.map(Roster::pids).unwrap_or_default());
    let copy_only: BTreeSet<i32> = match &session {
        Some(s) => {
            let owned = s.owned();
            all.extend(s.targets.keys().map(|&p| p as i32));
            all.iter().copied().filter(|p| !owned.contains(p)).collect()
        }
        None => BTreeSet::new(),
    };
    let all: Vec<i32> = all.into_iter().collect();
    match output {
        Some(out) => {
            let side = recording::side_dir(out);
            if side.is_dir() {
                for e in std::fs::read_dir(&side).into_iter().flatten().flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
            let done = recording::collect_jit_files(&all, &copy_only, &side);
            for (path, why) in &done.failed {
                say::warn(&format!("{} stays where it is ({why})", path.display()));
            }
            if let Some(s) = &session {
                let text = serde_json::to_string_pretty(&s.describe()).unwrap_or_default();
                let _ = std::fs::create_dir_all(&side)
                    .and_then(|()| std::fs::write(side.join(recording::PROCESSES), text));
            }
        }
        None => {
            // Nobody will read them: what perfpy's switches (or its launch) made goes.
            let scratch = std::env::temp_dir().join(format!("perfpy-top-{}", std::process::id()));
            let only_owned: Vec<i32> = all
                .iter()
                .copied()
                .filter(|p| !copy_only.contains(p))
                .collect();
            recording::collect_jit_files(&only_owned, &BTreeSet::new(), &scratch);
            let _ = std::fs::remove_dir_all(&scratch);
        }
    }
    if let Some(s) = session.as_mut() {
        s.stop_rest(true);
    }
}
