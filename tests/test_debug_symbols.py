"""Stripped interpreters, as distributions ship them (Debian's and Ubuntu's python3.X, Fedora's
libpython): `perfpy report` names their own functions from a separate debug file found as gdb
finds it (by build id; by .gnu_debuglink beside the binary, in .debug/ beside it, under
/usr/lib/debug; each under --sysroot too), never from a file of another build; without one,
`perfpy record` and `perfpy report` say so once, with where the debug symbols come from.

The stripped interpreter is made here: pyenv's CPython 3.11 (its executable and its
libpython, which holds the interpreter: pyenv links it as a shared library) split with objcopy
as distributions split theirs, run with PYTHONHOME at pyenv's and LD_LIBRARY_PATH at the
stripped libpython."""

import glob
import os
import re
import shutil
import subprocess

import pytest

from conftest import child_env
from recording import CLI_MARKS, perfpy
from test_perf_record import PERF

pytestmark = CLI_MARKS

PYENV = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
PREFIXES = sorted(p for p in glob.glob(os.path.join(PYENV, "versions", "3.11.*"))
                  if os.path.exists(os.path.join(p, "lib", "libpython3.11.so.1.0")))
needs_pyenv_311 = pytest.mark.skipif(
    not PREFIXES, reason="no pyenv CPython 3.11 with its libpython (scripts/pythons.sh) here: "
                         "the sid root's run; the host's makes the stripped interpreter")

#: The interpreter's own functions a sort of ints spends its time in: static (not exported),
#: so only a debug file names them.
SORT = ("list_sort_impl", "merge_at", "unsafe_long_compare")
WORK = """\
import random, sys
random.seed(1)
data = list(range(3000))
random.shuffle(data)
def work(n):
    for _ in range(n):
        sorted(data)
work(int(sys.argv[1]))
"""
BINARIES = ("bin/python3.11", "lib/libpython3.11.so.1.0")


def objcopy(*args):
    subprocess.run(["objcopy"] + list(args), check=True)


def build_id(path):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True, check=True)
    return re.search(r"Build ID: ([0-9a-f]+)", out.stdout).group(1)


@pytest.fixture(scope="module")
def stripped(tmp_path_factory):
    """The stripped interpreter in py/ (bin/python3.11, lib/libpython3.11.so.1.0, each with a
    .gnu_debuglink to NAME.debug), its debug files kept aside in debug/, and a recording of
    it (perf.data) made with none of them in place: `perfpy record`'s result."""
    prefix = PREFIXES[-1]
    top = tmp_path_factory.mktemp("stripped")
    (top / "home").mkdir()
    for rel in BINARIES:
        (top / "py" / os.path.dirname(rel)).mkdir(parents=True, exist_ok=True)
        (top / "debug").mkdir(exist_ok=True)
        name = os.path.basename(rel)
        debug = top / "debug" / (name + ".debug")
        objcopy("--only-keep-debug", os.path.join(prefix, rel), str(debug))
        objcopy("--strip-all", "--add-gnu-debuglink=%s" % debug, os.path.join(prefix, rel),
                str(top / "py" / rel))
        out = subprocess.run(["readelf", "-S", str(top / "py" / rel)], capture_output=True,
                             text=True, check=True).stdout
        assert ".symtab" not in out and ".gnu_debuglink" in out
        # Nothing of this build where perfpy would look on this machine by build id.
        bid = build_id(str(top / "py" / rel))
        assert not os.path.exists("/usr/lib/debug/.build-id/%s/%s.debug" % (bid[:2], bid[2:]))
    (top / "work.py").write_text(WORK)
    python = str(top / "py" / "bin" / "python3.11")
    env = child_env(HOME=str(top / "home"), PYTHONHOME=prefix,
                    LD_LIBRARY_PATH=str(top / "py" / "lib"))
    # The stripped libpython is the one the program runs.
    maps = subprocess.run([python, "-c", "print(open('/proc/self/maps').read())"], env=env,
                          capture_output=True, text=True, check=True).stdout
    assert str(top / "py" / "lib" / "libpython3.11.so.1.0") in maps
    r = perfpy("record", "-o", "perf.data", "--", python, str(top / "work.py"), "6000",
               cwd=top, env=env)
    assert r.returncode == 0, r.stderr
    return top, r


def place(top, where, rel, corrupt=False):
    """Puts the debug file of `rel` (a path under py/) at `where` (a directory); one byte
    more when `corrupt`: another file, whose CRC is not the one the binary names."""
    name = os.path.basename(rel) + ".debug"
    os.makedirs(where, exist_ok=True)
    dst = os.path.join(where, name)
    shutil.copy(str(top / "debug" / name), dst)
    if corrupt:
        with open(dst, "ab") as f:
            f.write(b"\0")
    return dst


