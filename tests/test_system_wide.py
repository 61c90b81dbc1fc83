"""`perfpy record -a`: the whole machine, every Python process's functions named, each
process apart, and names switched off again in every process perfpy switched them on in
(as each process itself says afterwards), also when perfpy is stopped with SIGTERM; nothing
left in any /tmp.

The programs: two gunicorn servers (CPython 3.12 with names on from its start; 3.11 started
with PERFPY_ATTACH=1, so switchable from outside), Debian's CPython 3.14 and 3.15 in the sid
root with no switch (PEP 768), a CPython 3.13 with neither (listed, with the fix), and a native
program (gzip)."""

import glob
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import PERFPY, ROOT, SCRIPTS, child_env
from recording import CLI_MARKS, collapsed, perfpy
from recording import shutil_which
from servers import APPS, WRK, free_port, tmp_files, wait_for_port

pytestmark = CLI_MARKS + [
    pytest.mark.skipif(os.geteuid() != 0, reason="perf record -a needs root (this machine's "
                                                 "tests run as root; CI does)"),
    pytest.mark.skipif(os.path.exists("/.perfpy-root"),
                       reason="the host's run starts the sid root's 3.14 and 3.15 itself, "
                              "beside the host's interpreters"),
    pytest.mark.skipif(not WRK, reason="no wrk (scripts/test.sh installs it)"),
]

VENVS = os.path.join(ROOT, ".venvs")
ROOT_VENVS = os.path.join(ROOT, ".venvs-root")
IN_ROOT = os.path.join(ROOT, "scripts", "in-root.sh")
SID_ROOT = os.path.expanduser(os.environ.get("PERFPY_SID_ROOT", "~/.cache/perfpy/sid-root"))
BUSY = os.path.join(SCRIPTS, "busy.py")


def venv(name):
    return os.path.join(VENVS, name, "bin", "python")


def root_venv(name):
    return os.path.join(ROOT_VENVS, name, "bin", "python")


def has_gunicorn(python):
    return os.path.exists(python) and subprocess.run(
        [python, "-c", "import gunicorn"], capture_output=True).returncode == 0


ROOT_PYTHONS = [v for v in ("py3.14", "py3.15") if os.path.lexists(root_venv(v))
                and os.path.exists(os.path.join(SID_ROOT, ".perfpy-root"))]
needs_everything = pytest.mark.skipif(
    not (has_gunicorn(venv("py3.12")) and has_gunicorn(venv("py3.11-fp"))
         and os.path.exists(venv("py3.13")) and len(ROOT_PYTHONS) == 2),
    reason="needs the venvs scripts/test.sh makes: py3.12 and py3.11-fp with gunicorn, py3.13, "
           "and the sid root's py3.14 and py3.15")


class Programs:
    """The programs of a test, each telling its evaluator's state in `states/<pid>.json`."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.states = tmp_path / "states"
        self.states.mkdir()
        self.procs = []
        self.logs = []

    def start(self, name, argv, **env):
        log = open(str(self.tmp / ("%s.log" % name)), "w")
        self.logs.append(log)
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=str(self.tmp),
                             env=child_env(PERFPY_TEST_STATE=str(self.states), **env),
                             start_new_session=True)
        self.procs.append(p)
        return p

    def gunicorn(self, name, python, **env):
        port = free_port()
        p = self.start(name, [python, "-m", "gunicorn", "--chdir", APPS, "-w", "2",
                              "-b", "127.0.0.1:%d" % port, "host_app:app"], **env)
        wait_for_port(port, p)
        return p, port

    def state(self, pid):
        try:
            return json.load(open(str(self.states / ("%d.json" % pid))))
        except (OSError, ValueError):
            return None

    def settled(self, pid):
        """The process's state, once it has said it after now."""
        since = time.time()
        deadline = since + 10
        while time.time() < deadline:
            s = self.state(pid)
            if s and s["time"] > since:
                return s
            time.sleep(0.1)
        raise AssertionError("pid %d said nothing for 10 s" % pid)

    def told(self):
        """Every pid that has told its state."""
        return sorted(int(os.path.basename(p)[:-5]) for p in glob.glob(str(self.states / "*.json")))

    def close(self):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
        for log in self.logs:
            log.close()


