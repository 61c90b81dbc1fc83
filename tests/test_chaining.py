"""perfpy and other PEP 523 evaluator hooks, in every order of installation."""

import os
import shutil
import subprocess

import pytest

from conftest import ROOT, map_names, run, script

SOURCE = os.path.join(ROOT, "tests", "probes", "chainhook.c")


@pytest.fixture
def chainhook(py, tmp_path):
    """Builds tests/probes/chainhook.c for `py`; returns the directory holding it."""
    if py.version < (3, 9):
        pytest.skip("CPython 3.8 has no evaluator setter for a C extension to call")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the chaining hook")
    info = run(py.base, ["-c", "import sysconfig; print(sysconfig.get_paths()['include']); "
                               "print(sysconfig.get_config_var('EXT_SUFFIX'))"]).check()
    include, suffix = info.stdout.split()
    out = tmp_path / ("chainhook" + suffix)
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-I", include, SOURCE, "-o", str(out)],
                   check=True, capture_output=True, text=True)
    return str(tmp_path)


def names_for(pid, path):
    return [n[len("py::"):-len(":" + path)] for n in map_names(pid) if n.endswith(":" + path)]


def test_chaining_hook_installed_before_perfpy(py, chainhook, tmp_path):
    path = script(tmp_path, '''
        import sys; sys.path.insert(0, %r)
        import chainhook, perfpy
        def foo(): pass
        chainhook.install()
        perfpy.activate_stack_trampoline("perf")
        before = chainhook.count()
        for _ in range(10): foo()
        print(chainhook.count() - before)
        perfpy.deactivate_stack_trampoline()   # puts chainhook back on top
        before = chainhook.count()
        foo()
        print(chainhook.count() - before)
        chainhook.uninstall()
    ''' % chainhook)
    r = run(py, [path]).check()
    assert [int(x) for x in r.stdout.split()] == [10, 1]
    assert names_for(r.pid, path) == ["foo"]


def test_chaining_hook_on_top_then_perfpy_toggled(py, chainhook, tmp_path):
    """Ours stays inside the other hook's chain after deactivation; reactivating must not
    make calls loop between the two."""
    path = script(tmp_path, '''
        import sys; sys.path.insert(0, %r)
        import chainhook, perfpy
        def foo(): pass
        def bar(): pass
        def baz(): pass
        perfpy.activate_stack_trampoline("perf")
        chainhook.install()                      # chains to perfpy
        foo()
        perfpy.deactivate_stack_trampoline()     # not on top: stays in the chain, passes through
        bar()
        perfpy.activate_stack_trampoline("perf")
        before = chainhook.count()
        for _ in range(5): baz()
        print(chainhook.count() - before, perfpy.is_stack_trampoline_active())
        perfpy.deactivate_stack_trampoline()
        chainhook.uninstall()
        bar()
    ''' % chainhook)
    r = run(py, [path], timeout=60).check()
    assert r.stdout.split() == ["5", "True"]
    names = names_for(r.pid, path)
    assert names.count("foo") == 1 and names.count("baz") == 1
    assert "bar" not in names


def test_replaced_then_restored_to_default_reinstalls(py, chainhook, tmp_path):
    """Another hook replaced ours and then restored the default: activating again must put
    ours back, not trust that it is still somewhere in the chain."""
    path = script(tmp_path, '''
        import sys; sys.path.insert(0, %r)
        import chainhook, perfpy
        def foo(): pass
        def after(): pass
        perfpy.activate_stack_trampoline("perf")
        chainhook.install()
        perfpy.deactivate_stack_trampoline()
        chainhook.uninstall()                    # restores perfpy's hook (its prev)...
        perfpy.deactivate_stack_trampoline()     # ...which deactivation now removes
        perfpy.activate_stack_trampoline("perf")
        after()
    ''' % chainhook)
    r = run(py, [path]).check()
    assert "after" in names_for(r.pid, path)



def test_replaced_without_chaining_then_default_restored(py, tmp_path):
    if py.version < (3, 11):
        pytest.skip("_testinternalcapi.set_eval_frame_record is new in 3.11")
    path = script(tmp_path, '''
        import _testinternalcapi, perfpy
        def foo(): pass
        def after(): pass
        perfpy.activate_stack_trampoline("perf")
        _testinternalcapi.set_eval_frame_record([])  # replaces ours, no chaining
        perfpy.deactivate_stack_trampoline()
        _testinternalcapi.set_eval_frame_default()
        perfpy.activate_stack_trampoline("perf")
        after()
    ''')
    r = run(py, [path]).check()
    assert "after" in names_for(r.pid, path)
