"""Subinterpreters: perfpy, switched on in the main interpreter, names the functions every
interpreter of the process runs (3.9+; CPython's own trampoline names only the interpreter it
is switched on in), on the real interpreters: ``_xxsubinterpreters`` (3.9-3.12),
``_interpreters`` (3.13), ``concurrent.interpreters`` and ``InterpreterPoolExecutor`` (3.14+).
Interpreters made before and after names come on, destroyed while they are on, toggled while
they run, a fork with them alive, and ``perfpy record``/``record --pid`` of them."""

import os
import re
import sys

import pytest

from conftest import PYTHONS, ROOT, read_map, run, script
from recording import CLI_MARKS, collapsed, perfpy, record

sys.path.insert(0, os.path.join(ROOT, "benches"))
import subinterpreters as bench  # noqa: E402  (the program and its whole-stack pattern)

SUB = [p for p in PYTHONS if p.version >= (3, 9)]
NEW = [p for p in PYTHONS if p.version >= (3, 14)]
needs_new = pytest.mark.skipif(
    not NEW, reason="no CPython 3.14+ in this run: the sid root's run (scripts/test.sh) has them")

#: Pasted at the top of each program: one way to make, run code in and destroy an interpreter
#: on every version (RUN_IN), and the evaluator each interpreter runs, read with CPython's own
#: API (3.9+).
RUN_IN = r'''
import ctypes, os, sys, textwrap
try:
    import _interpreters as I
except ImportError:
    import _xxsubinterpreters as I

def run_in(interp, source):
    source = textwrap.dedent(source)
    if hasattr(I, "exec"):
        failure = I.exec(interp, source)
        assert failure is None, failure
    else:
        I.run_string(interp, source)
'''
HELPERS = RUN_IN + r'''
api = ctypes.pythonapi
api.PyInterpreterState_Head.restype = ctypes.c_void_p
api.PyInterpreterState_Next.restype = ctypes.c_void_p
api.PyInterpreterState_Next.argtypes = [ctypes.c_void_p]
api._PyInterpreterState_GetEvalFrameFunc.restype = ctypes.c_void_p
api._PyInterpreterState_GetEvalFrameFunc.argtypes = [ctypes.c_void_p]
DEFAULT = ctypes.cast(api._PyEval_EvalFrameDefault, ctypes.c_void_p).value

def hooked_elsewhere():
    """How many interpreters besides the main one run an evaluator other than CPython's."""
    interps, interp = [], api.PyInterpreterState_Head()
    while interp:
        interps.append(interp)
        interp = api.PyInterpreterState_Next(interp)
    # Newest first: the main interpreter is the last.
    return sum(api._PyInterpreterState_GetEvalFrameFunc(i) not in (None, 0, DEFAULT)
               for i in interps[:-1])
'''


def named(pid, name):
    """The map lines of `pid` naming `py::NAME:<string>` (code run with run_string/exec;
    3.14's `_interpreters.exec` calls its file `<script>`)."""
    return [l for l in read_map(pid) if l[2] in ("py::%s:<string>" % name, "py::%s:<script>" % name)]


