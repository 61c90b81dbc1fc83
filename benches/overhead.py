#!/usr/bin/env python3
"""Overhead of the perf trampoline: perfpy against CPython's built-in, on the same run.

Every workload runs in a fresh process under each mode, rounds interleaved (the order of modes
rotates each round) so drift on the machine spreads evenly; the workload times itself with
perf_counter, excluding interpreter startup. Prints medians and ratios as a Markdown table.

Modes (with --backend perf; with --backend perf_jit the same, for the jitdump backend):
  none     no trampoline
  perfpy   PERFPY_BACKEND=perf (perfpy's trampoline)
  builtin  -X perf (CPython 3.12+ only; -X perf_jit: 3.13+)

Two measures:
  --measure time          wall seconds (median of --rounds runs); honest but noisy on shared VMs
  --measure instructions  instructions executed (valgrind's callgrind), deterministic: the
                          workload runs at n and 2n iterations and the difference is reported,
                          so interpreter startup and perfpy's import cancel out; string
                          hashing is fixed (PYTHONHASHSEED=0)

Usage: benches/overhead.py [--measure time|instructions] [--rounds 5] [--pythons P ...]
                           [--workloads fib,loop,...] [--scale 1.0]
Interpreters default to the venvs made by scripts/setup-pythons.sh.
"""

import argparse
import glob
import os
import re
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# name -> (file, iterations at scale 1.0: about 0.7 s on CPython 3.11 here)
WORKLOADS = {
    "fib": ("fib.py", 40),
    "loop": ("loop.py", 5),
    "json": ("jsonrt.py", 130),
    "difflib": ("difflib_wl.py", 140),
    "ast.unparse": ("unparse.py", 36),
    "_pydecimal": ("pydecimal.py", 120),
}
SWITCHES = ("PYTHONPERFSUPPORT", "PYTHON_PERF_JIT_SUPPORT", "PERFPY_BACKEND")


def interpreter_info(py):
    out = subprocess.check_output(
        [py, "-c", "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.base_prefix)"],
        text=True).split("\n")
    minor, base = out[0], out[1]
    return minor, os.path.join(base, "bin", "python" + minor)


def modes_for(py, backend):
    minor, base = interpreter_info(py)
    modes = [("none", py, [], {}), ("perfpy", py, [], {"PERFPY_BACKEND": backend})]
    builtin_from = (3, 12) if backend == "perf" else (3, 13)
    if tuple(map(int, minor.split("."))) >= builtin_from:
        modes.append(("builtin", base, ["-X", backend], {}))
    return minor, modes


def run_once(exe, opts, env_extra, workload, n):
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    env.update(env_extra)
    p = subprocess.Popen([exe] + opts + [os.path.join(HERE, "workloads", workload), str(n)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = p.communicate()
    if p.returncode != 0:
        raise SystemExit("workload %s failed under %s %s:\n%s" % (workload, exe, opts, err))
    for f in glob.glob("/tmp/perf-%d.map" % p.pid) + glob.glob("/tmp/jit-%d.dump" % p.pid):
        os.unlink(f)
    return float(out.split()[-1])


def instructions_once(exe, opts, env_extra, workload, n):
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    # Fixed string hashing: with random seeds, dict-heavy workloads execute a few tenths of
    # a percent more or fewer instructions from one process to the next.
    env.update(env_extra, PYTHONHASHSEED="0")
    p = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", exe] + opts
        + [os.path.join(HERE, "workloads", workload), str(n)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = p.communicate()
    for f in glob.glob("/tmp/perf-%d.map" % p.pid) + glob.glob("/tmp/jit-%d.dump" % p.pid):
        os.unlink(f)
    if p.returncode != 0:
        raise SystemExit("workload %s failed under valgrind %s %s:\n%s" % (workload, exe, opts, err))
    m = re.search(r"Collected : (\d+)", err)
    if not m:
        raise SystemExit("no instruction count in valgrind's output:\n" + err[-2000:])
    return int(m.group(1))


def measure_instructions(exe, opts, env, workload, n):
    return (instructions_once(exe, opts, env, workload, 2 * n)
            - instructions_once(exe, opts, env, workload, n))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pythons", nargs="*")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--scale", type=float, default=None,
                    help="iterations relative to the defaults (time: 1.0, instructions: 0.05)")
    ap.add_argument("--measure", choices=("time", "instructions"), default="time")
    ap.add_argument("--backend", choices=("perf", "perf_jit"), default="perf")
    a = ap.parse_args()
    if a.measure == "instructions":
        if not shutil.which("valgrind"):
            raise SystemExit("--measure instructions needs valgrind (apt-get install valgrind)")
        a.rounds = 1  # deterministic
    if a.scale is None:
        a.scale = 1.0 if a.measure == "time" else 0.05
    pythons = a.pythons or sorted(
        (p for p in glob.glob(os.path.join(ROOT, ".venvs", "py3.*", "bin", "python"))
         if "-fp" not in p),
        key=lambda p: tuple(int(x) for x in p.split("py3.")[1].split("/")[0].split(".")))
    workloads = [w for w in a.workloads.split(",") if w]

    unit = "s" if a.measure == "time" else "M instr"
    x = "`-X %s`" % a.backend
    print("| Python | workload | none (%s) | perfpy %s (%s) | perfpy / none | %s (%s) "
          "| %s / none | perfpy / %s |" % (unit, a.backend, unit, x, unit, x, x))
    print("|---|---|---|---|---|---|---|---|")
    for py in pythons:
        minor, modes = modes_for(py, a.backend)
        for w in workloads:
            if w == "ast.unparse" and minor == "3.8":
                continue  # ast.unparse is new in 3.9
            file, n = WORKLOADS[w]
            n = max(1, int(n * a.scale))
            times = {m[0]: [] for m in modes}
            for r in range(a.rounds):
                order = modes[r % len(modes):] + modes[:r % len(modes)]
                for name, exe, opts, env in order:
                    if a.measure == "time":
                        times[name].append(run_once(exe, opts, env, file, n))
                    else:
                        times[name].append(measure_instructions(exe, opts, env, file, n) / 1e6)
            med = {k: statistics.median(v) for k, v in times.items()}
            if any(v != v for v in med.values()):  # nan: workload unavailable (3.8 unparse)
                continue
            fmt = "%.3f" if a.measure == "time" else "%.1f"
            row = [minor, w, fmt % med["none"], fmt % med["perfpy"],
                   "%.3f" % (med["perfpy"] / med["none"])]
            if "builtin" in med:
                row += [fmt % med["builtin"], "%.3f" % (med["builtin"] / med["none"]),
                        "**%.3f**" % (med["perfpy"] / med["builtin"])]
            else:
                row += ["–", "–", "–"]
            print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
