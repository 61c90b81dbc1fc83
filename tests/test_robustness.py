"""Bad environments: perfpy never crashes the program; it warns once and the program runs on."""

import ctypes
import os
import platform
import sys

import pytest

from conftest import map_names, map_path, run, script

# The child waits until the parent has prepared /tmp/perf-<childpid>.map, then activates.
PLANTED = '''
import os, sys
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    os.read(r, 1)
    import perfpy
    def child_fn(): pass
    perfpy.activate_stack_trampoline("perf")
    child_fn()
    print("child", perfpy.is_stack_trampoline_active(), flush=True)
    os._exit(0)
os.close(r)
path = "/tmp/perf-%d.map" % pid
{plant}
os.write(w, b"x")
_, status = os.waitpid(pid, 0)
print("pid", pid, "status", status)
'''


def planted(py, tmp_path, plant):
    path = script(tmp_path, PLANTED.replace("{plant}", plant))
    r = run(py, [path]).check()
    lines = dict(l.split(" ", 1) for l in r.stdout.splitlines())
    pid = int(lines["pid"].split()[0])
    assert lines["pid"].endswith("status 0")
    return r, pid, lines["child"]


def test_stale_map_of_a_recycled_pid_is_replaced(py, tmp_path):
    r, pid, child = planted(py, tmp_path, '''
with open(path, "w") as f:
    f.write("dead 1 py::stale_entry:/old/process.py\\n")
os.utime(path, (1_000_000_000, 1_000_000_000))   # written long before the child started
''')
    assert child == "True"
    text = open(map_path(pid)).read()
    assert "stale_entry" not in text and "py::child_fn:" in text


def test_symlink_at_map_path_is_not_followed(py, tmp_path):
    target = tmp_path / "victim.txt"
    target.write_text("precious\n")
    r, pid, child = planted(py, tmp_path, 'os.symlink(%r, path)' % str(target))
    try:
        assert child == "False"
        assert target.read_text() == "precious\n"
        assert "PerfpyWarning" in r.stderr and "symbolic link" in r.stderr
        assert r.stderr.count("PerfpyWarning") == 1
    finally:
        os.unlink(map_path(pid))


def test_unwritable_map_leaves_the_program_running(py, tmp_path):
    r, pid, child = planted(py, tmp_path, "os.mkdir(path)")
    try:
        assert child == "False"
        assert "cannot activate the perf trampoline, the program continues unprofiled" in r.stderr
    finally:
        os.rmdir(map_path(pid))


@pytest.mark.parametrize("werror", [False, True], ids=["warn", "Werror"])
def test_write_failure_mid_run_turns_perfpy_off_once(py, tmp_path, werror):
    """The file-size limit makes a map write fail (EFBIG) after activation succeeded."""
    path = script(tmp_path, '''
        import resource, signal, perfpy
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        perfpy.activate_stack_trampoline("perf")
        resource.setrlimit(resource.RLIMIT_FSIZE, (4000, resource.RLIM_INFINITY))
        ns = {}
        total = 0
        for i in range(500):
            exec("def w%d(): return %d" % (i, i), ns)
            total += ns["w%d" % i]()
        s = perfpy.status()
        print(total, s["active"], "File too large" in (s["failure"] or ""))
    ''')
    opts = ["-W", "error::RuntimeWarning"] if werror else []
    r = run(py, opts + [path]).check()
    assert r.stdout.split() == [str(sum(range(500))), "False", "True"]
    assert r.stderr.count("perf trampolines turned off, the program continues unprofiled") == 1
    assert os.path.getsize(map_path(r.pid)) <= 4000


