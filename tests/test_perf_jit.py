"""The perf_jit backend: /tmp/jit-<pid>.dump with unwind information for every stub."""

import collections
import os
import re

import pytest

from conftest import PYTHONS, SEED, run, script
from jitdump import (CODE_CLOSE, CODE_DEBUG_INFO, CODE_LOAD, CODE_UNWINDING_INFO, MAGIC, Dump,
                     check_unwind_record, round8)

X86_STUB = bytes([0x55, 0x48, 0x89, 0xE5, 0xFF, 0xD1, 0x5D, 0xC3])


def dump_path(pid):
    return "/tmp/jit-%d.dump" % pid


def test_dump_format(py):
    r = run(py, [SEED, "10000"], PERFPY_BACKEND="perf_jit").check()
    assert r.stderr == ""
    d = Dump(dump_path(r.pid))
    assert (d.magic, d.version, d.header_size, d.elf_mach, d.pid, d.flags) == \
        (MAGIC, 1, 40, 62, r.pid, 0)
    ids = [rec["id"] for rec in d.records]
    assert ids[-1] == CODE_CLOSE and ids.count(CODE_CLOSE) == 1
    # Each stub: unwinding info, debug info, then its load record.
    body = ids[:-1]
    assert len(body) % 3 == 0
    for i in range(0, len(body), 3):
        assert body[i:i + 3] == [CODE_UNWINDING_INFO, CODE_DEBUG_INFO, CODE_LOAD]
    loads = d.loads()
    names = [l["name"] for l in loads]
    for f in ("foo", "bar", "baz", "<module>"):
        assert names.count("py::%s:%s" % (f, SEED)) == 1
    assert [l["index"] for l in loads] == list(range(1, len(loads) + 1))
    codes = set()
    for l in loads:
        assert l["pid"] == r.pid and l["tid"] == r.pid and l["vma"] == l["addr"]
        assert l["code_size"] == 16 and l["code"][:8] == X86_STUB
        codes.add(l["code"])
    assert len(codes) == len(loads), "every stub's bytes are its own"
    unwinds = [rec for rec in d.records if rec["id"] == CODE_UNWINDING_INFO]
    for u in unwinds:
        check_unwind_record(u, 16)
    # perf maps each stub's code followed by its unwind data: no two such regions overlap.
    extent = round8(16) + unwinds[0]["mapped_size"]
    addrs = sorted(l["addr"] for l in loads)
    assert all(b - a >= extent for a, b in zip(addrs, addrs[1:]))
    debug = [rec for rec in d.records if rec["id"] == CODE_DEBUG_INFO]
    foo = [dbg for dbg, l in zip(debug, loads) if l["name"] == "py::foo:%s" % SEED][0]
    assert foo["entries"] == [(foo["addr"], 4, SEED)]  # `def foo` is on line 4
    assert os.stat(dump_path(r.pid)).st_mode & 0o777 == 0o600


def test_api_and_status(py, tmp_path):
    path = script(tmp_path, '''
        import os, perfpy
        def f(): pass
        def g(): pass
        perfpy.activate_stack_trampoline("perf_jit")
        f()
        s = perfpy.status()
        assert s["backend"] == "perf_jit" and s["jit_file"] == "/tmp/jit-%d.dump" % os.getpid(), s
        assert s["map_file"] is None and s["jit_bytes"] > 40, s
        perfpy.activate_stack_trampoline("perf")      # switch: f is announced in the map
        f()
        assert perfpy.status()["backend"] == "perf"
        perfpy.activate_stack_trampoline("perf_jit")  # and back: f again in the dump
        f(); g()
        print("ok")
    ''')
    r = run(py, [path]).check()
    names = [l["name"] for l in Dump(dump_path(r.pid)).loads()]
    assert names.count("py::f:" + path) == 2 and names.count("py::g:" + path) == 1
    assert "py::f:" + path in open("/tmp/perf-%d.map" % r.pid).read()


