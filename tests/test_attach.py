"""`perfpy record --pid` on a running CPython 3.14+ started with no switch: names switched on
inside it for the recording (PEP 768, from Rust), and off again afterwards, as the target
itself reports; and the refusals (remote debugging disabled, no ptrace permission)."""

import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import PERFPY, PYTHONS, SCRIPTS, child_env
from recording import CLI_MARKS, collapsed, perfpy

pytestmark = CLI_MARKS

NEW = [p for p in PYTHONS if p.version >= (3, 14)]
OLD = [p for p in PYTHONS if p.version < (3, 14)]
needs_new = pytest.mark.skipif(
    not NEW, reason="no CPython 3.14+ in this run: the sid root's run (scripts/test.sh) has them")

#: A server-like loop: serve() never returns, so its frame was running before names came on.
TARGET = r"""
import ctypes, sys, time

api = ctypes.pythonapi
api.PyInterpreterState_Get.restype = ctypes.c_void_p
api._PyInterpreterState_GetEvalFrameFunc.restype = ctypes.c_void_p
api._PyInterpreterState_GetEvalFrameFunc.argtypes = [ctypes.c_void_p]
DEFAULT = ctypes.cast(api._PyEval_EvalFrameDefault, ctypes.c_void_p).value

def state():
    pf = sys.modules.get("perfpy")
    ours = bool(pf and pf.is_stack_trampoline_active())
    evaluator = api._PyInterpreterState_GetEvalFrameFunc(api.PyInterpreterState_Get())
    return "sys=%s perfpy=%s default_eval=%s" % (
        getattr(sys, "is_stack_trampoline_active", lambda: False)(), ours, evaluator == DEFAULT)

def leaf(n):
    return n * 2

def middle(n):
    s = 0
    for i in range(n):
        s += leaf(i)
    return s

def serve():
    last = 0
    while True:
        middle(2000)
        now = time.monotonic()
        if now - last >= 0.2:
            last = now
            print(state(), flush=True)

serve()
"""


class Target:
    def __init__(self, python, tmp_path, source=TARGET, **env):
        self.log = tmp_path / "target.log"
        script = tmp_path / "target.py"
        script.write_text(source)
        self.out = open(str(self.log), "w")
        self.proc = subprocess.Popen([python, str(script)], stdout=self.out,
                                     stderr=subprocess.STDOUT, env=child_env(**env))
        deadline = time.time() + 30
        while not self.lines() and time.time() < deadline:
            time.sleep(0.05)
        assert self.lines(), "the target did not start"

    def lines(self):
        return self.log.read_text().splitlines()

    def settle(self):
        """The target's report a little later (after the last switch ran)."""
        time.sleep(0.6)
        return self.lines()[-1]

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.out.close()


