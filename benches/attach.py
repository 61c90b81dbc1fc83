#!/usr/bin/env python3
"""What `perfpy record --pid` costs a running CPython: before, during and after.

A long-lived process runs a call-heavy loop (fib(20) over and over) and reports, every 0.25 s,
how many calls it made per second of its own CPU time (time.thread_time(), so perf's share of
the two cores doesn't count) and whether a trampoline is on (asked of itself). After a warm-up,
`perfpy record --pid PID --duration S` switches names on inside it, records, and switches them
off. The rate is compared per phase: before, during (trampoline on, perf recording), and after
(trampoline off again). After/before should be 1.00 within noise: once switched off, the eval
hook is gone and 3.11+'s inlined calls are back. Two targets: the interpreter itself (CPython's
own trampoline is switched on) and a venv with perfpy installed (perfpy's). Prints a Markdown
table. CPU-time rates: this machine has no hardware counters for instruction counts.

With --measure instructions the target runs under callgrind instead, and the table gives
instructions per call in each phase (callgrind's counters dumped at each boundary): the
number that doesn't move with the machine's load.

Usage: benches/attach.py --python /usr/bin/python3.14 [--venv-python V] [--perfpy PERFPY]
                         [--before 4] [--during 4] [--after 4] [--measure instructions]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

TARGET = r"""
import sys, time
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def active():
    pf = sys.modules.get("perfpy")
    return getattr(sys, "is_stack_trampoline_active", lambda: False)() or bool(pf and pf.is_stack_trampoline_active())
def serve():
    calls, start, cpu = 0, time.perf_counter(), time.thread_time()
    while True:
        fib(20)
        calls += 1
        now = time.perf_counter()
        if now - start >= 0.25:
            used = time.thread_time() - cpu
            print("%f %f %d" % (time.monotonic(), calls / used, active()), flush=True)
            calls, start, cpu = 0, now, time.thread_time()
serve()
"""


def target_env():
    """The target's environment: no switch set, perfpy's dormant attach armed (before 3.14;
    unused on 3.14+)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPERFSUPPORT", "PYTHON_PERF_JIT_SUPPORT", "PERFPY_BACKEND")}
    env["PERFPY_ATTACH"] = "1"
    return env


