"""What the record, report and format tests share: running the built `perfpy` command,
recording the seed example, and reading the report's text and folded output."""

import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import NO_PERFPY, PERFPY, PYTHONS, ROOT, SEED, child_env
from test_perf_record import requires_perf

#: Marks of every test that runs the perfpy command with the real perf.
CLI_MARKS = [
    requires_perf,
    pytest.mark.skipif(not os.path.exists(PERFPY), reason=NO_PERFPY),
]

#: Test tools scripts/test.sh installs: the speedscope file-format schema (npm package
#: speedscope), profile.proto (Debian golang-github-google-pprof-dev), protoc, chromium.
CACHE = os.path.expanduser(os.environ.get("PERFPY_TOOLS_CACHE", "~/.cache/perfpy"))
SPEEDSCOPE_SCHEMA = os.path.join(CACHE, "speedscope", "package", "dist", "release",
                                 "file-format-schema.json")
PROFILE_PROTO_DIR = "/usr/share/gocode/src/github.com/google/pprof/proto"

SEED_CHAIN = ";".join("py::%s:%s" % (f, SEED) for f in ("<module>", "baz", "bar", "foo"))


def on_the_host_only(what):
    """The skip mark of tests whose readers (`what`) scripts/test.sh installs on the host only:
    the run in the sid root (PERFPY_FORMAT_READERS=host) leaves them to the host's run."""
    return pytest.mark.skipif(os.environ.get("PERFPY_FORMAT_READERS") == "host",
                              reason="%s are installed on the host, whose run checks them; this "
                                     "run is in the sid root" % what)


@pytest.fixture(scope="module")
def seed_recording(tmp_path_factory):
    """The seed recorded once per test module (perf-jit backend, newest interpreter), in a
    directory of its own: perf.data, and the report's files next to it."""
    tmp = tmp_path_factory.mktemp("seed")
    record(tmp, PYTHONS[-1].path, "--backend", "perf-jit")
    return tmp


def perfpy(*args, cwd, env=None, **kw):
    return subprocess.run([PERFPY] + list(args), cwd=str(cwd), capture_output=True, text=True,
                          env=env or child_env(HOME=str(cwd / "home")), **kw)


def record(tmp_path, python, *args, program=None, out="perf.data"):
    (tmp_path / "home").mkdir(exist_ok=True)
    program = program or [SEED, "3000000"]
    r = perfpy("record", "-o", out, *args, "--", python, *program, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return r


def collapsed(tmp_path, *args, data="perf.data"):
    r = perfpy("report", "-i", data, "--format", "collapsed", *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    counts = {}
    for line in r.stdout.splitlines():
        stack, n = line.rsplit(" ", 1)
        counts[stack] = counts.get(stack, 0) + int(n)
    return counts


def by_leaf(counts, function):
    """Of collapsed stacks weighed in microseconds (a wall-clock or off-CPU report): those
    through Python function `function` (py::NAME:), by their leaf: `[wait: REASON]` for a
    wait, `cpu` for time on the CPU."""
    out = {}
    for stack, us in counts.items():
        if "py::%s:" % function not in stack:
            continue
        leaf = stack.rsplit(";", 1)[-1]
        key = leaf if leaf.startswith("[wait: ") else "cpu"
        out[key] = out.get(key, 0) + us
    return out


def python_rows(text):
    """The rows of the text report's Python table: [(self%, total%, samples, function,
    file:line)]."""
    rows, inside = [], False
    for line in text.splitlines():
        if line.startswith("Python functions"):
            inside = True
            continue
        if inside and not line.strip():
            break
        m = re.match(r"^\s+([\d.]+)%\s+([\d.]+)%\s+(\d+)\s+(\S+)\s*(.*)$", line)
        if inside and m:
            rows.append((float(m.group(1)), float(m.group(2)), int(m.group(3)), m.group(4),
                         m.group(5).strip()))
    return rows


def recorded_pids(tmp_path, data="perf.data"):
    side = tmp_path / (data + ".perfpy")
    return sorted({int(re.search(r"-(\d+)\.", p).group(1)) for p in os.listdir(side)})


BACKENDS = ["perf", "perf-jit"]


BUILTIN = [p for p in PYTHONS if p.has_builtin_perf]


def wait_for_samples(path, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 200_000:
            return
        time.sleep(0.2)
    raise AssertionError("no recording appeared at %s" % path)


def shutil_which(name):
    return shutil.which(name)


def kallsyms_readable():
    try:
        with open("/proc/kallsyms") as f:
            return int(f.readline().split()[0], 16) != 0
    except (OSError, ValueError, IndexError):
        return False


def running_binary(py):
    """The binary an interpreter's code runs from: its mapped libpython, else the executable."""
    out = subprocess.run([py.path, "-c", """if 1:
        import os, sys
        lib = [l.split()[5] for l in open("/proc/self/maps")
               if len(l.split()) >= 6 and "x" in l.split()[1] and "/libpython" in l.split()[5]]
        print(lib[0] if lib else os.path.realpath(sys.executable))"""],
        capture_output=True, text=True, check=True)
    return out.stdout.strip()


def has_symbols(py, *names):
    """Whether the interpreter's binary names all of `names` in its symbol tables (Debian's
    are stripped, and their debug-symbol packages are not reachable here)."""
    binary = running_binary(py)
    out = subprocess.run(["readelf", "-Ws", binary], capture_output=True, text=True).stdout
    found = {line.split()[-1] for line in out.splitlines() if line.split()}
    return all(n in found for n in names)