@needs_new
@pytest.mark.parametrize("whose", ["cpython", "perfpy"])
@pytest.mark.parametrize("py", NEW, ids=lambda p: p.minor)
def test_names_are_switched_on_for_the_recording_and_off_after(py, whose, tmp_path):
    python = py.base if whose == "cpython" else py.path
    t = Target(python, tmp_path)
    try:
        assert t.lines()[-1] == "sys=False perfpy=False default_eval=True"
        r = perfpy("record", "--pid", str(t.proc.pid), "--duration", "3", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert re.search(r"switched Python names on in pid %d \(CPython %d\.%d\.\d+ .*%s's"
                         % (t.proc.pid, py.version[0], py.version[1], whose), r.stderr), r.stderr
        assert "switched Python names off in pid %d" % t.proc.pid in r.stderr, r.stderr
        assert t.proc.poll() is None, "the target keeps running"
        during = [l for l in t.lines() if "sys=True" in l or "perfpy=True" in l]
        assert during, "the target saw its trampoline on during the recording"
        assert t.settle() == "sys=False perfpy=False default_eval=True"
        # Switching off, perfpy's trampoline closes and removes its file (the recording has its
        # copy); CPython's keeps its own, as CPython does.
        files = [f for f in ("/tmp/jit-%d.dump" % t.proc.pid, "/tmp/perf-%d.map" % t.proc.pid)
                 if os.path.exists(f)]
        assert (not files) if whose == "perfpy" else files, files
    finally:
        t.close()
    counts = collapsed(tmp_path)
    python_samples = {s: n for s, n in counts.items() if "py::" in s}
    total = sum(python_samples.values())
    assert total >= 100, sorted(counts.items(), key=lambda kv: -kv[1])[:5]
    # The loop's callees are named, leaf under middle; serve() was already running and has no
    # stub, so its frame is the interpreter's below them.
    chain = sum(n for s, n in python_samples.items() if re.search(r"py::middle:[^;]*;py::leaf:", s))
    middle = sum(n for s, n in python_samples.items() if "py::middle:" in s)
    assert middle >= 0.9 * total and chain >= 0.2 * total, sorted(python_samples.items(),
                                                                    key=lambda kv: -kv[1])[:5]
    # serve()'s frame stays in the stacks as the interpreter loop below the named ones, and the
    # text report counts the samples that have it.
    below = sum(n for s, n in python_samples.items()
                if re.search(r"(?:_PyEval_EvalFrame\w*|PyEval_EvalCode);(?:[^;]*;)*py::middle:", s))
    assert below >= 0.8 * total, sorted(python_samples.items(), key=lambda kv: -kv[1])[:3]
    r = perfpy("report", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    m = re.search(r"(\d+) samples \([\d.]+%\) also ran Python functions without a name", r.stdout)
    assert m and int(m.group(1)) >= 0.8 * total, r.stdout


@needs_new
def test_a_target_with_remote_debugging_disabled_is_refused_and_unharmed(tmp_path):
    py = NEW[0]
    t = Target(py.base, tmp_path, PYTHON_DISABLE_REMOTE_DEBUG="1")
    try:
        r = perfpy("record", "--pid", str(t.proc.pid), "--duration", "1", cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert "remote debugging is disabled" in r.stderr and "PYTHON_DISABLE_REMOTE_DEBUG" in r.stderr
        assert "PYTHONPERFSUPPORT=1" in r.stderr, "says how to have names on instead"
        assert not (tmp_path / "perf.data").exists()
        n = len(t.lines())
        assert t.proc.poll() is None and t.settle() == "sys=False perfpy=False default_eval=True"
        assert len(t.lines()) > n, "still serving"
    finally:
        t.close()


SLEEPER = r"""
import sys, threading, time
def work():
    while True:
        sum(i * i for i in range(1000))
for _ in range(2):
    threading.Thread(target=work, daemon=True).start()
print("sleeping", flush=True)
time.sleep(30)
"""


@needs_new
def test_a_main_thread_blocked_in_c_is_waited_for_and_the_recording_happens(tmp_path):
    py = NEW[0]
    t = Target(py.base, tmp_path, source=SLEEPER)
    try:
        r = perfpy("record", "--pid", str(t.proc.pid), "--duration", "1", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "has not reached a safe point" in r.stderr and "main thread" in r.stderr, r.stderr
        assert "recording anyway" in r.stderr
        assert (tmp_path / "perf.data").stat().st_size > 0
        assert t.proc.poll() is None
    finally:
        t.close()
    # Neither switch ran: the switch-on was replaced by the switch-off, which is left pending
    # for the main thread (its script, and the note that perfpy stopped waiting for its
    # marker); no script of a switch that was replaced is left behind.
    left = [f for f in os.listdir("/tmp") if f.startswith("perfpy-switch-") and
            "-%d-" % t.proc.pid in f]
    assert len({f.split(".")[0] for f in left}) <= 1 and len(left) <= 2, left
    # The target is gone: perfpy clean lists what it never ran (and deleting is ours to do
    # here, not clean's: /tmp holds other processes' files).
    r = perfpy("clean", cwd=tmp_path)
    for f in left:
        assert "/tmp/%s\t" % f in r.stdout, r.stdout
        os.unlink(os.path.join("/tmp", f))


@needs_new
def test_no_ptrace_permission_is_a_clear_error(tmp_path):
    py = NEW[0]
    t = Target(py.base, tmp_path)
    work = tempfile.mkdtemp(prefix="perfpy-nobody-")  # pytest's own directory is root's only
    os.chmod(work, 0o777)
    try:
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            PERFPY, "record", "--pid", str(t.proc.pid), "--duration", "1"],
                           cwd=work, capture_output=True, text=True, env=child_env(HOME=work))
        assert r.returncode == 2, r.stderr
        assert "ptrace" in r.stderr and "CAP_SYS_PTRACE" in r.stderr and "sudo" in r.stderr, r.stderr
        assert t.proc.poll() is None and t.settle() == "sys=False perfpy=False default_eval=True"
    finally:
        t.close()
        shutil.rmtree(work, ignore_errors=True)


#: Before 3.14: _PyInterpreterState_GetEvalFrameFunc is 3.9+.
DORMANT = [p for p in OLD if p.version >= (3, 9)]


@pytest.mark.skipif(not DORMANT, reason="no CPython 3.9-3.13 in this run: the host's run has them")
@pytest.mark.parametrize("py", DORMANT, ids=lambda p: p.minor)
def test_before_3_14_perfpy_attach_switches_names_on_and_off(py, tmp_path):
    """A service started with PERFPY_ATTACH=1 (perfpy installed, dormant): record --pid
    switches names on through perfpy's control block, then off; the evaluator is the
    interpreter's own again."""
    t = Target(py.path, tmp_path, PERFPY_ATTACH="1")
    try:
        assert t.lines()[-1] == "sys=False perfpy=False default_eval=True"
        r = perfpy("record", "--pid", str(t.proc.pid), "--duration", "2", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert re.search(r"switched Python names on in pid %d .*PERFPY_ATTACH" % t.proc.pid,
                         r.stderr), r.stderr
        assert "switched Python names off in pid %d" % t.proc.pid in r.stderr, r.stderr
        assert [l for l in t.lines() if "perfpy=True" in l]
        assert t.settle() == "sys=False perfpy=False default_eval=True"
        # Switched off, it closed and removed its file: the recording has the copy.
        assert not os.path.exists("/tmp/perf-%d.map" % t.proc.pid)
        assert not os.path.exists("/tmp/jit-%d.dump" % t.proc.pid)
        assert (tmp_path / "perf.data.perfpy").is_dir()
    finally:
        t.close()
    counts = collapsed(tmp_path)
    total = sum(n for s, n in counts.items() if "py::" in s)
    middle = sum(n for s, n in counts.items() if "py::middle:" in s)
    assert total >= 100 and middle >= 0.9 * total, sorted(counts.items(), key=lambda kv: -kv[1])[:3]


@pytest.mark.skipif(not DORMANT, reason="no CPython 3.9-3.13 in this run: the host's run has them")
def test_before_3_14_names_on_from_the_start_are_left_on(tmp_path):
    """PERFPY_ATTACH=1 with names on from the start (PERFPY_BACKEND=perf): record --pid says
    so, and leaves them on, and their map in /tmp, after the recording."""
    py = DORMANT[-1]
    t = Target(py.path, tmp_path, PERFPY_ATTACH="1", PERFPY_BACKEND="perf")
    try:
        r = perfpy("record", "--pid", str(t.proc.pid), "--duration", "1", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "had Python names on already" in r.stderr, r.stderr
        assert "switched Python names off" not in r.stderr, r.stderr
        assert "perfpy=True" in t.settle()
        assert os.path.exists("/tmp/perf-%d.map" % t.proc.pid)
    finally:
        t.close()


@pytest.mark.skipif(not DORMANT, reason="no CPython 3.9-3.13 in this run: the host's run has them")
def test_before_3_14_without_perfpy_attach_the_message_says_how(tmp_path):
    py = DORMANT[-1]
    for python, source, has in (
            (py.path, "import perfpy\n" + TARGET, "not started with PERFPY_ATTACH=1"),
            (py.base, TARGET, "perfpy is not loaded there")):
        t = Target(python, tmp_path, source=source)
        try:
            r = perfpy("record", "--pid", str(t.proc.pid), "--duration", "1", cwd=tmp_path)
            assert r.returncode == 0, r.stderr
            assert has in r.stderr and "PERFPY_ATTACH=1" in r.stderr, r.stderr
            assert "PYTHONPERFSUPPORT=1" in r.stderr and "without Python names" in r.stderr
        finally:
            t.close()


@needs_new
def test_several_pids_are_switched_on_and_off_together(tmp_path):
    """`-p A,B` as perf takes it: each process gets its names on, then off."""
    targets = []
    try:
        for i, py in enumerate((NEW * 2)[:2]):
            d = tmp_path / ("t%d" % i)
            d.mkdir()
            targets.append(Target(py.base, d))
        pids = [t.proc.pid for t in targets]
        r = perfpy("record", "--pid", "%d,%d" % tuple(pids), "--duration", "2", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "recording pids %d, %d" % tuple(pids) in r.stderr, r.stderr
        for t in targets:
            assert "switched Python names on in pid %d" % t.proc.pid in r.stderr, r.stderr
            assert "switched Python names off in pid %d" % t.proc.pid in r.stderr, r.stderr
            assert t.settle() == "sys=False perfpy=False default_eval=True"
        for pid in pids:
            out = perfpy("report", "--pid", str(pid), "--format", "collapsed", cwd=tmp_path)
            assert out.returncode == 0 and "py::middle:" in out.stdout, out.stderr
    finally:
        for t in targets:
            t.close()


#: One thread, no I/O, nothing that hands the GIL over (tests/scripts/lone.py).
LONE = os.path.join(SCRIPTS, "lone.py")


def cpu_seconds(pid):
    """The CPU time a process has used (user + system), from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_lone(py, **env):
    """lone.py started (PERFPY_ATTACH=1 before 3.14), once it is in its loop: its CPU time
    read from the outside, nothing asked of the program itself."""
    proc = subprocess.Popen([py.path, LONE], env=child_env(**env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while proc.poll() is None and cpu_seconds(proc.pid) < 0.3 and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()
    return proc


def lone_env(py):
    return {} if py.version >= (3, 14) else {"PERFPY_ATTACH": "1"}


@pytest.mark.parametrize("py", PYTHONS, ids=lambda p: p.minor)
def test_a_busy_program_with_one_thread_is_switched_on_at_once_and_off_after(py, tmp_path):
    """main -> hot -> spin and nothing else: no other thread to ask for the GIL, no system
    call. record --pid reaches its main thread at once (3.9-3.12 queue the switch without
    telling the main thread: perfpy's watcher asks for the GIL once to make it look), and most
    of a 3-second recording has names."""
    proc = start_lone(py, **lone_env(py))
    pid = proc.pid
    try:
        r = perfpy("record", "--pid", str(pid), "--duration", "3", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "switched Python names on in pid %d" % pid in r.stderr, r.stderr
        assert "switched Python names off in pid %d" % pid in r.stderr, r.stderr
        assert not os.path.exists("/tmp/perf-%d.map" % pid)
        assert not os.path.exists("/tmp/jit-%d.dump" % pid)
        assert proc.poll() is None, "the target still runs"
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert b"Traceback" not in err and b"Error" not in err, err
    counts = collapsed(tmp_path)
    total = sum(counts.values())
    spin = sum(n for s, n in counts.items() if "py::spin:" in s)
    # Names on within about a second of the three (a loaded machine included).
    assert total >= 100 and spin >= 0.6 * total, sorted(counts.items(), key=lambda kv: -kv[1])[:3]


def test_record_all_and_top_reach_busy_programs_with_one_thread(tmp_path):
    """lone.py on every interpreter of the run at once (more busy threads than CPUs): record -a
    and top -p switch each on at once, and each is named."""
    procs = [(py, start_lone(py, **lone_env(py))) for py in PYTHONS]
    try:
        r = perfpy("record", "-a", "--duration", "4", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        pids = ",".join(str(p.pid) for _, p in procs)
        top = subprocess.run([PERFPY, "top", "--plain", "-p", pids, "--interval", "2",
                              "--duration", "5"], cwd=str(tmp_path), capture_output=True,
                             text=True, timeout=120)
        assert all(p.poll() is None for _, p in procs), "every target still runs"
    finally:
        for _, p in procs:
            p.kill()
            p.wait()
    for py, p in procs:
        counts = collapsed(tmp_path, "--pid", str(p.pid))
        total = sum(counts.values())
        spin = sum(n for s, n in counts.items() if "py::spin:" in s)
        assert total >= 20 and spin >= 0.5 * total, (py.minor, r.stderr,
                                                     sorted(counts.items(), key=lambda kv: -kv[1])[:3])
    assert top.returncode == 0, top.stderr
    last = top.stdout.split("== perfpy top")[-1]
    assert "py::spin" in last and "py::hot" in last, top.stdout[-3000:]