@pytest.mark.parametrize("backend", ["perf", "perf_jit"])
@pytest.mark.parametrize("py", SUB, ids=lambda p: p.minor)
def test_interpreters_made_before_and_after_names_come_on(py, tmp_path, backend):
    """One interpreter made before activation, one after: both run perfpy's hook (CPython's
    own API says so) and their functions are named; destroying one while names are on, then
    running new code in the other, names the new code; off, no interpreter keeps the hook;
    and 100 more made and destroyed one after another are each named (an interpreter's
    teardown frees what perfpy kept for it), each adding only its own new function's stub."""
    path = script(tmp_path, HELPERS + r'''
import perfpy
before = I.create()
perfpy.activate_stack_trampoline(BACKEND)
after = I.create()
print("hooked", hooked_elsewhere(), perfpy.status()["interpreters"])
for interp, name in ((before, "in_before"), (after, "in_after")):
    run_in(interp, """
        def %s(n):
            return sum(range(n))
        %s(1000)
    """ % (name, name))
I.destroy(before)
run_in(after, """
    def after_destroy(n):
        return sum(range(n))
    after_destroy(1000)
""")
print("hooked", hooked_elsewhere(), perfpy.status()["interpreters"])
s = perfpy.status()
for i in range(100):
    interp = I.create()
    run_in(interp, "def churn_%d():\n    return %d\nchurn_%d()\n" % (i, i, i))
    I.destroy(interp)
t = perfpy.status()
print("limit", t["interpreters_limit"])
print("new stubs", t["stubs"] - s["stubs"], "new lines", t["map_lines"] - s["map_lines"])
perfpy.deactivate_stack_trampoline()
print("hooked", hooked_elsewhere(), perfpy.status()["interpreters"])
run_in(after, """
    def while_off(n):
        return sum(range(n))
    while_off(1000)
""")
perfpy.activate_stack_trampoline(BACKEND)
print("hooked", hooked_elsewhere(), perfpy.status()["interpreters"])
run_in(after, """
    def on_again(n):
        return sum(range(n))
    on_again(1000)
""")
I.destroy(after)
print("pid", os.getpid())
'''.replace("BACKEND", repr(backend)))
    r = run(py, [path]).check()
    lines = r.stdout.splitlines()
    assert lines[0] == "hooked 2 2", r.stdout
    assert lines[1] == "hooked 1 1", r.stdout  # `before` destroyed
    assert lines[2] == "limit None", r.stdout
    # Each interpreter brings one new function: its start-up's and `<module>`'s code objects
    # take the stubs announced for code alike in the interpreters before it (one stub and one
    # line per name, not per interpreter: about 450 of each per interpreter otherwise).
    assert lines[3] == "new stubs 100 new lines 100", r.stdout
    assert lines[4] == "hooked 0 0", r.stdout
    assert lines[5] == "hooked 1 1", r.stdout
    pid = int(lines[-1].split()[1])
    if backend == "perf":
        for name in ("in_before", "in_after", "after_destroy", "on_again"):
            assert len(named(pid, name)) == 1, (name, read_map(pid)[-20:])
        assert not named(pid, "while_off")
        churned = {l[2].rsplit(":", 1)[0] for l in read_map(pid) if l[2].startswith("py::churn_")}
        assert churned == {"py::churn_%d" % i for i in range(100)}, sorted(churned)[:5]
    assert "Warning" not in r.stderr, r.stderr


@pytest.mark.skipif(not [p for p in PYTHONS if p.version < (3, 9)], reason="no CPython 3.8 here")
@pytest.mark.parametrize("py", [p for p in PYTHONS if p.version < (3, 9)], ids=lambda p: p.minor)
def test_38_names_the_main_interpreter_only(py, tmp_path):
    """3.8's hook isn't told which interpreter a call runs in: subinterpreters keep CPython's
    evaluator and run unnamed, unharmed, while the main interpreter is named."""
    path = script(tmp_path, RUN_IN + r'''
import perfpy
perfpy.activate_stack_trampoline("perf")
sub = I.create()
run_in(sub, "def in_sub(): return 1\nassert in_sub() == 1\n")
I.destroy(sub)
def in_main(): pass
in_main()
print(perfpy.status()["interpreters"], os.getpid())
''')
    r = run(py, [path]).check()
    count, pid = r.stdout.split()
    assert count == "0"
    names = [l[2] for l in read_map(int(pid))]
    assert [n for n in names if n.startswith("py::in_main:")] and not named(int(pid), "in_sub")