def load(ports, seconds):
    return [subprocess.Popen([WRK, "-t1", "-c2", "-d%ds" % seconds,
                              "http://127.0.0.1:%d/" % port],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for port in ports]


def children(pid, count=2):
    """The pids of a server's workers, once it has forked `count` of them: gunicorn answers on
    its port before its last worker is forked (seconds later on a loaded machine)."""
    deadline = time.time() + 30
    while True:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                             text=True).stdout
        pids = [int(x) for x in out.split()]
        if len(pids) >= count or time.time() > deadline:
            return pids
        time.sleep(0.1)


def listed(stderr, pid):
    """The line record -a listed pid under (at the start, or when it was found)."""
    m = re.search(r"^perfpy: +(?:new: )?pid %d .*$" % pid, stderr, re.M)
    return m.group(0) if m else None


@needs_everything
def test_the_whole_machine_is_recorded_with_each_python_process_named(tmp_path):
    progs = Programs(tmp_path)
    try:
        on_312, port_a = progs.gunicorn("gunicorn312", venv("py3.12"), PERFPY_BACKEND="perf_jit")
        armed_311, port_b = progs.gunicorn("gunicorn311", venv("py3.11-fp"), PERFPY_ATTACH="1")
        new = {v: progs.start(v, [IN_ROOT, root_venv(v), BUSY]) for v in ROOT_PYTHONS}
        refusing = progs.start("refusing", [IN_ROOT, root_venv(ROOT_PYTHONS[0]), BUSY],
                               PYTHON_DISABLE_REMOTE_DEBUG="1")
        plain_313 = progs.start("py313", [venv("py3.13"), BUSY])
        gzip = progs.start("gzip", ["sh", "-c", "exec gzip -1 < /dev/zero > /dev/null"])
        workers_312, workers_311 = children(on_312.pid), children(armed_311.pid)
        assert len(workers_312) == 2 and len(workers_311) == 2
        wrk = load([port_a, port_b], 14)
        # Every program has run and said so (the 3.12 workers have written their jitdumps).
        deadline = time.time() + 30
        want = set(workers_312 + workers_311 + [p.pid for p in new.values()] +
                   [plain_313.pid, refusing.pid])
        while not want <= set(progs.told()) and time.time() < deadline:
            time.sleep(0.2)
        assert want <= set(progs.told()), (want, progs.told())
        for pid in workers_312:
            assert progs.settled(pid)["perfpy"], "names on from the start"
        before = tmp_files()
        r = perfpy("record", "-a", "--duration", "5", "-o", "all.data", cwd=tmp_path,
                   timeout=180)
        assert r.returncode == 0, r.stderr
        for w in wrk:
            w.wait()
        after = tmp_files()
        # The listing: how each process gets its names, or why it has none and the fix.
        for pid in workers_312:
            line = listed(r.stderr, pid)
            assert line and "names on already" in line, (pid, r.stderr)
        for pid in [armed_311.pid] + workers_311:
            line = listed(r.stderr, pid)
            assert line and "names switched on (PERFPY_ATTACH" in line, (pid, r.stderr)
        for v, p in new.items():
            line = listed(r.stderr, p.pid)
            assert line and "names switched on (PEP 768, perfpy's" in line, (v, r.stderr)
        line = listed(r.stderr, plain_313.pid)
        assert line and "no names: start it with PERFPY_ATTACH=1" in line, r.stderr
        line = listed(r.stderr, refusing.pid)
        assert line and "left alone" in line and "remote debugging is disabled" in line, \
            r.stderr
        s = progs.settled(refusing.pid)
        assert not s["perfpy"] and s["default_eval"], "untouched"
        assert listed(r.stderr, gzip.pid) is None, "a native program is no Python process"
        # Each switched process is off again, as it says itself; the one on from its start
        # stays on.
        for pid in workers_311 + [p.pid for p in new.values()]:
            s = progs.settled(pid)
            assert not s["perfpy"] and not s["sys"] and s["default_eval"], (pid, s)
        for pid in workers_312:
            assert progs.settled(pid)["perfpy"], "left as it was"
        # Nothing new in /tmp: the switched processes' files were moved out (or removed as
        # they switched off); those of the processes on from the start are theirs, and stay.
        assert after - before == set(), after - before
        for pid in workers_312:
            assert os.path.exists("/tmp/jit-%d.dump" % pid)
        # Each process's own functions, with whole stacks, in its own report.
        text = perfpy("report", "-i", "all.data", cwd=tmp_path)
        assert text.returncode == 0, text.stderr
        assert re.search(r"^processes$", text.stdout, re.M), text.stdout[:2000]
        for pid in workers_312 + workers_311:
            counts = collapsed(tmp_path, "--pid", str(pid), data="all.data")
            py = sum(n for s, n in counts.items() if "py::" in s)
            chain = sum(n for s, n in counts.items()
                        if re.search(r"py::app:[^;]*host_app\.py;py::crunch:[^;]*;py::step:", s))
            assert py >= 20 and chain >= 0.1 * py, (pid, sorted(counts.items(),
                                                                key=lambda kv: -kv[1])[:5])
            # Workers forked before names came on (3.11) run their loop unnamed; the 3.12 ones
            # are named down to the master's start.
            if pid in workers_312:
                whole = sum(n for s, n in counts.items()
                            if "py::Arbiter.run:" in s and "py::crunch:" in s)
                crunch = sum(n for s, n in counts.items() if "py::crunch:" in s)
                assert whole >= 0.8 * crunch, (pid, whole, crunch)
            assert not any("py::middle:" in s for s in counts), "another process's functions"
        for v, p in new.items():
            counts = collapsed(tmp_path, "--pid", str(p.pid), data="all.data")
            py = sum(n for s, n in counts.items() if "py::" in s)
            chain = sum(n for s, n in counts.items()
                        if re.search(r"py::middle:[^;]*busy\.py;py::leaf:", s))
            middle = sum(n for s, n in counts.items() if "py::middle:" in s)
            assert py >= 100 and middle >= 0.8 * py and chain >= 0.1 * py, (
                v, sorted(counts.items(), key=lambda kv: -kv[1])[:5])
            assert not any("py::crunch:" in s for s in counts)
        counts = collapsed(tmp_path, "--pid", str(plain_313.pid), data="all.data")
        assert sum(counts.values()) >= 100 and not any("py::" in s for s in counts), \
            "names off: its samples have the interpreter's frames only"
        counts = collapsed(tmp_path, "--pid", str(gzip.pid), data="all.data")
        assert sum(counts.values()) >= 100 and not any("py::" in s for s in counts)
        # The text report's processes table has each program's command line.
        assert re.search(r"^\s+[\d.]+%\s+\d+\s+" + str(plain_313.pid) + r"\s+.*busy\.py",
                         text.stdout, re.M), text.stdout[:3000]
    finally:
        progs.close()


