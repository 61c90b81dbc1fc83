"""Real programs under `perfpy record`: a pre-fork WSGI server (gunicorn) and an asyncio
server (aiohttp) under load from wrk on 127.0.0.1, multiprocessing pools with every start
method, numpy's C code and BLAS, and a process pool that outlives the program's main process.
Each starts the real thing and is bounded in time; the packages are tests/apps/requirements.txt
(scripts/setup-pythons.sh installs them)."""

import collections
import os
import re

import pytest

from recording import CLI_MARKS, collapsed, perfpy, python_rows
from servers import (APP_PYTHONS, APPS, LOAD_SECONDS, NO_APPS, NUMPY_PYTHONS, SERVER_PYTHONS,
                     free_port, has, needs_wrk, per_pid, serve, tmp_files)

pytestmark = CLI_MARKS + [pytest.mark.skipif(not APP_PYTHONS, reason=NO_APPS)]


GUNICORN = [
    # (worker class, --preload, backend)
    ("sync", True, "perf"),
    ("gthread", False, "perf-jit"),
]


# Each configuration once per run, on its interpreters in turn (30 s of load each): the
# host's one interpreter gets both, the root's 3.14 and 3.15 one each.
GUNICORN_CASES = [(py, *GUNICORN[i % len(GUNICORN)])
                  for i, py in enumerate(SERVER_PYTHONS * (2 if len(SERVER_PYTHONS) == 1 else 1))]


@needs_wrk
@pytest.mark.parametrize("py,worker,preload,backend", GUNICORN_CASES,
                         ids=["%s-%s-%s-%s" % (py.minor, w, "preload" if p else "fork", b)
                              for py, w, p, b in GUNICORN_CASES])
