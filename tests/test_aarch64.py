"""The aarch64 wheel, cross-compiled here: its trampolines run on a real aarch64 CPython
(Debian bookworm's 3.11, under qemu-user), with both backends; it is manylinux_2_17_aarch64.
perf itself can't run under qemu-user, so recording on aarch64 is not tested here."""

import glob
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT

WHEELS = sorted(glob.glob(os.path.join(ROOT, "dist-aarch64", "perfpy-*.whl")))
ARM64_ROOT = os.path.expanduser(os.environ.get("PERFPY_ARM64_ROOT", "~/.cache/perfpy/arm64-root"))
QEMU = shutil.which("qemu-aarch64-static")
PYTHON = os.path.join(ARM64_ROOT, "usr", "bin", "python3.11")

pytestmark = pytest.mark.skipif(
    not (WHEELS and QEMU and os.path.exists(os.path.join(ARM64_ROOT, ".perfpy-arm64-root"))),
    reason="needs the aarch64 wheel (PERFPY_WHEEL_ARCH=aarch64 scripts/build-wheels.sh), "
           "qemu-user-static and the arm64 CPython (scripts/build-arm64-root.sh): "
           "scripts/test.sh makes all three on the host")

SMOKE = r"""
import json, sys
import perfpy

def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)
def squares(n):
    for i in range(n): yield i * i
class Boom(Exception): pass
def deep(k):
    if k == 0: raise Boom("bottom")
    return deep(k - 1)

out = {"build": perfpy.build_info()}
for backend in ("perf", "perf_jit"):
    perfpy.activate_stack_trampoline(backend)
    results = [fib(18), sum(squares(1000))]
    try:
        deep(100)
    except Boom as e:
        results.append(str(e))
    out[backend] = {"results": results, "status": perfpy.status(),
                    "active": perfpy.is_stack_trampoline_active()}
    perfpy.deactivate_stack_trampoline()
print(json.dumps(out))
"""


def arm64(*args, env=None):
    return subprocess.run([QEMU, "-L", ARM64_ROOT] + list(args), capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("aarch64-site")
    with zipfile.ZipFile(WHEELS[0]) as z:
        z.extractall(str(d))
    os.chmod(str(d / "perfpy" / "_bin" / "perfpy"), 0o755)
    return d


def test_the_aarch64_wheel_is_manylinux_2_17_aarch64():
    auditwheel = os.path.join(sys.prefix, "bin", "auditwheel")
    if not os.path.exists(auditwheel):
        pytest.skip("no auditwheel in %s" % sys.prefix)
    out = subprocess.run([auditwheel, "show", WHEELS[0]], capture_output=True, text=True).stdout
    assert 'platform tag:\n"manylinux_2_17_aarch64"' in out or \
        re.search(r'platform tag:\s*"manylinux_2_17_aarch64"', out), out
    with zipfile.ZipFile(WHEELS[0]) as z:
        names = z.namelist()
    # scripts/test.sh builds the 3.11 extension only (the one an arm64 CPython runs here).
    assert "perfpy/_native.cpython-311-aarch64-linux-gnu.so" in names, names
    assert "perfpy/_bin/perfpy" in names


def test_trampolines_run_on_aarch64_with_both_backends(site, tmp_path):
    import json

    env = dict(os.environ, PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1")
    for var in ("PYTHONPERFSUPPORT", "PYTHON_PERF_JIT_SUPPORT", "PERFPY_BACKEND"):
        env.pop(var, None)
    r = arm64(PYTHON, "-c", SMOKE, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["build"]["arch"] == "aarch64" and out["build"]["cpython_family"] == "3.11"
    for backend in ("perf", "perf_jit"):
        got = out[backend]
        assert got["active"] and got["results"] == [2584, 332833500, "bottom"], got
        assert got["status"]["failure"] is None and got["status"]["stubs"] >= 4, got
    # The map names the functions with stubs of the aarch64 size; the dump says EM_AARCH64.
    status = out["perf_jit"]["status"]
    try:
        lines = open(status["map_file"]).read().splitlines()
        names = {l.split(" ", 2)[2]: int(l.split(" ")[1], 16) for l in lines}
        assert any(n.startswith("py::fib:") for n in names), lines
        assert any(n.startswith("py::deep:") for n in names), lines
        assert set(names.values()) == {out["build"]["stub_size"]}, names
        with open(status["jit_file"], "rb") as f:
            magic, version, total, elf_mach = struct.unpack("<IIII", f.read(16))
        assert (magic, elf_mach) == (0x4A695444, 183), (hex(magic), elf_mach)
    finally:
        for p in (status["map_file"], status["jit_file"]):
            if p and os.path.exists(p):
                os.unlink(p)


def test_the_aarch64_command_runs(site):
    r = arm64(str(site / "perfpy" / "_bin" / "perfpy"), "--version")
    assert r.returncode == 0 and re.match(r"perfpy \d+\.\d+\.\d+$", r.stdout.strip()), r.stderr
