"""Threads: concurrent first calls, and activate/deactivate storms while threads run."""

import collections

import pytest

from conftest import map_names, run, script


@pytest.mark.parametrize("backend", ["perf", "perf_jit"])
def test_toggle_storm_with_running_threads_leaks_nothing(py, tmp_path, backend):
    """CPython runs out of co_extra indices after ~254 cycles and leaks an fd per cycle."""
    path = script(tmp_path, '''
        import os, threading, perfpy
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
        fds = sorted(os.listdir("/proc/self/fd"))
        threads = [threading.Thread(target=churn, args=(k,)) for k in range(8)]
        for t in threads: t.start()
        for _ in range(10000):
            perfpy.deactivate_stack_trampoline()
            perfpy.activate_stack_trampoline(BACKEND)
        stop.set()
        for t in threads: t.join()
        s = perfpy.status()
        assert s["code_extra_index"] == index, s
        assert sorted(os.listdir("/proc/self/fd")) == fds
        # Arenas grow with distinct code objects only, not with toggles.
        per_arena = 4096 if BACKEND == "perf" else 65536 // 96
        assert s["arenas"] <= s["stubs"] // per_arena + 1, s
        print(s["stubs"], s["arenas"])
    '''.replace("BACKEND", repr(backend)))
    r = run(py, [path], timeout=600).check()
    assert r.stderr == ""