def measure(python, perfpy, before, during, after, work):
    log_path = os.path.join(work, "target.log")
    script = os.path.join(work, "target.py")
    with open(script, "w") as f:
        f.write(TARGET)
    env = target_env()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([python, script], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        time.sleep(before + 0.5)
        t0 = time.monotonic()
        r = subprocess.run([perfpy, "record", "--pid", str(proc.pid), "--duration", str(during),
                            "-o", os.path.join(work, "perf.data")],
                           capture_output=True, text=True, cwd=work)
        t1 = time.monotonic()
        if r.returncode != 0:
            sys.exit("perfpy record failed:\n" + r.stderr)
        time.sleep(after + 0.5)
    finally:
        proc.kill()
        proc.wait()
    rows = []
    for line in open(log_path):
        parts = line.split()
        if len(parts) == 3:
            rows.append((float(parts[0]), float(parts[1]), parts[2] == "1"))
    start = rows[0][0]
    phases = {
        # The first half second of the process is start-up and specialisation.
        "before": [r for t, r, a in rows if start + 0.5 <= t < t0 and not a],
        "during": [r for t, r, a in rows if a],
        "after": [r for t, r, a in rows if t > t1 + 0.5 and not a],
    }
    return phases, r.stderr


CALLGRIND_TARGET = r"""
import sys
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def active():
    pf = sys.modules.get("perfpy")
    return getattr(sys, "is_stack_trampoline_active", lambda: False)() or bool(pf and pf.is_stack_trampoline_active())
def serve():
    calls = 0
    while True:
        fib(15)
        calls += 1
        print("%d %d" % (calls, active()), flush=True)
serve()
"""


def instructions(python, perfpy, seconds, work):
    """Instructions per fib(15) call before, during and after, counted by callgrind (whose
    counters are dumped and zeroed at each phase boundary with callgrind_control)."""
    log_path = os.path.join(work, "target.log")
    script = os.path.join(work, "target.py")
    with open(script, "w") as f:
        f.write(CALLGRIND_TARGET)
    out = os.path.join(work, "cg.out")
    env = target_env()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                                 python, script], stdout=log, stderr=subprocess.DEVNULL, env=env)

    def calls():
        lines = open(log_path).read().splitlines()
        return (int(lines[-1].split()[0]), lines[-1].split()[1] == "1") if lines else (0, False)

    def dump():
        before = set(os.listdir(work))
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True)
        n = calls()[0]
        for _ in range(200):
            new = [f for f in set(os.listdir(work)) - before if f.startswith("cg.out.")]
            if new:
                text = open(os.path.join(work, new[0])).read()
                if "\nsummary:" in text or "\ntotals:" in text:
                    m = [l for l in text.splitlines() if l.startswith(("summary:", "totals:"))]
                    return n, int(m[-1].split()[1])
            time.sleep(0.05)
        sys.exit("callgrind wrote no dump")

    try:
        while calls()[0] < 20:  # start-up and specialisation
            time.sleep(0.2)
        phases = {}
        c0, _ = dump()
        time.sleep(seconds)
        c1, ir = dump()
        phases["before"] = ir / (c1 - c0)
        r = subprocess.run([perfpy, "record", "--pid", str(proc.pid), "--duration", str(seconds),
                            "-o", os.path.join(work, "perf.data")],
                           capture_output=True, text=True, cwd=work)
        if r.returncode != 0:
            sys.exit("perfpy record failed:\n" + r.stderr)
        c2, ir = dump()
        phases["during"] = ir / (c2 - c1)
        while calls()[1]:
            time.sleep(0.1)
        c3, _ = dump()
        time.sleep(seconds)
        c4, ir = dump()
        phases["after"] = ir / (c4 - c3)
        return phases, (c1 - c0, c2 - c1, c4 - c3)
    finally:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", required=True,
                    help="a CPython 3.14+ without perfpy (or, before 3.14, one with perfpy: "
                         "its dormant attach is armed with PERFPY_ATTACH=1)")
    ap.add_argument("--venv-python", help="a venv of it with perfpy installed")
    ap.add_argument("--perfpy", default=os.path.join(sys.prefix, "bin", "perfpy"))
    ap.add_argument("--before", type=float, default=4)
    ap.add_argument("--during", type=float, default=4)
    ap.add_argument("--after", type=float, default=4)
    ap.add_argument("--measure", choices=["cpu-time", "instructions"], default="cpu-time",
                    help="instructions: run the target under callgrind and count them")
    args = ap.parse_args()
    old = subprocess.check_output([args.python, "-c", "import sys; print(sys.version_info < (3, 14))"],
                                  text=True).strip() == "True"
    targets = [("perfpy's (PERFPY_ATTACH)" if old else "CPython's trampoline", args.python)]
    if args.venv_python:
        targets.append(("perfpy's trampoline", args.venv_python))
    if args.measure == "instructions":
        version = subprocess.check_output(
            [args.python, "-c", "import sys; print(sys.version.split()[0])"], text=True).strip()
        print("CPython %s under callgrind, instructions per fib(15) call (calls counted)\n"
              % version)
        print("| switched on | before | during | after | after/before |")
        print("|---|---|---|---|---|")
        for label, python in targets:
            with tempfile.TemporaryDirectory() as work:
                ir, n = instructions(python, args.perfpy, args.before, work)
            print("| %s | %.0f (%d) | %.0f (%d) | %.0f (%d) | %.4f |" % (
                label, ir["before"], n[0], ir["during"], n[1], ir["after"], n[2],
                ir["after"] / ir["before"]))
        return
    version = subprocess.check_output([args.python, "-c", "import sys; print(sys.version.split()[0])"],
                                      text=True).strip()
    print("CPython %s, fib(20) calls per CPU second over 0.25 s windows: median, and in "
          "brackets the 90th percentile (the least disturbed windows)\n" % version)
    print("| switched on | before | during | after | after/before (median) | after/before (p90) |")
    print("|---|---|---|---|---|---|")
    for label, python in targets:
        with tempfile.TemporaryDirectory() as work:
            phases, _ = measure(python, args.perfpy, args.before, args.during, args.after, work)
        med = {k: statistics.median(v) for k, v in phases.items()}
        p90 = {k: sorted(v)[int(0.9 * (len(v) - 1))] for k, v in phases.items()}
        print("| %s | %.0f (%.0f) | %.0f (%.0f) | %.0f (%.0f) | %.3f | %.3f |" % (
            label, med["before"], p90["before"], med["during"], p90["during"], med["after"],
            p90["after"], med["after"] / med["before"], p90["after"] / p90["before"]))

if __name__ == "__main__":
    main()
