"""`perfpy report` on real recordings: whole stacks through every kind of frame (Python,
C extensions, callbacks, threads, the kernel), agreement with perf's own tools, and what it
says when names are missing."""

import glob
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import FP_PYTHONS, NO_FP_PYTHONS, PYTHONS, ROOT, SCRIPTS, SEED, child_env, script
from test_perf_record import PERF, perf_problem, requires_perf, script_samples
from recording import (BACKENDS, has_symbols, BUILTIN, CLI_MARKS, PERFPY, PROFILE_PROTO_DIR, SEED_CHAIN,
                       SPEEDSCOPE_SCHEMA, collapsed, kallsyms_readable, perfpy, python_rows,
                       record, recorded_pids, shutil_which, wait_for_samples)

pytestmark = CLI_MARKS


@pytest.mark.skipif(not BUILTIN, reason="no CPython 3.12+ here")
def test_cpython_map_unwinds_even_with_perfpy_imported(tmp_path):
    """CPython 3.12+ serving PYTHONPERFSUPPORT itself while the program also imports perfpy
    (its extension mapped): the stubs are still CPython's, told apart by their size."""
    py = BUILTIN[0]
    prog = script(tmp_path, "import perfpy, runpy, sys\nrunpy.run_path(%r, run_name='__main__')\n" % SEED)
    data = str(tmp_path / "plain.data")
    subprocess.run([PERF, "record", "-q", "-F", "999", "--call-graph", "dwarf,65528", "-o", data,
                    "--", py.path, prog, "16000000"], check=True, capture_output=True,
                   env=child_env(PYTHONPERFSUPPORT="1"))
    try:
        counts = collapsed(tmp_path, data="plain.data")
        total = sum(counts.values())
        chain = ";".join("py::%s:%s" % (f, SEED) for f in ("baz", "bar", "foo"))
        assert sum(n for st, n in counts.items() if chain in st) >= 0.8 * total, \
            sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    finally:
        for pid in set(subprocess.run([PERF, "script", "-i", data, "-F", "pid"],
                                      capture_output=True, text=True).stdout.split()):
            if os.path.exists("/tmp/perf-%s.map" % pid):
                os.unlink("/tmp/perf-%s.map" % pid)


SYMBOLIZED = [p for p in PYTHONS if has_symbols(p, "_PyEval_EvalFrameDefault", "list_sort_impl")]
NEEDS_SYMBOLS = pytest.mark.skipif(
    not SYMBOLIZED, reason="no interpreter here names its own functions (Debian strips its "
                           "builds, and the debug-symbol archive is not reachable); the host "
                           "run's pyenv builds do")


@NEEDS_SYMBOLS
def test_report_keeps_every_native_frame_on_request(tmp_path):
    py = SYMBOLIZED[-1]
    record(tmp_path, py.path)
    counts = collapsed(tmp_path, "--native", "all")
    # The interpreter between the Python frames, and the process's entry at the root.
    glue = re.compile(r"py::baz:[^;]+;(?:[^;]+;)*_PyEval_EvalFrameDefault;(?:[^;]+;)*py::bar:")
    total = sum(counts.values())
    assert sum(n for s, n in counts.items() if glue.search(s)) >= 0.8 * total
    assert sum(n for s, n in counts.items() if s.startswith("_start;")) >= 0.8 * total
    python_only = collapsed(tmp_path, "--native", "none")
    assert sum(n for s, n in python_only.items() if s == SEED_CHAIN) >= 0.8 * total


