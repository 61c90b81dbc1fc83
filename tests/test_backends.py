"""What both backends promise, one test each, run with ``perf`` (the perf map) and
``perf_jit`` (the jitdump): parent and child after fork() never name each other's functions,
every announcement is in the file before its function first runs (so nothing is lost to
SIGKILL), concurrent first calls announce a function once, and a symbolic link planted at the
file's path is refused. (Toggling and the MDWE fallback are parametrised where they live, in
test_threads.py and test_robustness.py.)"""

import collections
import os
import re

import pytest

from conftest import SCRIPTS, map_names, run, script
from jitdump import CODE_CLOSE, Dump

BACKENDS = ["perf", "perf_jit"]


def announced_names(backend, pid):
    """The function names the process announced, in file order, one per announcement."""
    if backend == "perf":
        return map_names(pid)
    return [l["name"] for l in Dump("/tmp/jit-%d.dump" % pid).loads()]


def file_of(backend, pid):
    return "/tmp/perf-%d.map" % pid if backend == "perf" else "/tmp/jit-%d.dump" % pid


@pytest.mark.parametrize("backend", BACKENDS)
def test_parent_and_child_files_are_isolated(py, backend):
    path = os.path.join(SCRIPTS, "fork_isolation.py")
    r = run(py, [path], PERFPY_BACKEND=backend).check()
    child = int(r.stdout)

    def names(pid):
        suffix = ":" + path
        out = set()
        for n in announced_names(backend, pid):
            if n.endswith(suffix):
                out.add(n[len("py::"):-len(suffix)])
            elif re.fullmatch(r"py::[pq]\d+:<string>", n):
                out.add(n[len("py::"):-len(":<string>")])
        return out

    parent, kid = names(r.pid), names(child)
    forked = {"foo_fork", "bar_fork", "baz_fork"}
    assert {"foo", "bar", "baz", "p0", "p199", "q0", "q199"} <= parent, sorted(parent)[:10]
    assert forked <= kid, kid
    assert not parent & forked
    assert not kid & {"foo", "bar", "baz"}
    assert not any(re.fullmatch(r"[pq]\d+", n) for n in kid), sorted(kid)[:10]
    if backend == "perf_jit":
        # Both dumps parse to the end; the child's records are its own.
        pdump, kdump = Dump("/tmp/jit-%d.dump" % r.pid), Dump("/tmp/jit-%d.dump" % child)
        assert kdump.pid == child and all(l["pid"] == child for l in kdump.loads())
        assert pdump.records[-1]["id"] == CODE_CLOSE


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_announcement_survives_sigkill(py, tmp_path, backend):
    path = script(tmp_path, '''
        import os, signal
        ns = {}
        for i in range(300):
            exec("def h%d(): pass" % i, ns)
            ns["h%d" % i]()
        os.kill(os.getpid(), signal.SIGKILL)
    ''')
    r = run(py, [path], PERFPY_BACKEND=backend)
    assert r.returncode == -9
    names = announced_names(backend, r.pid)
    assert sum(1 for n in names if n.startswith("py::h") and n.endswith(":<string>")) == 300


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_first_calls_announce_each_function_once(py, tmp_path, backend):
    path = script(tmp_path, '''
        import sys, threading, perfpy
        sys.setswitchinterval(1e-6)   # switch threads as often as possible
        ns = {}
        for i in range(300):
            exec("def fn%%d(): return %%d" %% (i, i), ns)
        funcs = [ns["fn%%d" %% i] for i in range(300)]
        perfpy.activate_stack_trampoline(%r)
        barrier = threading.Barrier(16)
        def worker(k):
            barrier.wait()
            for f in funcs[k %% 7:] + funcs[:k %% 7]:
                f()
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
        for t in threads: t.start()
        for t in threads: t.join()
        s = perfpy.status()
        assert s["stubs"] == s["map_lines"], s
        print(s["stubs"])
    ''' % backend)
    r = run(py, [path]).check()
    names = announced_names(backend, r.pid)
    counts = collections.Counter(n for n in names if n.startswith("py::fn"))
    assert len(counts) == 300
    assert set(counts.values()) == {1}, [n for n, c in counts.items() if c > 1][:5]
    assert int(r.stdout) <= len(names)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_symlink_at_the_file_path_is_refused(py, tmp_path, backend):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    path = script(tmp_path, '''
        import os
        link = %r %% os.getpid()
        os.symlink(%r, link)
        try:
            import perfpy
            perfpy.activate_stack_trampoline(%r)
            print(perfpy.is_stack_trampoline_active())
        finally:
            os.unlink(link)
    ''' % (file_of(backend, 0).replace("-0.", "-%d."), str(victim), backend))
    r = run(py, [path]).check()
    assert r.stdout.strip() == "False"
    assert "symbolic link" in r.stderr and "PerfpyWarning" in r.stderr, r.stderr
    assert victim.read_text() == "precious"
    assert not os.path.lexists(file_of(backend, r.pid))
