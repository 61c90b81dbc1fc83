"""Threads: concurrent first calls, and activate/deactivate storms while threads run."""

import collections

import pytest

from conftest import map_names, run, script

#: Descriptor checks in a child, pasted into its script. ``threading``'s ``join()`` returns once
#: a thread's Python state is gone, before its OS thread is: CPython 3.8 then calls
#: ``pthread_exit()``, and the first ``pthread_exit()`` of a process ``dlopen()``s
#: ``libgcc_s.so.1`` unless something loaded it already (the wheel's extension doesn't), so that
#: thread holds ``/etc/ld.so.cache`` and then ``libgcc_s.so.1`` open for an instant. A listing
#: taken right after ``join()`` once caught one (CI, 3.8, a busy machine). ``settled_fds``
#: waits until only the threads in ``tasks`` are left, then maps each descriptor to the file it
#: has open (device and inode: a map another test session's clean-up unlinked is still the
#: same file), leaving out the listing's own (closed by then). A descriptor perfpy leaks,
#: closes, or reopens under another number still shows.
SETTLED_FDS = '''
def settled_fds(tasks, timeout=60):
    import os, time
    deadline = time.monotonic() + timeout
    while not set(os.listdir("/proc/self/task")) <= tasks:
        assert time.monotonic() < deadline, ("threads left", os.listdir("/proc/self/task"))
        time.sleep(0.0005)
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            st = os.stat("/proc/self/fd/" + fd)
        except FileNotFoundError:
            continue  # the listing's own descriptor
        fds[int(fd)] = (st.st_dev, st.st_ino)
    return fds

def fd_names(fds):
    import os
    names = {}
    for fd in fds:
        try:
            names[fd] = os.readlink("/proc/self/fd/%d" % fd)
        except OSError as e:
            names[fd] = repr(e)
    return names
'''


@pytest.mark.parametrize("backend", ["perf", "perf_jit"])
def test_toggle_storm_with_running_threads_leaks_nothing(py, tmp_path, backend):
    """CPython runs out of co_extra indices after ~254 cycles and leaks an fd per cycle."""
    path = script(tmp_path, '''
        import os, threading, perfpy
        SETTLED_FDS
        stop = threading.Event()
        def churn(k):
            ns = {}
            i = 0
            while not stop.is_set():
                exec("def t%d_%d(): return %d" % (k, i % 50, i), ns)
                ns["t%d_%d" % (k, i % 50)]()
                i += 1
        perfpy.activate_stack_trampoline(BACKEND)
        index = perfpy.status()["code_extra_index"]
        tasks = set(os.listdir("/proc/self/task"))
        fds = settled_fds(tasks)
        threads = [threading.Thread(target=churn, args=(k,)) for k in range(8)]
        for t in threads: t.start()
        for _ in range(10000):
            perfpy.deactivate_stack_trampoline()
            perfpy.activate_stack_trampoline(BACKEND)
        stop.set()
        for t in threads: t.join()
        s = perfpy.status()
        assert s["code_extra_index"] == index, s
        after = settled_fds(tasks)
        assert after == fds, (fd_names(fds), fd_names(after))
        # Arenas grow with distinct code objects only, not with toggles.
        per_arena = 4096 if BACKEND == "perf" else 65536 // 96
        assert s["arenas"] <= s["stubs"] // per_arena + 1, s
        print(s["stubs"], s["arenas"])
    '''.replace("SETTLED_FDS", SETTLED_FDS.replace("\n", "\n        "))
       .replace("BACKEND", repr(backend)))
    r = run(py, [path], timeout=600).check()
    assert r.stderr == ""


@pytest.mark.parametrize("backend", ["perf", "perf_jit"])
def test_descriptors_checked_after_joined_threads_are_gone(py, tmp_path, backend):
    """A thread makes stubs while the trampoline toggles, then ends: every descriptor check
    after its ``join()`` sees the descriptors of before, however soon it comes.

    The race the storm test once lost on a busy machine, made likely: the thread ends on a CPU
    that a process keeps taking from it for a moment every millisecond, while this process
    checks back to back from the ``join()`` until the thread is gone from
    ``/proc/self/task``; 20 fresh processes, since glibc loads libgcc_s once per process. On
    CPython 3.8 with the wheel's extension (which doesn't load libgcc_s), a bare
    ``/proc/self/fd`` listing caught the exiting thread's descriptor in most of them."""
    path = script(tmp_path, '''
        import os, subprocess, sys, threading, time, perfpy
        SETTLED_FDS
        cpus = sorted(os.sched_getaffinity(0))
        a, b = cpus[0], cpus[-1]
        # On CPU a: busy for 1 ms, a short sleep, again, until this process is gone (60 s at most).
        hog = subprocess.Popen([sys.executable, "-c", "\\n".join([
            "import os, time",
            "os.sched_setaffinity(0, {%d})" % a,
            "parent, end = os.getppid(), time.monotonic() + 60",
            "while os.getppid() == parent and time.monotonic() < end:",
            "    t = time.perf_counter() + 0.001",
            "    while time.perf_counter() < t: pass",
            "    time.sleep(0.00001)",
        ])])
        try:
            os.sched_setaffinity(0, {b})
            perfpy.activate_stack_trampoline(BACKEND)
            tasks = set(os.listdir("/proc/self/task"))
            before = settled_fds(tasks)
            go = threading.Event()
            def worker():
                os.sched_setaffinity(0, {a})
                ns = {}
                for i in range(200):
                    exec("def w%d(): return %d" % (i, i), ns)
                    ns["w%d" % i]()
                go.wait()
            t = threading.Thread(target=worker)
            t.start()
            for _ in range(200):
                perfpy.deactivate_stack_trampoline()
                perfpy.activate_stack_trampoline(BACKEND)
            go.set()
            deadline = time.monotonic() + 60
            while True:
                if not t.is_alive():
                    after = settled_fds(tasks)
                    assert after == before, (fd_names(before), fd_names(after))
                    if set(os.listdir("/proc/self/task")) <= tasks:
                        break
                assert time.monotonic() < deadline
            assert perfpy.status()["failure"] is None
        finally:
            hog.kill()
            hog.wait()
    '''.replace("SETTLED_FDS", SETTLED_FDS.replace("\n", "\n        "))
       .replace("BACKEND", repr(backend)))
    for _ in range(20):
        r = run(py, [path], timeout=120).check()
        assert r.stderr == ""
