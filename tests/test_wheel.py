"""The wheel, as users install it: one file for every CPython 3.8-3.15 with the perfpy
command inside; installed by pip into fresh venvs, by pipx and by uv tool install, with no Rust
toolchain on PATH; and perfpy lent to interpreters that don't have it."""

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import PERFPY, PYTHONS, ROOT, SEED, child_env
from recording import CLI_MARKS, SEED_CHAIN

WHEELS = sorted(glob.glob(os.path.join(ROOT, "dist", "perfpy-*.whl")))
WHEEL = WHEELS[0] if WHEELS else None
TOOLS_BIN = os.path.join(sys.prefix, "bin")

pytestmark = CLI_MARKS + [
    pytest.mark.skipif(WHEEL is None, reason="no wheel in dist/: scripts/build-wheels.sh builds it "
                                             "(scripts/test.sh does)"),
]


def no_rust_path():
    """PATH without cargo, rustc or rustup: what a Python user's machine has."""
    keep = []
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if d and not any(os.path.exists(os.path.join(d, t)) for t in ("cargo", "rustc", "rustup")):
            keep.append(d)
    path = os.pathsep.join(keep)
    assert shutil.which("cargo", path=path) is None and shutil.which("rustc", path=path) is None
    assert shutil.which("perf", path=path), "perf must stay on PATH"
    return path


def ext_suffix(python):
    return subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"],
        text=True).strip()


def run(cmd, env=None, cwd=None, timeout=600):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    return r


def venv_env(tmp_path):
    """For `python -m venv`: 3.8 and 3.9's ensurepip runs pip from its bundled wheel, which
    leaves certifi's cacert.pem behind in $TMPDIR each time; here, in the test's own directory."""
    return child_env(TMPDIR=str(tmp_path))


def whole_stack_share(perfpy, data, cwd, env):
    r = run([perfpy, "report", "-i", data, "--format", "collapsed"], env=env, cwd=cwd)
    assert r.returncode == 0, r.stderr
    counts = {}
    for line in r.stdout.splitlines():
        stack, n = line.rsplit(" ", 1)
        counts[stack] = counts.get(stack, 0) + int(n)
    total = sum(counts.values())
    assert total >= 50, r.stdout[-2000:]
    return sum(n for s, n in counts.items() if SEED_CHAIN in s) / total


