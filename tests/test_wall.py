"""Wall-clock and off-CPU profiles (`perfpy record --mode wall|off-cpu`): where a program's
time went, on the CPU and off it, and why each wait was, against what the program measured of
itself (real perf, real interpreters, real waits)."""

import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import PYTHONS, SCRIPTS, child_env, script
from recording import CLI_MARKS, by_leaf, collapsed, perfpy, record, running_binary

pytestmark = CLI_MARKS

#: A program whose waits are known: it times each of its parts itself (perf_counter) and
#: writes the times to truth.json.
KNOWN_WAITS = os.path.join(SCRIPTS, "known_waits.py")


@pytest.mark.parametrize("mode", ["wall", "off-cpu"])
def test_each_function_gets_its_time_and_each_wait_its_reason(tmp_path, py, mode):
    """20 × sleep(0.02), a lock held 200 ms while another thread waits for it, a child
    process of 0.3 s, a CPU loop: each function's time within 5% (or 10 ms) of what the
    program measured, and the reason right for each."""
    prog = KNOWN_WAITS
    truth_file = tmp_path / "truth.json"
    r = record(tmp_path, py.path, "--mode", mode,
               program=[prog, "2000000", str(truth_file)])
    assert ("wall clock: 999 Hz of CPU samples and every context switch" if mode == "wall"
            else "off CPU: every context switch") in r.stderr, r.stderr
    truth = json.loads(truth_file.read_text())
    counts = collapsed(tmp_path)

    def near(got_us, seconds, what):
        want = seconds * 1e6
        assert abs(got_us - want) <= max(0.05 * want, 10_000), (what, got_us, want)

    def share(t, key):
        return t.get(key, 0) / max(sum(t.values()), 1)

    sleeper, holder = by_leaf(counts, "sleeper"), by_leaf(counts, "holder")
    contender, child = by_leaf(counts, "contender"), by_leaf(counts, "child")
    spinner = by_leaf(counts, "spinner")
    waited = {f: sum(v for k, v in t.items() if k != "cpu")
              for f, t in [("sleeper", sleeper), ("holder", holder), ("contender", contender),
                           ("child", child)]}
    if mode == "wall":
        for name, t in [("sleeper", sleeper), ("holder", holder), ("contender", contender),
                        ("child", child), ("spinner", spinner)]:
            near(sum(t.values()), truth[name], name)
        # The loop runs on the CPU; off it only when the machine's other work preempted it
        # (on a busy machine, for much of the time).
        assert share(spinner, "cpu") + share(spinner, "[wait: preempted]") > 0.97, spinner
        assert spinner.get("cpu", 0) > 0, spinner
    else:
        # Only waits: each waiting function's time is all of it off the CPU.
        for name in ["sleeper", "holder", "contender", "child"]:
            near(waited[name], truth[name], name)
        assert not any(k == "cpu" for t in (sleeper, spinner) for k in t), spinner
    # The reasons, from the stacks (kernel frames as root; the C library's otherwise).
    # Waking from a wait, a thread may wait for the GIL or be preempted for a moment too.
    assert share(sleeper, "[wait: sleep]") > 0.9, sleeper
    assert share(holder, "[wait: sleep]") > 0.9, holder
    assert share(contender, "[wait: lock]") > 0.9, contender
    assert share(child, "[wait: child]") > 0.9, child

    text = perfpy("report", cwd=tmp_path).stdout
    what = "wall time" if mode == "wall" else "off-CPU time"
    assert re.match(r"[\d.]+ m?s of %s in \d+ threads of 2 processes \([\d.]+ m?s on CPU, "
                    r"[\d.]+ m?s off CPU\)" % what, text), text
    row = re.search(r"^\s+[\d.]+%\s+[\d.]+%\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+py::sleeper\s+"
                    r"\S+\s+sleep (\d+)%", text, re.M)
    assert row, text
    assert abs(float(row.group(1)) - truth["sleeper"] * 1e3) <= max(
        0.05 * truth["sleeper"] * 1e3, 10), (row.group(0), truth)
    assert int(row.group(4)) >= 90, row.group(0)
    assert re.search(r"^\s+[\d.]+%\s+[\d.]+ ms\s+\[wait: lock\]$", text, re.M), text


