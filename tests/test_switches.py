"""Startup switches: CPython's names and precedence, on interpreters with and without built-in
support, and a .pth hook that costs nothing when no switch is set."""

import pytest

from conftest import PYTHONS, map_path, run, script, written_since

REPORT = '''
import sys, perfpy
builtin = getattr(sys, "is_stack_trampoline_active", lambda: False)()
print(perfpy.is_stack_trampoline_active(), builtin)
'''


def state(py, tmp_path, *opts, **env):
    path = script(tmp_path, REPORT)
    r = run(py, list(opts) + [path], **env).check()
    ours, builtin = r.stdout.split()
    return ours == "True", builtin == "True", r


def test_no_switch_no_import_no_file(py):
    r = run(py, ["-c", "import sys; print('perfpy' in sys.modules, 'perfpy._startup' in sys.modules)"]).check()
    assert r.stdout.split() == ["False", "False"]
    assert not written_since(map_path(r.pid), r.started)


@pytest.mark.parametrize("value", ["1", " 2", "-1"])
def test_pythonperfsupport(py, tmp_path, value):
    ours, builtin, r = state(py, tmp_path, PYTHONPERFSUPPORT=value)
    if py.has_builtin_perf:
        assert (ours, builtin) == (False, True)  # CPython serves it
    else:
        assert (ours, builtin) == (True, False)
    assert r.stderr == ""


@pytest.mark.parametrize("value", ["0", "", "abc", "1.5"])
def test_pythonperfsupport_off_values(py, tmp_path, value):
    assert state(py, tmp_path, PYTHONPERFSUPPORT=value)[:2] == (False, False)


@pytest.mark.parametrize("opt", ["perf", "perf=0", "perf=1"])
def test_x_perf_with_any_value(py, tmp_path, opt):
    ours, builtin, _ = state(py, tmp_path, "-X", opt)
    assert (ours, builtin) == ((False, True) if py.has_builtin_perf else (True, False))


def test_environment_is_ignored_under_dash_E(py, tmp_path):
    assert state(py, tmp_path, "-E", PYTHONPERFSUPPORT="1")[:2] == (False, False)
    assert state(py, tmp_path, "-E", PERFPY_BACKEND="perf")[:2] == (False, False)
    ours, builtin, _ = state(py, tmp_path, "-E", "-X", "perf")
    assert ours or builtin


def test_perfpy_backend_selects_perfpy_everywhere(py, tmp_path):
    assert state(py, tmp_path, PERFPY_BACKEND="perf")[:2] == (True, False)


def test_perfpy_backend_refuses_next_to_cpythons_own(py, tmp_path):
    if not py.has_builtin_perf:
        # Without built-in support both switches mean perfpy: no conflict.
        assert state(py, tmp_path, PERFPY_BACKEND="perf", PYTHONPERFSUPPORT="1")[:2] == (True, False)
        return
    ours, builtin, r = state(py, tmp_path, PERFPY_BACKEND="perf", PYTHONPERFSUPPORT="1")
    assert (ours, builtin) == (False, True)
    assert "PerfpyWarning" in r.stderr and "CPython's own is already active" in r.stderr


def test_unknown_perfpy_backend_warns_and_runs(py, tmp_path):
    ours, builtin, r = state(py, tmp_path, PERFPY_BACKEND="bogus")
    assert (ours, builtin) == (False, False)
    assert "PERFPY_BACKEND='bogus' is not a backend perfpy knows" in r.stderr


def test_api_wins_over_x_option(py, tmp_path):
    path = script(tmp_path, '''
        import sys, perfpy
        def early(): pass
        def late(): pass
        early()
        if perfpy.is_stack_trampoline_active():
            perfpy.deactivate_stack_trampoline()
        else:
            sys.deactivate_stack_trampoline()
        late()
    ''')
    r = run(py, ["-X", "perf", path]).check()
    with open(map_path(r.pid)) as f:
        text = f.read()
    assert "py::early:" + path in text and "py::late:" + path not in text


def test_switch_reaches_the_main_module_and_children(py, tmp_path):
    """The .pth hook runs before the script, so every function of the script is mapped, and
    the environment variable carries to child interpreters."""
    path = script(tmp_path, '''
        import subprocess, sys
        def parent_fn(): pass
        parent_fn()
        out = subprocess.run([sys.executable, "-c",
            "import os, sys, perfpy\\n"
            "def child_fn(): pass\\n"
            "child_fn()\\n"
            "print(os.getpid(), perfpy.is_stack_trampoline_active() or sys.is_stack_trampoline_active())"],
            stdout=subprocess.PIPE, text=True, check=True).stdout
        print(out.strip())
    ''')
    r = run(py, [path], PERFPY_BACKEND="perf").check()
    child_pid, active = r.stdout.split()
    assert active == "True"
    assert "py::parent_fn:" + path in open(map_path(r.pid)).read()
    assert "py::child_fn:<string>" in open(map_path(int(child_pid))).read()
