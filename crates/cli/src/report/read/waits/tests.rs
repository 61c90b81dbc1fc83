//! The timeline and the reasons on hand-built profiles: no perf, no recording.

use super::*;
use crate::report::{Frame, Kind, Measure};

const MS: u64 = 1_000_000;

fn stack(p: &mut Profile, names: &[(Kind, &str)]) -> u32 {
    let ids: Vec<u32> = names
        .iter()
        .map(|&(k, n)| p.intern_frame(Frame::named(k, n)))
        .collect();
    p.intern_stack(&ids)
}

/// (stack's leaf, weight) of each sample, in time order.
fn leaves(p: &Profile) -> Vec<(String, u64)> {
    let mut s = p.samples.clone();
    s.sort_by_key(|s| s.time);
    s.iter()
        .map(|s| {
            let leaf = *p.stacks[s.stack as usize].last().unwrap();
            (p.frames[leaf as usize].name.to_string(), s.weight)
        })
        .collect()
}

#[test]
fn a_threads_time_is_its_intervals_on_and_off_the_cpu() {
    let mut p = Profile::default();
    p.measure = Measure::Wall;
    let spin = stack(
        &mut p,
        &[(Kind::Python, "py::spin:x"), (Kind::Native, "add")],
    );
    let nap = stack(
        &mut p,
        &[
            (Kind::Python, "py::nap:x"),
            (Kind::Native, "clock_nanosleep"),
            (Kind::Kernel, "schedule"),
        ],
    );
    let mut t = Timeline::default();
    // Running when the recording starts: two samples, then a sleep of 10 ms.
    t.cpu_sample(7, 7, MS, spin, MS);
    t.cpu_sample(7, 7, 2 * MS, spin, MS);
    t.switch_stack(7, 7, 3 * MS, nap);
    t.switch(7, 7, 3 * MS, true, false);
    t.switch(7, 7, 13 * MS, false, false);
    // 2 ms on the CPU with one sample, then preempted for 1 ms (its stack lost).
    t.cpu_sample(7, 7, 14 * MS, spin, MS);
    t.switch(7, 7, 15 * MS, true, true);
    t.switch(7, 7, 16 * MS, false, false);
    t.cpu_sample(7, 7, 16 * MS + MS / 2, spin, MS);
    t.exit(7, 17 * MS);
    let unplaced = t.into_samples(&mut p);
    assert_eq!(unplaced.waits_without_stack, 1);
    assert_eq!(
        leaves(&p),
        [
            ("add".to_string(), 3 * MS / 2),
            ("add".to_string(), 3 * MS / 2),
            ("[wait: sleep]".to_string(), 10 * MS),
            ("add".to_string(), 2 * MS),
            ("[wait: preempted]".to_string(), MS),
            ("add".to_string(), MS),
        ]
    );
    // The wait keeps the stack the thread left with.
    let sleep = p.samples.iter().find(|s| s.weight == 10 * MS).unwrap();
    assert_eq!(p.stacks[sleep.stack as usize].len(), 4);
}

/// Each leaf's total weight.
fn totals(p: &Profile) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for (leaf, w) in leaves(p) {
        *out.entry(leaf).or_default() += w;
    }
    out
}