def stripped_copy(tmp_path, py):
    """`py` as a distribution ships it: its interpreter binary (and libpython, where it has
    one) copied and stripped of its symbol tables and build id (no debug file can be found
    for it), so that only exported functions have names, as Debian 11's python3.9 and Ubuntu
    22.04's python3.10. Returns the copy's python, a venv of py's base interpreter that sees
    py's packages (perfpy), and the environment it needs (LD_LIBRARY_PATH to the stripped
    libpython)."""
    def strip(src, dst):
        subprocess.run(["objcopy", "--strip-all", "--remove-section=.note.gnu.build-id",
                        src, str(dst)], check=True)
        syms = subprocess.run(["readelf", "-Ws", str(dst)], capture_output=True,
                              text=True).stdout
        assert "time_sleep" not in syms, "still named after strip: %s" % dst

    venv = tmp_path / "stripped"
    (venv / "bin").mkdir(parents=True)
    exe = venv / "bin" / ("python" + py.minor)
    strip(os.path.realpath(py.base), exe)
    (venv / "bin" / "python").symlink_to(exe.name)
    (venv / "pyvenv.cfg").write_text("home = %s\ninclude-system-site-packages = false\n"
                                     % os.path.dirname(py.base))
    site = venv / "lib" / ("python" + py.minor) / "site-packages"
    site.mkdir(parents=True)
    packages = subprocess.run([py.path, "-c", "import os, perfpy; print(os.path.dirname("
                               "os.path.dirname(perfpy.__file__)))"],
                              capture_output=True, text=True, check=True).stdout.strip()
    # addsitedir runs the .pth files there too: perfpy's start-up switch among them.
    (site / "tested.pth").write_text("import site; site.addsitedir(%r)\n" % packages)
    env = {}
    lib = running_binary(py)
    if "/libpython" in lib:
        (tmp_path / "lib").mkdir()
        strip(lib, tmp_path / "lib" / os.path.basename(lib))
        env["LD_LIBRARY_PATH"] = str(tmp_path / "lib")
    return str(venv / "bin" / "python"), env


#: time.sleep on CPython 3.8-3.10 is select(0, NULL, NULL, NULL, &tv); these interpreters.
SELECT_SLEEPERS = [p for p in PYTHONS if p.version < (3, 11)]


@pytest.mark.skipif(not shutil.which("objcopy"), reason="objcopy (binutils) not installed")
@pytest.mark.parametrize("mode, call_graph", [("wall", "dwarf"), ("off-cpu", "fp")])
@pytest.mark.parametrize("py", SELECT_SLEEPERS, ids=lambda p: p.minor)
def test_a_select_without_descriptors_is_a_sleep_on_a_stripped_interpreter(
        tmp_path, py, mode, call_graph):
    """time.sleep(0.3) on a stripped 3.8-3.10 waits in the kernel's select with no frame
    above the C library's named: the sleep comes from the system call's arguments in the
    registers perf samples at the switch (no descriptor), not from names; a select and a
    recv on a socket with nothing to read, in the same kernel functions, stay the network.
    With DWARF call graphs perf samples every register; with frame pointers perfpy asks for
    these (--user-regs)."""
    python, env = stripped_copy(tmp_path, py)
    prog = script(tmp_path, """
        import select, socket, sys, time
        def napper():
            time.sleep(0.3)
        def listener(sock):
            select.select([sock], [], [], 0.3)
        def receiver(sock):
            sock.settimeout(0.3)
            try:
                sock.recv(1)
            except socket.timeout:
                pass
        a, b = socket.socketpair()
        napper()
        listener(a)
        receiver(a)
    """)
    (tmp_path / "home").mkdir()
    r = perfpy("record", "--mode", mode, "--call-graph", call_graph, "--", python, prog,
               cwd=tmp_path, env=child_env(HOME=str(tmp_path / "home"), **env))
    assert r.returncode == 0, r.stderr
    if call_graph == "fp":
        assert "the waits' reasons from function names only" not in r.stderr, r.stderr
    counts = collapsed(tmp_path)
    # The stacks are the stripped interpreter's: nothing names time.sleep.
    assert not any("time_sleep" in s or "pysleep" in s for s in counts), counts

    def near(us, what):
        assert abs(us - 300_000) <= 30_000, (what, us, counts)

    def in_kernel(function, reason):
        return sum(n for s, n in counts.items()
                   if ";%s;" % function in s and s.endswith("[wait: %s]" % reason))

    # The kernel's select, as root (perf sees the kernel): 0.3 s of each, the sleep's with no
    # descriptor and the socket's with one.
    near(in_kernel("do_select", "sleep"), "time.sleep in do_select")
    near(in_kernel("do_select", "network"), "select on a socket in do_select")
    # socket.recv with a timeout polls its socket first.
    near(in_kernel("do_sys_poll", "network"), "recv with a timeout in do_sys_poll")
    if call_graph == "dwarf":
        # Whole stacks: under each function.
        napper, receiver = by_leaf(counts, "napper"), by_leaf(counts, "receiver")
        near(napper.get("[wait: sleep]", 0), "napper")
        near(receiver.get("[wait: network]", 0), "receiver")


