"""Wall-clock profiles of real servers under wrk: where a request's time goes off the CPU, and
why (the kernel's reasons under the Python functions that waited), launched and attached."""

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import child_env
from recording import CLI_MARKS, by_leaf, collapsed, perfpy
from servers import (APP_PYTHONS, APPS, LOAD_SECONDS, NO_APPS, free_port, needs_wrk, paced,
                     serve, tmp_files, wait_for_port)

pytestmark = CLI_MARKS + [pytest.mark.skipif(not APP_PYTHONS, reason=NO_APPS)]

#: Each server is loaded for a third of the CPU tests' time: a wall-clock profile counts
#: every request's waits, so it needs fewer requests to be sure of them.
SECONDS = max(LOAD_SECONDS // 3, 5)


def share(t, *keys):
    return sum(t.get(k, 0) for k in keys) / max(sum(t.values()), 1)


def off_cpu(t):
    return {k: v for k, v in t.items() if k != "cpu"}


def whole_share(counts, function, root):
    """The share of `function`'s off-CPU time whose stacks reach Python frame `root` (unwound
    whole through the switch sample's copy of the user stack)."""
    waits = {s: us for s, us in counts.items()
             if "py::%s:" % function in s and s.rsplit(";", 1)[-1].startswith("[wait: ")}
    whole = sum(us for s, us in waits.items() if "py::%s:" % root in s)
    return whole / max(sum(waits.values()), 1)


@needs_wrk
@pytest.mark.parametrize("py", APP_PYTHONS[-1:], ids=lambda p: p.minor)
def test_gunicorn_handler_waits_for_the_disk_and_sleeps(py, tmp_path):
    """Sync workers whose handler commits to an on-disk SQLite with synchronous=FULL, then
    sleeps 5 ms: the commit's wait is the disk's, the pause's is sleep, both under the handler,
    and the workers' idle time between requests is the network's (waiting in accept/select)."""
    port = free_port()
    argv = [py.path, "-m", "gunicorn", "--chdir", APPS, "-b", "127.0.0.1:%d" % port,
            "-w", "2", "-k", "sync", "--graceful-timeout", "5", "wait_app:app"]
    stats, err, left = serve(tmp_path, argv, port, "perf", seconds=SECONDS,
                             record_args=["--mode", "wall"],
                             env={"PERFPY_TEST_DB": str(tmp_path)})
    assert stats["requests"] > 200 and stats["non_2xx"] == 0, stats["text"]
    assert not left, sorted(left)
    assert "wall clock:" in err, err
    counts = collapsed(tmp_path)
    store, pause = by_leaf(counts, "store"), by_leaf(counts, "pause")
    worker = by_leaf(counts, "SyncWorker.run")
    # The commit: most of its time waiting for the disk (fsync), the rest on the CPU or
    # preempted by the load generator sharing the machine's two cores.
    assert share(off_cpu(store), "[wait: disk]") > 0.8, store
    assert share(off_cpu(pause), "[wait: sleep]") > 0.9, pause
    # The worker's other waits: on its sockets (select between requests, the client closing;
    # few under a load that keeps it busy), or preempted.
    assert share(off_cpu(worker), "[wait: network]", "[wait: disk]", "[wait: sleep]",
                 "[wait: preempted]") > 0.95, worker
    assert worker.get("[wait: network]", 0) > 0, worker
    # Whole stacks: the waits reach the master's Arbiter.run that forked the worker.
    for function in ("store", "pause"):
        assert whole_share(counts, function, "Arbiter.run") >= 0.9, function
    text = perfpy("report", cwd=tmp_path).stdout
    assert re.search(r"py::store\s+\S+\s+disk \d+%", text), text


@pytest.mark.parametrize("py", APP_PYTHONS[-1:], ids=lambda p: p.minor)
def test_aiohttp_loop_waits_on_the_network_and_the_handler_runs(py, tmp_path):
    """A client that asks every 20 ms: the event loop's waiting between requests is epoll's,
    shown as the network under BaseEventLoop._run_once; the handler's own time (a CPU loop)
    is on the CPU."""
    port = free_port()
    stats, err, left = serve(tmp_path, [py.path, os.path.join(APPS, "aio_app.py"), str(port)],
                             port, "perf-jit", seconds=SECONDS, record_args=["--mode", "wall"],
                             loader=paced)
    assert stats["requests"] > 100 and stats["non_2xx"] == 0, stats["text"]
    assert not left, sorted(left)
    counts = collapsed(tmp_path)
    loop = by_leaf(counts, "BaseEventLoop._run_once")
    checksum = by_leaf(counts, "checksum")
    # The loop's waits that are its own (not preempted by wrk on the same cores): the network.
    own = {k: v for k, v in off_cpu(loop).items() if k != "[wait: preempted]"}
    assert share(own, "[wait: network]") > 0.9, loop
    # Paced, the loop waits for much of its time.
    assert share(loop, "[wait: network]") > 0.3, loop
    epoll = sum(us for s, us in counts.items() if "py::BaseEventLoop._run_once:" in s and
                s.endswith("[wait: network]") and "epoll_wait" in s)
    assert epoll > 0.9 * own.get("[wait: network]", 0), loop
    # The handler's loop runs on the CPU, or is preempted: it never waits of its own accord.
    assert share(checksum, "cpu", "[wait: preempted]") > 0.95, checksum
    assert checksum.get("cpu", 0) > 0.5 * sum(checksum.values()), checksum
    assert whole_share(counts, "BaseEventLoop._run_once", "BaseEventLoop.run_forever") >= 0.9


ATTACH_PYTHONS = [p for p in APP_PYTHONS if p.version >= (3, 14)]


@pytest.mark.skipif(not ATTACH_PYTHONS, reason="no CPython 3.14+ with the apps in this run: the "
                                               "sid root's run (scripts/test.sh) has them")
@pytest.mark.parametrize("py", ATTACH_PYTHONS[:1], ids=lambda p: p.minor)
def test_attach_to_a_running_server_in_wall_mode(py, tmp_path):
    """`perfpy record --mode wall --pid` on a running 3.14+ aiohttp server started with no
    switch: names on for the window (PEP 768) and off after, the loop's waits named."""
    port = free_port()
    before = tmp_files()
    server = subprocess.Popen([py.path, os.path.join(APPS, "aio_app.py"), str(port)],
                              env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        wait_for_port(port, server)
        (tmp_path / "home").mkdir()
        rec = subprocess.Popen(
            [os.environ.get("PERFPY_CLI") or __import__("conftest").PERFPY, "record", "--mode",
             "wall", "--pid", str(server.pid), "--duration", str(SECONDS), "-o", "perf.data"],
            cwd=str(tmp_path), env=child_env(HOME=str(tmp_path / "home")),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        stats = paced(port, SECONDS - 3)
        out, err = rec.communicate(timeout=120)
        assert rec.returncode == 0, err
        assert stats["requests"] > 50, stats["text"]
        counts = collapsed(tmp_path)
        loop = by_leaf(counts, "BaseEventLoop._run_once")
        own = {k: v for k, v in off_cpu(loop).items() if k != "[wait: preempted]"}
        assert share(own, "[wait: network]") > 0.9, loop
        assert share(loop, "[wait: network]") > 0.3, loop
        assert by_leaf(counts, "checksum").get("cpu", 0) > 0, sorted(counts)[:5]
        assert "switched Python names on in pid %d" % server.pid in err, err
        # Off at the end: at once, or (the loop idle in epoll_wait once the client stopped) at
        # the server's next safe point, its next request, said so.
        assert ("switched Python names off in pid %d" % server.pid in err or
                "pid %d has not run the switch-off yet" % server.pid in err), err
        assert paced(port, 1)["requests"] > 0, "the server keeps serving"
        assert server.poll() is None, "the server keeps running"
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
    assert not (tmp_files() - before), sorted(tmp_files() - before)

