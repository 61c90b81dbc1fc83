#!/usr/bin/env python3
"""Who names the code subinterpreters run: CPython's own trampoline against perfpy's, on the
same program and interpreter, each recorded by `perfpy record` and read by `perfpy report`.

The program (CPython 3.14+) runs leaf() through spin_in_sub() four times in an
InterpreterPoolExecutor of two, then once in an interpreter of its own
(`concurrent.interpreters.create().call`). Nearly all of its CPU time is in leaf(), which
only subinterpreters run. Per way of switching names on, the table says:

* the samples in all;
* the samples whose stack names `py::leaf` (the subinterpreters' code);
* of those, the whole ones: the thread's start, the main interpreter's side of the call
  (`Interpreter._call`), the C of `_interpreters`, then `spin_in_sub` and `leaf`;
* the samples charged to the main interpreter's `Interpreter._call` with nothing named below.

Prints a Markdown table. Run it inside the sid root for Debian's 3.14 / 3.15:

  scripts/in-root.sh python3.14 benches/subinterpreters.py --python .venvs-root/py3.14/bin/python

With --churn N, a table instead of what N interpreters made, run and destroyed one after another
leave behind in the process, per interpreter: with no names, CPython's own trampoline and
perfpy's two backends (3.9+).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

#: The subinterpreters' work: leaf() through spin_in_sub() (also the test suite's, which
#: imports this module).
FUNCTIONS = r'''
def leaf(n):
    t = 0
    for i in range(n):
        t += i
    return t

def spin_in_sub(n):
    return leaf(n)
'''

PROGRAM = r'''
import sys
from concurrent.futures import InterpreterPoolExecutor
from concurrent import interpreters
''' + FUNCTIONS + r'''
if __name__ == "__main__":
    n = int(sys.argv[1])
    with InterpreterPoolExecutor(2) as pool:
        list(pool.map(spin_in_sub, [n] * 4))
    interp = interpreters.create()
    interp.call(spin_in_sub, n)
    interp.close()
'''

#: A whole stack of the subinterpreters' code, as `--native all` shows it: the thread's own
#: start, the main interpreter's side of the call, the C of `_interpreters` crossing over,
#: and the subinterpreter's frames down to the leaf.
WHOLE = re.compile(r"(?:start_thread|Py_RunMain|__libc_start)[^ ]*py::Interpreter\._call:[^;]*;"
                   r"(?:[^;]*;)*\[?_interpreters[^;]*;(?:[^;]*;)*py::spin_in_sub:[^;]*;"
                   r"(?:[^;]*;)*py::leaf:")


def folded(perfpy, data, cwd):
    out = subprocess.run([perfpy, "report", "-i", data, "--format", "collapsed", "--native",
                          "all"], cwd=cwd, capture_output=True, text=True, check=True).stdout
    counts = {}
    for line in out.splitlines():
        stack, n = line.rsplit(" ", 1)
        counts[stack] = counts.get(stack, 0) + int(n)
    return counts


#: --churn's program: interpreters made, run a little code (an import, a function of one of ten
#: names) and destroyed, one after another; what the process keeps per interpreter, measured
#: after the first 20: bytes malloc() has in use, the blocks Python's allocator has in use,
#: resident memory after malloc_trim(), the map's or dump's bytes, and perfpy's stubs.
CHURN = r'''
import ctypes, os, sys
try:
    import _interpreters as interpreters
except ImportError:
    import _xxsubinterpreters as interpreters
way, n = sys.argv[1], int(sys.argv[2])
if way.startswith("perfpy-"):
    import perfpy
    perfpy.activate_stack_trampoline(way[len("perfpy-"):])
elif way == "cpython":
    sys.activate_stack_trampoline("perf")
libc = ctypes.CDLL(None)
class Mallinfo2(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Mallinfo2
files = ["/tmp/perf-%d.map" % os.getpid(), "/tmp/jit-%d.dump" % os.getpid()]
def measure():
    libc.malloc_trim(0)
    rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    stubs = perfpy.status()["stubs"] if way.startswith("perfpy-") else 0
    return (libc.mallinfo2().uordblks, sys.getallocatedblocks(), rss,
            sum(os.path.getsize(f) for f in files if os.path.exists(f)), stubs)
def one(i):
    interp = interpreters.create()
    source = "import json\ndef f%d(x):\n    return json.dumps([x])\nf%d(1)\n" % (i % 10, i % 10)
    if hasattr(interpreters, "exec"):
        assert interpreters.exec(interp, source) is None
    else:
        interpreters.run_string(interp, source)
    interpreters.destroy(interp)
for i in range(20):
    one(i)
before = measure()
for i in range(n):
    one(i)
after = measure()
print(" ".join("%.1f" % ((a - b) / n) for a, b in zip(after, before)))
for f in files:
    if os.path.exists(f):
        os.unlink(f)
'''


def churn(args, version):
    """The --churn table: what each way of naming keeps per interpreter made and destroyed."""
    ways = [("no names", "none")]
    if tuple(map(int, version.split(".")[:2])) >= (3, 12):
        ways.append(("CPython's own trampoline (main interpreter only)", "cpython"))
    ways += [("perfpy, perf map", "perfpy-perf"), ("perfpy, jitdump", "perfpy-perf_jit")]
    print("CPython %s, %d interpreters made, run and destroyed one after another; kept per "
          "interpreter:\n" % (version, args.churn))
    print("| names | malloc'd bytes in use | Python's blocks in use | resident bytes "
          "| map or dump bytes | perfpy's stubs |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        program = os.path.join(tmp, "churn.py")
        with open(program, "w") as f:
            f.write(CHURN)
        for label, way in ways:
            out = subprocess.run([args.python, program, way, str(args.churn)], check=True,
                                 capture_output=True, text=True).stdout.split()
            used, blocks, rss, files, stubs = (float(x) for x in out)
            print("| %s | %.0f | %.1f | %.0f | %.0f | %.1f |" % (label, used, blocks, rss, files,
                                                             stubs))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", required=True, help="an interpreter with perfpy installed")
    ap.add_argument("--perfpy", default="perfpy")
    ap.add_argument("--n", type=int, default=3_000_000)
    ap.add_argument("--churn", type=int, metavar="N",
                    help="instead: what N interpreters made and destroyed in turn leave behind")
    args = ap.parse_args()
    version = subprocess.check_output([args.python, "-c", "import platform; print(platform.python_version())"],
                                      text=True).strip()
    if args.churn:
        return churn(args, version)
    ways = [
        ("CPython's own, perf map", ["--trampoline", "cpython", "--backend", "perf"]),
        ("CPython's own, jitdump", ["--trampoline", "cpython", "--backend", "perf-jit"]),
        ("perfpy, perf map", ["--trampoline", "perfpy", "--backend", "perf"]),
        ("perfpy, jitdump", ["--trampoline", "perfpy", "--backend", "perf-jit"]),
    ]
    print("CPython %s, `perfpy record` (DWARF call graphs), `perfpy report --native all`\n" % version)
    print("| names switched on by | samples | in `leaf` (subinterpreters) | of them whole "
          "| in `Interpreter._call`, nothing named below |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        program = os.path.join(tmp, "pool.py")
        with open(program, "w") as f:
            f.write(PROGRAM)
        for label, options in ways:
            data = os.path.join(tmp, "perf.data")
            subprocess.run([args.perfpy, "record", "-o", data] + options + ["--", args.python,
                           program, str(args.n)], cwd=tmp, check=True, capture_output=True)
            counts = folded(args.perfpy, data, tmp)
            total = sum(counts.values())
            leaf = {s: n for s, n in counts.items() if "py::leaf:" in s}
            whole = sum(n for s, n in leaf.items() if WHOLE.search(s))
            unnamed = sum(n for s, n in counts.items()
                          if re.search(r"py::Interpreter\._call:[^;]*(?:;[^;]*)*$", s)
                          and not re.search(r"py::Interpreter\._call:.*;py::", s))
            in_leaf = sum(leaf.values())
            print("| %s | %d | %d (%.1f%%) | %d (%.1f%%) | %d (%.1f%%) |" % (
                label, total, in_leaf, 100.0 * in_leaf / max(total, 1), whole,
                100.0 * whole / max(in_leaf, 1), unnamed, 100.0 * unnamed / max(total, 1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
