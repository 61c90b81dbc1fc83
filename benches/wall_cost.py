#!/usr/bin/env python3
"""What `perfpy record --mode wall` costs a busy server, against `--mode cpu` and no perfpy.

gunicorn (the tests' WSGI app: numpy, Jinja2, JSON per request; 2 sync workers) serves wrk
(2 threads, 8 connections, 127.0.0.1) for S seconds, three ways in each round, the order
rotated from round to round: without perf, under `perfpy record --mode cpu`, and under
`perfpy record --mode wall`. Prints a Markdown table of the medians: requests per second (and
against no perf), the recording's size per second, the context switches recorded per second,
and the events perf lost.

Usage: benches/wall_cost.py --python PY [--perfpy PERFPY] [--seconds 10] [--rounds 3]
PY must have gunicorn, numpy and jinja2 (scripts/setup-pythons.sh installs them into the
venvs it lists in PERFPY_APP_VENVS) and perfpy.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests", "apps")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not listen on %d" % port)


def one(a, mode, workdir):
    port = free_port()
    server = [a.python, "-m", "gunicorn", "--chdir", APPS, "-b", "127.0.0.1:%d" % port,
              "-w", "2", "wsgi_app:app"]
    data = os.path.join(workdir, "%s.data" % mode)
    argv = server if mode == "none" else [a.perfpy, "record", "--mode", mode, "-o", data,
                                          "--"] + server
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        wait_for(port)
        time.sleep(1)
        start = time.time()
        out = subprocess.run(["wrk", "-t2", "-c8", "-d%ds" % a.seconds,
                              "http://127.0.0.1:%d/" % port], capture_output=True, text=True,
                             check=True).stdout
        seconds = time.time() - start
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    row = dict(rps=rps)
    if mode != "none":
        row["mb_s"] = os.path.getsize(data) / 1e6 / seconds
        lost = re.search(r"perf lost (\d+) events", err)
        row["lost"] = int(lost.group(1)) if lost else 0
        script = subprocess.run(["perf", "script", "-i", data, "-F", "event"],
                                capture_output=True, text=True).stdout
        row["switches_s"] = script.count("cs/period=1/") / seconds
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", required=True)
    ap.add_argument("--perfpy", default=shutil.which("perfpy") or "perfpy")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    modes = ["none", "cpu", "wall"]
    rows = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="perfpy-wall-cost-") as workdir:
        for r in range(a.rounds):
            for mode in modes[r % 3:] + modes[:r % 3]:
                rows[mode].append(one(a, mode, workdir))
                print("round %d %s: %s" % (r + 1, mode, rows[mode][-1]), file=sys.stderr)

    def med(mode, key):
        vals = [x[key] for x in rows[mode] if key in x]
        return statistics.median(vals) if vals else None

    base = med("none", "rps")
    print("\n### gunicorn (2 sync workers) under wrk, %d s, median of %d rounds (%s)\n"
          % (a.seconds, a.rounds, subprocess.run(["perf", "version"], capture_output=True,
                                                  text=True).stdout.strip()))
    print("| recording | requests/s | against no perf | recording written | context switches "
          "recorded | lost events |")
    print("|---|---|---|---|---|---|")
    for mode, label in [("none", "none"), ("cpu", "`--mode cpu`"), ("wall", "`--mode wall`")]:
        rps = med(mode, "rps")
        mb, sw, lost = med(mode, "mb_s"), med(mode, "switches_s"), med(mode, "lost")
        print("| %s | %.0f | %.2fx | %s | %s | %s |" % (
            label, rps, rps / base,
            "-" if mb is None else "%.2f MB/s" % mb,
            "-" if sw is None else "%.0f/s" % sw,
            "-" if lost is None else "%d" % lost))


if __name__ == "__main__":
    main()
