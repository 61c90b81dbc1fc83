#!/usr/bin/env python3
"""Long recordings: what each way of writing them costs, and how `perfpy report` scales
against `perf script` and `samply import`.

The program: eight threads for a fixed time, four in Python code and four hashing large
buffers in C with the GIL released, so every core stays busy; it counts the work it got done.

1. The settings table. For each way perf can write the recording (`perfpy record`'s defaults
   before: a 65528-byte stack copy, uncompressed; its defaults now: the same copy, zstd; and
   smaller copies, zstd), the program runs once under
   `perf record` with exactly the flags `perfpy record` gives it (perfpy's trampoline on, so
   the program is the same), and once without perf. Measured: the file's size and how fast
   it grew, perf's own CPU time (perf record's, without the program's: the program reports
   its own), the samples and the events perf lost (its LOST records), the share of samples
   unwound to the program's start (the `stack_use` example of the CLI crate), the program's
   slowdown against its run without perf (work done per second), and `perfpy report`'s time
   on the file. Rounds alternate the settings so that a busy spell of the machine spreads
   over all of them; the table shows each median.
2. The readers table (`--durations`): `perfpy record --no-compress` (samply 0.13 reads no
   sample of a compressed recording), then each reader alone on the same file, with its peak
   RSS (ru_maxrss of the finished child):
     perfpy report --format collapsed   (unwinds and names every sample: the whole report)
     perf script                        (perf's own unwinder, libdw; text to /dev/null)
     samply import --save-only          (framehop, like perfpy; a Firefox profile)

Usage: benches/long_recording.py --python PY [--perfpy PERFPY] [--samply SAMPLY]
                                 [--stack-use STACK_USE] [--seconds 20] [--rounds 3]
                                 [--durations 10,60] [--dir DIR] [--only settings|readers]
                                 [--perfpy-before OLD_PERFPY]
PY must have perfpy installed (the settings table switches it on with PERFPY_BACKEND).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PROGRAM = r"""
import hashlib, os, sys, threading, time
END = time.time() + float(sys.argv[1])
BUF = bytes(range(256)) * 4096 * 4
done = [0, 0]
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
        done[0] += 1
def c_work():
    while time.time() < END:
        hashlib.sha256(BUF).digest()
        done[1] += 1
