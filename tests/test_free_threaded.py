"""Free-threaded interpreters (3.14t, 3.15t): perfpy's state under real parallelism.

No registry reachable here ships a free-threaded CPython, so on this machine these tests skip;
they run wherever the suite finds one (``sys._is_gil_enabled()`` present and False). perfpy's
extension declares that it needs the GIL, so on such a build importing it turns the GIL back
on (CPython says so with a RuntimeWarning); the tests force it off with ``-X gil=0`` to see
what would happen without it.
"""

import os

import pytest

from conftest import PYTHONS, map_names, run, script


def free_threaded(py):
    r = run(py, ["-c", "import sys; print(getattr(sys, '_is_gil_enabled', lambda: True)())"])
    return r.stdout.strip() == "False"


FT_PYTHONS = [p for p in PYTHONS if free_threaded(p)]
pytestmark = pytest.mark.skipif(
    not FT_PYTHONS, reason="no free-threaded interpreter here (sys._is_gil_enabled() is "
                           "missing or True on every one): no registry reachable from this "
                           "machine ships 3.14t or 3.15t")


@pytest.mark.parametrize("py", FT_PYTHONS, ids=lambda p: p.minor + "t")
@pytest.mark.parametrize("backend", ["perf", "perf_jit"])
def test_first_calls_toggles_and_fork_under_parallel_threads(py, backend, tmp_path):
    """16 threads make the first calls of 5,000 functions at once while another toggles the
    trampoline 10,000 times, then one thread forks: one announcement per function, no crash,
    and the child's file is its own."""
    path = script(tmp_path, '''
        import os, sys, threading, perfpy
        backend = %r
        ns = {}
        for i in range(5000):
            exec("def fn%%d(): return %%d" %% (i, i), ns)
        funcs = [ns["fn%%d" %% i] for i in range(5000)]
        perfpy.activate_stack_trampoline(backend)
        barrier = threading.Barrier(17)
        def caller(k):
            barrier.wait()
            for f in funcs[k * 311 %% 5000:] + funcs[:k * 311 %% 5000]:
                f()
        def toggler():
            barrier.wait()
            for _ in range(10000):
                perfpy.deactivate_stack_trampoline()
                perfpy.activate_stack_trampoline(backend)
        threads = [threading.Thread(target=caller, args=(k,)) for k in range(16)]
        threads.append(threading.Thread(target=toggler))
        for t in threads: t.start()
        for t in threads: t.join()
        for f in funcs:      # the toggler ends active: any function first called while it
            f()              # was off gets its stub now
        pid = os.fork()
        if pid == 0:
            def child_only(): pass
            child_only()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(pid, status, sys._is_gil_enabled())
    ''' % backend)
    r = run(py, ["-X", "gil=0", path]).check()
    child, status, gil = r.stdout.split()
    assert status == "0" and gil == "False", r.stdout + r.stderr
    if backend == "perf":
        names = [n for n in map_names(r.pid) if n.startswith("py::fn")]
        assert len(set(names)) == 5000 and len(names) == 5000
        assert all(not n.startswith("py::fn") for n in map_names(int(child)))
    else:
        from jitdump import Dump
        loads = [l["name"] for l in Dump("/tmp/jit-%d.dump" % r.pid).loads()]
        fns = [n for n in loads if n.startswith("py::fn")]
        assert len(set(fns)) == 5000 and len(fns) == 5000
    for f in ("/tmp/perf-%s.map", "/tmp/jit-%s.dump"):
        for pid in (r.pid, int(child)):
            if os.path.exists(f % pid):
                os.unlink(f % pid)


@pytest.mark.parametrize("py", FT_PYTHONS, ids=lambda p: p.minor + "t")
def test_importing_perfpy_says_what_it_did_to_the_gil(py):
    r = run(py, ["-c", "import perfpy, sys; print(sys._is_gil_enabled())"]).check()
    assert r.stdout.strip() == "True"
    assert "PerfpyWarning" in r.stderr and "now runs with the GIL" in r.stderr, r.stderr
    r = run(py, ["-X", "gil=0", "-c", "import perfpy"]).check()
    assert "the GIL is off" in r.stderr, r.stderr
