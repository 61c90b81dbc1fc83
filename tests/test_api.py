"""The runtime API, with the semantics of CPython's ``sys`` functions (CPython's own
conformance cases, rewritten for perfpy), and what perfpy adds."""

import os

import pytest

from conftest import PYTHONS, map_names, map_path, read_map, run, script


def names_for(pid, path):
    return [n[len("py::"):-len(":" + path)] for n in map_names(pid) if n.endswith(":" + path)]


def test_trampoline_works(py, tmp_path):
    path = script(tmp_path, '''
        import perfpy
        def foo(): return 1
        def bar(): return foo()
        def baz(): return bar()
        perfpy.activate_stack_trampoline("perf")
        baz()
    ''')
    r = run(py, [path]).check()
    assert r.stdout == "" and r.stderr == ""
    names = names_for(r.pid, path)
    assert {"foo", "bar", "baz"} <= set(names)


def test_deactivate_inside_a_call_then_reactivate(py, tmp_path):
    path = script(tmp_path, '''
        import perfpy
        def foo(): pass
        def spam(): pass
        def bar():
            perfpy.deactivate_stack_trampoline()
            foo()
            perfpy.activate_stack_trampoline("perf")
            spam()
        def baz(): bar()
        perfpy.activate_stack_trampoline("perf")
        baz()
    ''')
    r = run(py, [path]).check()
    names = names_for(r.pid, path)
    assert "spam" in names and "bar" in names and "baz" in names
    assert "foo" not in names


def test_activate_twice_is_harmless(py, tmp_path):
    path = script(tmp_path, '''
        import os, perfpy
        def foo(): pass
        perfpy.activate_stack_trampoline("perf")
        fds = len(os.listdir("/proc/self/fd"))
        perfpy.activate_stack_trampoline("perf")
        perfpy.activate_stack_trampoline()
        foo()
        assert len(os.listdir("/proc/self/fd")) == fds
        print(perfpy.status()["arenas"])
    ''')
    r = run(py, [path]).check()
    assert r.stdout.strip() == "1"
    assert names_for(r.pid, path).count("foo") == 1


@pytest.mark.parametrize(
    "call, error",
    [
        ('perfpy.activate_stack_trampoline("invalid")', "ValueError: invalid backend: invalid"),
        ("perfpy.activate_stack_trampoline(1)",
         "TypeError: activate_stack_trampoline() argument must be str, not int"),
        ('perfpy.activate_stack_trampoline("pe\\0rf")', "ValueError: embedded null character"),
        ('perfpy.activate_stack_trampoline(backend="perf")', "TypeError"),
    ],
)
def test_invalid_arguments(py, call, error):
    r = run(py, ["-c", "import perfpy; " + call])
    assert r.returncode != 0
    assert error in r.stderr


def test_status_and_is_active(py, tmp_path):
    path = script(tmp_path, '''
        import os, perfpy
        assert perfpy.is_stack_trampoline_active() is False
        assert perfpy.status()["active"] is False
        perfpy.activate_stack_trampoline("perf")
        assert perfpy.is_stack_trampoline_active() is True
        def f(): pass
        f()
        s = perfpy.status()
        assert s["active"] is True and s["backend"] == "perf", s
        assert s["map_file"] == "/tmp/perf-%d.map" % os.getpid(), s
        assert s["stubs"] >= 1 and s["map_lines"] == s["stubs"], s
        assert s["arena_bytes"] == 65536 * s["arenas"] and s["arenas"] >= 1, s
        assert s["exec_memory"] == "mprotect" and s["failure"] is None, s
        assert s["code_extra_index"] >= 0, s
        perfpy.deactivate_stack_trampoline()
        assert perfpy.is_stack_trampoline_active() is False
        perfpy.deactivate_stack_trampoline()  # idempotent
        with perfpy.trampoline():
            assert perfpy.is_stack_trampoline_active() is True
        assert perfpy.is_stack_trampoline_active() is False
        print("ok")
    ''')
    assert run(py, [path]).check().stdout == "ok\n"


BUILTIN = [p for p in PYTHONS if p.has_builtin_perf]


@pytest.mark.parametrize("p", BUILTIN, ids=lambda p: p.minor)
def test_refuses_while_cpython_trampoline_is_active(p, tmp_path):
    path = script(tmp_path, '''
        import sys, perfpy
        assert sys.is_stack_trampoline_active()
        try:
            perfpy.activate_stack_trampoline("perf")
        except RuntimeError as e:
            print(e)
        assert not perfpy.is_stack_trampoline_active()
        assert sys.is_stack_trampoline_active()
    ''')
    r = run(p, ["-X", "perf", path]).check()
    assert "CPython's own perf trampoline is already active" in r.stdout
    assert "sys.deactivate_stack_trampoline()" in r.stdout


