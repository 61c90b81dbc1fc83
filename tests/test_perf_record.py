"""End to end with the real ``perf``: what a user sees in ``perf script``."""

import functools
import os
import re
import shutil
import subprocess

import pytest

from conftest import FP_PYTHONS, PERFPY, PYTHONS, ROOT, SEED, child_env

PERF = shutil.which("perf")


@functools.lru_cache(maxsize=None)
def perf_problem(tmpdir="/tmp"):
    """Why perf can't record here, or None."""
    if PERF is None:
        return "perf is not installed (apt-get install linux-perf)"
    out = os.path.join(tmpdir, "perfpy-probe-%d.data" % os.getpid())
    try:
        r = subprocess.run([PERF, "record", "-q", "-o", out, "--", "true"],
                           capture_output=True, text=True)
    finally:
        if os.path.exists(out):
            os.unlink(out)
    if r.returncode != 0:
        return "perf record fails here: %s" % r.stderr.strip()[-300:]
    return None


requires_perf = pytest.mark.skipif(perf_problem() is not None, reason=str(perf_problem()))


def record(python, args, callgraph, tmp_path, **env):
    data = str(tmp_path / "perf.data")
    cmd = [PERF, "record", "-q", "-F", "999"] + callgraph + ["-o", data, "--", python] + args
    subprocess.run(cmd, check=True, env=child_env(**env), capture_output=True, text=True)
    return script_samples(data)


def script_samples(data, env=None):
    """`perf script` of `data` as a list of samples, each a list of symbols, innermost first."""
    out = subprocess.run([PERF, "script", "-i", data, "-F", "comm,pid,ip,sym"],
                         check=True, env=env, capture_output=True, text=True).stdout
    samples = []
    for block in out.split("\n\n"):
        lines = [l.split(None, 1) for l in block.strip().splitlines()[1:]]
        samples.append([l[1] if len(l) > 1 else "" for l in lines])
    return [s for s in samples if s]


def python_frames(stack):
    """The py:: frames of one sample, innermost first, without the file part."""
    out = []
    for sym in stack:
        if sym.startswith("py::"):
            out.append(sym[len("py::"):].split(":", 1)[0])
    return out


@requires_perf
@pytest.mark.skipif(not FP_PYTHONS, reason="no frame-pointer interpreter; run scripts/build-fp-python.sh")
@pytest.mark.parametrize("fp", FP_PYTHONS, ids=lambda p: p.minor + "-fp")
def test_frame_pointer_stacks_show_baz_bar_foo(fp, tmp_path):
    samples = record(fp.path, [SEED, "5000000"], ["-g"], tmp_path, PYTHONPERFSUPPORT="1")
    chains = [python_frames(s) for s in samples]
    full = [c for c in chains if c[:4] == ["foo", "bar", "baz", "<module>"]]
    assert len(samples) >= 50
    # Nearly every sample is in foo's loop, and each of those shows the whole Python stack.
    assert len(full) >= 0.8 * len(samples), (len(full), len(samples), chains[:5])


@requires_perf
@pytest.mark.skipif(not FP_PYTHONS, reason="no frame-pointer interpreter; run scripts/build-fp-python.sh")
@pytest.mark.parametrize("fp", FP_PYTHONS, ids=lambda p: p.minor + "-fp")
def test_no_python_frames_without_perfpy(fp, tmp_path):
    samples = record(fp.path, [SEED, "2000000"], ["-g"], tmp_path)
    assert samples and not any(python_frames(s) for s in samples)


def perf_unwinds_with_libdw_only():
    """Whether this perf was built without libunwind (Debian's perf 7 is): it then unwinds
    DWARF stacks with libdw, which stops inside _PyEval_EvalFrameDefault of Debian's CPython
    3.14 and 3.15 (before any Python frame, for CPython's own -X perf as for perfpy)."""
    out = subprocess.run([PERF, "version", "--build-options"], capture_output=True,
                         text=True).stdout
    return re.search(r"\blibunwind:\s*\[\s*OFF", out) is not None


