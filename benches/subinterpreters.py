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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", required=True, help="an interpreter with perfpy installed")
    ap.add_argument("--perfpy", default="perfpy")
    ap.add_argument("--n", type=int, default=3_000_000)
    args = ap.parse_args()
    version = subprocess.check_output([args.python, "-c", "import platform; print(platform.python_version())"],
                                      text=True).strip()
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
