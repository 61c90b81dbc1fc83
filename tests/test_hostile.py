"""Hostile names and broken recordings: neither may crash perfpy or the profiled program, and
what can be read is read, with one warning for what couldn't."""

import os
import re
import shutil
import signal
import struct
import subprocess
import time

import pytest

from conftest import PYTHONS, child_env, map_names, run, script
from jitdump import CODE_LOAD, Dump
from recording import CLI_MARKS, collapsed, perfpy, python_rows, record, wait_for_samples

# A program whose code objects have hostile file names and qualnames: a line break followed
# by a forged map entry, spaces, a lone surrogate (an undecodable byte), and 10 kB.
HOSTILE = r'''
import sys
FORGED = "evil\n7f0000000000 1000 py::forged:/etc/passwd"
NAMES = {
    "newline": FORGED + ".py",
    "spaces": "a file with  spaces .py",
    "undecodable": "bad\udcff\udcfe.py",
    "long": "/" + "x" * 10000 + ".py",
}
SRC = "def hot():\n    s = 0\n    for i in range(200):\n        s += i\n    return s\n"
funcs = []
for kind, filename in NAMES.items():
    ns = {}
    exec(compile(SRC, filename, "exec"), ns)
    f = ns["hot"]
    if sys.version_info >= (3, 11):
        f.__code__ = f.__code__.replace(co_qualname="q\r\n" + kind + " \udcff" + "y" * 100)
    funcs.append(f)
for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
    for f in funcs:
        f()
print("ok")
'''


@pytest.mark.parametrize("backend", ["perf", "perf_jit"])
def test_hostile_names_stay_one_entry_each(py, tmp_path, backend):
    path = script(tmp_path, HOSTILE)
    r = run(py, [path], PERFPY_BACKEND=backend).check()
    assert r.stdout == "ok\n" and r.stderr == ""
    if backend == "perf":
        names = map_names(r.pid)  # asserts each line is `addr size name`
    else:
        names = [l["name"] for l in Dump("/tmp/jit-%d.dump" % r.pid).loads()]
    assert not any("forged" in n and "evil" not in n for n in names), "a forged entry"
    hot = [n for n in names if "hot:" in n or "q\\r\\n" in n]
    assert len(hot) == 4, hot
    for n in hot:
        assert "\n" not in n and "\r" not in n
    assert any("evil\\n7f0000000000 1000 py::forged:/etc/passwd.py" in n for n in hot)
    assert any(n.endswith(":a file with  spaces .py") for n in hot)
    assert any(n.endswith("x" * 10000 + ".py") for n in hot)
    assert any("bad\\udcff\\udcfe.py" in n for n in hot), hot


def cli(test):
    for mark in CLI_MARKS:
        test = mark(test)
    return test


@cli
@pytest.mark.parametrize("backend", ["perf", "perf_jit"])
def test_a_recording_of_hostile_names_reports_them(py, tmp_path, backend):
    path = script(tmp_path, HOSTILE)
    record(tmp_path, py.path, "--backend", backend.replace("_", "-"),
           program=[path, "3000"])
    stacks = collapsed(tmp_path)
    hot = {s.rsplit(";", 1)[-1] for s in stacks if "hot:" in s or "q\\r\\n" in s}
    assert not any("forged:/etc/passwd" in s and "evil" not in s for s in stacks)
    assert hot, sorted(stacks)[:5]
    for f in ("speedscope", "pprof", "firefox", "flamegraph", "text"):
        r = perfpy("report", "--format", f, "-o", str(tmp_path / ("out." + f)), cwd=tmp_path)
        assert r.returncode == 0, (f, r.stderr)
