#!/usr/bin/env python3
"""What watching a running program costs, live (`perfpy top`) against recording it (`perfpy
record --pid`) and against py-spy's live view (`py-spy top`), on the same run.

A long-lived CPython runs a call-heavy loop (fib(20) over and over) and says every 0.25 s how
many calls it made in that wall-clock time. Each watcher in turn attaches to it for
--seconds (the order rotated each round): names switched on, perf sampling at 999 Hz with
DWARF stacks, and off again after. Per watcher, the medians over the rounds of:

* the program's calls per second while watched, against its rate just before (the
  trampoline's own cost, the same for record and top, is part of it; so is the CPU the
  watcher takes from the program on a machine with few cores);
* the watcher's own CPU time per second watched (perfpy and perf together, from the rusage
  of the watcher's process tree);
* the samples it took.

Prints a Markdown table. py-spy is looked for next to this interpreter and on PATH, and run
under `script` (it draws on a terminal); its row is left out when it isn't there.

Usage: benches/top_cost.py --python .venvs/py3.13/bin/python [--perfpy PERFPY]
                           [--seconds 8] [--rounds 3]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TARGET = r"""
import time
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
calls, start = 0, time.perf_counter()
while True:
    fib(20)
    calls += 1
    now = time.perf_counter()
    if now - start >= 0.25:
        print("%f %f" % (time.monotonic(), calls / (now - start)), flush=True)
        calls, start = 0, now
"""


def watchers(perfpy, pyspy, seconds, out):
    w = {
        "perfpy record --pid": lambda pid: [perfpy, "record", "--pid", str(pid), "--duration",
                                            str(seconds), "-o", os.path.join(out, "r.data")],
        "perfpy top --plain": lambda pid: [perfpy, "top", "-p", str(pid), "--plain",
                                           "--duration", str(seconds), "--window", "all"],
    }
    if pyspy:
        # py-spy top draws on a terminal: `script` gives it one.
        w["py-spy top (100 Hz, Python frames only)"] = lambda pid: [
            "timeout", "-s", "INT", str(seconds), "script", "-qfec",
            "%s top --pid %d --nonblocking" % (pyspy, pid), "/dev/null"]
    return w


def rate(lines, t0, t1):
    """The program's mean calls/s between monotonic times t0 and t1."""
    got = [float(r) for t, r in (l.split() for l in lines) if t0 <= float(t) <= t1]
    return statistics.mean(got) if got else float("nan")


def run_one(argv, lines_of):
    """Runs a watcher to its end; (the program's rate before, its rate while watched, what
    the watcher printed, the samples it said it took)."""
    time.sleep(2)
    t0 = time.monotonic()
    before = rate(lines_of(), t0 - 2, t0)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate()
    t1 = time.monotonic()
    # Not the first 1.5 s (names coming on) nor the last 0.5 s (going off).
    during = rate(lines_of(), t0 + 1.5, t1 - 0.5)
    samples = re.findall(r"(\d+) samples", out)
    return before, during, out, (int(samples[-1]) if samples else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", required=True)
    ap.add_argument("--perfpy", default=shutil.which("perfpy"))
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    pyspy = (shutil.which("py-spy", path=os.path.dirname(sys.executable))
             or shutil.which("py-spy"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPERFSUPPORT", "PYTHON_PERF_JIT_SUPPORT", "PERFPY_BACKEND")}
    env["PERFPY_ATTACH"] = "1"
    with tempfile.TemporaryDirectory() as out:
        log = os.path.join(out, "target.log")
        with open(log, "w") as f:
            target = subprocess.Popen([a.python, "-c", TARGET], stdout=f, env=env)
        lines_of = lambda: open(log).read().splitlines()
        results = {}
        try:
            ws = watchers(a.perfpy, pyspy, a.seconds, out)
            names = list(ws)
            for r in range(a.rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    # The watcher's process tree (perf too: perfpy waits for it) in this
                    # script's children's times.
                    cpu0 = os.times()
                    before, during, text, samples = run_one(ws[name](target.pid), lines_of)
                    cpu1 = os.times()
                    cpu = (cpu1.children_user - cpu0.children_user
                           + cpu1.children_system - cpu0.children_system)
                    results.setdefault(name, []).append((before, during, cpu / a.seconds,
                                                         samples))
                    print("round %d %-40s before %8.0f calls/s, during %8.0f, watcher CPU "
                          "%.2f s/s, samples %s" % (r + 1, name, before, during,
                                                    cpu / a.seconds, samples), file=sys.stderr)
        finally:
            target.kill()
            target.wait()
    v = subprocess.run([a.python, "-c", "import sys; print(sys.version.split()[0])"],
                       capture_output=True, text=True).stdout.strip()
    print("\nCPython %s, fib(20) in a loop, watched %.0f s per round, %d rounds (medians):\n"
          % (v, a.seconds, a.rounds))
    print("| watcher | program's calls/s before | while watched | watched / before | "
          "watcher's CPU per second | samples |")
    print("|---|---|---|---|---|---|")
    for name, rows in results.items():
        before = statistics.median(r[0] for r in rows)
        during = statistics.median(r[1] for r in rows)
        cpu = statistics.median(r[2] for r in rows)
        samples = [r[3] for r in rows if r[3] is not None]
        print("| %s | %.0f | %.0f | %.2fx | %.2f s | %s |" % (
            name, before, during, during / before, cpu,
            "%d" % statistics.median(samples) if samples else "-"))


if __name__ == "__main__":
    main()
