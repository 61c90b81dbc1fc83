#!/usr/bin/env python3
"""How much of perf's stack copy a Python program needs under perfpy's trampoline.

`perfpy record` has perf copy part of each thread's stack with every sample
(`--call-graph dwarf,SIZE`), and a stack deeper than the copy loses its outer frames. This
records a program whose hot loop runs N Python functions deep, once per interpreter and depth,
with the largest copy perf makes (65528 bytes), and has perfpy's own unwinder say how much of
the copy each sample needed to reach the program's start (the `stack_use` example of the CLI
crate). From that it prints, for each copy size, the share of samples whose whole stack fits.

Two shapes of call chain:
  calls   every function calls the next directly (Python to Python);
  mixed   every other call goes through C (`map`, `sorted(key=...)`: Python to C to Python),
          as frameworks' dispatch does.

Usage: benches/stack_size.py --python PY [--python PY ...] [--perfpy PERFPY]
                             [--stack-use STACK_USE] [--depths 20,60,120] [--seconds 3]
(3.14 and 3.15 run inside the sid root: scripts/in-root.sh python3 benches/stack_size.py ...)
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PROGRAM = r"""
import sys, time

def hot():
    t = 0
    for i in range(2000):
        t += i * i
    return t

def step(k):
    # One Python frame per level; in the mixed shape every other level calls the next
    # through C (map, sorted's key), as frameworks' dispatch does.
    if k <= 0:
        hot()
    elif MIXED and k % 4 == 0:
        list(map(step, [k - 1]))
    elif MIXED and k % 4 == 2:
        sorted([k - 1], key=step)
    else:
        step(k - 1)
    return 0

MIXED = sys.argv[2] == "mixed"
depth, end = int(sys.argv[1]), time.time() + float(sys.argv[3])
# <module>, then depth - 2 levels of step (k = depth - 3 ... 0), then hot: `depth` Python
# frames in all.
while time.time() < end:
    step(depth - 3)
"""

SIZES = [8192, 12288, 16384, 20480, 24576, 32768, 49152, 65528]


def measure(perfpy, stack_use, python, depth, shape, seconds, workdir):
    prog = os.path.join(workdir, "deep.py")
    with open(prog, "w") as f:
        f.write(PROGRAM)
    data = os.path.join(workdir, "deep-%d-%s.data" % (depth, shape))
    rec = subprocess.run([perfpy, "record", "-F", "999", "--stack-size", "65528", "-o", data,
                          "--", python, prog, str(depth), shape, str(seconds)],
                         capture_output=True, text=True)
    if rec.returncode != 0:
        raise SystemExit(rec.stderr)
    out = subprocess.run([stack_use, data], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def version(python):
    return subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def whole_share(use, size):
    """Share of all samples whose whole stack fits in a copy of `size` bytes."""
    fits = sum(n for kib, n in enumerate(use["whole_kib"]) if kib * 1024 <= size)
    return fits / max(use["samples"], 1)


def kib_at(use, share):
    """The KiB of copy the samples unwound whole need, at the `share` quantile."""
    whole = use["whole_kib"]
    need, seen = share * sum(whole), 0
    for kib, n in enumerate(whole):
        seen += n
        if seen >= need:
            return kib
    return len(whole) - 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", action="append", required=True)
    ap.add_argument("--perfpy", default=shutil.which("perfpy") or "perfpy")
    ap.add_argument("--stack-use", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "examples",
        "stack_use"))
    ap.add_argument("--depths", default="20,60,120")
    ap.add_argument("--shapes", default="calls,mixed")
    ap.add_argument("--seconds", type=float, default=3)
    a = ap.parse_args()
    if not os.access(a.stack_use, os.X_OK):
        raise SystemExit("no %s: cargo build --release -p perfpy-cli --example stack_use"
                         % a.stack_use)
    print("perf: %s" % subprocess.run(["perf", "version"], capture_output=True,
                                      text=True).stdout.strip())
    print()
    print("| CPython | depth | shape | samples | whole at 64 KiB | KiB for 50% / 99% / all | "
          + " | ".join("%g KiB" % (s / 1024) for s in SIZES[:-1]) + " |")
    print("|---|---|---|---|---|---|" + "---|" * (len(SIZES) - 1))
    with tempfile.TemporaryDirectory(prefix="perfpy-stack-") as workdir:
        for python in a.python:
            v = version(python)
            for depth in [int(d) for d in a.depths.split(",")]:
                for shape in a.shapes.split(","):
                    use = measure(a.perfpy, a.stack_use, python, depth, shape, a.seconds,
                                  workdir)
                    shares = ["%.1f%%" % (100 * whole_share(use, s)) for s in SIZES[:-1]]
                    print("| %s | %d | %s | %d | %.1f%% | %d / %d / %d | %s |" % (
                        v, depth, shape, use["samples"], 100 * whole_share(use, SIZES[-1]),
                        kib_at(use, 0.5), kib_at(use, 0.99), kib_at(use, 1.0),
                        " | ".join(shares)))
                    sys.stdout.flush()


if __name__ == "__main__":
    main()
