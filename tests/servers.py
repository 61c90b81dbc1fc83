"""Real servers for the tests: the apps in tests/apps on the interpreters that have their
packages, loaded by wrk on 127.0.0.1 while `perfpy record` runs them."""

import collections
import glob
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import FP_PYTHONS, PYTHONS, ROOT, child_env
from recording import perfpy, shutil_which

APPS = os.path.join(ROOT, "tests", "apps")
#: How long wrk loads each server (the issue's production check: 30 s).
LOAD_SECONDS = int(os.environ.get("PERFPY_LOAD_SECONDS", "30"))
WRK = shutil_which("wrk")


def has_apps(p):
    return subprocess.run([p.path, "-c", "import gunicorn, aiohttp, jinja2, numpy"],
                          capture_output=True).returncode == 0


APP_PYTHONS = [p for p in PYTHONS if has_apps(p)]
#: numpy also runs on the frame-pointer builds (the 3.11 built here; 3.15 is in both lists).
NUMPY_PYTHONS = APP_PYTHONS + [p for p in FP_PYTHONS if p not in APP_PYTHONS and has_apps(p)]
NO_APPS = ("no interpreter here has tests/apps/requirements.txt: scripts/setup-pythons.sh "
           "installs it into the venvs PERFPY_APP_VENVS names")
#: The servers and pools run on every interpreter with the packages (one per version).
SERVER_PYTHONS = APP_PYTHONS
needs_wrk = pytest.mark.skipif(not WRK, reason="no wrk (Debian package wrk; scripts/test.sh "
                                               "installs it)")

TMP_PATTERNS = ("/tmp/perf-*.map", "/tmp/jit-*.dump", "/tmp/jitted-*.so", "/tmp/perfpy-*")


def tmp_files():
    return {f for p in TMP_PATTERNS for f in glob.glob(p)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("the server exited: %s" % proc.stderr.read())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("nothing listened on port %d" % port)


def load(port, seconds, path="/"):
    """wrk's counts: requests, non-2xx/3xx responses and socket errors."""
    r = subprocess.run([WRK, "-t2", "-c8", "-d%ds" % seconds, "--timeout", "10s",
                        "http://127.0.0.1:%d%s" % (port, path)],
                       capture_output=True, text=True, timeout=seconds + 60)
    assert r.returncode == 0, r.stderr
    requests = int(re.search(r"(\d+) requests in", r.stdout).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       r.stdout)
    return {"requests": requests, "non_2xx": int(bad.group(1)) if bad else 0,
            "errors": [int(g) for g in errors.groups()] if errors else [0, 0, 0, 0],
            "text": r.stdout}


def paced(port, seconds, interval=0.02, path="/"):
    """One request at a time, `interval` seconds apart, for `seconds`: a server that waits
    for its clients most of the time (wrk keeps one busy). The same counts as load()."""
    import urllib.request
    deadline = time.time() + seconds
    stats = {"requests": 0, "non_2xx": 0, "errors": [0, 0, 0, 0], "text": ""}
    while time.time() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
                r.read()
                stats["requests"] += 1
                stats["non_2xx"] += not 200 <= r.status < 400
        except OSError as e:
            stats["errors"][1] += 1
            stats["text"] += "%s\n" % e
        time.sleep(interval)
    stats["text"] += "%d requests in %d s" % (stats["requests"], seconds)
    return stats


def serve(tmp_path, argv, port, backend, seconds=LOAD_SECONDS, record_args=(), env=None,
          loader=load):
    """`perfpy record [record_args]` running the server `argv`, loaded by wrk, then stopped
    with Ctrl-C. The WSGI app counts each process's requests into tmp_path/served/<pid>."""
    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "served").mkdir(exist_ok=True)
    before = tmp_files()
    rec = subprocess.Popen(
        [os.environ.get("PERFPY_CLI") or __import__("conftest").PERFPY, "record", "-F", "99",
         "--backend", backend, "-o", "perf.data"] + list(record_args) + ["--"] + argv,
        cwd=str(tmp_path), env=child_env(HOME=str(tmp_path / "home"),
                                          PERFPY_TEST_SERVED=str(tmp_path / "served"),
                                          **(env or {})),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, rec)
        stats = loader(port, seconds)
    finally:
        rec.send_signal(signal.SIGINT)
        out, err = rec.communicate(timeout=180)
    assert rec.returncode in (0, 130, -signal.SIGINT), err
    left = tmp_files() - before
    return stats, out + err, left


def per_pid(tmp_path):
    """{pid: [stack of frame names, root first]} from the speedscope output (which keeps each
    thread apart, labelled `name (pid P, tid T)`)."""
    r = perfpy("report", "--format", "speedscope", "-o", "out.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.load(open(tmp_path / "out.json"))
    frames = [f["name"] for f in doc["shared"]["frames"]]
    stacks = collections.defaultdict(list)
    for prof in doc["profiles"]:
        pid = int(re.search(r"\(pid (\d+), tid \d+\)", prof["name"]).group(1))
        # One entry per sample (the weights are its seconds: 1/frequency each).
        for sample in prof["samples"]:
            stacks[pid].append([frames[i] for i in sample])
    return stacks


def has(stack, func):
    """Whether `stack` has Python function `func` (speedscope's frames: `py::func`, with the
    file apart; folded stacks: `py::func:file`)."""
    name = "py::" + func
    return any(f == name or f.startswith(name + ":") for f in stack)
