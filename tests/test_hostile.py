"""Hostile names and broken recordings: neither may crash perfpy or the profiled program, and
what can be read is read, with one warning for what couldn't."""

import contextlib
import glob
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
@pytest.mark.parametrize("py", sorted({PYTHONS[0], PYTHONS[-1]}, key=lambda p: p.version),
                         ids=lambda p: p.minor)
def test_a_recording_of_hostile_names_reports_them(py, tmp_path, backend):
    """Through every output format, on the oldest and newest interpreter of the run."""
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


# Broken recordings: each gives a report of what can be read and one warning line.

SPIN = '''
import sys, time
def work():
    s = 0
    for i in range(100000):
        s += i
    return s
end = time.time() + float(sys.argv[1])
while time.time() < end:
    work()
'''


def warnings_of(stderr):
    """perfpy's warnings, but for lost events (a loaded machine's, not the damage's) and for
    stripped binaries (a distribution's interpreter's, not the damage's)."""
    return [l for l in stderr.splitlines()
            if l.startswith("perfpy: warning:")
            and "events (the recording couldn't keep up)" not in l
            and "is stripped and has no debug file" not in l]


@contextlib.contextmanager
def removing_perf_vdso():
    """perf copies the vDSO to /tmp/perf-vdso.so-XXXXXX and deletes it at exit: not when it is
    killed, or dies on a damaged file. The copies a test's damage leaves are removed."""
    before = set(glob.glob("/tmp/perf-vdso.so-*"))
    try:
        yield
    finally:
        for f in set(glob.glob("/tmp/perf-vdso.so-*")) - before:
            os.unlink(f)


@cli
def test_perf_killed_mid_run_leaves_a_readable_recording(tmp_path):
    """SIGKILL to perf: its header still says "no data"; perf script reads nothing of it."""
    py = PYTHONS[-1]
    path = script(tmp_path, SPIN)
    env = child_env(PERFPY_BACKEND="perf_jit")
    with removing_perf_vdso():
        perf = subprocess.Popen(["perf", "record", "-F", "499", "-k", "1", "--call-graph",
                                 "dwarf,16384", "-o", str(tmp_path / "perf.data"), "--", py.path,
                                 path, "6"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wait_for_samples(str(tmp_path / "perf.data"))
        time.sleep(1.5)
        perf.send_signal(signal.SIGKILL)
        perf.wait()
    time.sleep(5)  # the program runs on to its end
    with open(tmp_path / "perf.data", "rb") as f:
        assert struct.unpack("<Q", f.read(56)[48:56])[0] == 0, "perf finished the header?"
    r = perfpy("report", "--jit-dir", "/tmp", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[0]) >= 200, r.stdout[:300]
    assert "py::work" in r.stdout
    w = warnings_of(r.stderr)
    assert len(w) == 1 and "perf did not finish writing it" in w[0], r.stderr


@cli
def test_a_recording_cut_short_reads_every_complete_record(tmp_path):
    # Uncompressed: cut at two thirds of its bytes, it keeps about two thirds of its samples
    # (compressed, the share depends on how well each part compressed).
    record(tmp_path, PYTHONS[-1].path, "--no-compress", program=[script(tmp_path, SPIN), "3"])
    data = (tmp_path / "perf.data").read_bytes()
    (tmp_path / "cut.data").write_bytes(data[:len(data) * 2 // 3 + 13])
    shutil.copytree(tmp_path / "perf.data.perfpy", tmp_path / "cut.data.perfpy")
    full = int(perfpy("report", cwd=tmp_path).stdout.split()[0])
    r = perfpy("report", "-i", "cut.data", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cut = int(r.stdout.split()[0])
    assert 0.5 * full <= cut < full, (cut, full)
    with removing_perf_vdso():
        script_samples = subprocess.run(["perf", "script", "-i", str(tmp_path / "cut.data")],
                                        capture_output=True, text=True).stdout.count("cpu-clock")
    assert cut >= script_samples, (cut, script_samples)
    w = warnings_of(r.stderr)
    assert len(w) == 1 and "cut short" in w[0] and "MB of records after them are missing" in w[0]


@cli
def test_an_empty_recording_is_refused_with_the_reason(tmp_path):
    (tmp_path / "perf.data").write_bytes(b"")
    r = perfpy("report", cwd=tmp_path)
    assert r.returncode == 2 and "is empty: perf wrote nothing into it" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1


@cli
def test_binaries_missing_on_this_machine_are_named_once(tmp_path):
    """A recording from another machine: its binaries aren't here."""
    exe = tmp_path / "spin-elsewhere"
    shutil.copy("/bin/dd", exe)
    # 15 GB through dd: about a second of CPU even where its copies are fast (3 GB gave 34
    # samples on a loaded machine).
    r = perfpy("record", "-o", "perf.data", "--call-graph", "dwarf", "--python",
               PYTHONS[-1].path, "--", str(exe), "if=/dev/zero", "of=/dev/null", "bs=1M",
               "count=15000", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    os.unlink(exe)
    r = perfpy("report", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[0]) > 50
    w = warnings_of(r.stderr)
    assert len(w) == 1 and "can't be read (%s)" % exe in w[0], r.stderr


@cli
def test_a_native_program_reports_its_native_code(tmp_path):
    r = perfpy("record", "-o", "perf.data", "--python", PYTHONS[-1].path, "--", "/bin/dd",
               "if=/dev/zero", "of=/dev/null", "bs=1M", "count=3000", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = perfpy("report", cwd=tmp_path)
    assert r.returncode == 0 and "native code" in r.stdout, r.stdout
    assert not warnings_of(r.stderr), r.stderr
    # Debian's dd is stripped: if anything is said, it is that, and how to get its names.
    stripped = [l for l in r.stderr.splitlines() if "is stripped" in l]
    assert all(l.startswith("perfpy: warning: /usr/bin/dd is stripped") for l in stripped), r.stderr
    assert len(stripped) <= 1 and all("dpkg -S /usr/bin/dd" in l for l in stripped), r.stderr


@cli
@pytest.mark.parametrize("damage", ["map cut mid-line", "dump of another pid"])
def test_damaged_name_files_give_what_they_hold(tmp_path, damage):
    backend = "perf" if damage.startswith("map") else "perf-jit"
    record(tmp_path, PYTHONS[-1].path, "--backend", backend,
           program=[script(tmp_path, SPIN), "2"])
    side = tmp_path / "perf.data.perfpy"
    (name,) = [n for n in os.listdir(side) if n.endswith(".map" if backend == "perf" else ".dump")]
    f = side / name
    data = f.read_bytes()
    if backend == "perf":
        # What a process killed in the middle of writing a line leaves.
        f.write_bytes(data + b"7f00dead0000 20 py::cut_sho")
        expect = "ends in the middle of a line"
    else:
        pid = int(re.search(r"(\d+)", name).group(1))
        other = bytearray(data)
        other[20:24] = struct.pack("<I", pid + 1)
        f.write_bytes(bytes(other))
        expect = "was written by process %d, not %d" % (pid + 1, pid)
    r = perfpy("report", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    w = warnings_of(r.stderr)
    assert any(expect in l for l in w), r.stderr
    assert len([l for l in w if expect in l]) == 1
    if backend == "perf":
        assert "py::work" in r.stdout and "cut_sho" not in r.stdout