@pytest.mark.parametrize("py", SUB, ids=lambda p: p.minor)
def test_toggling_while_subinterpreters_run(py, tmp_path):
    """Two subinterpreters run new functions in threads of their own (each with its own GIL on
    3.12+) while the main interpreter switches names off and on 300 times: nothing crashes,
    and every function they made while names were on at the end is named."""
    path = script(tmp_path, HELPERS + r'''
import threading, perfpy
perfpy.activate_stack_trampoline("perf")
interps = [I.create(), I.create()]
def work(k):
    run_in(interps[k], """
        import time
        ns = {}
        end = time.monotonic() + 1.5
        i = 0
        while time.monotonic() < end or i < 400:
            exec("def sub%d_f%d(): return %d" % (K, i % 400, i), ns)
            ns["sub%d_f%d" % (K, i % 400)]()
            i += 1
    """.replace("K", str(k)))
threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
for t in threads:
    t.start()
for _ in range(300):
    perfpy.deactivate_stack_trampoline()
    perfpy.activate_stack_trampoline("perf")
for t in threads:
    t.join()
run_in(interps[0], "def last(): pass\nlast()\n")
print("hooked", hooked_elsewhere(), perfpy.status()["interpreters"])
for interp in interps:
    I.destroy(interp)
print("pid", os.getpid())
''')
    r = run(py, [path], timeout=600).check()
    lines = r.stdout.splitlines()
    assert lines[0] == "hooked 2 2", r.stdout
    pid = int(lines[-1].split()[1])
    assert len(named(pid, "last")) == 1, read_map(pid)[-10:]
    names = {l[2] for l in read_map(pid)}
    for k in range(2):
        made = {n for n in names if n.startswith("py::sub%d_f" % k)}
        assert len(made) >= 50, (k, len(made))
    assert "Warning" not in r.stderr, r.stderr


@pytest.mark.parametrize("py", SUB, ids=lambda p: p.minor)
def test_fork_after_subinterpreters_and_with_them_alive(py, tmp_path):
    """os.fork() in the main interpreter after subinterpreters ran with names on and were
    closed: the child names its own functions in its own map and counts no other interpreter;
    an interpreter it makes runs a function of the parent's subinterpreters, whose stub the
    child's map then names.

    Then (3.13+) a fork while one is alive. CPython's own fork() kills that child, perfpy or
    not (measured here: 3.13 aborts in `_PyImport_ClearCore`, 3.14 and 3.15 die of SIGSEGV;
    the child hangs on 3.8-3.12, so they skip this half): the child ends as it ends without
    perfpy, and the parent's subinterpreter, run after the fork, is named in the parent's
    map."""
    path = script(tmp_path, HELPERS + r'''
import warnings
warnings.simplefilter("ignore", DeprecationWarning)  # fork() with other interpreters alive
with_perfpy = sys.argv[1] == "perfpy"
if with_perfpy:
    import perfpy
    perfpy.activate_stack_trampoline("perf")
for _ in range(3):
    sub = I.create()
    run_in(sub, "def in_sub(): pass\nin_sub()\n")
    I.destroy(sub)
pid = os.fork()
if pid == 0:
    def in_child(): pass
    in_child()
    ok = not with_perfpy or (perfpy.status()["interpreters"] == 0
                             and perfpy.is_stack_trampoline_active())
    sub = I.create()  # the parent's stub for in_sub, announced in the child's own file
    run_in(sub, "def in_sub(): pass\nin_sub()\n")
    I.destroy(sub)
    os._exit(0 if ok else 3)
print("child", pid, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
if sys.version_info >= (3, 13):
    sub = I.create()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    print("alive", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    run_in(sub, "def after_fork(): pass\nafter_fork()\n")
    if with_perfpy:
        print("hooked", hooked_elsewhere(), perfpy.status()["interpreters"])
    I.destroy(sub)
print("pid", os.getpid())
''')
    r = run(py, [path, "perfpy"]).check()
    lines = r.stdout.splitlines()
    child = int(lines[0].split()[1])
    assert lines[0].endswith(" 0"), (r.stdout, r.stderr)
    assert [l[2] for l in read_map(child) if "in_child" in l[2]], read_map(child)[-5:]
    pid = int(lines[-1].split()[1])
    # Three interpreters ran in_sub, under one stub; the child's own interpreter ran it too,
    # and the child's file names that stub.
    assert len(named(pid, "in_sub")) == 1, read_map(pid)[-5:]
    assert named(child, "in_sub") == named(pid, "in_sub"), read_map(child)[-5:]
    if py.version >= (3, 13):
        without = run(py.base, [path, "cpython"]).check().stdout.splitlines()
        assert lines[1] == without[1], (lines, without)  # the child's end, CPython's own
        assert lines[2] == "hooked 1 1", r.stdout
        assert len(named(pid, "after_fork")) == 1, read_map(pid)[-5:]


