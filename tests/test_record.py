"""`perfpy record`, with the real perf, on every interpreter: what it picks and why, that
the program runs as it would, how it stops, which processes it follows, and what it leaves
behind."""

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
from recording import (BACKENDS, BUILTIN, CLI_MARKS, PERFPY, PROFILE_PROTO_DIR, SEED_CHAIN,
                       SPEEDSCOPE_SCHEMA, collapsed, kallsyms_readable, perfpy, python_rows,
                       record, recorded_pids, shutil_which, wait_for_samples)

pytestmark = CLI_MARKS


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("py", PYTHONS, ids=lambda p: p.minor)
def test_record_then_report_gives_whole_python_stacks(py, backend, tmp_path):
    """Both backends on every stock interpreter (no frame pointers): perf's own unwinder names
    only the innermost Python frame of a perf-map recording here; perfpy report gives the
    whole stack, and record leaves nothing in /tmp or ~/.debug."""
    # Twice the default run: start-up and shutdown (no seed frames) are a fixed ~20-35 samples,
    # which at the default length sometimes left the seed's chain just under 80%.
    r = record(tmp_path, py.path, "--backend", backend, program=[SEED, "6000000"])
    assert ("jitdump" if backend == "perf-jit" else "perf map") in r.stderr
    assert "switched on with PERFPY_BACKEND=%s" % backend.replace("-", "_") in r.stderr
    # DWARF even on 3.15, which keeps frame pointers (its C extensions don't).
    assert "DWARF call graphs" in r.stderr
    # The summary names foo hottest.
    summary = r.stderr[r.stderr.index("hottest Python functions"):]
    assert summary.splitlines()[2].split()[2] == "py::foo", summary

    counts = collapsed(tmp_path)
    total = sum(counts.values())
    whole = sum(n for s, n in counts.items() if SEED_CHAIN in s)
    assert total >= 50 and whole >= 0.8 * total, (whole, total, sorted(counts.items())[:5])

    text = perfpy("report", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    rows = python_rows(text.stdout)
    assert rows[0][3] == "py::foo" and rows[0][0] >= 80, text.stdout
    # The seed's own functions (a sample in site.py's start-up has a py::<module> of its own).
    by_name = {row[3]: row for row in rows if row[4] == SEED or row[4].startswith(SEED + ":")}
    for caller in ("py::bar", "py::baz", "py::<module>"):
        assert by_name[caller][1] >= by_name["py::foo"][1], text.stdout

    # The names moved next to the recording; nothing of the program's stays in /tmp.
    pids = recorded_pids(tmp_path)
    assert pids
    for pid in pids:
        for left in ("/tmp/perf-%d.map" % pid, "/tmp/jit-%d.dump" % pid):
            assert not os.path.exists(left), left
        assert not glob.glob("/tmp/jitted-%d-*.so" % pid)
    assert not os.path.exists(tmp_path / "home" / ".debug")


@pytest.mark.skipif(not BUILTIN, reason="no CPython 3.12+ here")
@pytest.mark.parametrize("py", BUILTIN, ids=lambda p: p.minor)
def test_cpython_builtin_perf_map_gives_whole_stacks_too(py, tmp_path):
    """The interpreter without perfpy: CPython's own perf-map trampoline keeps no frame record,
    and perf's DWARF unwinder stops at it; perfpy report derives its CFI from the template in
    libpython and unwinds through it."""
    r = record(tmp_path, py.base, "--backend", "perf", "--trampoline", "cpython",
               program=[SEED, "6000000"])
    assert "perf map" in r.stderr and "switched on with PYTHONPERFSUPPORT=1" in r.stderr
    counts = collapsed(tmp_path)
    total = sum(counts.values())
    assert sum(n for s, n in counts.items() if SEED_CHAIN in s) >= 0.8 * total, \
        sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    # And perf itself sees only the innermost Python function of each sample.
    samples = script_samples(str(tmp_path / "perf.data"))
    assert not any(sum(1 for f in s if f.startswith("py::")) > 1 for s in samples)


@pytest.mark.skipif(not [p for p in PYTHONS if p.version >= (3, 13)], reason="no CPython 3.13+ here")
def test_trampoline_cpython_uses_cpython_313_own_jitdump(tmp_path):
    py = [p for p in PYTHONS if p.version >= (3, 13)][0]
    # Twice the default run, as above: Debian's 3.14 gave 51 of 64 samples whole at the default
    # length, its start-up being most of the rest.
    r = record(tmp_path, py.base, "--trampoline", "cpython", program=[SEED, "6000000"])
    assert "jitdump, DWARF call graphs" in r.stderr, r.stderr
    assert "switched on with PYTHON_PERF_JIT_SUPPORT=1" in r.stderr, r.stderr
    counts = collapsed(tmp_path)
    total = sum(counts.values())
    assert sum(n for s, n in counts.items() if SEED_CHAIN in s) >= 0.8 * total


@pytest.mark.skipif(not FP_PYTHONS, reason="no frame-pointer interpreter; run scripts/build-fp-python.sh")
def test_frame_pointers_are_used_when_asked_for(tmp_path):
    """auto takes DWARF even here (the C extensions have no frame pointers:
    test_programs.py's numpy test shows why); --call-graph fp gives the perf map and -g."""
    r = record(tmp_path, FP_PYTHONS[0].path, program=[SEED, "10"])
    assert "jitdump, DWARF call graphs" in r.stderr, r.stderr
    assert "DWARF call graphs all the same" in r.stderr
    r = record(tmp_path, FP_PYTHONS[0].path, "--call-graph", "fp", program=[SEED, "6000000"])
    assert "perf map, frame-pointer call graphs" in r.stderr, r.stderr
    assert "interpreter has frame pointers" in r.stderr
    counts = collapsed(tmp_path)
    total = sum(counts.values())
    assert sum(n for s, n in counts.items() if SEED_CHAIN in s) >= 0.8 * total


def test_auto_picks_the_jitdump_and_dwarf_without_frame_pointers(tmp_path):
    r = record(tmp_path, NO_FP_PYTHONS[0].path)
    assert "jitdump, DWARF call graphs" in r.stderr, r.stderr
    assert re.search(r"interpreter lacks frame pointers \(\d+ of 400 functions in ", r.stderr)


@pytest.mark.parametrize("how", ["sigterm-to-perfpy", "ctrl-c-to-the-group"])
def test_stopping_the_program_still_gives_the_profile(how, tmp_path):
    (tmp_path / "home").mkdir()
    prog = os.path.join(SCRIPTS, "spin.py")
    proc = subprocess.Popen([PERFPY, "record", "--", PYTHONS[-1].path, prog], cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(HOME=str(tmp_path / "home")), start_new_session=True)
    try:
        wait_for_samples(str(tmp_path / "perf.data"))
        time.sleep(1.0)
        if how == "sigterm-to-perfpy":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "hottest Python functions" in err, err
    assert re.search(r"py::spin\s+%s" % re.escape(prog), err), err
    text = perfpy("report", cwd=tmp_path)
    assert python_rows(text.stdout)[0][3] == "py::spin", text.stdout
    for pid in recorded_pids(tmp_path):
        assert not os.path.exists("/tmp/jit-%d.dump" % pid)


@pytest.mark.parametrize("backend", BACKENDS)
def test_forked_child_stacks_are_named_from_both_processes(backend, tmp_path):
    """A child forked inside outer(): its samples show outer() and <module> (named from the
    parent's file: they were on the stack at the fork) above child_work (from the child's own
    file). Both processes' files move beside the recording."""
    prog = os.path.join(SCRIPTS, "forking.py")
    record(tmp_path, PYTHONS[-1].path, "--backend", backend, program=[prog, "4000000"])
    assert len(recorded_pids(tmp_path)) == 2, os.listdir(tmp_path / "perf.data.perfpy")
    counts = collapsed(tmp_path, "--native", "none")
    chain = lambda *fs: ";".join("py::%s:%s" % (f, prog) for f in fs)
    in_child = sum(n for s, n in counts.items() if s == chain("<module>", "outer", "child_work"))
    in_parent = sum(n for s, n in counts.items()
                    if s == chain("<module>", "outer", "parent_work", "child_work"))
    total = sum(counts.values())
    assert in_child >= 0.5 * total and in_parent >= 0.1 * total, sorted(counts.items())
    text = perfpy("report", "--format", "text", cwd=tmp_path)
    assert "2 processes" in text.stdout.splitlines()[0]


def test_multiprocessing_spawn_children_are_profiled_too(tmp_path):
    """Spawned workers are new interpreters: they inherit the switch through the environment,
    write their own files, and record collects those too."""
    prog = script(tmp_path, """
        import multiprocessing as mp, sys
        def work(n):
            s = 0
            for i in range(n):
                s += i
            return s
        if __name__ == "__main__":
            ctx = mp.get_context("spawn")
            with ctx.Pool(2) as pool:
                pool.map(work, [int(sys.argv[1])] * 2)
    """)
    # Work long enough to outweigh the start-up of three interpreters: 3.15's spawned workers
    # import enough that 3,000,000 iterations were 39% of the samples in one run.
    record(tmp_path, PYTHONS[-1].path, program=[prog, "8000000"])
    assert len(recorded_pids(tmp_path)) >= 3  # the parent and two workers
    r = perfpy("report", "--format", "collapsed", "--native", "none", cwd=tmp_path)
    work = sum(int(l.rsplit(" ", 1)[1]) for l in r.stdout.splitlines()
               if re.search(r"py::worker:[^;]+;(?:[^;]+;)*py::work:%s$" % re.escape(prog),
                            l.rsplit(" ", 1)[0]))
    total = sum(int(l.rsplit(" ", 1)[1]) for l in r.stdout.splitlines())
    assert work >= 0.4 * total, r.stdout[-3000:]


def test_a_script_with_a_python_shebang_is_recorded_with_that_python(tmp_path):
    py = PYTHONS[0]
    tool = tmp_path / "tool"
    tool.write_text("#!%s\n%s" % (py.path, open(SEED).read()))
    os.chmod(tool, 0o755)
    (tmp_path / "home").mkdir()
    r = perfpy("record", "--", str(tool), "2000000", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "python%s" % py.minor in r.stderr  # the interpreter probed is the shebang's
    assert "switched on with PERFPY_BACKEND" in r.stderr
    text = perfpy("report", cwd=tmp_path).stdout
    assert python_rows(text)[0][3] == "py::foo", text


def test_record_and_report_errors_are_actionable(tmp_path):
    r = perfpy("record", "--", "/bin/true", cwd=tmp_path)
    assert r.returncode == 2 and "can't tell which Python" in r.stderr and "--python" in r.stderr
    r = perfpy("report", "-i", "nope.data", cwd=tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr and "perfpy record" in r.stderr
    (tmp_path / "junk.data").write_bytes(b"not perf data at all" * 10)
    r = perfpy("report", "-i", "junk.data", cwd=tmp_path)
    assert r.returncode == 2 and "not a perf.data file" in r.stderr
    old = [p for p in PYTHONS if p.version < (3, 12)]
    if old:
        # The interpreter outside its venv: no perfpy there, and no built-in support; with
        # nothing to lend it either (a command not installed from the wheel), or CPython's
        # trampoline asked for.
        r = perfpy("record", "--", old[0].base, SEED, cwd=tmp_path,
                   env=child_env(PERFPY_PACKAGE_DIR=str(tmp_path)))
        assert r.returncode == 2 and "pip install perfpy" in r.stderr, r.stderr
        assert "is not a perfpy package" in r.stderr, r.stderr
        r = perfpy("record", "--trampoline", "cpython", "--", old[0].base, SEED, cwd=tmp_path)
        assert r.returncode == 2 and "no built-in perf support" in r.stderr, r.stderr
    r = perfpy("record", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "EXAMPLES" in r.stdout
    # No perf on PATH.
    (tmp_path / "empty").mkdir()
    r = perfpy("record", "--", PYTHONS[0].path, SEED, cwd=tmp_path,
               env=child_env(PATH=str(tmp_path / "empty")))
    assert r.returncode == 2 and "perf is not on PATH" in r.stderr and "apt-get install" in r.stderr
    # A perf that fails to record: its message, then what to do.
    fake = tmp_path / "fakeperf"
    fake.mkdir()
    (fake / "perf").write_text("#!/bin/sh\n[ \"$1\" = version ] && echo 'perf version 5.15.143' && exit 0\n"
                               "echo 'perf_event_open(..., PERF_FLAG_FD_CLOEXEC) failed' >&2; exit 255\n")
    os.chmod(fake / "perf", 0o755)
    r = perfpy("record", "--", PYTHONS[0].path, SEED, cwd=tmp_path,
               env=child_env(PATH="%s:%s" % (fake, os.environ["PATH"])))
    assert r.returncode == 2 and "perf_event_open" in r.stderr, r.stderr
    assert "wrote no recording" in r.stderr and "perfpy doctor" in r.stderr
    # An old perf: the jitdump still serves perfpy report, and the reason says so.
    assert "perf 5.15.143's own unwinder can't step through perf inject --jit code" in r.stderr


@pytest.mark.skipif(not BUILTIN, reason="needs a CPython 3.12+ (its own perf map) outside /tmp")
def test_a_process_in_its_own_pid_and_mount_namespace(tmp_path):
    """A "container": its own PID namespace and a private /tmp, running CPython's own perf
    map (the interpreter itself, not a venv: a venv may live under the hidden /tmp). Its map is
    at /tmp/perf-<namespace pid>.map inside; perfpy record --pid finds it through
    /proc/<pid>/root and keeps a copy under the host pid."""
    py = BUILTIN[-1]
    # The private /tmp hides the test's own directory: the program comes with -c.
    marker = "perfpy-ns-test-%d" % os.getpid()
    code = "# %s\n%s" % (marker, open(os.path.join(SCRIPTS, "spin.py")).read())
    prog = "<string>"
    inner = 'mount -t tmpfs tmpfs /tmp && exec %s -c "$0"' % py.base
    proc = subprocess.Popen(["unshare", "--pid", "--mount", "--fork", "--kill-child", "--mount-proc",
                             "sh", "-c", inner,
                             code],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(PYTHONPERFSUPPORT="1"))
    try:
        assert proc.stdout.readline().strip() == "spinning", proc.stderr.read()
        # The python process: a descendant of unshare whose namespace pid differs.
        host_pid = None
        for _ in range(50):
            out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
            for p in map(int, out):
                status = open("/proc/%d/status" % p).read()
                nspid = re.search(r"^NSpid:\s+(.*)$", status, re.M).group(1).split()
                if len(nspid) == 2 and "python" in os.readlink("/proc/%d/exe" % p):
                    host_pid = p
            if host_pid:
                break
            time.sleep(0.1)
        assert host_pid, "python inside the namespace not found"
        assert not os.path.exists("/tmp/perf-%d.map" % host_pid)
        (tmp_path / "home").mkdir()
        r = perfpy("record", "--pid", str(host_pid), "--duration", "1.5", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert re.search(r"py::spin\s+%s" % re.escape(prog), r.stderr), r.stderr
        assert os.path.exists(tmp_path / "perf.data.perfpy" / ("perf-%d.map" % host_pid))
        # The running program's own file is copied, not moved.
        ns_pid = re.search(r"^NSpid:\s+\d+\s+(\d+)", open("/proc/%d/status" % host_pid).read(), re.M).group(1)
        assert os.path.exists("/proc/%d/root/tmp/perf-%s.map" % (host_pid, ns_pid))
    finally:
        # The program is its namespace's init: only SIGKILL reaches it from outside.
        subprocess.run(["pkill", "-KILL", "-f", marker])
        proc.kill()
        proc.wait()
        deadline = time.time() + 10
        while time.time() < deadline and subprocess.run(["pgrep", "-f", marker],
                                                         capture_output=True).returncode == 0:
            time.sleep(0.1)
        assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode != 0


def jit_built_in(py):
    out = subprocess.run([py.path, "-c", "import sys; j = getattr(sys, '_jit', None); "
                          "print(bool(j and j.is_available()))"], capture_output=True, text=True)
    return out.stdout.strip() == "True"


JIT_PYTHONS = [p for p in PYTHONS if jit_built_in(p)]


@pytest.mark.skipif(not JIT_PYTHONS, reason="no interpreter here has CPython's JIT built in "
                    "(Debian's 3.14 and 3.15 do: scripts/test.sh runs them in the sid root)")
@pytest.mark.parametrize("py", JIT_PYTHONS, ids=lambda p: p.minor)
def test_cpython_jit_is_judged_by_what_the_interpreter_runs(py, tmp_path):
    """Debian builds the JIT in and off: record and doctor go ahead. Switched on with
    PYTHON_JIT=1, the same interpreter is refused, and doctor says why."""
    (tmp_path / "home").mkdir()
    r = record(tmp_path, py.path, program=[SEED, "300000"])
    assert "hottest Python functions" in r.stderr
    doctor = perfpy("doctor", "--no-record", "--python", py.path, cwd=tmp_path)
    assert "CPython's JIT is built in but off (sys._jit.is_enabled())" in doctor.stdout
    on = child_env(HOME=str(tmp_path / "home"), PYTHON_JIT="1")
    refused = perfpy("record", "--", py.path, SEED, "1000", cwd=tmp_path, env=on)
    assert refused.returncode == 2
    assert "CPython's JIT is enabled" in refused.stderr and "PYTHON_JIT=0" in refused.stderr
    doctor = perfpy("doctor", "--no-record", "--python", py.path, cwd=tmp_path, env=on)
    assert "warn  cpython jit     CPython's JIT is enabled (sys._jit.is_enabled())" in doctor.stdout
    assert "perfpy record would refuse this interpreter" in doctor.stdout


def test_backend_accepts_cpythons_spelling(tmp_path):
    """`--backend perf_jit` (CPython's name for it) means what `--backend perf-jit` does."""
    r = record(tmp_path, NO_FP_PYTHONS[0].path, "--backend", "perf_jit", program=[SEED, "300000"])
    assert "jitdump, DWARF call graphs" in r.stderr, r.stderr
    assert "switched on with PERFPY_BACKEND=perf_jit" in r.stderr
    assert "hottest Python functions" in r.stderr


def header(data, cwd):
    """perf's own reading of a recording's header."""
    r = subprocess.run([PERF, "report", "--header-only", "-i", data], capture_output=True,
                       text=True, cwd=str(cwd))
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_recordings_are_compressed_and_perf_reads_them(tmp_path):
    """By default perf compresses as it records (this perf has zstd): perf report says so
    of the file, perf script reads its samples, and perfpy report its whole stacks. With
    --no-compress, and with --keep-jit-files (for perf inject, which can't read compressed
    recordings), it doesn't."""
    r = record(tmp_path, PYTHONS[-1].path)
    assert ", compressed" in r.stderr.splitlines()[0], r.stderr
    assert re.search(r"^# compressed : Zstd", header("perf.data", tmp_path), re.M)
    assert len(script_samples(str(tmp_path / "perf.data"))) >= 50
    counts = collapsed(tmp_path)
    assert sum(n for s, n in counts.items() if SEED_CHAIN in s) >= 0.7 * sum(counts.values())

    record(tmp_path, PYTHONS[-1].path, "--no-compress", out="plain.data")
    assert "# compressed" not in header("plain.data", tmp_path)
    r = record(tmp_path, PYTHONS[-1].path, "--keep-jit-files", out="kept.data")
    assert "because: uncompressed: --keep-jit-files is for perf inject" in r.stderr, r.stderr
    assert "# compressed" not in header("kept.data", tmp_path)


DEEP = '''
import sys, time
def hot():
    t = 0
    for i in range(3000):
        t += i * i
def step(k):
    if k <= 0:
        hot()
    else:
        step(k - 1)
end = time.time() + 2.5
while time.time() < end:
    step(int(sys.argv[1]))
'''


def test_stacks_deeper_than_the_copy_are_said_with_the_flag_that_fixes_it(tmp_path):
    """A program 200 Python functions deep overflows an 8 KiB copy of its stack: record and
    report say how many samples lost their outer frames, and name --stack-size 65528. At 60
    functions, the default copy (perf's whole 65528 bytes) holds the stacks: no such warning.
    At 300, nothing perf copies does: the warning says what does."""
    deep = script(tmp_path, DEEP, "deep.py")
    py = PYTHONS[-1].path
    r = record(tmp_path, py, "--stack-size", "8192", program=[deep, "200"], out="small.data")
    assert "(8192 bytes of stack)" in r.stderr.splitlines()[0], r.stderr
    m = re.search(r"warning: (\d+) of (\d+) samples \(([\d.]+)%\) had stacks deeper than the "
                  r"8192 bytes perf copied", r.stderr)
    assert m and float(m.group(3)) >= 50, r.stderr
    assert "perfpy record --stack-size 65528" in r.stderr, r.stderr
    again = perfpy("report", "-i", "small.data", cwd=tmp_path)
    assert "had stacks deeper than the 8192 bytes" in again.stderr, again.stderr

    r = record(tmp_path, py, program=[deep, "58"], out="default.data")
    assert "(65528 bytes of stack)" in r.stderr.splitlines()[0], r.stderr
    assert "had stacks deeper" not in r.stderr, r.stderr
    counts = collapsed(tmp_path, data="default.data")
    whole = sum(n for s, n in counts.items() if s.count("py::step:") == 59)
    assert whole >= 0.8 * sum(counts.values()), sorted(counts.items(), key=lambda kv: -kv[1])[:3]

    # Deeper than perf's whole copy: only frame pointers help then.
    r = record(tmp_path, py, program=[deep, "300"], out="deepest.data")
    assert "had stacks deeper than the 65528 bytes" in r.stderr, r.stderr
    assert "--call-graph fp" in r.stderr and "--stack-size" not in r.stderr, r.stderr
