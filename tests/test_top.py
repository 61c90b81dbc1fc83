"""`perfpy top`: the live screen in a real terminal (tmux: keys sent, the screen read back),
plain snapshots without one that rank functions as `perfpy report` does on the same
recording, a program started by top, the wall-clock mode, and every way of stopping it
(q, SIGTERM, --duration) leaving the target's evaluator as it was and nothing in /tmp."""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import PERFPY, PYTHONS, ROOT, SCRIPTS, child_env, script
from recording import CLI_MARKS, perfpy, python_rows
from servers import tmp_files

pytestmark = CLI_MARKS

BUSY = os.path.join(SCRIPTS, "busy.py")
TMUX = shutil.which("tmux")
#: Where the screen test leaves its capture for the README (scripts/top-screenshot.sh).
SHOTS = os.environ.get("PERFPY_SCREENSHOTS")


def switchable():
    """The newest interpreter, and what its environment needs for top -p to switch names on
    in it: nothing from 3.14 (PEP 768), PERFPY_ATTACH=1 before."""
    py = PYTHONS[-1]
    return py, ({} if py.version >= (3, 14) else {"PERFPY_ATTACH": "1"})


class Target:
    def __init__(self, tmp_path, source=None, python=None, **env):
        self.states = tmp_path / "states"
        self.states.mkdir(exist_ok=True)
        py, extra = switchable()
        extra.update(env)
        argv = [python or py.path, source or BUSY]
        self.log = open(str(tmp_path / "target.log"), "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=child_env(PERFPY_TEST_STATE=str(self.states), **extra))
        self.wait_state()

    def state(self):
        import json
        try:
            return json.load(open(str(self.states / ("%d.json" % self.proc.pid))))
        except (OSError, ValueError):
            return None

    def wait_state(self, after=0.0):
        deadline = time.time() + 30
        while time.time() < deadline:
            s = self.state()
            if s and s["time"] > after:
                return s
            time.sleep(0.1)
        raise AssertionError("the target said nothing")

    def off(self):
        s = self.wait_state(after=time.time())
        return not s["perfpy"] and not s["sys"] and s["default_eval"]

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


def snapshots(text):
    """Plain top's output, split at each snapshot's header: [(header, body)]."""
    parts = re.split(r"^(== perfpy top .*)$", text, flags=re.M)
    return [(parts[i], parts[i + 1]) for i in range(1, len(parts) - 1, 2)]


@pytest.mark.skipif(not TMUX, reason="no tmux (Debian's tmux; scripts/test.sh installs it on "
                                     "the host, whose run checks the screen)")
def test_the_screen_shows_the_hottest_function_keys_work_and_q_leaves_it_as_it_was(tmp_path):
    t = Target(tmp_path, source=script(tmp_path, RANKED, "ranked.py"))
    session = "perfpy-top-%d" % os.getpid()
    done = tmp_path / "exit"
    before = tmp_files()
    env = child_env(HOME=str(tmp_path), TERM="xterm-256color")
    cmd = "%s top -p %d; echo $? > %s" % (PERFPY, t.proc.pid, done)
    subprocess.run([TMUX, "new-session", "-d", "-s", session, "-x", "150", "-y", "45", cmd],
                   check=True, env=env, cwd=str(tmp_path))

    def screen(escapes=False):
        return subprocess.run([TMUX, "capture-pane", "-p", "-t", session] +
                              (["-e"] if escapes else []),
                              capture_output=True, text=True).stdout

    def wait_for(pattern, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = screen()
            if re.search(pattern, s, re.M):
                return s
            time.sleep(0.1)
        raise AssertionError("%r not on the screen in %s s:\n%s" % (pattern, timeout, screen()))

    try:
        # Once perf's samples flow, the hottest function is on the screen within 3 s.
        wait_for(r"[1-9]\d* samples in view", 60)
        flowing = time.time()
        s = wait_for(r"^\s+[\d.]+%\s+[\d.]+%\s+\d+\s+py::work\s", 10)
        assert time.time() - flowing <= 3.0, "py::work took %.1f s" % (time.time() - flowing)
        assert "native code" in s and "_PyEval_EvalFrameDefault" in s, s
        first = python_screen_rows(s)
        assert first[0][3] == "py::work", s
        time.sleep(2)
        if SHOTS:
            os.makedirs(SHOTS, exist_ok=True)
            with open(os.path.join(SHOTS, "top.ansi"), "w") as f:
                f.write(screen(escapes=True))
            with open(os.path.join(SHOTS, "top.txt"), "w") as f:
                f.write(screen())
        subprocess.run([TMUX, "send-keys", "-t", session, "t"], check=True)
        s = wait_for(r"by total", 5)
        subprocess.run([TMUX, "send-keys", "-t", session, "n"], check=True)
        s = wait_for(r"by total", 5)
        deadline = time.time() + 5
        while "native code" in s and time.time() < deadline:
            time.sleep(0.1)
            s = screen()
        assert "native code" not in s, s
        subprocess.run([TMUX, "send-keys", "-t", session, "w"], check=True)
        wait_for(r"since start, by total", 5)
        subprocess.run([TMUX, "send-keys", "-t", session, " "], check=True)
        wait_for(r"PAUSED", 5)
        subprocess.run([TMUX, "send-keys", "-t", session, "q"], check=True)
        deadline = time.time() + 30
        while not done.exists() and time.time() < deadline:
            time.sleep(0.1)
        assert done.exists(), "top did not exit on q:\n%s" % screen()
        assert done.read_text().strip() == "0"
        assert t.proc.poll() is None, "the target keeps running"
        assert t.off(), t.state()
        assert tmp_files() - before == set(), tmp_files() - before
    finally:
        subprocess.run([TMUX, "kill-session", "-t", session], capture_output=True)
        t.close()


@pytest.mark.skipif(not TMUX, reason="no tmux (Debian's tmux; scripts/test.sh installs it on "
                                     "the host, whose run checks the screen)")
def test_the_terminal_closing_ends_top_with_the_target_as_it_was(tmp_path):
    """The terminal top draws on goes away (tmux kill-session: SIGHUP): the names it switched
    on are switched off, and nothing stays in /tmp."""
    t = Target(tmp_path)
    session = "perfpy-top-hup-%d" % os.getpid()
    before = tmp_files()
    env = child_env(HOME=str(tmp_path), TERM="xterm-256color")
    subprocess.run([TMUX, "new-session", "-d", "-s", session, "-x", "120", "-y", "40",
                    "%s top -p %d" % (PERFPY, t.proc.pid)], check=True, env=env,
                   cwd=str(tmp_path))
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not re.search(
                r"[1-9]\d* samples in view", subprocess.run(
                    [TMUX, "capture-pane", "-p", "-t", session], capture_output=True,
                    text=True).stdout):
            time.sleep(0.2)
        assert (t.state() or {}).get("perfpy") or (t.state() or {}).get("sys"), t.state()
        subprocess.run([TMUX, "kill-session", "-t", session], check=True)
        # top switches the names off as it goes (perf first stops and writes out).
        deadline = time.time() + 30
        while time.time() < deadline and not t.off():
            pass
        assert t.off(), t.state()
        assert tmp_files() - before == set(), tmp_files() - before
    finally:
        subprocess.run([TMUX, "kill-session", "-t", session], capture_output=True)
        t.close()


def python_screen_rows(text):
    """The Python functions' rows on the screen: [(self%, total%, samples, function)]."""
    rows = []
    for line in text.splitlines():
        m = re.match(r"^\s+([\d.]+)%\s+([\d.]+)%\s+(\d+)\s+(py::\S+)", line)
        if m:
            rows.append((float(m.group(1)), float(m.group(2)), int(m.group(3)), m.group(4)))
    return rows


#: Three functions with known shares of one loop's time (3:2:1 of the work).
RANKED = r"""
import os, sys
sys.path.insert(0, %r)
import telltale

def work(n):
    s = 0
    for i in range(n):
        s += i * i
    return s

def big():
    return work(3000)

def medium():
    return work(2000)

def small():
    return work(1000)

while True:
    big(); medium(); small()
""" % os.path.join(ROOT, "tests", "apps")


def test_plain_snapshots_rank_as_the_report_of_the_same_recording(tmp_path):
    t = Target(tmp_path, source=script(tmp_path, RANKED, "ranked.py"))
    before = tmp_files()
    try:
        r = perfpy("top", "-p", str(t.proc.pid), "--duration", "6", "--window", "all",
                   "-o", "top.data", cwd=tmp_path, timeout=120)
        assert r.returncode == 0, r.stderr
        shots = snapshots(r.stdout)
        assert len(shots) >= 3, r.stdout[:3000]
        header, last = shots[-1]
        assert "final" in header and "since start" in header, header
        top_rows = python_rows(last)
        report = perfpy("report", "-i", "top.data", cwd=tmp_path)
        assert report.returncode == 0, report.stderr
        report_rows = python_rows(report.stdout)
        assert top_rows and report_rows, (last, report.stdout)
        # The same ranking of the functions that do the work, shares within 5 points.
        def shares(rows, col):
            return {f: row[col] for row in rows for f in [row[3]]
                    if f in ("py::work", "py::big", "py::medium", "py::small")}
        for col in (0, 1):  # self, total
            a, b = shares(top_rows, col), shares(report_rows, col)
            assert set(a) == set(b) == {"py::work", "py::big", "py::medium", "py::small"}, (a, b)
            for f in a:
                assert abs(a[f] - b[f]) <= 5, (f, a, b)
            order = lambda d: sorted(d, key=lambda f: -d[f])
            assert order(a)[:1] == order(b)[:1], (a, b)
        totals = shares(top_rows, 1)
        assert totals["py::big"] > totals["py::medium"] > totals["py::small"], totals
        assert t.off(), t.state()
        assert tmp_files() - before == set(), tmp_files() - before
    finally:
        t.close()


def test_sigterm_stops_top_with_the_target_switched_off_and_nothing_left(tmp_path):
    t = Target(tmp_path)
    before = tmp_files()
    try:
        top = subprocess.Popen([PERFPY, "top", "-p", str(t.proc.pid), "--interval", "0.5"],
                               cwd=str(tmp_path), env=child_env(HOME=str(tmp_path)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline and not (t.state() or {}).get("perfpy") \
                and not (t.state() or {}).get("sys"):
            time.sleep(0.1)
        time.sleep(1.5)
        top.send_signal(signal.SIGTERM)
        out, err = top.communicate(timeout=60)
        assert top.returncode == 128 + signal.SIGTERM, (top.returncode, err)
        assert "py::middle" in out, out[-3000:]
        assert "switched Python names off in pid %d" % t.proc.pid in err, err
        assert t.off(), t.state()
        assert tmp_files() - before == set(), tmp_files() - before
    finally:
        t.close()


def test_a_program_top_starts_is_named_and_stopped_at_the_end(tmp_path):
    py, _ = switchable()
    before = tmp_files()
    env = child_env(HOME=str(tmp_path), PERFPY_TEST_STATE=str(tmp_path))
    r = subprocess.run([PERFPY, "top", "--duration", "4", "--", py.path, BUSY],
                       cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    header, last = snapshots(r.stdout)[-1]
    rows = python_rows(last)
    assert rows and rows[0][3] == "py::middle" and rows[0][0] >= 50, last
    started = [int(f[:-5]) for f in os.listdir(str(tmp_path)) if f.endswith(".json")]
    assert started, "the program ran"
    for pid in started:
        assert not os.path.exists("/proc/%d" % pid) or \
            open("/proc/%d/stat" % pid).read().split(")")[1].split()[0] in "ZX", \
            "the program was stopped"
    assert tmp_files() - before == set(), tmp_files() - before


NAPS = r"""
import os, sys, time
sys.path.insert(0, %r)
import telltale

def nap():
    time.sleep(0.02)

def spin():
    end = time.perf_counter() + 0.02
    while time.perf_counter() < end:
        pass

while True:
    nap(); spin()
""" % os.path.join(ROOT, "tests", "apps")


@pytest.mark.skipif(os.geteuid() != 0, reason="the wall-clock mode needs root or "
                                              "perf_event_paranoid <= 1 (tested as root)")
def test_wall_mode_shows_waits_and_their_reasons(tmp_path):
    t = Target(tmp_path, source=script(tmp_path, NAPS, "naps.py"))
    before = tmp_files()
    try:
        r = perfpy("top", "-p", str(t.proc.pid), "--mode", "wall", "--duration", "6",
                   "--window", "all", cwd=tmp_path, timeout=120)
        assert r.returncode == 0, r.stderr
        header, last = snapshots(r.stdout)[-1]
        rows = {}
        for line in last.splitlines():
            m = re.match(r"^\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)\s+(py::\S+)\s+\S+\s*(.*)$", line)
            if m:
                rows[m.group(4)] = (float(m.group(1)), m.group(5))
        assert "py::nap" in rows and "py::spin" in rows, last
        # Half asleep, half spinning (the main thread; the telltale thread mostly sleeps).
        assert "sleep" in rows["py::nap"][1], rows
        assert 15 <= rows["py::nap"][0] <= 70 and 15 <= rows["py::spin"][0] <= 70, rows
        assert t.off(), t.state()
        assert tmp_files() - before == set(), tmp_files() - before
    finally:
        t.close()