def test_report_agrees_with_perf_inject_and_perf_script(tmp_path):
    """Same recording, two readers: perf inject --jit + perf script, and perfpy report. The
    same Python frames with the same counts, but for the stacks perf's unwinder gives up on:
    perf 7.2 stops short of the process's entry on 2 to 10 of this program's ~280 samples,
    which then lack their callers (`top`, `<module>`) or all their Python frames. perfpy
    unwinds those whole, so its counts may exceed perf's by that many, and never fall short."""
    py = PYTHONS[-1]
    prog = script(tmp_path, """
        import sys
        def leaf_a(n):
            return sum(i * i for i in range(n))
        def leaf_b(n):
            s = 0
            for i in range(n):
                s += i % 7
            return s
        def middle(n):
            return leaf_a(n) + leaf_b(n)
        def top(n):
            return [middle(n) for _ in range(3)]
        top(int(sys.argv[1]))
    """)
    record(tmp_path, py.path, "--backend", "perf-jit", "--keep-jit-files",
           program=[prog, "1600000"])
    data = str(tmp_path / "perf.data")
    pids = set(subprocess.run([PERF, "script", "-i", data, "-F", "pid"], capture_output=True,
                              text=True).stdout.split())
    env = child_env(HOME=str(tmp_path / "home"))
    try:
        r = perfpy("report", "--format", "collapsed", "--native", "all", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        injected = str(tmp_path / "perf.jit.data")
        subprocess.run([PERF, "inject", "--jit", "-i", data, "-o", injected],
                       check=True, capture_output=True, env=env)
        theirs = script_samples(injected, env=env)
    finally:
        # --keep-jit-files left the dump in /tmp, and perf inject put jitted-<pid>-<n>.so there.
        for pid in pids:
            for f in glob.glob("/tmp/jitted-%s-*.so" % pid) + glob.glob("/tmp/jit-%s.dump" % pid):
                os.unlink(f)
    ours = {}
    for line in r.stdout.splitlines():
        stack, n = line.rsplit(" ", 1)
        ours[stack] = int(n)

    def innermost_python(frames):
        py_frames = [f for f in frames if f.startswith("py::")]
        return py_frames[0].split(":")[2] if py_frames else None

    from collections import Counter
    their_counts = Counter(innermost_python(s) for s in theirs)
    our_counts = Counter()
    for stack, n in ours.items():
        frames = stack.split(";")[::-1]
        our_counts[innermost_python(frames)] += n
    total = sum(our_counts.values())
    assert total == sum(their_counts.values()) and total >= 100, (total, their_counts)
    # Whole stacks run from `_start`. perfpy's miss it only in ld.so's own start-up, before
    # the program's entry is on the stack.
    lost_by_perf = sum(1 for s in theirs if s[-1] != "_start")
    lost_by_us = sum(n for s, n in ours.items() if not s.startswith("_start;"))
    assert lost_by_us <= 0.01 * total + 1, [s for s in ours if not s.startswith("_start;")]
    assert lost_by_perf <= 0.1 * total, "perf's unwinder lost too many stacks to compare with"

    # Each function's samples: innermost, and anywhere on the stack.
    def anywhere(stacks):
        c = Counter()
        for frames, n in stacks:
            for name in {f.split(":")[2] for f in frames if f.startswith("py::")}:
                c[name] += n
        return c
    their_total = anywhere((s, 1) for s in theirs)
    our_total = anywhere((stack.split(";"), n) for stack, n in ours.items())
    slack = 0.01 * total  # a stack copy the two unwinders read differently
    for mine, perfs in ((our_counts, their_counts), (our_total, their_total)):
        for name in (set(mine) | set(perfs)) - {None}:
            assert perfs[name] - slack <= mine[name] <= perfs[name] + lost_by_perf + slack, \
                (name, lost_by_perf, mine, perfs)
    assert our_total["top"] >= 0.7 * total  # the rest is interpreter start-up and exit
    # Whole stacks on both sides: leaf_b under middle under top.
    chain = re.compile(r"py::top:[^;]+;(?:[^;]+;)*py::middle:[^;]+;(?:[^;]+;)*py::leaf_b:")
    assert sum(n for s, n in ours.items() if chain.search(s)) >= 0.9 * our_counts["leaf_b"]


def test_report_finds_names_of_a_plain_perf_recording_in_tmp(tmp_path):
    """Recorded with perf itself (not perfpy record): the map stays in /tmp, where
    perfpy report finds it by pid."""
    py = PYTHONS[0]
    data = str(tmp_path / "plain.data")
    subprocess.run([PERF, "record", "-q", "-F", "999", "--call-graph", "dwarf", "-o", data, "--",
                    py.path, SEED, "2000000"], check=True, capture_output=True,
                   env=child_env(PERFPY_BACKEND="perf"))
    try:
        counts = collapsed(tmp_path, data="plain.data")
        total = sum(counts.values())
        assert sum(n for s, n in counts.items() if SEED_CHAIN in s) >= 0.7 * total
    finally:
        for line in subprocess.run([PERF, "script", "-i", data, "-F", "pid"], capture_output=True,
                                   text=True).stdout.split():
            p = "/tmp/perf-%s.map" % line.strip()
            if os.path.exists(p):
                os.unlink(p)


def test_report_pid_filter_keeps_one_process(tmp_path):
    prog = os.path.join(SCRIPTS, "forking.py")
    record(tmp_path, PYTHONS[-1].path, program=[prog, "3000000"])
    pids = recorded_pids(tmp_path)
    assert len(pids) == 2
    for pid in pids:
        r = perfpy("report", "--pid", str(pid), "--format", "speedscope", "-o", "-", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert [p["name"].endswith("tid %d)" % pid) for p in doc["profiles"]] == [True]
    r = perfpy("report", "--pid", "1", cwd=tmp_path)
    assert r.returncode == 2 and "no samples for the pids given" in r.stderr


def test_threads_each_get_their_whole_stack(tmp_path):
    prog = script(tmp_path, """
        import sys, threading
        def spin_a(n):
            s = 0
            for i in range(n):
                s += i
        def spin_b(n):
            s = 0
            for i in range(n):
                s ^= i
        ts = [threading.Thread(target=spin_a, args=(int(sys.argv[1]),), name="worker-a"),
              threading.Thread(target=spin_b, args=(int(sys.argv[1]),), name="worker-b")]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    """)
    record(tmp_path, PYTHONS[-1].path, program=[prog, "2000000"])
    r = perfpy("report", "--format", "speedscope", "-o", "-", cwd=tmp_path)
    doc = json.loads(r.stdout)
    frames = [f["name"] for f in doc["shared"]["frames"]]
    by_thread = {}
    for prof in doc["profiles"]:
        pys = [[frames[i] for i in st if frames[i].startswith("py::")] for st in prof["samples"]]
        by_thread[prof["name"]] = pys
    for leaf in ("py::spin_a", "py::spin_b"):
        # One thread (not the main one) runs it, under threading's bootstrap frames.
        owners = [name for name, stacks in by_thread.items()
                  if sum(1 for s in stacks if s and s[-1] == leaf) >= 0.5 * len(stacks)]
        assert len(owners) == 1, (leaf, {k: len(v) for k, v in by_thread.items()})
        stacks = by_thread[owners[0]]
        assert all("py::Thread._bootstrap" in s for s in stacks if s and s[-1] == leaf)


def test_time_in_a_c_extension_shows_under_the_python_function(tmp_path):
    """The case of ML and data code: the Python function is thin, the time is in a native
    library it calls. The default view keeps that native code above the Python frame."""
    prog = script(tmp_path, """
        import os, sys, zlib
        def compress_all(n):
            data = os.urandom(1 << 20)
            for _ in range(n):
                zlib.compress(data, 9)
        compress_all(int(sys.argv[1]))
    """)
    # DWARF stacks (an interpreter without frame pointers): libz keeps no frame pointers on
    # Debian, so a -g recording of 3.15 would stop inside it.
    record(tmp_path, NO_FP_PYTHONS[-1].path, program=[prog, "20"])
    r = perfpy("report", "--format", "collapsed", cwd=tmp_path)
    counts = {}
    for line in r.stdout.splitlines():
        stack, n = line.rsplit(" ", 1)
        counts[stack] = int(n)
    total = sum(counts.values())
    in_zlib = sum(n for st, n in counts.items()
                  if re.search(r"py::compress_all:[^;]+;(?:[^;]+;)*(zlib_compress|deflate)", st))
    assert in_zlib >= 0.5 * total, sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    text = perfpy("report", cwd=tmp_path).stdout
    assert re.search(r"libz\.so", text), text


@NEEDS_SYMBOLS
def test_python_called_back_from_c_keeps_both_python_frames(tmp_path):
    """A Python -> C -> Python sandwich (sorted() calling a Python key function): the stack
    has outer, the C sort, and key, in that order."""
    prog = script(tmp_path, """
        import sys
        def key(x):
            s = 0
            for i in range(30):
                s += i * x
            return s
        def outer(n):
            for _ in range(n):
                sorted(range(2000), key=key)
        outer(int(sys.argv[1]))
    """)
    record(tmp_path, SYMBOLIZED[-1].path, program=[prog, "300"])
    full = collapsed(tmp_path, "--native", "all")
    total = sum(full.values())
    sandwich = re.compile(r"py::outer:[^;]+;(?:[^;]+;)*[^;]*sort[^;]*;(?:[^;]+;)*py::key:")
    assert sum(n for st, n in full.items() if sandwich.search(st)) >= 0.5 * total, \
        sorted(full.items(), key=lambda kv: -kv[1])[:2]
    leaf = collapsed(tmp_path)
    glued = re.compile(r"py::outer:[^;]+;py::key:")
    assert sum(n for st, n in leaf.items() if glued.search(st)) >= 0.5 * total


@pytest.mark.skipif(not kallsyms_readable(), reason="/proc/kallsyms hides addresses (kptr_restrict)")
def test_kernel_frames_are_named_above_the_python_function(tmp_path):
    """A function that spends its time in read(2): its stack continues into the kernel,
    named from /proc/kallsyms (the recording is of this boot's kernel)."""
    prog = script(tmp_path, """
        import os, sys, time
        def reader(seconds):
            fd = os.open("/dev/zero", os.O_RDONLY)
            end = time.time() + seconds
            while time.time() < end:
                os.read(fd, 1 << 16)
        reader(float(sys.argv[1]))
    """)
    record(tmp_path, PYTHONS[-1].path, program=[prog, "1.5"])
    counts = collapsed(tmp_path)
    total = sum(counts.values())
    in_read = sum(n for s, n in counts.items()
                  if re.search(r"py::reader:[^;]+;.*;(__x64_sys_read|ksys_read|vfs_read)(;|$)", s))
    assert in_read >= 0.3 * total, sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    text = perfpy("report", cwd=tmp_path).stdout
    assert re.search(r"^\s+[\d.]+%\s+[\d.]+%\s+\d+\s+\S+\s+\[kernel\]$", text, re.M), text


def test_report_warns_when_the_names_are_missing(tmp_path):
    record(tmp_path, PYTHONS[0].path, "--backend", "perf")
    for f in os.listdir(tmp_path / "perf.data.perfpy"):
        os.unlink(tmp_path / "perf.data.perfpy" / f)
    r = perfpy("report", cwd=tmp_path)
    assert r.returncode == 0
    assert "no perf map or jitdump found for pid" in r.stderr, r.stderr
    assert "--jit-dir" in r.stderr


@pytest.mark.parametrize("py", [PYTHONS[0], PYTHONS[-1]], ids=lambda p: p.minor)
def test_a_recording_with_names_off_says_so_and_how_to_switch_them_on(tmp_path, py):
    """CPython's howto, first example, without its switch: `perf record --call-graph dwarf
    python script.py`. perfpy report must say that names were off, once for the process, and
    how to switch them on; not that functions were "already running when names came on"."""
    data = str(tmp_path / "off.data")
    subprocess.run([PERF, "record", "-q", "-F", "999", "--call-graph", "dwarf", "-o", data,
                    py.path, SEED, "2000000"], check=True, capture_output=True, env=child_env())
    pid = int(subprocess.run([PERF, "script", "-i", data, "-F", "pid"], capture_output=True,
                             text=True, check=True).stdout.split()[0])
    r = perfpy("report", "-i", "off.data", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    said = [l for l in r.stderr.splitlines() if "Python names were off" in l]
    assert len(said) == 1, r.stderr
    assert "pid %d (" % pid in said[0] and "CPython %s" % py.minor in said[0], said
    # The command, as perf's header keeps it (perf 7.2 keeps only its own path).
    cmdline = subprocess.run([PERF, "report", "--header-only", "-i", data], capture_output=True,
                             text=True).stdout
    if py.path in cmdline:
        assert "perfpy record -- %s %s 2000000" % (py.path, SEED) in said[0], said
    else:
        assert "perfpy record -- <command>" in said[0], said
    assert "PYTHONPERFSUPPORT=1" in said[0] and "perfpy record --pid %d" % pid in said[0], said
    if py.version < (3, 12):
        assert "perfpy installed" in said[0], said
    assert "already running" not in r.stdout, r.stdout
    assert "Python names were off in pid %d" % pid in r.stdout, r.stdout
    assert "samples in 1 process" in r.stdout, r.stdout


def test_names_on_but_missing_in_one_process_is_not_called_off(tmp_path):
    """A process whose stubs ran (names were on) but whose files are gone gets the --jit-dir
    advice, not the names-were-off one."""
    record(tmp_path, PYTHONS[-1].path, "--backend", "perf-jit")
    for f in os.listdir(tmp_path / "perf.data.perfpy"):
        os.unlink(tmp_path / "perf.data.perfpy" / f)
    r = perfpy("report", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no perf map or jitdump found for pid" in r.stderr, r.stderr
    assert "names were off" not in r.stderr + r.stdout, r.stderr


def test_a_recording_of_two_events_is_reported_one_event_at_a_time(tmp_path):
    """`perf record -e cpu-clock/freq=999/ -e cs/period=1/`: CPU ticks and context switches
    count different things, so they are never added up. The report is of the first event by
    default, says what else the file holds, and `--event` (perf's name, or the event's generic
    name) picks the other; a name the file doesn't hold is refused with the ones it does."""
    py = next(p for p in reversed(PYTHONS) if p.version >= (3, 12))
    prog = script(tmp_path, """
        import time
        def spin(n):
            s = 0
            for i in range(n):
                s += i
            return s
        def nap():
            for _ in range(30):
                time.sleep(0.01)
        spin(3_000_000); nap(); spin(1_000_000)
    """)
    data = str(tmp_path / "two.data")
    subprocess.run([PERF, "record", "-q", "-e", "cpu-clock/freq=999/", "-e", "cs/period=1/",
                    "--call-graph", "dwarf,16384", "-o", data, py.path, "-X", "perf", prog],
                   check=True, capture_output=True, env=child_env())
    events = subprocess.run([PERF, "script", "-i", data, "-F", "event"], capture_output=True,
                            text=True, check=True).stdout.split()
    ticks, switches = events.count("cpu-clock/freq=999/:"), events.count("cs/period=1/:")
    assert ticks > 50 and switches >= 30, (ticks, switches)

    text = perfpy("report", "-i", "two.data", cwd=tmp_path).stdout
    assert text.startswith("%d cpu-clock/freq=999/ samples in 1 process" % ticks), text
    assert ("also holds %d samples of cs/period=1/, counted apart: `--event cs/period=1/`"
            % switches) in text, text
    assert re.search(r"^\s+[\d.]+%\s+[\d.]+%\s+\d+\s+py::spin\s", text, re.M), text

    def folded(*args):
        r = perfpy("report", "-i", "two.data", "--format", "collapsed", *args, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        counts = {}
        for line in r.stdout.splitlines():
            stack, n = line.rsplit(" ", 1)
            counts[stack] = int(n)
        return counts, r.stderr

    cpu, said = folded()
    assert sum(cpu.values()) == ticks, said
    assert "this report is of cpu-clock/freq=999/'s samples" in said, said
    for name in ["cs/period=1/", "cs", "context-switches"]:
        off, _ = folded("--event", name)
        assert sum(off.values()) == switches, name
    # Every switch out of nap() is a sleep; spin() is mostly on the CPU.
    napping = sum(n for s, n in off.items() if "py::nap:" in s)
    assert napping >= 30, sorted(off.items(), key=lambda kv: -kv[1])[:3]
    spinning = sum(n for s, n in cpu.items() if "py::spin:" in s)
    assert spinning > 0.5 * ticks, sorted(cpu.items(), key=lambda kv: -kv[1])[:3]

    r = perfpy("report", "-i", "two.data", "--event", "cycles", cwd=tmp_path)
    assert r.returncode != 0
    assert ('no event named "cycles"; it holds cpu-clock/freq=999/, cs/period=1/: pass one of '
            'those to --event') in r.stderr, r.stderr