def test_gunicorn_under_load(py, tmp_path, worker, preload, backend):
    port = free_port()
    argv = [py.path, "-m", "gunicorn", "--chdir", APPS, "-b", "127.0.0.1:%d" % port,
            "-w", "2", "-k", worker, "--max-requests", "400", "--max-requests-jitter", "0",
            "--graceful-timeout", "5", "wsgi_app:app"]
    if worker == "gthread":
        # (gunicorn turns sync workers with --threads > 1 into gthread ones.)
        argv[-1:-1] = ["--threads", "2"]
    if preload:
        argv.insert(3, "--preload")
    stats, err, left = serve(tmp_path, argv, port, backend)
    assert stats["requests"] > 400 * 2, stats["text"]
    assert stats["non_2xx"] == 0, stats["text"]
    assert stats["errors"] == [0, 0, 0, 0], stats["text"]
    assert not left, "left in /tmp: %s" % sorted(left)
    print("wrk: %d requests in %d s; %d workers booted" % (
        stats["requests"], LOAD_SECONDS, len(re.findall(r"Booting worker", err))))
    master = int(re.search(r"\[(\d+)\] \[INFO\] Starting gunicorn", err).group(1))
    workers = [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", err)]
    assert len(workers) >= 3, "no worker was recycled:\n" + err[-3000:]
    stacks = per_pid(tmp_path)
    assert not any(has(s, "app") for s in stacks.get(master, [])), "master ran the app?"
    # Every worker that served (by the app's own count) is named, recycled ones included.
    counts = {int(p.name): int(p.read_text()) for p in (tmp_path / "served").iterdir()}
    assert set(counts) <= set(workers), (sorted(counts), workers)
    served = [w for w, n in counts.items() if n >= 200]
    assert len(served) >= 3, counts
    unnamed = {w: (counts[w], collections.Counter(";".join(s[-3:]) for s in stacks.get(w, []))
                   .most_common(3)) for w in served
               if not any(has(s, "app") for s in stacks.get(w, []))}
    assert not unnamed, unnamed
    everyone = []
    for w in served:
        app = [s for s in stacks[w] if has(s, "app")]
        # Whole stacks: from the app down through the worker loop to the master's
        # Arbiter.run that forked it (sync), or to the pool thread's start (gthread).
        whole = [s for s in app if
                 has(s, "Arbiter.run") and has(s, "SyncWorker.run") or
                 s[0] == "py::Thread._bootstrap" and has(s, "ThreadWorker.handle")]
        assert len(whole) >= 0.8 * len(app), (w, len(whole), len(app), app[:2])
        everyone += app
    # The app's own callees, named under it (score is brief: at 99 Hz on a busy machine a
    # worker may have no sample in it, so this counts every worker's).
    assert any(has(s, "render_rows") and has(s, "score") for s in everyone), everyone[:3]


@needs_wrk
@pytest.mark.parametrize("py", SERVER_PYTHONS[-1:], ids=lambda p: p.minor)
def test_aiohttp_under_load(py, tmp_path):
    port = free_port()
    # Half the WSGI test's load time: one process, so the same checks need fewer samples.
    stats, err, left = serve(tmp_path, [py.path, os.path.join(APPS, "aio_app.py"), str(port)],
                             port, "perf-jit", seconds=LOAD_SECONDS // 2)
    assert stats["requests"] > 100 and stats["non_2xx"] == 0, stats["text"]
    assert stats["errors"] == [0, 0, 0, 0], stats["text"]
    assert not left, sorted(left)
    stacks = [s for ss in per_pid(tmp_path).values() for s in ss]
    handler = [s for s in stacks if has(s, "handle")]
    assert len(handler) >= 0.3 * len(stacks), (len(handler), len(stacks))
    # The coroutines, under the event loop's own frames.
    under_loop = [s for s in handler if has(s, "BaseEventLoop._run_once") and
                  has(s, "BaseEventLoop.run_forever")]
    assert len(under_loop) >= 0.8 * len(handler), handler[:2]
    assert any(has(s, "compute") and has(s, "checksum") for s in handler)
    # The table is ranked by self time, and the handler's own is small (its callees do the
    # work), so it is asked for whole: the row is there, with the handler's total.
    rows = python_rows(perfpy("report", "--top", "100000", cwd=tmp_path).stdout)
    totals = [r[1] for r in rows if r[3] == "py::handle"]
    assert totals and totals[0] >= 80 * len(handler) / len(stacks), (totals, rows[:5])


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
@pytest.mark.parametrize("py", SERVER_PYTHONS, ids=lambda p: p.minor)
def test_multiprocessing_pool_every_worker_named(py, tmp_path, method):
    (tmp_path / "home").mkdir(exist_ok=True)
    before = tmp_files()
    r = perfpy("record", "-o", "perf.data", "--", py.path, os.path.join(APPS, "pool.py"), method,
               cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (tmp_files() - before), sorted(tmp_files() - before)
    workers = [int(p) for p in r.stdout.split()]
    assert len(workers) == 2, r.stdout
    stacks = per_pid(tmp_path)
    for w in workers:
        crunch = [s for s in stacks.get(w, []) if has(s, "crunch")]
        assert len(crunch) >= 100, (w, len(crunch), sorted(stacks))
        # Each worker's stack reaches multiprocessing's worker loop.
        assert sum(has(s, "worker") for s in crunch) >= 0.9 * len(crunch)
    # The summary record prints and the report agree.
    summary = r.stderr[r.stderr.index("hottest Python functions"):].splitlines()[2:]
    top = [l.split()[2] for l in summary if l.strip().startswith(tuple("0123456789"))][:3]
    rows = python_rows(perfpy("report", cwd=tmp_path).stdout)
    assert top and top[0] == rows[0][3] == "py::crunch", (top, rows[:3])


def test_a_process_pool_that_outlives_the_program(tmp_path):
    """compileall -j 2: a pool whose forkserver and workers outlive its main process. record's
    summary and report agree, and /tmp keeps none of their files."""
    py = SERVER_PYTHONS[0]
    src = tmp_path / "src"
    src.mkdir()
    for i in range(60):
        (src / ("m%d.py" % i)).write_text("".join("def f%d(x):\n    return x + %d\n" % (j, j)
                                                  for j in range(300)))
    (tmp_path / "home").mkdir()
    before = tmp_files()
    r = perfpy("record", "-o", "perf.data", "--", py.path, "-m", "compileall", "-f", "-q",
               "-j", "2", str(src), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (tmp_files() - before), sorted(tmp_files() - before)
    summary = {}
    for line in r.stderr[r.stderr.index("hottest Python functions"):].splitlines()[2:]:
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith("%"):
            summary[parts[2]] = (float(parts[0][:-1]), float(parts[1][:-1]))
    rows = {row[3]: (row[0], row[1]) for row in python_rows(perfpy("report", cwd=tmp_path).stdout)}
    assert summary
    for func, shares in summary.items():
        assert rows.get(func) == shares, (func, shares, rows.get(func))


@pytest.mark.parametrize("py", NUMPY_PYTHONS, ids=lambda p: p.minor + ("-fp" if p.frame_pointers
                                                                        else ""))
def test_numpy_stacks_reach_blas_under_the_python_caller(py, tmp_path):
    (tmp_path / "home").mkdir()
    r = perfpy("record", "-o", "perf.data", "--", py.path, os.path.join(APPS, "blas.py"), "3",
               cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "DWARF call graphs" in r.stderr
    counts = collapsed(tmp_path)

    def chain(stack, *steps):
        """Whether `stack` (root first) passes each step, in order."""
        i = 0
        for f in stack:
            if i < len(steps) and steps[i](f):
                i += 1
        return i == len(steps)

    # The main thread's stacks: not OpenBLAS's threads, nor its assembly kernels (no CFI).
    main = [s for s in counts if not s.startswith("clone3;") and "blas_thread" not in s
            and s.split(";")[0] != "dgemm_kernel_HASWELL"]

    def reach(native, *steps):
        """Of the main thread's samples in native code `native` matches, how many, and the
        share whose stack passes `steps` (Python caller first) down to it: a property of the
        unwinding, which neither a busy machine (where OpenBLAS's spinning threads take more
        of all samples) nor numpy's choice of kernel (AVX-512's sort takes a fraction of the
        AVX2 one's time) moves."""
        inside = {s: counts[s] for s in main if any(native(f) for f in s.split(";"))}
        n = sum(inside.values())
        whole = sum(c for s, c in inside.items() if chain(s.split(";"), *steps, native))
        return n, whole / max(n, 1)

    py_frame = lambda name: lambda f: f.startswith("py::%s:" % name)
    found = {
        # py::matmul → numpy's matmul loop → the BLAS entry point.
        "matmul": reach(lambda f: "dgemm" in f and f != "dgemm_kernel_HASWELL",
                        py_frame("matmul"), lambda f: "matmul" in f and not f.startswith("py::")),
        # py::ufuncs → numpy's ufunc loops → libm.
        "ufuncs": reach(lambda f: f.startswith("DOUBLE_") and "matmul" not in f,
                        py_frame("ufuncs"),
                        lambda f: f.startswith("ufunc_") or f.startswith("PyUFunc")),
        # py::sort → numpy's sort.
        "sort": reach(lambda f: "PyArray_Sort" in f or "array_sort" in f, py_frame("sort")),
        # Through numpy's AVX2 sort too, whose realigned stack has a CFA read from memory
        # (framehop alone lost about a fifth of the main thread's samples there); an AVX-512
        # machine's numpy 2.4 sorts with another kernel, and in too little time to judge.
        "qsort_simd": reach(lambda f: "qsort_simd" in f, py_frame("sort"),
                            lambda f: "array_sort" in f),
    }
    needed = {"matmul": 20, "ufuncs": 20, "sort": 1, "qsort_simd": 20}
    assert all(found[k][0] >= needed[k] for k in ("matmul", "ufuncs", "sort")), found
    assert all(share >= 0.8 for k, (n, share) in found.items() if n >= needed[k]), found
    # Time on the main thread keeps its Python caller: all but start-up and OpenBLAS's
    # assembly kernels, which have no CFI.
    with_py = sum(counts[s] for s in main if "py::" in s)
    assert with_py >= 0.9 * sum(counts[s] for s in main), sorted(main, key=counts.get)[-5:]