start = time.time()
threads = [threading.Thread(target=python_work) for _ in range(4)]
threads += [threading.Thread(target=c_work) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
cpu = os.times()
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as f:
        f.write("%d %d %f %f %d\n" % (done[0], done[1], time.time() - start,
                                      cpu.user + cpu.system, os.getpid()))
"""

#: (name, stack bytes, compressed). `perfpy record` copies perf's whole 65528 bytes of stack
#: by default (benches/stack_size.py says why), so its default now is also `-z` alone; the
#: smaller copies show what a smaller --stack-size saves, and what it loses.
SETTINGS = [
    ("before: 65528 B, uncompressed", 65528, False),
    ("now: DEFAULT B, zstd", None, True),
    ("32768 B, zstd", 32768, True),
    ("16384 B, zstd", 16384, True),
]


def run_measured(argv, env=None, cwd=None):
    """Wall seconds, peak RSS (MB) and CPU seconds (user + system, with the children it
    waited for) of `argv`, its output discarded."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            out = os.open(os.devnull, os.O_WRONLY)
            os.dup2(out, 1)
            os.dup2(out, 2)
            if cwd:
                os.chdir(cwd)
            os.execvpe(argv[0], argv, env or os.environ)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("%s failed (%s)" % (" ".join(argv), status))
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def default_stack_size(perfpy):
    text = subprocess.run([perfpy, "record", "--help"], capture_output=True, text=True).stdout
    block = text[text.index("--stack-size"):]
    return int(re.search(r"\[default: (\d+)\]", block).group(1))


def program_run(python, prog, seconds, stats, perf=None, data=None, stack=None, compress=False):
    """Runs the program, under perf record if `perf` (with perfpy record's flags): the
    program's work per second, perf's CPU seconds and the program's pid."""
    env = dict(os.environ, PERFPY_BACKEND="perf_jit")
    argv = [python, prog, str(seconds), stats]
    if perf:
        argv = [perf, "record", "-F", "999", "-k", "1", "--no-buildid-cache", "--call-graph",
                "dwarf,%d" % stack, "-o", data] + (["-z"] if compress else []) + ["--"] + argv
    _, _, cpu = run_measured(argv, env=env)
    with open(stats) as f:
        py_done, c_done, elapsed, program_cpu, pid = f.read().split()
    work = (int(py_done) / 1000 + int(c_done)) / float(elapsed)
    return work, cpu - float(program_cpu), int(pid)


def remove_names(pid):
    """The program's jitdump, left in /tmp by a run without perfpy record."""
    try:
        os.unlink("/tmp/jit-%d.dump" % pid)
    except FileNotFoundError:
        pass


def lost_events(perfpy, data):
    r = subprocess.run([perfpy, "report", "-i", data, "--format", "collapsed", "-o",
                        os.devnull], capture_output=True, text=True)
    m = re.search(r"perf lost (\d+) events", r.stderr)
    return int(m.group(1)) if m else 0


def settings_table(a, prog):
    default = default_stack_size(a.perfpy)
    settings = [(n.replace("DEFAULT", str(default)), s or default, z) for n, s, z in SETTINGS]
    stats = os.path.join(a.dir, "stats.txt")
    rows = {name: [] for name, _, _ in settings}
    baseline, before_report = [], []
    for r in range(a.rounds):
        order = settings[r % len(settings):] + settings[:r % len(settings)]
        work, _, pid = program_run(a.python, prog, a.seconds, stats)
        baseline.append(work)
        remove_names(pid)
        for name, stack, compress in order:
            data = os.path.join(a.dir, "setting.data")
            work, perf_cpu, pid = program_run(a.python, prog, a.seconds, stats, perf="perf",
                                            data=data, stack=stack, compress=compress)
            size = os.path.getsize(data) / 1e6
            use = json.loads(subprocess.run([a.stack_use, data], capture_output=True, text=True,
                                            check=True).stdout)
            whole = sum(use["whole_kib"]) / max(use["samples"], 1)
            report, _, _ = run_measured([a.perfpy, "report", "-i", data, "--format",
                                         "collapsed", "-o", os.devnull])
            if a.perfpy_before and name == settings[0][0]:
                old, _, _ = run_measured([a.perfpy_before, "report", "-i", data, "--format",
                                          "collapsed", "-o", os.devnull])
                before_report.append(old)
            lost = lost_events(a.perfpy, data)
            rows[name].append(dict(size=size, rate=size / a.seconds, perf_cpu=perf_cpu,
                                   samples=use["samples"], lost=lost, whole=whole, work=work,
                                   report=report))
            os.unlink(data)
            remove_names(pid)
    base = statistics.median(baseline)
    print("\n### %d s recordings of the program, median of %d rounds (%s)\n"
          % (a.seconds, a.rounds, subprocess.run(["perf", "version"], capture_output=True,
                                                  text=True).stdout.strip()))
    print("| setting | file | written | perf's CPU | samples | lost events | whole stacks "
          "| program's slowdown | perfpy report |")
    print("|---|---|---|---|---|---|---|---|---|")
    med = lambda name, k: statistics.median(x[k] for x in rows[name])  # noqa: E731
    for name, _, _ in settings:
        print("| %s | %.1f MB | %.2f MB/s | %.2f s | %d | %d | %.1f%% | %.1f%% | %.2f s |" % (
            name, med(name, "size"), med(name, "rate"), med(name, "perf_cpu"),
            med(name, "samples"), med(name, "lost"), 100 * med(name, "whole"),
            100 * (base / med(name, "work") - 1), med(name, "report")))
    before, now = settings[0][0], settings[1][0]
    print("\nnow against before: %.0fx smaller, perf's CPU %.2fx, report time %.2fx"
          % (med(before, "size") / med(now, "size"), med(now, "perf_cpu") / med(before, "perf_cpu"),
             med(now, "report") / med(before, "report")))
    if before_report:
        print("perfpy report of the `before` file by %s: %.2f s (now's file by this one: %.2f s)"
              % (a.perfpy_before, statistics.median(before_report), med(now, "report")))
    sys.stdout.flush()


def readers_table(a, prog):
    results = {}
    for d in [int(x) for x in a.durations.split(",")]:
        data = os.path.join(a.dir, "perf-%ds.data" % d)
        # Uncompressed: samply 0.13 reads no sample of a compressed recording.
        rec = subprocess.run([a.perfpy, "record", "-F", "999", "--no-compress", "-o", data,
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
            wall, rss, _ = run_measured(argv)
            rows.append((name, wall, rss))
        results[d] = (samples, size, rows)
        print("\n### %d s recording (perfpy record --no-compress): %d samples, %.0f MB of "
              "perf.data\n" % (d, samples, size))
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", required=True)
    ap.add_argument("--perfpy", default=shutil.which("perfpy") or "perfpy")
    ap.add_argument("--samply", default=os.path.expanduser("~/.cache/perfpy/samply/bin/samply"))
    ap.add_argument("--stack-use", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "examples",
        "stack_use"))
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--durations", default="10,60")
    ap.add_argument("--dir", default="/var/tmp/perfpy-long")
    ap.add_argument("--only", choices=["settings", "readers"])
    ap.add_argument("--perfpy-before", help="another perfpy command (the previous release's) to "
                    "time on the `before` setting's file too")
    a = ap.parse_args()
    if a.only != "readers" and not os.access(a.stack_use, os.X_OK):
        raise SystemExit("no %s: cargo build --release -p perfpy-cli --example stack_use"
                         % a.stack_use)
    os.makedirs(a.dir, exist_ok=True)
    prog = os.path.join(a.dir, "threads.py")
    with open(prog, "w") as f:
        f.write(PROGRAM)
    try:
        if a.only != "readers":
            settings_table(a, prog)
        if a.only != "settings":
            readers_table(a, prog)
    finally:
        shutil.rmtree(a.dir)


if __name__ == "__main__":
    main()