def test_threads_waiting_for_the_gil_say_so(tmp_path):
    """Four threads running pure Python on two cores: most of each thread's off-CPU time is
    spent waiting for the GIL, under its own Python function."""
    py = PYTHONS[-1]
    prog = script(tmp_path, """
        import threading
        def work(n):
            s = 0
            for i in range(n):
                s += i
        ts = [threading.Thread(target=work, args=(1_500_000,)) for _ in range(4)]
        for t in ts: t.start()
        for t in ts: t.join()
    """)
    record(tmp_path, py.path, "--mode", "wall", program=[prog])
    counts = collapsed(tmp_path)
    work = by_leaf(counts, "work")
    off = {k: v for k, v in work.items() if k != "cpu"}
    assert off, work
    assert off.get("[wait: GIL]", 0) > 0.6 * sum(off.values()), work


def test_a_multi_event_recording_keeps_its_events_apart_unless_it_is_a_timeline(tmp_path):
    """--event on a wall-clock recording reads one of its events as plain samples (counts),
    and --mode wall refuses --event, which would make the timeline something else."""
    py = PYTHONS[-1]
    prog = KNOWN_WAITS
    record(tmp_path, py.path, "--mode", "wall",
           program=[prog, "300000", str(tmp_path / "t.json")])
    text = perfpy("report", "--event", "context-switches", cwd=tmp_path).stdout
    assert re.match(r"\d+ cs/period=1/ samples in \d+ process", text), text
    assert "also holds" in text and "cpu-clock/freq=999/" in text, text
    r = perfpy("record", "--mode", "wall", "-e", "cycles", "--", py.path, "-c", "pass",
               cwd=tmp_path)
    assert r.returncode != 0
    assert "--event cycles can't be given with --mode wall" in r.stderr, r.stderr


def test_idle_threads_can_be_left_out(tmp_path):
    """A pool thread that waits on its queue the whole run: in the wall-clock profile, with
    its wait as a lock; `--no-idle` leaves it out and says so, `--idle` keeps it."""
    py = PYTHONS[-1]
    prog = script(tmp_path, """
        import queue, threading, time
        def pool_worker(q):
            q.get()
        def busy(seconds):
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                pass
        q = queue.Queue()
        t = threading.Thread(target=pool_worker, args=(q,))
        t.start()
        busy(1.0)
        q.put(None)
        t.join()
    """)
    record(tmp_path, py.path, "--mode", "wall", program=[prog])
    every = collapsed(tmp_path)
    assert any("py::pool_worker:" in s and s.endswith("[wait: lock]") for s in every), every
    r = perfpy("report", "--format", "collapsed", "--no-idle", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "left out 1 idle thread" in r.stderr, (r.stderr, perfpy("report", cwd=tmp_path).stdout)
    assert "py::pool_worker:" not in r.stdout, r.stdout
    assert "py::busy:" in r.stdout, r.stdout
    kept = perfpy("report", "--format", "collapsed", "--no-idle", "--idle", cwd=tmp_path)
    assert "py::pool_worker:" in kept.stdout


def test_unprivileged_wall_mode_says_what_it_needs(tmp_path):
    """Context switches happen in the kernel: above perf_event_paranoid 1 perf samples none
    of a user's, so --mode wall refuses there, saying how to allow it (and runs otherwise)."""
    import subprocess
    import perfpy as installed
    cli = os.environ.get("PERFPY_CLI") or os.path.join(os.path.dirname(installed.__file__),
                                                       "_bin", "perfpy")
    paranoid = int(open("/proc/sys/kernel/perf_event_paranoid").read())
    os.chmod(tmp_path, 0o777)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", cli,
                        "record", "--mode", "wall", "--", "/bin/sleep", "0.1"],
                       cwd=str(tmp_path), capture_output=True, text=True,
                       env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    if paranoid > 1:
        assert r.returncode == 2, r.stderr
        assert "perf_event_paranoid at 1 or below (it is %d here)" % paranoid in r.stderr
        assert "sudo sysctl kernel.perf_event_paranoid=1" in r.stderr and "--mode cpu" in r.stderr
        assert not (tmp_path / "perf.data").exists()
    else:
        assert r.returncode == 0, r.stderr
