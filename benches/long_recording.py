#!/usr/bin/env python3
"""Long recordings: how `perfpy report` scales against `perf script` and `samply import`.

Records an 8-thread Python program (four threads in Python code, four hashing large buffers
in C with the GIL released, so both cores stay busy) with `perfpy record -F 999` (DWARF
stacks) for each duration, then times each reader on the same perf.data, one at a time, and
reads each one's peak RSS from the kernel (ru_maxrss of the finished child). Prints a
Markdown table per duration and how each reader grows from the shortest to the longest.

  perfpy report --format collapsed   (unwinds and names every sample: the whole report)
  perf script                        (perf's own unwinder, libdw; text to /dev/null)
  samply import --save-only          (framehop, like perfpy; a Firefox profile)

Usage: benches/long_recording.py --python PY [--perfpy PERFPY] [--samply SAMPLY]
                                 [--durations 10,60] [--dir DIR]
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time

PROGRAM = r"""
import hashlib, sys, threading, time
END = time.time() + float(sys.argv[1])
BUF = bytes(range(256)) * 4096 * 4
def python_work():
    def leaf(n):
        s = 0
        for i in range(n):
            s += i % 7
        return s
    def middle():
        return leaf(2000) + leaf(1000)
    while time.time() < END:
        middle()
def c_work():
    while time.time() < END:
        hashlib.sha256(BUF).digest()
threads = [threading.Thread(target=python_work) for _ in range(4)]
threads += [threading.Thread(target=c_work) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def run_measured(argv, **kw):
    """Wall seconds and peak RSS (MB) of `argv`, run alone."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            out = os.open(os.devnull, os.O_WRONLY)
            os.dup2(out, 1)
            os.dup2(out, 2)
            if kw.get("cwd"):
                os.chdir(kw["cwd"])
            os.execvpe(argv[0], argv, kw.get("env", os.environ))
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("%s failed (%s)" % (" ".join(argv), status))
    return wall, usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", required=True)
    ap.add_argument("--perfpy", default=shutil.which("perfpy") or "perfpy")
    ap.add_argument("--samply", default=os.path.expanduser("~/.cache/perfpy/samply/bin/samply"))
    ap.add_argument("--durations", default="10,60")
    ap.add_argument("--dir", default="/var/tmp/perfpy-long")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    prog = os.path.join(a.dir, "threads.py")
    with open(prog, "w") as f:
        f.write(PROGRAM)
    results = {}
    for d in [int(x) for x in a.durations.split(",")]:
        data = os.path.join(a.dir, "perf-%ds.data" % d)
        rec = subprocess.run([a.perfpy, "record", "-F", "999", "-o", data,
                              "--", a.python, prog, str(d)], capture_output=True, text=True)
        if rec.returncode != 0:
            raise SystemExit(rec.stderr)
        samples = int(next(l for l in rec.stderr.splitlines()
                           if l.endswith("samples") or " samples (" in l).split()[0])
        size = os.path.getsize(data) / 1e6
        rows = []
        # The program's names are moved next to the recording, where perfpy finds them;
        # samply looks in /tmp, so its JIT frames stay unnamed (the unwinding is the same work).
        readers = [("perfpy report", [a.perfpy, "report", "-i", data, "--format", "collapsed"]),
                   ("perf script", ["perf", "script", "-i", data])]
        if os.path.exists(a.samply):
            readers.append(("samply import", [a.samply, "import", data, "--save-only", "-o",
                                              os.path.join(a.dir, "samply-%ds.json.gz" % d)]))
        for name, argv in readers:
            wall, rss = run_measured(argv)
            rows.append((name, wall, rss))
        results[d] = (samples, size, rows)
        print("\n### %d s recording: %d samples, %.0f MB of perf.data\n" % (d, samples, size))
        print("| reader | time (s) | samples/s | peak RSS (MB) |")
        print("|---|---|---|---|")
        for name, wall, rss in rows:
            print("| %s | %.1f | %.0f | %.0f |" % (name, wall, samples / wall, rss))
        sys.stdout.flush()
    ds = sorted(results)
    if len(ds) > 1:
        lo, hi = ds[0], ds[-1]
        print("\n### from %d s to %d s (%.1fx the samples)\n" % (
            lo, hi, results[hi][0] / results[lo][0]))
        print("| reader | time | peak RSS |")
        print("|---|---|---|")
        for (name, w0, r0), (_, w1, r1) in zip(results[lo][2], results[hi][2]):
            print("| %s | %.1fx | %.2fx |" % (name, w1 / w0, r1 / r0))
    shutil.rmtree(a.dir)


if __name__ == "__main__":
    main()
