#!/usr/bin/env python3
"""perfpy report against perf's own pipeline, on one recording of N distinct Python functions.

Records `benches/workloads/manyfuncs.py N SECONDS` once with `perfpy record --backend perf-jit
--keep-jit-files` (so perf inject finds the jitdump in /tmp), then times, on that same file:

* `perfpy report --format collapsed` (the release build);
* `perf inject --jit` followed by `perf script` (what folded-stack tools start from), and, with
  `--perf-report`, by `perf report --stdio`;
* with `--inferno`, `perf script | inferno-collapse-perf` on the injected file, when
  inferno-collapse-perf is on PATH.

Each row gives wall time, the peak RSS of the largest process, the jitted-*.so files left in
/tmp and the bytes written to the build-id cache (HOME points at a scratch directory, so
nothing lands in the real ~/.debug). Prints a Markdown table.

Usage: benches/report.py [--functions 2000] [--seconds 3] [--python P] [--perf-report] [--inferno]
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from jit_inject import du  # noqa: E402  (bytes under a directory)
ROOT = os.path.dirname(HERE)
PERFPY = os.path.join(ROOT, "target", "release", "perfpy")

# Runs a shell command and prints its wall time and the peak RSS (KiB) of its largest process.
TIMER = r"""
import resource, subprocess, sys, time
t = time.perf_counter()
r = subprocess.run(sys.argv[1], shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - t
if r.returncode:
    sys.stderr.write(r.stderr.decode()[-2000:])
    sys.exit(r.returncode)
print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def timed(cmd, env, cwd):
    out = subprocess.run([sys.executable, "-c", TIMER, cmd], env=env, cwd=cwd,
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit("failed: %s\n%s" % (cmd, out.stderr))
    wall, rss = out.stdout.split()
    return float(wall), int(rss)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--functions", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--python", default=os.path.join(ROOT, ".venvs", "py3.11", "bin", "python"))
    ap.add_argument("--perf-report", action="store_true",
                    help="also time perf report --stdio on the injected file (slow)")
    ap.add_argument("--inferno", action="store_true",
                    help="also time perf script | inferno-collapse-perf (needs it on PATH)")
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "perfpy-cli"], cwd=ROOT,
                   check=True)
    work = tempfile.mkdtemp(prefix="perfpy-bench-report-")
    home = os.path.join(work, "home")
    os.mkdir(home)
    env = dict(os.environ, HOME=home)
    data = os.path.join(work, "perf.data")
    injected = os.path.join(work, "perf.jit.data")
    rec = subprocess.run(
        [PERFPY, "record", "--backend", "perf-jit", "--keep-jit-files", "-o", data, "--",
         a.python, os.path.join(HERE, "workloads", "manyfuncs.py"), str(a.functions),
         str(a.seconds)], env=env, cwd=work, capture_output=True, text=True)
    if rec.returncode:
        raise SystemExit("perfpy record failed:\n" + rec.stderr)
    pids = set(subprocess.run(["perf", "script", "-i", data, "-F", "pid"], capture_output=True,
                              text=True, env=env).stdout.split())
    dumps = [d for p in pids for d in glob.glob("/tmp/jit-%s.dump" % p)]
    size_mb = os.path.getsize(data) / 1e6

    rows = []
    try:
        wall, rss = timed("%s report -i %s --format collapsed" % (PERFPY, data), env, work)
        rows.append(("perfpy report --format collapsed", wall, rss, 0, 0))
        so_before = set(glob.glob("/tmp/jitted-*.so"))
        w1, r1 = timed("perf inject --jit -i %s -o %s" % (data, injected), env, work)
        sos = len(set(glob.glob("/tmp/jitted-*.so")) - so_before)
        cache = du(os.path.join(home, ".debug"))
        w2, r2 = timed("perf script -i %s" % injected, env, work)
        rows.append(("perf inject --jit + perf script", w1 + w2, max(r1, r2), sos, cache))
        # Both read the same samples: count them and their innermost Python frames.
        ours = subprocess.run([PERFPY, "report", "-i", data, "--format", "collapsed"], env=env,
                              cwd=work, capture_output=True, text=True, check=True).stdout
        our_samples = sum(int(l.rsplit(" ", 1)[1]) for l in ours.splitlines())
        our_py = sum(int(l.rsplit(" ", 1)[1]) for l in ours.splitlines() if "py::f" in l)
        theirs = subprocess.run(["perf", "script", "-i", injected, "-F", "ip,sym"], env=env,
                                cwd=work, capture_output=True, text=True).stdout
        blocks = [b for b in theirs.split("\n\n") if b.strip()]
        their_py = sum(1 for b in blocks if "py::f" in b)
        counts = (our_samples, our_py, len(blocks), their_py)
        if a.perf_report:
            w3, r3 = timed("perf report --stdio -i %s" % injected, env, work)
            rows.append(("perf inject --jit + perf report --stdio", w1 + w3, max(r1, r3), sos,
                         du(os.path.join(home, ".debug"))))
        if a.inferno and shutil.which("inferno-collapse-perf"):
            w4, r4 = timed("perf script -i %s | inferno-collapse-perf" % injected, env, work)
            rows.append(("perf inject --jit + perf script | inferno-collapse-perf", w1 + w4,
                         max(r1, r4), sos, cache))
    finally:
        for p in pids:
            for f in glob.glob("/tmp/jitted-%s-*.so" % p):
                os.unlink(f)
        for d in dumps:
            os.unlink(d)
        shutil.rmtree(work)

    print("%d functions, %.1f s recorded, perf.data %.0f MB" % (a.functions, a.seconds, size_mb))
    print("samples: perfpy %d (%d in a generated function), perf script %d (%d)\n" % counts)
    print("| pipeline | wall | vs perfpy | peak RSS | jitted .so files left | build-id cache written |")
    print("|---|---|---|---|---|---|")
    base = rows[0][1]
    for label, wall, rss, sos, cache in rows:
        print("| %s | %.2f s | %.0fx | %.0f MB | %d | %.1f MB |" % (
            label, wall, wall / base, rss / 1024, sos, cache / 1e6))


if __name__ == "__main__":
    main()