@pytest.mark.parametrize("backend", ["perf", "perf_jit"])
def test_failure_at_run_time_warns_with_perfpy_warning(py, tmp_path, backend):
    """A write that fails inside the evaluator hook warns with ``perfpy.PerfpyWarning``, so
    the documented filter catches it (and ignoring that category silences it)."""
    path = script(tmp_path, '''
        import resource, signal, sys, warnings, perfpy
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        mode = sys.argv[1]
        if mode == "ignore":
            warnings.filterwarnings("ignore", category=perfpy.PerfpyWarning)
        perfpy.activate_stack_trampoline(%r)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4000, resource.RLIM_INFINITY))
        ns = {}
        with warnings.catch_warnings(record=True) as caught:
            if mode == "record":
                warnings.simplefilter("always")
            for i in range(500):
                exec("def w%%d(): return %%d" %% (i, i), ns)
                ns["w%%d" %% i]()
        print(perfpy.status()["active"], [w.category.__name__ for w in caught],
              all(issubclass(w.category, perfpy.PerfpyWarning) for w in caught),
              perfpy.PerfpyWarning.__module__, issubclass(perfpy.PerfpyWarning, RuntimeWarning))
    ''' % backend)
    recorded = run(py, [path, "record"]).check()
    ignored = run(py, [path, "ignore"]).check()
    for r in (recorded, ignored):
        for f in ("/tmp/perf-%d.map" % r.pid, "/tmp/jit-%d.dump" % r.pid):
            if os.path.exists(f):
                os.unlink(f)
    assert recorded.stdout.split() == ["False", "['PerfpyWarning']", "True", "perfpy", "True"], \
        recorded.stdout
    assert ignored.stdout.split() == ["False", "[]", "True", "perfpy", "True"], ignored.stdout
    assert "turned off" not in ignored.stderr, ignored.stderr


def mdwe_supported():
    if platform.system() != "Linux":
        return False
    release = tuple(int(x) for x in platform.release().split("-")[0].split(".")[:2])
    return release >= (6, 3)


@pytest.mark.skipif(not mdwe_supported(), reason="prctl(PR_SET_MDWE) needs Linux 6.3 or newer")
@pytest.mark.parametrize("backend", ["perf", "perf_jit"])
def test_memory_deny_write_execute_falls_back_to_memfd(py, tmp_path, backend):
    path = script(tmp_path, '''
        import ctypes, os, perfpy
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
        if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")
        def under_mdwe(): return 42
        perfpy.activate_stack_trampoline(%r)
        print(under_mdwe(), perfpy.status()["exec_memory"])
    ''' % backend)
    r = run(py, [path]).check()
    assert r.stdout.split() == ["42", "memfd"]
    if backend == "perf":
        assert any(n.startswith("py::under_mdwe:") for n in map_names(r.pid))
    else:
        from jitdump import Dump
        names = [l["name"] for l in Dump("/tmp/jit-%d.dump" % r.pid).loads()]
        assert any(n.startswith("py::under_mdwe:") for n in names)


def test_recursion_limit_reached_as_without_perfpy(py, tmp_path):
    path = script(tmp_path, '''
        import sys
        def r(n):
            return 0 if n == 0 else 1 + r(n - 1)
        def depth():
            lo, hi = 1, 5000
            while lo < hi:
                mid = (lo + hi + 1) // 2
                try:
                    r(mid); lo = mid
                except RecursionError:
                    hi = mid - 1
            return lo
        before = depth()
        import perfpy
        perfpy.activate_stack_trampoline("perf")
        print(before, depth())
    ''')
    before, after = run(py, [path]).check().stdout.split()
    assert abs(int(before) - int(after)) <= 2, (before, after)


def test_raised_recursion_limit_does_not_crash(py, tmp_path):
    """With a huge limit, deep recursion ends in RecursionError (or completes), never SIGSEGV,
    wherever it would not crash without perfpy (3.8-3.10 have no native-stack guard at all)."""
    if py.version < (3, 11):
        pytest.skip("CPython %s itself overflows the native stack here, with or without perfpy"
                    % py.minor)
    path = script(tmp_path, '''
        import sys, perfpy
        sys.setrecursionlimit(1_000_000)
        perfpy.activate_stack_trampoline("perf")
        def r(n):
            return 0 if n == 0 else 1 + r(n - 1)
        try:
            print(r(200_000))
        except RecursionError:
            print("RecursionError")
    ''')
    r = run(py, [path]).check()
    assert r.stdout.strip() in ("RecursionError", "200000")


def test_generator_throw_on_first_entry(py, tmp_path):
    """The cold path runs with an exception in flight (gen.throw before the first next)."""
    path = script(tmp_path, '''
        import perfpy
        perfpy.activate_stack_trampoline("perf")
        def g():
            try:
                yield 1
            finally:
                pass
        def h():
            yield 2
        gen = g()
        try:
            gen.throw(KeyError("boom"))
        except KeyError as e:
            print("KeyError", e)
        gen2 = h()
        next(gen2)
        try:
            gen2.throw(ValueError("late"))
        except ValueError as e:
            print("ValueError", e)
    ''')
    r = run(py, [path]).check()
    assert r.stdout.splitlines() == ["KeyError 'boom'", "ValueError late"]
    assert r.stderr == ""