def unplace(top):
    for rel in BINARIES:
        name = os.path.basename(rel) + ".debug"
        for d in (top / "py" / os.path.dirname(rel), top / "py" / os.path.dirname(rel) / ".debug"):
            if os.path.exists(d / name):
                os.unlink(d / name)


def report(top, *args):
    """`perfpy report --native all` in folded stacks: (stderr, {frame: samples with it},
    {leaf frame: samples}, samples)."""
    r = perfpy("report", "--format", "collapsed", "--native", "all", *args, cwd=top)
    assert r.returncode == 0, r.stderr
    having, leaves, total = {}, {}, 0
    for line in r.stdout.splitlines():
        stack, n = line.rsplit(" ", 1)
        frames = stack.split(";")
        total += int(n)
        for f in set(frames):
            having[f] = having.get(f, 0) + int(n)
        leaves[frames[-1]] = leaves.get(frames[-1], 0) + int(n)
    assert total >= 500, (total, r.stderr)
    return r.stderr, having, leaves, total


def hints(stderr):
    """perfpy's warnings that a binary is stripped, by binary."""
    found = {}
    for line in stderr.splitlines():
        m = re.match(r"perfpy: warning: (\S+) is stripped and has no debug file", line)
        if m:
            found.setdefault(m.group(1), []).append(line)
    return found


def assert_named(top, stderr, having, total):
    """The interpreter's own functions named; no frame left to the file's name."""
    assert "is stripped" not in stderr, stderr
    assert having.get("list_sort_impl", 0) >= 0.5 * total, sorted(having.items())[:20]
    for f in SORT:
        assert f in having, f
    for name in ("[python3.11]", "[libpython3.11.so.1.0]"):
        assert having.get(name, 0) <= 0.02 * total, (name, having.get(name), total)


def assert_unnamed(top, stderr, having, total):
    """The interpreter's own functions unnamed, what it exports named, and the warning once,
    with the fix. Of the executable, stripped too, the samples have only `_start`, which it
    exports (`main` jumps to `Py_BytesMain`, leaving no frame): nothing to say of it."""
    for f in SORT:
        assert f not in having, f
    assert having["[libpython3.11.so.1.0]"] >= 0.9 * total
    assert "[python3.11]" not in having and having["_start"] >= 0.9 * total
    # Its exported functions keep their names (.dynsym).
    assert having.get("_PyEval_EvalFrameDefault", 0) >= 0.9 * total
    said = hints(stderr)
    lib = str(top / "py" / "lib" / "libpython3.11.so.1.0")
    assert list(said) == [lib], stderr
    assert len(said[lib]) == 1, said[lib]
    line = said[lib][0]
    assert "its own functions show as [libpython3.11.so.1.0]" in line, line
    # Not a distribution's file (it is in a temporary directory): no package named, but where
    # its debug file goes.
    assert "apt " not in line and "dnf " not in line, line
    bid = build_id(lib)
    assert "/usr/lib/debug/.build-id/%s/%s.debug" % (bid[:2], bid[2:]) in line, line
    assert "libpython3.11.so.1.0.debug (the name its .gnu_debuglink gives) in %s" \
        % os.path.dirname(lib) in line, line
    return said


@needs_pyenv_311
def test_without_a_debug_file_record_and_report_say_so_once(stripped):
    top, recorded = stripped
    stderr, having, _, total = report(top)
    assert_unnamed(top, stderr, having, total)
    # perfpy record's own report, at its end: the same, once.
    said = hints(recorded.stderr)
    assert [len(v) for v in said.values()] == [1], recorded.stderr


@needs_pyenv_311
@pytest.mark.parametrize("where", ["beside", ".debug"])
def test_debuglink_beside_the_binary_or_in_its_debug_dir(stripped, where):
    top, _ = stripped
    try:
        for rel in BINARIES:
            d = top / "py" / os.path.dirname(rel)
            place(top, str(d if where == "beside" else d / ".debug"), rel)
        stderr, having, leaves, total = report(top)
        assert_named(top, stderr, having, total)
    finally:
        unplace(top)


@needs_pyenv_311
def test_named_as_perf_names_them_from_the_same_debug_file(stripped):
    """perf report finds the same debug files (beside the binaries) on its own: the functions
    the samples were in, by perf and by perfpy, agree (the debug file's symbols at the addresses
    of the stripped file's segments)."""
    top, _ = stripped
    try:
        for rel in BINARIES:
            place(top, str(top / "py" / os.path.dirname(rel)), rel)
        _, _, leaves, total = report(top)
        out = subprocess.run([PERF, "report", "-i", str(top / "perf.data"), "--no-children",
                              "--sort", "sym", "--stdio", "-g", "none"],
                             capture_output=True, text=True, check=True,
                             env=child_env(HOME=str(top / "home"))).stdout
        by_perf = {}
        for line in out.splitlines():
            m = re.match(r"^\s+([\d.]+)%\s+\[[.k]\]\s+(\S+)", line)
            if m:
                by_perf[m.group(2)] = float(m.group(1))
        top3 = [f for f in sorted(by_perf, key=by_perf.get, reverse=True) if f in SORT]
        assert sorted(top3) == sorted(SORT), by_perf
        for f in SORT:
            ours = 100.0 * leaves.get(f, 0) / total
            assert abs(ours - by_perf[f]) <= 2.0, (f, ours, by_perf[f])
    finally:
        unplace(top)


