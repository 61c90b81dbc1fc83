//! Each thread's timeline from its switches and samples: its time on the CPU and off it,
//! whole or drained as it goes, and the reason each wait is given from its switch.

use super::*;
use crate::report::Measure;

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
    t.switch_stack(7, 7, 3 * MS, nap, None);
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
        t.switch_stack(7, 7, 3 * MS, nap, None);
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
    t.switch_stack(7, 8, 2 * MS, wait, None);
    t.switch(7, 8, 2 * MS, true, false);
    // Still waiting when the recording ends.
    t.seen(9 * MS);
    t.into_samples(&mut p);
    assert_eq!(leaves(&p), [("[wait: network]".to_string(), 7 * MS)]);
}

#[test]
fn a_switch_samples_registers_reach_its_waits_reason() {
    let mut p = Profile::default();
    p.measure = Measure::OffCpu;
    let mut t = Timeline::default();
    let nap = in_select(&mut p, &[]);
    let nap = p.intern_stack(&nap);
    t.switch(7, 7, 0, false, false);
    t.switch_stack(7, 7, MS, nap, Some(SyscallArgs([0, NULL, NULL, NULL])));
    t.switch(7, 7, MS, true, false);
    t.switch(7, 7, 301 * MS, false, false);
    t.switch_stack(7, 7, 302 * MS, nap, Some(SyscallArgs([5, SET, NULL, NULL])));
    t.switch(7, 7, 302 * MS, true, false);
    t.switch(7, 7, 402 * MS, false, false);
    // Preempted: the switch record decides, whatever the registers.
    t.switch_stack(
        7,
        7,
        403 * MS,
        nap,
        Some(SyscallArgs([0, NULL, NULL, NULL])),
    );
    t.switch(7, 7, 403 * MS, true, true);
    t.switch(7, 7, 404 * MS, false, false);
    t.into_samples(&mut p);
    assert_eq!(
        leaves(&p),
        [
            ("[wait: sleep]".to_string(), 300 * MS),
            ("[wait: network]".to_string(), 100 * MS),
            ("[wait: preempted]".to_string(), MS),
        ]
    );
}
