"""A build from source gives the whole product: `pip install` of a source tree builds the
extension and the perfpy command (build_backend/perfpy_backend.py wraps maturin's backend),
and the sdist holds everything that build needs."""

import base64
import csv
import hashlib
import json
import os
import subprocess
import sys
import tarfile

import pytest

from conftest import PYTHONS, ROOT, SEED, child_env
from recording import SEED_CHAIN, on_the_host_only
from test_perf_record import requires_perf

#: The shared cargo target directory (CI's ~/.cache/perfpy/target, else ./target), which holds
#: scripts/build-tree.py's mirror of the workspace: pip builds from there, at a fixed path, so
#: cargo finds a warm run's crates fresh.
TARGET = os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"))
#: The host's CPython 3.11 (pyenv's; the sid root's run has none and leaves this to the host).
HOST_311 = next((p for p in PYTHONS if p.version == (3, 11) and not p.frame_pointers), None)
TOOLS_BIN = os.path.join(sys.prefix, "bin")


def mirror():
    """The checkout mirrored into the shared target directory (what the wheel builds from)."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "build-tree.py"),
                           os.path.join(TARGET, "tree")], check=True, capture_output=True,
                          text=True).stdout.strip()


def run(cmd, timeout=600, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def record_rows(site):
    dist_info = [d for d in os.listdir(site) if d.startswith("perfpy-") and d.endswith(".dist-info")]
    assert len(dist_info) == 1, os.listdir(site)
    with open(os.path.join(site, dist_info[0], "RECORD")) as f:
        return {row[0]: row[1:] for row in csv.reader(f) if row}


@requires_perf
@pytest.mark.skipif(HOST_311 is None, reason="needs the host's CPython 3.11 (this run has %s)"
                                            % ", ".join(p.minor for p in PYTHONS))
def test_pip_install_of_the_source_builds_the_extension_and_the_command(tmp_path):
    """`pip install <source tree>` of CPython 3.11 into a fresh venv, as a user does from a
    checkout (build isolation, maturin from PyPI): the venv's `perfpy record` and
    `perfpy report` then give the seed's whole stacks."""
    py = HOST_311
    tree = mirror()
    venv = tmp_path / "venv"
    assert run([py.base, "-m", "venv", str(venv)]).returncode == 0
    python = str(venv / "bin" / "python")
    # Only where and how cargo builds differs from a user's `pip install .`: a directory of its own in
    # the shared target directory (pyo3 is built for one interpreter at a time), and maturin
    # handed the venv's base interpreter, whose path is the same on every run, not the fresh
    # venv's (pyo3 would be rebuilt for each new path). Both builds get the environment.
    # And no fat LTO over one codegen unit: what the build gives doesn't change, and a cold
    # machine builds it in a fraction of the time.
    env = child_env(CARGO_TARGET_DIR=os.path.join(TARGET, "source-install", "cp%d%d" % py.version),
                    MATURIN_PEP517_USE_BASE_PYTHON=1, PIP_DISABLE_PIP_VERSION_CHECK=1,
                    CARGO_PROFILE_RELEASE_LTO="false", CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16)
    r = run([python, "-m", "pip", "install", "-v", tree], env=env, timeout=3600)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-6000:]
    assert "perfpy build: added the perfpy command" in r.stdout + r.stderr, r.stderr[-3000:]

    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['platlib'])"]
               ).stdout.strip()
    command = os.path.join(site, "perfpy", "_bin", "perfpy")
    assert os.access(command, os.X_OK), os.listdir(os.path.join(site, "perfpy"))
    with open(command, "rb") as f:
        data = f.read()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    assert record_rows(site)["perfpy/_bin/perfpy"] == ["sha256=" + digest, str(len(data))]

    perfpy = str(venv / "bin" / "perfpy")
    for cmd in ([perfpy, "--version"], [python, "-m", "perfpy", "--version"]):
        r = run(cmd)
        assert r.returncode == 0 and r.stdout.startswith("perfpy "), (cmd, r.stdout, r.stderr)

    (tmp_path / "home").mkdir()
    env = child_env(HOME=str(tmp_path / "home"))
    r = run([perfpy, "record", "-o", "seed.data", "--", python, SEED, "6000000"],
            env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "lent" not in r.stderr, "perfpy is installed there: no lending"
    r = run([perfpy, "report", "-i", "seed.data", "--format", "collapsed"], env=env,
            cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    counts = {}
    for line in r.stdout.splitlines():
        stack, n = line.rsplit(" ", 1)
        counts[stack] = counts.get(stack, 0) + int(n)
    total = sum(counts.values())
    whole = sum(n for s, n in counts.items() if SEED_CHAIN in s)
    assert total >= 50 and whole >= 0.8 * total, (whole, total,
                                                  sorted(counts.items(), key=lambda kv: -kv[1])[:3])


@on_the_host_only("cargo and maturin")
def test_the_sdist_holds_the_whole_workspace(tmp_path):
    """The sdist, made by the build backend as `python -m build --sdist` does: every file of
    the workspace but the fuzz targets (maturin's own sdist holds only the extension's crates),
    and the workspace's Cargo.toml with crates/cli among its members."""
    try:
        import tomllib
    except ImportError:
        pytest.skip("reading pyproject.toml needs Python 3.11+ (tomllib); this is %s"
                    % sys.version.split()[0])
    if not os.path.exists(os.path.join(TOOLS_BIN, "maturin")):
        pytest.skip("no maturin in %s (scripts/build-wheels.sh installs it there)" % TOOLS_BIN)
    tree = mirror()
    with open(os.path.join(tree, "pyproject.toml"), "rb") as f:
        system = tomllib.load(f)["build-system"]
    # A PEP 517 frontend's call: the source tree as working directory, backend-path first on
    # sys.path.
    hook = ("import importlib, json, sys; sys.path[:0] = json.loads(sys.argv[2]); "
            "print('sdist:', importlib.import_module(sys.argv[1]).build_sdist(sys.argv[3]))")
    r = run([sys.executable, "-c", hook, system["build-backend"],
             json.dumps([os.path.join(tree, p) for p in system.get("backend-path", [])]),
             str(tmp_path)], cwd=tree,
            env=child_env(PATH=TOOLS_BIN + os.pathsep + os.environ.get("PATH", "")))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    name = r.stdout.strip().splitlines()[-1].split("sdist: ", 1)[1]

    with tarfile.open(str(tmp_path / name)) as t:
        names = {m.name.split("/", 1)[1] for m in t.getmembers() if m.isfile()}
        top = t.getmembers()[0].name.split("/", 1)[0]
        if hasattr(tarfile, "data_filter"):
            t.extractall(str(tmp_path), filter="data")
        else:
            t.extractall(str(tmp_path))
    workspace = set()
    for d, dirs, files in os.walk(tree):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        workspace |= {os.path.relpath(os.path.join(d, f), tree) for f in files}
    wanted = {f for f in workspace if not f.startswith("fuzz/")}
    assert wanted - names == set(), "missing from the sdist"
    for f in ("crates/cli/Cargo.toml", "crates/cli/src/main.rs", "crates/format/Cargo.toml",
              "build_backend/perfpy_backend.py", "python/perfpy.data/purelib/perfpy.pth",
              "Cargo.lock", ".cargo/config.toml"):
        assert f in names, f
    unpacked = tmp_path / top
    for f in ("Cargo.toml", "Cargo.lock", "pyproject.toml"):
        with open(os.path.join(tree, f), "rb") as a, open(str(unpacked / f), "rb") as b:
            assert a.read() == b.read(), "%s differs from the checkout's" % f
    r = run(["cargo", "metadata", "--no-deps", "--offline", "--format-version", "1",
             "--manifest-path", str(unpacked / "Cargo.toml")])
    assert r.returncode == 0, r.stderr
    members = {p["name"] for p in json.loads(r.stdout)["packages"]}
    assert {"perfpy-cli", "perfpy-ext", "perfpy-format", "perfpy-trampoline"} <= members