@needs_pyenv_311
def test_a_debug_file_of_another_build_is_not_used(stripped):
    """A file at the .gnu_debuglink's name whose CRC is not the one the binary names (here the
    right symbols and one byte more) is left alone, and the warning says why."""
    top, _ = stripped
    try:
        for rel in BINARIES:
            place(top, str(top / "py" / os.path.dirname(rel)), rel, corrupt=True)
        stderr, having, _, total = report(top)
        said = assert_unnamed(top, stderr, having, total)
        lib = str(top / "py" / "lib" / "libpython3.11.so.1.0")
        assert "%s.debug is not its debug file: it is of another build of it" % lib \
            in said[lib][0], said[lib][0]
    finally:
        unplace(top)


@needs_pyenv_311
@pytest.mark.parametrize("how", ["debuglink", "build-id"])
def test_debug_files_under_the_sysroot(stripped, how, tmp_path):
    """A copy of the recorded machine's files (--sysroot DIR): its usr/lib/debug holds the
    debug files, at the binary's directory (.gnu_debuglink) or by build id."""
    top, _ = stripped
    sysroot = tmp_path / "root"
    for rel in BINARIES:
        binary = str(top / "py" / rel)
        if how == "debuglink":
            place(top, str(sysroot) + "/usr/lib/debug" + os.path.dirname(binary), rel)
        else:
            bid = build_id(binary)
            dst = place(top, str(sysroot / "usr/lib/debug/.build-id" / bid[:2]), rel)
            os.rename(dst, os.path.join(os.path.dirname(dst), bid[2:] + ".debug"))
    stderr, having, _, total = report(top, "--sysroot", str(sysroot))
    assert_named(top, stderr, having, total)
    # Without the --sysroot, this machine's /usr/lib/debug has none of them.
    stderr, having, _, total = report(top)
    assert_unnamed(top, stderr, having, total)


def distribution_interpreter():
    """This machine's (or the sid root's) Debian interpreter, /usr/bin/python3.X, if stripped:
    (path, whether its debug file, python3.X-dbg's, is installed)."""
    try:
        with open("/etc/os-release") as f:
            if not re.search(r"^ID=\"?debian\"?$", f.read(), re.M):
                return None
    except OSError:
        return None
    found = sorted(glob.glob("/usr/bin/python3.[0-9]*"), key=lambda p: len(p))
    found = [p for p in found if re.fullmatch(r"/usr/bin/python3\.\d+", p)]
    if not found:
        return None
    path = found[-1]
    sections = subprocess.run(["readelf", "-S", path], capture_output=True, text=True).stdout
    if ".symtab" in sections:
        return None
    bid = build_id(path)
    return path, os.path.exists("/usr/lib/debug/.build-id/%s/%s.debug" % (bid[:2], bid[2:]))


@pytest.mark.skipif(distribution_interpreter() is None,
                    reason="no stripped Debian /usr/bin/python3.X here")
def test_debians_own_interpreter(tmp_path):
    """Debian's /usr/bin/python3.X, stripped: named when python3.X-dbg is installed, else the
    warning names that package (Debian 12's python3.11-dbg holds the debug files of both
    /usr/bin/python3.11 and libpython3.11.so.1.0, by build id)."""
    path, installed = distribution_interpreter()
    (tmp_path / "home").mkdir()
    (tmp_path / "work.py").write_text(WORK)
    r = perfpy("record", "-o", "perf.data", "--", path, str(tmp_path / "work.py"), "3000",
               cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    stderr, having, _, total = report(tmp_path)
    minor = os.path.basename(path)[len("python"):]
    if installed:
        assert "is stripped" not in stderr, stderr
        assert having.get("list_sort_impl", 0) + having.get("list_sort_impl.lto_priv.0", 0) \
            >= 0.5 * total
        return
    said = hints(stderr)
    assert list(said) == [path], stderr
    assert len(said[path]) == 1
    assert "show as [python%s]" % minor in said[path][0]
    assert "`apt install python%s-dbg`, which puts them in /usr/lib/debug" % minor \
        in said[path][0], said[path][0]
    assert len(hints(r.stderr).get(path, [])) == 1, r.stderr