@needs_everything
def test_sigterm_to_record_a_switches_every_target_off_and_leaves_nothing(tmp_path):
    """A server armed with PERFPY_ATTACH and a 3.14 program at the start, a 3.15 program
    started during the recording: each switched on, then SIGTERM to perfpy: each switched
    off, nothing left."""
    progs = Programs(tmp_path)
    try:
        armed_311, port = progs.gunicorn("gunicorn311", venv("py3.11-fp"), PERFPY_ATTACH="1")
        new = progs.start("py314", [IN_ROOT, root_venv(ROOT_PYTHONS[0]), BUSY])
        workers = children(armed_311.pid)
        wrk = load([port], 12)
        deadline = time.time() + 30
        while not set(workers + [new.pid]) <= set(progs.told()) and time.time() < deadline:
            time.sleep(0.2)
        before = tmp_files()
        rec = subprocess.Popen([PERFPY, "record", "-a", "-o", "all.data"], cwd=str(tmp_path),
                               env=child_env(HOME=str(tmp_path)), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        # Switched on in each; then a program that starts during the recording is found
        # (within a second or two of its start) and switched on too; then SIGTERM.
        deadline = time.time() + 30
        while time.time() < deadline and not all(
                (progs.state(p) or {}).get("perfpy") for p in workers + [new.pid]):
            time.sleep(0.2)
        assert all(progs.state(p)["perfpy"] for p in workers + [new.pid]), \
            [progs.state(p) for p in workers + [new.pid]]
        late = progs.start("late", [IN_ROOT, root_venv(ROOT_PYTHONS[-1]), BUSY])
        deadline = time.time() + 30
        while time.time() < deadline and not (progs.state(late.pid) or {}).get("perfpy"):
            time.sleep(0.2)
        assert (progs.state(late.pid) or {}).get("perfpy"), "the late one was switched on"
        time.sleep(1)
        rec.send_signal(signal.SIGTERM)
        out, err = rec.communicate(timeout=120)
        for w in wrk:
            w.wait()
        line = listed(err, late.pid)
        assert line and line.startswith("perfpy: new: ") and \
            "names switched on (PEP 768, perfpy's" in line, err
        for pid in (new.pid, late.pid):
            assert "switched Python names off in pid %d" % pid in err, err
        for pid in workers + [new.pid, late.pid]:
            s = progs.settled(pid)
            assert not s["perfpy"] and s["default_eval"], (pid, s, err)
        assert tmp_files() - before == set(), (tmp_files() - before, err)
        counts = collapsed(tmp_path, "--pid", str(late.pid), data="all.data")
        assert any(re.search(r"py::middle:[^;]*;py::leaf:", s) for s in counts), counts
        assert os.path.getsize(str(tmp_path / "all.data")) > 0
    finally:
        progs.close()


@pytest.mark.skipif(not (os.path.exists(venv("py3.11")) and ROOT_PYTHONS),
                    reason="needs the py3.11 venv and the sid root's py3.14 (scripts/test.sh)")
def test_top_a_names_every_python_process_and_switches_them_off(tmp_path):
    progs = Programs(tmp_path)
    try:
        armed = progs.start("py311", [venv("py3.11"), BUSY], PERFPY_ATTACH="1")
        new = progs.start("py314", [IN_ROOT, root_venv(ROOT_PYTHONS[0]), BUSY])
        deadline = time.time() + 30
        while not {armed.pid, new.pid} <= set(progs.told()) and time.time() < deadline:
            time.sleep(0.2)
        before = tmp_files()
        r = perfpy("top", "-a", "--duration", "5", "--window", "all", "--top", "5",
                   cwd=tmp_path, timeout=180)
        assert r.returncode == 0, r.stderr
        final = r.stdout.rsplit("== perfpy top ", 1)[-1]
        assert "final" in final.splitlines()[0], final[:500]
        for p in (armed, new):
            section = re.search(r"^== pid %d: .*?(?=^== pid |\Z)" % p.pid, final, re.M | re.S)
            assert section and re.search(r"^\s+[\d.]+%\s+[\d.]+%\s+\d+\s+py::middle\s",
                                         section.group(0), re.M), (p.pid, final[:4000])
            s = progs.settled(p.pid)
            assert not s["perfpy"] and s["default_eval"], (p.pid, s)
        assert tmp_files() - before == set(), tmp_files() - before
    finally:
        progs.close()


def test_a_process_in_a_container_is_switched_through_its_root(tmp_path):
    """A "container" (its own PID namespace and a private /tmp) running a 3.11 started with
    PERFPY_ATTACH=1: switched on and off from outside, its jitdump (at its namespace pid, in
    its own /tmp) collected under its host pid and removed as it switches off."""
    python = venv("py3.11")
    if not os.path.exists(python):
        pytest.skip("needs the py3.11 venv (scripts/test.sh)")
    marker = "perfpy-ns-all-%d" % os.getpid()
    # The checkout may itself be under /tmp, which the container's own hides: it is mounted
    # on its /mnt first (within the container's mount namespace only).
    inside = lambda path: os.path.join("/mnt", os.path.relpath(path, ROOT))
    inner = ('mount --bind %s /mnt && mount -t tmpfs tmpfs /tmp && exec %s %s "$0"'
             % (ROOT, inside(python), inside(BUSY)))
    proc = subprocess.Popen(["unshare", "--pid", "--mount", "--fork", "--kill-child",
                             "--mount-proc", "sh", "-c", inner, marker],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(PERFPY_ATTACH="1", PERFPY_TEST_STATE="stdout"))
    try:
        first = json.loads(proc.stdout.readline())
        host_pid = None
        for p in map(int, subprocess.run(["pgrep", "-f", marker], capture_output=True,
                                         text=True).stdout.split()):
            if "python" in os.readlink("/proc/%d/exe" % p):
                host_pid = p
        assert host_pid and first["pid"] != host_pid, (host_pid, first)
        ns_pid = first["pid"]
        before = tmp_files()
        r = perfpy("record", "-a", "--duration", "3", "-o", "all.data", cwd=tmp_path,
                   timeout=180)
        assert r.returncode == 0, r.stderr
        line = listed(r.stderr, host_pid)
        assert line and "names switched on (PERFPY_ATTACH" in line, r.stderr
        counts = collapsed(tmp_path, "--pid", str(host_pid), data="all.data")
        chain = sum(n for s, n in counts.items() if re.search(r"py::middle:[^;]*;py::leaf:", s))
        assert chain >= 20, sorted(counts.items(), key=lambda kv: -kv[1])[:5]
        assert os.path.exists(str(tmp_path / "all.data.perfpy" / ("jit-%d.dump" % host_pid)))
        assert not os.path.exists("/proc/%d/root/tmp/jit-%d.dump" % (host_pid, ns_pid)), \
            "its own file, removed as it switched off"
        since = time.time()
        while time.time() < since + 10:
            s = json.loads(proc.stdout.readline())
            if s["time"] > since:
                break
        assert not s["perfpy"] and s["default_eval"], s
        assert tmp_files() - before == set(), tmp_files() - before
    finally:
        subprocess.run(["pkill", "-KILL", "-f", marker])
        proc.kill()
        proc.wait()


def test_processes_this_user_may_not_look_into_are_listed_and_untouched(tmp_path):
    """perfpy record -a as another user (nobody, with perf_event_paranoid at 0 for the
    while): root's Python processes can't be read, so they are listed as such and left
    alone."""
    python = venv("py3.11")
    if not os.path.exists(python) or not shutil_which("setpriv"):
        pytest.skip("needs the py3.11 venv and setpriv (util-linux)")
    progs = Programs(tmp_path)
    paranoid = open("/proc/sys/kernel/perf_event_paranoid").read().strip()
    try:
        root_owned = progs.start("py311", [python, BUSY], PERFPY_ATTACH="1")
        progs.settled(root_owned.pid)
        os.chmod(str(tmp_path), 0o777)
        with open("/proc/sys/kernel/perf_event_paranoid", "w") as f:
            f.write("0")
        r = subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup",
                            "--clear-groups", PERFPY, "record", "-a", "--duration", "2",
                            "-o", "all.data"], cwd=str(tmp_path), capture_output=True,
                           text=True, timeout=120, env=child_env(HOME=str(tmp_path)))
        assert r.returncode == 0, r.stderr
        line = listed(r.stderr, root_owned.pid)
        why = "left alone: not allowed to read the memory of process %d" % root_owned.pid
        assert line and why in line and "ptrace" in line, r.stderr
        s = progs.settled(root_owned.pid)
        assert not s["perfpy"] and s["default_eval"], s
    finally:
        with open("/proc/sys/kernel/perf_event_paranoid", "w") as f:
            f.write(paranoid)
        progs.close()