@requires_perf
def test_dwarf_names_the_innermost_function_on_stock_builds(py, tmp_path):
    """No frame pointers: perf's DWARF unwinder reaches the stub and names it from the map
    (it cannot unwind further: the stub has no CFI; that is the perf_jit backend's job). Where
    perf unwinds with libdw and can't get there, perfpy report reads the same recording."""
    # 10M iterations: start-up (ld.so, site) is a fixed ~40 samples of its own, 15% of a
    # 5M-iteration run, which left foo's share just under 85% now and then.
    samples = record(py.path, [SEED, "10000000"], ["--call-graph", "dwarf"], tmp_path,
                     PERFPY_BACKEND="perf")
    named = [s for s in samples if "foo" in python_frames(s)[:1]]
    assert len(samples) >= 50
    if not named and perf_unwinds_with_libdw_only():
        out = subprocess.run([PERFPY, "report", "-i", str(tmp_path / "perf.data"), "--format",
                              "collapsed", "--native", "none"],
                             capture_output=True, text=True, check=True).stdout
        counts = [(stack, int(n)) for stack, n in (l.rsplit(" ", 1) for l in out.splitlines())]
        total = sum(n for _, n in counts)
        foo = sum(n for stack, n in counts if stack.split(";")[-1].startswith("py::foo:"))
        assert total >= 50 and foo >= 0.85 * total, (foo, total)
        return
    assert len(named) >= 0.85 * len(samples), (len(named), len(samples))


def record_jit(python, args, tmp_path, opts=(), **env):
    """perf record -k 1 --call-graph dwarf, perf inject --jit, perf script; HOME points at a
    scratch directory so perf's build-id cache stays out of the real ~/.debug."""
    data, injected = str(tmp_path / "perf.data"), str(tmp_path / "perf.jit.data")
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = child_env(HOME=str(home), **env)
    subprocess.run([PERF, "record", "-q", "-k", "1", "-F", "499", "--call-graph", "dwarf,65528",
                    "-o", data, "--", python] + list(opts) + list(args),
                   check=True, env=env, capture_output=True, text=True)
    subprocess.run([PERF, "inject", "--jit", "-i", data, "-o", injected],
                   check=True, env=env, capture_output=True, text=True)
    return script_samples(injected, env)


def whole_stacks(samples):
    return [s for s in samples if python_frames(s)[:4] == ["foo", "bar", "baz", "<module>"]]


def after_start_up(samples):
    """The samples (in time order, as perf script prints them) from the first one inside the
    seed's loop on: the interpreter's start-up before it is a fixed 15-20 samples that no
    unwinder could give a Python stack, and a short run would be judged on them. A broken
    unwinder still fails: its lost stacks are spread over the whole run."""
    whole = [i for i, s in enumerate(samples) if python_frames(s)[:4] == ["foo", "bar", "baz",
                                                                          "<module>"]]
    assert whole and whole[0] < len(samples) // 2, "no whole stack in the first half of the run"
    return samples[whole[0]:]


@requires_perf
def test_perf_jit_whole_stacks_without_frame_pointers(py, tmp_path):
    """Stock interpreter, no frame pointers: perf's DWARF unwinder steps through every stub
    with the unwind information from the jitdump, and sees the whole Python stack."""
    # 6,000,000 iterations: Debian's 3.14 ran 3,000,000 in 28 samples at 499 Hz.
    samples = after_start_up(record_jit(py.path, [SEED, "6000000"], tmp_path,
                                        PERFPY_BACKEND="perf_jit"))
    full = whole_stacks(samples)
    assert len(samples) >= 30
    assert len(full) >= 0.8 * len(samples), (len(full), len(samples),
                                             [python_frames(s) for s in samples[:5]])


ORACLES = [p for p in PYTHONS if p.version >= (3, 13)]


@requires_perf
@pytest.mark.skipif(not ORACLES, reason="no CPython 3.13+ (the -X perf_jit oracle) here")
@pytest.mark.parametrize("oracle", ORACLES, ids=lambda p: p.minor)
def test_cpython_perf_jit_oracle_gives_the_same_stacks(oracle, tmp_path):
    """CPython's own -X perf_jit (3.13+) and perfpy's perf_jit, through perf inject --jit and
    perf script: both give whole stacks."""
    theirs = after_start_up(record_jit(oracle.base, [SEED, "6000000"], tmp_path,
                                       opts=["-X", "perf_jit"]))
    ours = after_start_up(record_jit(oracle.path, [SEED, "6000000"], tmp_path,
                                     PERFPY_BACKEND="perf_jit"))
    assert len(whole_stacks(theirs)) >= 0.8 * len(theirs)
    assert len(whole_stacks(ours)) >= 0.8 * len(ours)