#[test]
fn a_live_timeline_drained_as_it_goes_gives_the_same_time() {
    let events = |p: &mut Profile| {
        let spin = stack(p, &[(Kind::Python, "py::spin:x"), (Kind::Native, "add")]);
        let nap = stack(
            p,
            &[
                (Kind::Python, "py::nap:x"),
                (Kind::Native, "clock_nanosleep"),
            ],
        );
        let mut t = Timeline::default();
        t.switch(7, 7, 0, false, false);
        t.cpu_sample(7, 7, MS, spin, MS);
        t.cpu_sample(7, 7, 2 * MS, spin, MS);
        t.switch_stack(7, 7, 3 * MS, nap);
        t.switch(7, 7, 3 * MS, true, false);
        t.switch(7, 7, 13 * MS, false, false);
        t.cpu_sample(7, 7, 14 * MS, spin, MS);
        t.switch(7, 7, 15 * MS, true, true);
        t.switch(7, 7, 16 * MS, false, false);
        t.cpu_sample(7, 7, 16 * MS + MS / 2, spin, MS);
        t.seen(20 * MS);
        t
    };
    let mut whole = Profile::default();
    whole.measure = Measure::Wall;
    events(&mut whole).into_samples(&mut whole);
    let mut live = Profile::default();
    live.measure = Measure::Wall;
    let mut t = events(&mut live);
    // Cut mid-wait, mid-run and past the last event; the rest at the end.
    let mut taken = Vec::new();
    for horizon in [5 * MS, 8 * MS, 14 * MS + MS / 2, 19 * MS] {
        t.drain(&mut live, horizon);
        taken.append(&mut live.samples);
        let so_far: u64 = taken.iter().map(|s| s.weight).sum();
        assert_eq!(so_far, horizon, "all the time up to {horizon}, and no more");
    }
    t.into_samples(&mut live);
    live.samples.append(&mut taken);
    assert_eq!(totals(&live), totals(&whole));
    assert_eq!(totals(&whole)["[wait: sleep]"], 10 * MS);
    assert_eq!(totals(&whole)["add"], 3 * MS + 2 * MS + 4 * MS);
}

#[test]
fn off_cpu_profiles_have_only_the_waits() {
    let mut p = Profile::default();
    p.measure = Measure::OffCpu;
    let wait = stack(
        &mut p,
        &[(Kind::Python, "py::get:x"), (Kind::Native, "recv")],
    );
    let mut t = Timeline::default();
    t.switch(7, 8, MS, false, false);
    t.switch_stack(7, 8, 2 * MS, wait);
    t.switch(7, 8, 2 * MS, true, false);
    // Still waiting when the recording ends.
    t.seen(9 * MS);
    t.into_samples(&mut p);
    assert_eq!(leaves(&p), [("[wait: network]".to_string(), 7 * MS)]);
}

#[test]
fn the_reason_is_the_first_rule_any_frame_matches() {
    let mut p = Profile::default();
    let py = (Kind::Python, "py::f:x");
    let cases: &[(&[(Kind, &str)], Reason)] = &[
        (
            &[
                py,
                (Kind::Native, "take_gil"),
                (Kind::Native, "pthread_cond_timedwait"),
                (Kind::Kernel, "futex_wait"),
            ],
            Reason::Gil,
        ),
        (
            &[
                py,
                (Kind::Native, "PyThread_acquire_lock_timed"),
                (Kind::Native, "sem_clockwait"),
            ],
            Reason::Lock,
        ),
        // Debian's 3.15: take_gil unnamed, its caller exported.
        (
            &[
                py,
                (Kind::Native, "_Py_HandlePending"),
                (Kind::Native, "[python3.15]"),
                (Kind::Native, "pthread_cond_wait"),
                (Kind::Kernel, "futex_wait"),
            ],
            Reason::Gil,
        ),
        (
            &[
                py,
                (Kind::Native, "time_sleep"),
                (Kind::Native, "select"),
                (Kind::Kernel, "do_select"),
            ],
            Reason::Sleep,
        ),
        (
            &[py, (Kind::Native, "epoll_wait"), (Kind::Kernel, "ep_poll")],
            Reason::Network,
        ),
        (
            &[
                py,
                (Kind::Kernel, "exc_page_fault"),
                (Kind::Kernel, "filemap_fault"),
                (Kind::Kernel, "io_schedule"),
            ],
            Reason::PageFault,
        ),
        (
            &[
                py,
                (Kind::Native, "fsync"),
                (Kind::Kernel, "jbd2_log_wait_commit"),
            ],
            Reason::Disk,
        ),
        (
            &[py, (Kind::Native, "wait4"), (Kind::Kernel, "do_wait")],
            Reason::Child,
        ),
        (
            &[py, (Kind::Native, "read"), (Kind::Kernel, "pipe_read")],
            Reason::Other,
        ),
        // Only the frames below the innermost Python frame count.
        (
            &[(Kind::Native, "time_sleep"), py, (Kind::Native, "read")],
            Reason::Other,
        ),
    ];
    for (frames, want) in cases {
        let s = stack(&mut p, frames);
        let ids = p.stacks[s as usize].clone();
        assert_eq!(reason(&p, &ids), *want, "{frames:?}");
    }
}