def tree(root):
    """Every file and directory under root: path -> (mode, size, sha256 or link target)."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            if os.path.islink(p):
                what = "-> " + os.readlink(p)
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    what = hashlib.sha256(f.read()).hexdigest()
            else:
                what = "dir"
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_size if what != "dir" else 0, what)
    return out


def test_the_wheel_is_manylinux_2_17_and_holds_every_build_and_the_command():
    auditwheel = os.path.join(TOOLS_BIN, "auditwheel")
    if os.path.exists(auditwheel):
        out = run([auditwheel, "show", WHEEL]).stdout
        tag = re.search(r'platform tag:\s*"([^"]+)"', out)
        assert tag and re.match(r"manylinux(_2_(5|12|17)_|1_|2010_|2014_)x86_64$", tag.group(1)), out
    name = os.path.basename(WHEEL)
    assert name.endswith("-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"), name
    with zipfile.ZipFile(WHEEL) as z:
        names = set(z.namelist())
        cli = z.getinfo("perfpy/_bin/perfpy")
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt")))
        wheel_meta = z.read(next(n for n in names if n.endswith(".dist-info/WHEEL"))).decode()
    assert (cli.external_attr >> 16) & 0o111, "the command must be executable"
    assert re.search(rb"^perfpy ?= ?perfpy\.__main__:main$", entry_points, re.M), entry_points
    for py in PYTHONS:
        build = "perfpy/_native" + ext_suffix(py.path)
        assert build in names, (build, sorted(n for n in names if "_native" in n))
        tag = "cp%d%d" % py.version
        assert tag in name.split("-")[2].split(".")
        assert "Tag: %s-none-manylinux_2_17_x86_64" % tag in wheel_meta


@pytest.mark.parametrize("py", PYTHONS, ids=lambda p: p.minor)
def test_pip_install_into_a_fresh_venv_then_two_commands_to_a_profile(py, tmp_path):
    """pip install the wheel, then `perfpy record --flamegraph`: two commands to a flamegraph,
    with no Rust on PATH."""
    venv = tmp_path / "venv"
    assert run([py.base, "-m", "venv", str(venv)], env=venv_env(tmp_path)).returncode == 0
    env = child_env(PATH=no_rust_path())
    r = run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index",
             "--disable-pip-version-check", WHEEL], env=env)
    assert r.returncode == 0, r.stderr
    perfpy = str(venv / "bin" / "perfpy")
    for cmd in ([perfpy, "--version"], [str(venv / "bin" / "python"), "-m", "perfpy", "--version"]):
        r = run(cmd, env=env)
        assert r.returncode == 0 and re.match(r"perfpy \d+\.\d+\.\d+", r.stdout), (cmd, r.stderr)
    # The second command: record, with the flamegraph written at the end.
    r = run([perfpy, "record", "--flamegraph", "--", str(venv / "bin" / "python"), SEED,
             "20000000"], env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "lent" not in r.stderr, "perfpy is installed there: no lending"
    assert "wrote flamegraph.svg" in r.stderr, r.stderr
    svg = (tmp_path / "flamegraph.svg").read_text()
    assert svg.startswith("<?xml") and "py::foo" in svg and "py::baz" in svg
    assert whole_stack_share(perfpy, "perf.data", str(tmp_path), env) >= 0.8


@pytest.mark.parametrize("py", PYTHONS, ids=lambda p: p.minor)
def test_perfpy_is_lent_to_an_interpreter_without_it(py, tmp_path):
    """The interpreter outside its venv has no perfpy: the command lends it its own package for
    the run, and the stacks are whole."""
    r = run([PERFPY, "record", "--", py.base, SEED, "20000000"], cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "lent for this run from" in r.stderr, r.stderr
    # The start-up hook stood in for a sitecustomize the interpreter doesn't have: not a word.
    assert "sitecustomize" not in r.stderr, r.stderr
    hook = re.search(r"PYTHONPATH=(\S+) for perfpy", r.stderr)
    assert hook and not os.path.exists(hook.group(1)), "the hook directory is removed"
    assert whole_stack_share(PERFPY, "perf.data", str(tmp_path), None) >= 0.8


def test_options_that_skip_the_hook_are_refused_with_the_fix(tmp_path):
    py = PYTHONS[0]
    for opt in ("-I", "-E", "-S"):
        r = run([PERFPY, "record", "--", py.base, opt, SEED], cwd=str(tmp_path))
        assert r.returncode == 2 and "starts the interpreter with %s" % opt in r.stderr, r.stderr
        assert "pip install perfpy" in r.stderr
    assert not os.path.exists(tmp_path / "perf.data")


def isolated_installs(tmp_path, python):
    """The perfpy command installed from the wheel by pipx and by uv tool install, each into a
    directory of its own, with the interpreter `python`: {tool: perfpy command}."""
    pipx, uv = os.path.join(TOOLS_BIN, "pipx"), os.path.join(TOOLS_BIN, "uv")
    if not (os.path.exists(pipx) and os.path.exists(uv)):
        pytest.skip("no pipx and uv in this run's tools venv (%s): scripts/setup-pythons.sh and "
                    "scripts/setup-root-pythons.sh install them" % sys.prefix)
    env = child_env(PATH=no_rust_path(),
                    PIPX_HOME=str(tmp_path / "pipx"), PIPX_BIN_DIR=str(tmp_path / "pipx-bin"),
                    UV_TOOL_DIR=str(tmp_path / "uv"), UV_TOOL_BIN_DIR=str(tmp_path / "uv-bin"),
                    UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_PYTHON_DOWNLOADS="never")
    r = run([pipx, "install", "--python", python, "--pip-args=--no-index", WHEEL], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run([uv, "tool", "install", "--offline", "--python", python, WHEEL], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    found = {"pipx": str(tmp_path / "pipx-bin" / "perfpy"), "uv": str(tmp_path / "uv-bin" / "perfpy")}
    for tool, cmd in found.items():
        r = run([cmd, "--version"], env=env)
        assert r.returncode == 0 and r.stdout.startswith("perfpy "), (tool, r.stderr)
    return found, env


def test_pipx_and_uv_tools_profile_another_interpreters_venv_leaving_it_unchanged(tmp_path):
    """The command from pipx / uv tool install (on one interpreter) records a program in a venv
    of another interpreter that has never heard of perfpy: whole stacks; the venv's own
    sitecustomize still runs; its pip freeze and its files are the same before and after."""
    if len(PYTHONS) < 2:
        pytest.skip("needs two interpreters (the tool's and the target's); this run has %s"
                    % PYTHONS)
    tool_python, target = PYTHONS[-1], PYTHONS[0]
    commands, env = isolated_installs(tmp_path, tool_python.base)
    venv = tmp_path / "target-venv"
    assert run([target.base, "-m", "venv", str(venv)], env=venv_env(tmp_path)).returncode == 0
    python = str(venv / "bin" / "python")
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    with open(os.path.join(site, "sitecustomize.py"), "w") as f:
        f.write("import sys\nsys.stderr.write('the target venv sitecustomize ran\\n')\n")
    app = tmp_path / "app.py"
    app.write_text(
        "import runpy, sys, sitecustomize\n"
        "sys.stderr.write('app: sitecustomize=%%s\\n' %% sitecustomize.__file__)\n"
        "sys.stderr.write('app: hook on sys.path=%%s\\n' %% any('perfpy-lend-' in p for p in sys.path))\n"
        "sys.argv = [%r, '20000000']\n"
        "runpy.run_path(%r, run_name='__main__')\n" % (SEED, SEED))
    # Without perfpy first: which sitecustomize the interpreter runs (the venv's, or on Debian
    # the distribution's, which comes first on sys.path). That run also writes what the
    # interpreter writes on a first run (byte code) before the first look at the venv.
    probe = "import sitecustomize, sys; sys.stderr.write('app: sitecustomize=%s\\n' % sitecustomize.__file__)"
    baseline = run([python, "-c", probe]).stderr
    assert "app: sitecustomize=" in baseline, baseline
    if site in baseline:
        assert "the target venv sitecustomize ran" in baseline
    freeze = lambda: run([python, "-m", "pip", "freeze", "--all", "--disable-pip-version-check"]).stdout
    freeze_before = freeze()
    before = tree(str(venv))
    for tool, perfpy in commands.items():
        out = tmp_path / (tool + ".data")
        r = run([perfpy, "record", "-o", str(out), "--", python, str(app)], env=env,
                cwd=str(tmp_path))
        assert r.returncode == 0, (tool, r.stderr)
        assert "lent for this run from" in r.stderr, r.stderr
        # The same sitecustomize runs as without perfpy, and the venv's marker with it.
        for line in baseline.splitlines():
            assert line in r.stderr.splitlines(), (tool, line, r.stderr)
        assert "app: hook on sys.path=False" in r.stderr
        assert whole_stack_share(perfpy, str(out), str(tmp_path), env) >= 0.8, tool
    assert freeze() == freeze_before
    assert "perfpy" not in freeze_before.lower()
    assert tree(str(venv)) == before