@pytest.mark.parametrize("py", SUB, ids=lambda p: p.minor)
def test_perfpy_in_a_subinterpreter_says_where_it_works(py, tmp_path):
    """A subinterpreter that imports perfpy (its start-up does, when a switch is set) gets no
    error at start-up, and each switch used there says to use it in the main interpreter;
    the main interpreter's switch still names the subinterpreter's code."""
    path = script(tmp_path, HELPERS + r'''
import perfpy
sub = I.create()
run_in(sub, """
    import perfpy
    try:
        perfpy.activate_stack_trampoline("perf")
    except RuntimeError as e:
        print("refused:", e)
""")
perfpy.activate_stack_trampoline("perf")
run_in(sub, "def named_anyway(): pass\nnamed_anyway()\n")
I.destroy(sub)
print("pid", os.getpid())
''')
    r = run(py, [path], PERFPY_BACKEND="perf").check()
    assert "refused: perfpy is switched on and off in the main interpreter only" in r.stdout
    pid = int(r.stdout.splitlines()[-1].split()[1])
    assert len(named(pid, "named_anyway")) == 1
    assert r.stderr == "", r.stderr


#: The program of the recording tests (the bench's): a pool of interpreters, then one
#: interpreter of its own; and its whole stacks.
POOL, WHOLE = bench.PROGRAM, bench.WHOLE


def sub_stacks(tmp_path):
    """(samples in py::leaf, of them whole) of the recording in tmp_path."""
    counts = collapsed(tmp_path, "--native", "all")
    leaf = {s: n for s, n in counts.items() if "py::leaf:" in s}
    whole = sum(n for s, n in leaf.items() if WHOLE.search(s))
    return sum(leaf.values()), whole, sorted(leaf.items(), key=lambda kv: -kv[1])[:2]


@needs_new
@pytest.mark.parametrize("backend", ["perf", "perf-jit"])
@pytest.mark.parametrize("py", NEW, ids=lambda p: p.minor)
@CLI_MARKS[0]
@CLI_MARKS[1]
def test_pool_and_interpreters_are_named_with_whole_stacks(py, tmp_path, backend):
    """`perfpy record` of InterpreterPoolExecutor and concurrent.interpreters: the functions
    the subinterpreters run are the hottest, named, with whole stacks in at least 80% of their
    samples."""
    program = script(tmp_path, POOL)
    r = record(tmp_path, py.path, "--backend", backend, program=[program, "3000000"])
    summary = r.stderr[r.stderr.index("hottest Python functions"):]
    assert summary.splitlines()[2].split()[2] == "py::leaf", summary
    leaf, whole, top = sub_stacks(tmp_path)
    assert leaf >= 100 and whole >= 0.8 * leaf, (whole, leaf, top)


#: A program whose hot code only a subinterpreter runs, on every version that has them (the
#: aarch64 VM's checks run it too), and its whole stacks: the process's start, the main
#: interpreter's drive(), then the subinterpreter's frames, in the same thread.
IN_SUB = os.path.join(ROOT, "tests", "scripts", "in_sub.py")
WHOLE_IN_SUB = re.compile(r"^_start;(?:[^;]*;)*py::drive:[^;]*in_sub\.py;(?:[^;]*;)*"
                          r"py::spin_in_sub:<(?:string|script)>;(?:[^;]*;)*py::leaf:<")


