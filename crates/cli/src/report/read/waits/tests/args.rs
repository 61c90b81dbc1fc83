//! The reason a `select`/`poll`'s arguments give, sampled at the switch: no descriptor is a
//! sleep, on either architecture, with the kernel's frames or only the C library's.

use super::*;

#[test]
fn a_select_of_no_descriptor_is_a_sleep_by_its_arguments() {
    let mut p = Profile::default();
    let stripped = in_select(&mut p, &[]);
    let args = |a: [u64; 4]| Some(SyscallArgs(a));
    // time.sleep(0.3) on 3.8-3.10: select(0, NULL, NULL, NULL, &tv).
    let sleep = args([0, NULL, NULL, NULL]);
    assert_eq!(reason(&p, &stripped, sleep.as_ref()), Reason::Sleep);
    // select.select([sock], [], [], 0.3): nfds = sock + 1, a read set.
    let socket = args([5, SET, NULL, NULL]);
    assert_eq!(reason(&p, &stripped, socket.as_ref()), Reason::Network);
    // A count with no set to count in waits for nothing either; the count is a C int, the
    // register's upper half anything.
    let no_sets = args([5, NULL, NULL, NULL]);
    assert_eq!(reason(&p, &stripped, no_sets.as_ref()), Reason::Sleep);
    let dirty = args([0xdead_beef_0000_0000, SET, NULL, NULL]);
    assert_eq!(reason(&p, &stripped, dirty.as_ref()), Reason::Sleep);
    // No registers in the recording (an fp recording perf couldn't add them to, an older
    // perfpy's): the network, as the names say, unless the interpreter's names time.sleep.
    assert_eq!(reason(&p, &stripped, None), Reason::Network);
    let named = in_select(&mut p, &[(Kind::Native, "time_sleep")]);
    assert_eq!(reason(&p, &named, None), Reason::Sleep);
    // With them, the arguments decide, not the names above.
    assert_eq!(reason(&p, &named, socket.as_ref()), Reason::Network);
    assert_eq!(reason(&p, &named, sleep.as_ref()), Reason::Sleep);
}

#[test]
fn a_poll_of_no_descriptor_is_a_sleep_on_either_architecture() {
    let mut p = Profile::default();
    let py = (Kind::Python, "py::f:x");
    let x86 = stack(
        &mut p,
        &[
            py,
            (Kind::Native, "[python3.10]"),
            (Kind::Native, "poll"),
            (Kind::Kernel, "do_syscall_64"),
            (Kind::Kernel, "__x64_sys_poll"),
            (Kind::Kernel, "do_sys_poll"),
            (Kind::Kernel, "schedule"),
        ],
    );
    // aarch64 has no poll nor select: glibc makes ppoll and pselect6.
    let arm = stack(
        &mut p,
        &[
            py,
            (Kind::Native, "[python3.10]"),
            (Kind::Native, "ppoll"),
            (Kind::Kernel, "el0_svc"),
            (Kind::Kernel, "__arm64_sys_ppoll"),
            (Kind::Kernel, "do_sys_poll"),
            (Kind::Kernel, "schedule"),
        ],
    );
    let arm_select = stack(
        &mut p,
        &[
            py,
            (Kind::Native, "select"),
            (Kind::Kernel, "__arm64_sys_pselect6"),
            (Kind::Kernel, "core_sys_select"),
            (Kind::Kernel, "do_select"),
        ],
    );
    for s in [x86, arm] {
        let ids = p.stacks[s as usize].clone();
        // poll(fds, nfds, timeout): the count is the second argument.
        let none = SyscallArgs([SET, 0, 300, 0]);
        let one = SyscallArgs([SET, 1, 300, 0]);
        assert_eq!(reason(&p, &ids, Some(&none)), Reason::Sleep);
        assert_eq!(reason(&p, &ids, Some(&one)), Reason::Network);
        assert_eq!(reason(&p, &ids, None), Reason::Network);
    }
    let ids = p.stacks[arm_select as usize].clone();
    assert_eq!(
        reason(&p, &ids, Some(&SyscallArgs([0, NULL, NULL, NULL]))),
        Reason::Sleep
    );
}

#[test]
fn without_the_kernel_the_c_librarys_select_names_the_call_its_arguments_say() {
    let mut p = Profile::default();
    let py = (Kind::Python, "py::f:x");
    let plain = stack(
        &mut p,
        &[py, (Kind::Native, "[python3.9]"), (Kind::Native, "select")],
    );
    // glibc 2.41 makes a cancellable call through helpers below the wrapper.
    let helped = stack(
        &mut p,
        &[
            py,
            (Kind::Native, "[python3.9]"),
            (Kind::Native, "__select"),
            (Kind::Native, "__syscall_cancel"),
            (Kind::Native, "__internal_syscall_cancel"),
            (Kind::Native, "__syscall_cancel_arch"),
        ],
    );
    for s in [plain, helped] {
        let ids = p.stacks[s as usize].clone();
        let sleep = SyscallArgs([0, NULL, NULL, NULL]);
        let socket = SyscallArgs([5, SET, NULL, NULL]);
        assert_eq!(reason(&p, &ids, Some(&sleep)), Reason::Sleep);
        assert_eq!(reason(&p, &ids, Some(&socket)), Reason::Network);
        assert_eq!(reason(&p, &ids, None), Reason::Network);
    }
    // The registers are a system call's only where the wrapper is innermost: under another
    // function (an unnamed one of the C library), the names decide.
    let deeper = stack(
        &mut p,
        &[py, (Kind::Native, "select"), (Kind::Native, "[libc.so.6]")],
    );
    let ids = p.stacks[deeper as usize].clone();
    let sleep = SyscallArgs([0, NULL, NULL, NULL]);
    assert_eq!(reason(&p, &ids, Some(&sleep)), Reason::Network);
}
