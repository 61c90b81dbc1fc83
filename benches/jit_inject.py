#!/usr/bin/env python3
"""The perf_jit backend's files and post-processing, perfpy against CPython 3.13's -X perf_jit.

For a workload with N distinct Python functions (default 2,000), recorded with
`perf record -k 1 --call-graph dwarf`: jitdump bytes per code object, and the time and peak
memory of `perf inject --jit`. Prints a Markdown table. HOME points at a scratch directory so
perf's build-id cache is measured and removed, not left in ~/.debug; the jitted-*.so files
perf inject writes are deleted afterwards.

Usage: benches/jit_inject.py [--functions 2000] [--seconds 3] [--python P (perfpy installed)]
"""

import argparse
import glob
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SWITCHES = ("PYTHONPERFSUPPORT", "PYTHON_PERF_JIT_SUPPORT", "PERFPY_BACKEND")


def count_loads(path):
    with open(path, "rb") as f:
        data = f.read()
    off, loads = 40, 0
    while off + 16 <= len(data):
        rid, size = struct.unpack_from("<II", data, off)
        loads += rid == 0
        off += size
    return loads, len(data)


def du(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def measure(label, python, opts, env_extra, n, seconds):
    work = tempfile.mkdtemp(prefix="perfpy-bench-")
    home = os.path.join(work, "home")
    os.mkdir(home)
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    env.update(env_extra, HOME=home)
    data, injected = os.path.join(work, "perf.data"), os.path.join(work, "perf.jit.data")
    rec = subprocess.Popen(
        ["perf", "record", "-q", "-k", "1", "-F", "999", "--call-graph", "dwarf", "-o", data,
         "--", python] + opts + [os.path.join(HERE, "workloads", "manyfuncs.py"), str(n), str(seconds)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = rec.communicate()
    if rec.returncode != 0:
        raise SystemExit("%s: perf record failed:\n%s" % (label, err))
    dumps = [d for d in glob.glob("/tmp/jit-*.dump") if os.path.getmtime(d) >= time.time() - seconds - 30]
    # The dump of the recorded process: the one with the most code loads.
    dump = max(dumps, key=lambda d: count_loads(d)[0])
    pid = int(os.path.basename(dump)[4:-5])
    loads, size = count_loads(dump)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    subprocess.run(["perf", "inject", "--jit", "-i", data, "-o", injected], env=env, check=True,
                   capture_output=True)
    inject_s = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    sos = glob.glob("/tmp/jitted-%d-*.so" % pid)
    cache = du(os.path.join(home, ".debug"))
    for f in sos + [dump]:
        os.unlink(f)
    shutil.rmtree(work)
    return {
        "label": label, "loads": loads, "bytes": size, "per": size / max(loads, 1),
        "inject": inject_s, "rss": rss if rss > before else before, "sos": len(sos), "cache": cache,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--functions", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--python", default=os.path.join(ROOT, ".venvs", "py3.13", "bin", "python"))
    a = ap.parse_args()
    minor = subprocess.check_output([a.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], text=True).strip()
    base = subprocess.check_output([a.python, "-c", "import sys, os; print(os.path.join(sys.base_prefix, 'bin', 'python' + '%d.%d' % sys.version_info[:2]))"], text=True).strip()
    rows = [measure("perfpy perf_jit (%s)" % minor, a.python, [], {"PERFPY_BACKEND": "perf_jit"}, a.functions, a.seconds)]
    if tuple(map(int, minor.split("."))) >= (3, 13):
        rows.append(measure("CPython %s -X perf_jit" % minor, base, ["-X", "perf_jit"], {}, a.functions, a.seconds))
    print("| writer | code objects | jitdump bytes | bytes per code object | `perf inject --jit` | peak RSS of the tools | jitted .so files | build-id cache |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %d | %d | %.0f | %.2f s | %.0f MB | %d | %.1f MB |" % (
            r["label"], r["loads"], r["bytes"], r["per"], r["inject"], r["rss"] / 1024, r["sos"], r["cache"] / 1e6))


if __name__ == "__main__":
    main()