@pytest.mark.parametrize("backend", ["perf", "perf-jit"])
@pytest.mark.parametrize("py", SUB, ids=lambda p: p.minor)
@CLI_MARKS[0]
@CLI_MARKS[1]
def test_a_subinterpreters_code_is_named_with_whole_stacks(py, tmp_path, backend):
    """`perfpy record` of code run in a subinterpreter (`_xxsubinterpreters.run_string`,
    `_interpreters.exec`): its functions are named, with whole stacks in at least 80% of
    their samples."""
    record(tmp_path, py.path, "--backend", backend, program=[IN_SUB, "3000000"])
    leaf = {s: n for s, n in collapsed(tmp_path, "--native", "all").items() if "py::leaf:" in s}
    whole = sum(n for s, n in leaf.items() if WHOLE_IN_SUB.search(s))
    assert sum(leaf.values()) >= 100 and whole >= 0.8 * sum(leaf.values()), \
        (whole, sum(leaf.values()), sorted(leaf.items(), key=lambda kv: -kv[1])[:2])


@needs_new
@pytest.mark.parametrize("py", NEW, ids=lambda p: p.minor)
@CLI_MARKS[0]
@CLI_MARKS[1]
def test_cpythons_own_trampoline_names_only_the_main_interpreter(py, tmp_path):
    """The README's side by side: CPython's own trampoline (its jitdump, DWARF call graphs,
    read by perfpy report) on the same program names none of the subinterpreters' functions,
    where perfpy names them (the test above)."""
    program = script(tmp_path, POOL)
    r = record(tmp_path, py.path, "--trampoline", "cpython", "--backend", "perf-jit",
               program=[program, "3000000"])
    assert "CPython's" in r.stderr, r.stderr
    counts = collapsed(tmp_path)
    total = sum(counts.values())
    leaf = sum(n for s, n in counts.items() if "py::leaf:" in s)
    call = sum(n for s, n in counts.items() if "py::Interpreter._call:" in s)
    assert total >= 100 and leaf == 0 and call >= 0.5 * total, (leaf, call, total)


#: `record --pid`'s target: a pool that keeps working, reporting how many of its interpreters
#: besides the main one run an evaluator other than CPython's.
SERVER = HELPERS + r'''
import time
from concurrent.futures import InterpreterPoolExecutor
''' + bench.FUNCTIONS + r'''
if __name__ == "__main__":
    with InterpreterPoolExecutor(2) as pool:
        while True:
            list(pool.map(spin_in_sub, [200000] * 4))
            print("hooked", hooked_elsewhere(), flush=True)
            time.sleep(0.05)
'''


@needs_new
@pytest.mark.parametrize("py", NEW, ids=lambda p: p.minor)
@CLI_MARKS[0]
@CLI_MARKS[1]
def test_record_pid_switches_the_subinterpreters_on_and_off(py, tmp_path):
    """`perfpy record --pid` of a running pool (started with no switch, perfpy installed):
    its subinterpreters get names for the recording, their functions are named, and after it
    every interpreter runs CPython's evaluator again."""
    from test_attach import Target

    t = Target(py.path, tmp_path, source=SERVER)
    try:
        assert t.lines()[-1] == "hooked 0", t.lines()
        r = perfpy("record", "--pid", str(t.proc.pid), "--duration", "3", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "switched Python names off in pid %d" % t.proc.pid in r.stderr, r.stderr
        assert [l for l in t.lines() if l == "hooked 2"], t.lines()[-5:]
        assert t.settle() == "hooked 0"
        assert t.proc.poll() is None
    finally:
        t.close()
    counts = collapsed(tmp_path)
    python = {s: n for s, n in counts.items() if "py::" in s}
    leaf = sum(n for s, n in python.items() if re.search(r"py::spin_in_sub:[^;]*;py::leaf:", s))
    assert leaf >= 0.5 * sum(python.values()), sorted(python.items(), key=lambda kv: -kv[1])[:3]