@pytest.mark.parametrize("p", BUILTIN, ids=lambda p: p.minor)
def test_cpython_sys_api_refuses_while_perfpy_is_active(p, tmp_path):
    """Symmetric: CPython's sys API sees a foreign hook and refuses rather than fight (3.12
    to 3.14). CPython 3.15's trampoline chains to a hook installed before it instead: both
    are then active, and each function passes through both stubs."""
    path = script(tmp_path, '''
        import sys, perfpy
        perfpy.activate_stack_trampoline("perf")
        try:
            sys.activate_stack_trampoline("perf")
        except RuntimeError as e:
            print("refused:", e)
        print(perfpy.is_stack_trampoline_active(), sys.is_stack_trampoline_active())
    ''')
    r = run(p, [path]).check()
    if p.version >= (3, 15):
        assert "refused:" not in r.stdout and r.stdout.strip() == "True True", r.stdout
        return
    assert "refused:" in r.stdout
    assert r.stdout.strip().endswith("True False")


CHAINABLE = [p for p in PYTHONS if p.version >= (3, 11)]


@pytest.mark.parametrize("p", CHAINABLE, ids=lambda p: p.minor)
def test_chains_to_an_existing_eval_hook_and_restores_it(p, tmp_path):
    """A PEP 523 hook installed first (a debugger, torch.compile) keeps seeing every call."""
    path = script(tmp_path, '''
        import _testinternalcapi, perfpy
        def foo(): pass
        def bar(): foo()
        def after(): pass
        seen = []
        _testinternalcapi.set_eval_frame_record(seen)
        perfpy.activate_stack_trampoline("perf")
        bar()
        perfpy.deactivate_stack_trampoline()
        after()  # the recording hook is back in place
        _testinternalcapi.set_eval_frame_default()
        print(" ".join(n for n in seen if n in ("foo", "bar", "after")))
    ''')
    r = run(p, [path]).check()
    assert r.stdout.split() == ["bar", "foo", "after"]
    names = names_for(r.pid, path)
    assert "foo" in names and "bar" in names and "after" not in names


@pytest.mark.parametrize("p", CHAINABLE, ids=lambda p: p.minor)
def test_hook_installed_on_top_of_ours_is_left_alone(p, tmp_path):
    path = script(tmp_path, '''
        import _testinternalcapi, perfpy
        def foo(): pass
        seen = []
        perfpy.activate_stack_trampoline("perf")
        _testinternalcapi.set_eval_frame_record(seen)   # chains to nothing: replaces ours
        perfpy.deactivate_stack_trampoline()            # must not remove theirs
        foo()
        _testinternalcapi.set_eval_frame_default()
        perfpy.activate_stack_trampoline("perf")
        foo()
        print(seen.count("foo"), perfpy.is_stack_trampoline_active())
    ''')
    r = run(p, [path]).check()
    assert r.stdout.split() == ["1", "True"]


def test_compile_code_arguments(py):
    r = run(py, ["-c", "import perfpy\ntry:\n perfpy.compile_code((lambda: 0).__code__)\n"
                       "except RuntimeError as e: print(e)\n"
                       "perfpy.activate_stack_trampoline()\n"
                       "try:\n perfpy.compile_code(len)\nexcept TypeError as e: print(e)"]).check()
    assert "not active" in r.stdout
    assert "must be a code object, not builtin_function_or_method" in r.stdout


def test_pre_fork_compile_with_persist_after_fork(py, tmp_path):
    """The pre-fork-server workflow: compile in the parent, the child's map starts as a copy."""
    path = script(tmp_path, '''
        import os, sys, perfpy

        def foo(): pass
        def bar(): foo()
        def foo_fork(): pass
        def bar_fork(): foo_fork()
        def child_only(): pass

        perfpy.activate_stack_trampoline("perf")
        perfpy.set_persist_after_fork(True)
        bar()
        for f in (foo_fork, bar_fork):
            perfpy.compile_code(f.__code__)
        pid = os.fork()
        if pid == 0:
            print(os.getpid(), perfpy.is_stack_trampoline_active(), flush=True)
            bar_fork()
            child_only()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert status == 0
    ''')
    r = run(py, [path]).check()
    child_pid, child_active = r.stdout.split()
    child_pid = int(child_pid)
    assert child_active == "True"
    parent_lines = open(map_path(r.pid)).read().splitlines()
    child_lines = open(map_path(child_pid)).read().splitlines()
    pre = [l for l in parent_lines if l.endswith(("py::foo_fork:" + path, "py::bar_fork:" + path))]
    assert len(pre) == 2
    for line in pre:
        assert line in child_lines  # identical: same address, size and name
    assert names_for(child_pid, path).count("bar_fork") == 1
    assert "child_only" in names_for(child_pid, path)
    assert "child_only" not in names_for(r.pid, path)


def test_type_stubs_ship_and_match_the_extension(py, tmp_path):
    """The wheel carries ``py.typed`` and ``_native.pyi``, and the stub declares exactly what
    the extension defines."""
    path = script(tmp_path, '''
        import ast, os
        import perfpy, perfpy._native as native
        here = os.path.dirname(perfpy.__file__)
        stub = ast.parse(open(os.path.join(here, "_native.pyi")).read())
        declared = {n.name for n in stub.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        public = {k for k in dir(native) if not k.startswith("__")}
        print(os.path.exists(os.path.join(here, "py.typed")))
        print(sorted(public - declared), sorted(declared - public))
    ''')
    r = run(py, [path]).check()
    assert r.stdout.split("\n")[:2] == ["True", "[] []"], r.stdout