def state(py, tmp_path, *opts, **env):
    path = script(tmp_path, '''
        import sys, perfpy
        builtin = getattr(sys, "is_stack_trampoline_active", lambda: False)()
        print(perfpy.status()["backend"], builtin)
    ''')
    r = run(py, list(opts) + [path], **env).check()
    backend, builtin = r.stdout.split()
    return backend, builtin == "True"


@pytest.mark.parametrize("how", [("-X", "perf_jit"), "PYTHON_PERF_JIT_SUPPORT"])
def test_startup_switches(py, tmp_path, how):
    if isinstance(how, tuple):
        got = state(py, tmp_path, *how)
    else:
        got = state(py, tmp_path, **{how: "1"})
    if py.version >= (3, 13):
        assert got == ("None", True)  # CPython 3.13's own perf_jit
    else:
        assert got == ("perf_jit", False)


def test_perf_jit_wins_over_perf(py, tmp_path):
    if py.version >= (3, 12):
        pytest.skip("CPython %s handles PYTHONPERFSUPPORT itself" % py.minor)
    assert state(py, tmp_path, "-X", "perf", PYTHON_PERF_JIT_SUPPORT="1")[0] == "perf_jit"
    assert state(py, tmp_path, "-X", "perf_jit", PYTHONPERFSUPPORT="1")[0] == "perf_jit"


def test_perfpy_backend_perf_jit_everywhere(py, tmp_path):
    assert state(py, tmp_path, PERFPY_BACKEND="perf_jit") == ("perf_jit", False)
    # -X wins over the environment; on 3.12+ CPython's own trampoline serves -X perf.
    expected = ("None", True) if py.has_builtin_perf else ("perf", False)
    assert state(py, tmp_path, "-X", "perf", PERFPY_BACKEND="perf_jit") == expected




def test_persist_after_fork_announces_parent_stubs_in_the_child(py, tmp_path):
    path = script(tmp_path, '''
        import os, perfpy
        def hot(): pass
        def child_only(): pass
        perfpy.activate_stack_trampoline("perf_jit")
        perfpy.set_persist_after_fork(True)
        perfpy.compile_code(hot.__code__)
        pid = os.fork()
        if pid == 0:
            print(os.getpid(), perfpy.is_stack_trampoline_active(), flush=True)
            hot(); child_only()
            os._exit(0)
        os.waitpid(pid, 0)
    ''')
    r = run(py, [path]).check()
    child, active = r.stdout.split()
    assert active == "True"
    parent = {l["name"]: l["addr"] for l in Dump(dump_path(r.pid)).loads()}
    kid = Dump(dump_path(int(child)))
    kloads = {l["name"]: l for l in kid.loads()}
    hot = "py::hot:" + path
    assert kloads[hot]["addr"] == parent[hot] and kloads[hot]["pid"] == int(child)
    assert "py::child_only:" + path in kloads and "py::child_only:" + path not in parent


CHECKER = os.path.join(os.environ.get("CARGO_TARGET_DIR")
                       or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                       "target"),
                       "debug", "examples", "jitdump_check")


@pytest.mark.skipif(not os.path.exists(CHECKER),
                    reason="the Rust checker is not built: cargo build -p perfpy-format "
                           "--example jitdump_check (scripts/test.sh does)")
def test_real_dump_passes_the_independent_reader(py):
    """A dump perfpy wrote, read record by record by linux-perf-data and gimli."""
    r = run(py, [SEED, "1000"], PERFPY_BACKEND="perf_jit").check()
    import subprocess
    out = subprocess.run([CHECKER, dump_path(r.pid)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "header pid=%d elf_mach=62" % r.pid
    assert any(l.endswith(" 10 py::foo:" + SEED) for l in lines)
    assert lines[-1] == "loads=%d close=1" % len(Dump(dump_path(r.pid)).loads())
