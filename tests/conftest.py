"""Shared harness: every test runs real interpreters in subprocesses.

Interpreters come from ``PERFPY_TEST_PYTHONS`` (space-separated paths of interpreters that have
perfpy installed) or, by default, from the venvs ``scripts/setup-pythons.sh`` makes under
``.venvs/``. The frame-pointer build (``.venvs/py3.11-fp``) is used only by the tests that need
frame pointers.
"""

import glob
import os
import re
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Workload scripts shared by the tests (the seed example stays in examples/).
SCRIPTS = os.path.join(ROOT, "tests", "scripts")
SEED = os.path.join(ROOT, "examples", "seed.py")
#: The perfpy command under test: the one the wheel installed next to pytest's interpreter
#: (what ships), or $PERFPY_CLI.
PERFPY = os.environ.get("PERFPY_CLI") or os.path.join(sys.prefix, "bin", "perfpy")
NO_PERFPY = "no perfpy command at %s: scripts/test.sh installs the wheel into the tools venv " \
            "(or set PERFPY_CLI)" % PERFPY

#: Environment variables that switch a perf trampoline on; removed from every child's
#: environment unless a test sets them.
SWITCHES = ("PYTHONPERFSUPPORT", "PYTHON_PERF_JIT_SUPPORT", "PERFPY_BACKEND")

MAP_LINE = re.compile(r"^([0-9a-f]+) ([0-9a-f]+) (.+)$")


class Python:
    """An interpreter under test."""

    def __init__(self, path):
        self.path = path
        out = subprocess.check_output(
            [path, "-c", "import sys, sysconfig; print(sys.version_info[0], sys.version_info[1]); "
                         "print(sys.base_prefix); print(sysconfig.get_config_var('CFLAGS') or '')"],
            text=True,
        ).splitlines()
        self.version = tuple(int(x) for x in out[0].split())
        self.base_prefix = out[1]
        self.frame_pointers = "no-omit-frame-pointer" in out[2]
        self.minor = "%d.%d" % self.version

    @property
    def base(self):
        """The interpreter itself, outside the venv (no perfpy installed)."""
        return os.path.join(self.base_prefix, "bin", "python" + self.minor)

    @property
    def has_builtin_perf(self):
        return self.version >= (3, 12)

    def __repr__(self):
        return "Python(%s%s)" % (self.minor, "-fp" if self.frame_pointers else "")


def _discover():
    env = os.environ.get("PERFPY_TEST_PYTHONS")
    if env:
        paths = env.split()
    else:
        paths = sorted(glob.glob(os.path.join(ROOT, ".venvs", "py3.*", "bin", "python")))
    found = sorted((Python(p) for p in paths), key=lambda p: (p.version, p.frame_pointers))
    # One interpreter per version runs the whole suite, the distribution's build where there
    # are two (the frame-pointer 3.11 built here only serves the tests that need frame
    # pointers). 3.15 keeps frame pointers by default, so it is in both lists.
    by_version = {}
    for p in found:
        by_version.setdefault(p.version, p)
    fp = [p for p in found if p.frame_pointers]
    return list(by_version.values()), fp


PYTHONS, FP_PYTHONS = _discover()
#: The interpreters without frame pointers (perf's own unwinder needs DWARF there).
NO_FP_PYTHONS = [p for p in PYTHONS if not p.frame_pointers]


def pytest_report_header(config):
    return "perfpy interpreters: %s; frame-pointer builds: %s" % (
        ", ".join(p.minor for p in PYTHONS) or "none",
        ", ".join(p.minor for p in FP_PYTHONS) or "none",
    )


def pytest_collection_modifyitems(config, items):
    if not PYTHONS:
        raise pytest.UsageError(
            "no interpreter with perfpy installed: run scripts/setup-pythons.sh "
            "or set PERFPY_TEST_PYTHONS"
        )


@pytest.fixture(params=PYTHONS, ids=lambda p: p.minor)
def py(request):
    return request.param


@pytest.fixture(autouse=True)
def clean_tmp_maps():
    """Deletes the /tmp/perf-*.map, jit-*.dump and jitted-*.so files a test created (all those
    new since it started, its programs' that still run included: a killed perf's orphan, a
    server's dying workers). Two test runs on one machine therefore delete each other's: run
    one at a time."""
    patterns = ("/tmp/perf-*.map", "/tmp/jit-*.dump", "/tmp/jitted-*.so")
    before = {f for p in patterns for f in glob.glob(p)}
    yield
    for p in patterns:
        for f in glob.glob(p):
            if f not in before:
                try:
                    os.unlink(f)
                except OSError:
                    pass


def child_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    env.pop("PYTHONWARNINGS", None)
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env


def script(tmp_path, source, name="script.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


class Run:
    def __init__(self, proc, stdout, stderr, started):
        self.pid = proc.pid
        #: When the process was started (time.time()): a file in /tmp named after its pid
        #: and older than this is another, earlier process's (pids are reused).
        self.started = started
        self.returncode = proc.returncode
        self.stdout = stdout
        self.stderr = stderr

    def check(self):
        assert self.returncode == 0, "exit %s\nstdout:\n%s\nstderr:\n%s" % (
            self.returncode, self.stdout, self.stderr)
        return self


def run(python, args, env=None, timeout=300, cwd=None, **extra_env):
    """Runs ``python args...`` and returns a Run (with the child's pid)."""
    exe = python if isinstance(python, str) else python.path
    started = time.time()
    proc = subprocess.Popen(
        [exe] + list(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env if env is not None else child_env(**extra_env),
        cwd=cwd,
    )
    out, err = proc.communicate(timeout=timeout)
    return Run(proc, out, err, started)


def map_path(pid):
    return "/tmp/perf-%d.map" % pid


def written_since(path, started):
    """Whether `path` exists and was written at or after `started`: a pid's /tmp file left
    by an earlier process with the same pid (a killed run's) is not this process's."""
    try:
        return os.stat(path).st_mtime >= started - 1
    except FileNotFoundError:
        return False


def read_map(pid):
    """The entries of /tmp/perf-<pid>.map as (addr, size, name), checking each line's format."""
    entries = []
    with open(map_path(pid)) as f:
        for line in f:
            m = MAP_LINE.match(line.rstrip("\n"))
            assert m, "malformed map line: %r" % line
            entries.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3)))
    return entries


def map_names(pid):
    return [name for _, _, name in read_map(pid)]
