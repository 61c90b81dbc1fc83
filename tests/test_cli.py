"""The perfpy command: doctor and clean, run as a user would."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import FP_PYTHONS, NO_FP_PYTHONS, NO_PERFPY, PERFPY, PYTHONS, ROOT
from test_perf_record import requires_perf

pytestmark = pytest.mark.skipif(not os.path.exists(PERFPY), reason=NO_PERFPY)


def perfpy(*args, env=None):
    return subprocess.run([PERFPY] + list(args), capture_output=True, text=True, env=env)


def lines_of(out):
    """{check name: (level, text)} from doctor's output."""
    found = {}
    for line in out.splitlines():
        m = re.match(r"^(pass|warn|FAIL)  (\S+(?: \S+)?)\s{2,}(.*)$", line)
        if m:
            found[m.group(2).strip()] = (m.group(1), m.group(3))
    return found


#: doctor's sections: this machine and the interpreter, perfpy record, perf alone.
MACHINE, RECORD, ALONE = ("this machine and the interpreter:",
                          "perfpy record (perfpy report reads what it records):",
                          "perf alone (perf record, perf report):")


def sections_of(out):
    """{section title: [its lines]} (a fix belongs to the line above it)."""
    found, current = {}, None
    for line in out.splitlines():
        if line in (MACHINE, RECORD, ALONE):
            current = found.setdefault(line, [])
        elif line.strip() and current is not None:
            current.append(line)
    return found


def fix_of(out, name):
    """The fix printed under check `name`, or None."""
    lines = out.splitlines()
    for k, line in enumerate(lines):
        if re.match(r"^(pass|warn|FAIL)  %s\s{2,}" % re.escape(name), line):
            nxt = lines[k + 1] if k + 1 < len(lines) else ""
            m = re.match(r"^ {6}\s+fix: (.*)$", nxt)
            return m.group(1) if m else None
    raise AssertionError("no %s line in:\n%s" % (name, out))


def in_section(out, section, names):
    lines = sections_of(out)[section]
    for name in names:
        assert any(re.match(r"^(pass|warn|FAIL)  %s\s{2,}" % re.escape(name), l) for l in lines), \
            (section, name, out)


def assert_agrees_with_itself(out):
    """What any doctor output must hold: perf alone's commands are the way its own lines
    pass, and a perf that can't unwind JIT code is never told to use perf_jit."""
    checks = lines_of(out)
    alone = "\n".join(l for l in out.splitlines() if l.startswith("with perf alone:")
                      or l.startswith("                 "))
    if checks["perf_jit"][0] == "pass":
        assert "with perf alone: PYTHON_PERF_JIT_SUPPORT=1 perf record -k 1" in out, out
    else:
        assert "PYTHON_PERF_JIT_SUPPORT=1 perf" not in out and "use perf_jit" not in out, out
        if checks["perf map"][0] == "pass":
            assert "with perf alone: PYTHONPERFSUPPORT=1 perf record -g" in out, out
        else:
            assert "no whole Python stacks with perf alone here" in alone or \
                "with perf alone: nothing" in out, out
    # The interpreter's facts carry no advice on a command: that is in its section.
    assert fix_of(out, "frame pointers") is None, out
    assert fix_of(out, "support") is None, out


def recording_counts(text):
    m = re.search(r"worked, as perfpy record runs it: (\d+) of its (\d+) samples in doctor_inner "
                  r"have <module> → doctor_outer → doctor_inner whole", text)
    assert m, text
    return int(m.group(1)), int(m.group(2))


def test_help_has_examples():
    r = perfpy("--help")
    assert r.returncode == 0 and "EXAMPLES:" in r.stdout and "perfpy doctor" in r.stdout
    assert perfpy("doctor", "--help").returncode == 0


@requires_perf
def test_doctor_tells_the_truth_about_this_machine():
    stock = NO_FP_PYTHONS[-1]
    r = perfpy("doctor", "--python", stock.path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    checks = lines_of(out)
    real = subprocess.run(["perf", "version"], capture_output=True, text=True).stdout
    version = re.search(r"\d+\.\d+(\.\d+)?", real).group(0)
    uname = os.uname()
    # This machine and the interpreter: facts.
    in_section(out, MACHINE, ["kernel", "perf", "paranoid", "python", "frame pointers", "symbols",
                              "support"])
    assert checks["kernel"] == ("pass", "Linux %s %s" % (uname.release, uname.machine))
    assert checks["perf"][0] == "pass" and ("perf %s " % version) in checks["perf"][1]
    assert checks["frame pointers"][0] == "warn" and checks["frame pointers"][1].startswith("no:")
    assert checks["support"][0] == "pass" and "perfpy" in checks["support"][1]
    paranoid = open("/proc/sys/kernel/perf_event_paranoid").read().strip()
    assert "perf_event_paranoid = %s" % paranoid in checks["paranoid"][1]
    # perfpy record: the plan, and a real recording of it with whole stacks.
    in_section(out, RECORD, ["plan", "recording"])
    assert "perfpy record picks the jitdump and DWARF call graphs" in checks["plan"][1]
    assert checks["recording"][0] == "pass", out
    whole, inner = recording_counts(checks["recording"][1])
    assert inner >= 10 and whole >= 0.8 * inner, (whole, inner)
    assert "recommended:     perfpy record -- python app.py && perfpy report" in out
    # perf alone: its two ways, judged apart.
    in_section(out, ALONE, ["perf map", "perf_jit"])
    assert checks["perf map"][0] == "warn" and "stacks stop" in checks["perf map"][1]
    assert_agrees_with_itself(out)
    # Nothing left behind by the recording.
    assert not [f for f in os.listdir(tempfile.gettempdir()) if f.startswith("perfpy-doctor-")]


@pytest.mark.skipif(not FP_PYTHONS, reason="no frame-pointer interpreter; run scripts/build-fp-python.sh")
def test_doctor_sees_frame_pointers_in_the_fp_build():
    r = perfpy("doctor", "--no-record", "--python", FP_PYTHONS[0].path)
    out = r.stdout
    checks = lines_of(out)
    assert checks["frame pointers"][0] == "pass", out
    # DWARF all the same: the C extensions the program calls have no frame pointers.
    assert "picks the jitdump and DWARF call graphs" in checks["plan"][1], out
    assert "recording" not in checks and "recommended:     perfpy record" in out
    # perf alone: -g walks this interpreter's stacks.
    assert checks["perf map"][0] == "pass" and "whole Python stacks" in checks["perf map"][1]
    assert_agrees_with_itself(out)


def fake_perf(tmp_path, body):
    d = tmp_path / "bin"
    d.mkdir()
    p = d / "perf"
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (d, os.path.dirname(shutil.which("python3") or "/usr/bin/python3")))
    return env


def test_doctor_without_perf_fails(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = dict(os.environ, PATH=str(empty))
    r = perfpy("doctor", "--python", NO_FP_PYTHONS[-1].path, env=env)
    assert r.returncode == 1
    checks = lines_of(r.stdout)
    assert checks["perf"] == ("FAIL", "perf is not on PATH")
    assert "apt-get install linux-perf" in r.stdout
    # Nothing said of commands that can't run.
    assert list(sections_of(r.stdout)) == [MACHINE], r.stdout


@requires_perf
def test_doctor_with_an_old_perf_says_each_command_apart(tmp_path):
    """Debian 11's perf 5.10 can't unwind JIT code with DWARF: perf alone is never told to use
    perf_jit, while perfpy record, which unwinds the stacks itself, records them whole."""
    real = shutil.which("perf")
    env = fake_perf(tmp_path, 'if [ "$1" = version ]; then echo "perf version 5.10.0"; else exec %s "$@"; fi\n' % real)
    r = perfpy("doctor", "--python", NO_FP_PYTHONS[-1].path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    checks = lines_of(out)
    assert checks["perf"][0] == "pass" and "perf 5.10.0" in checks["perf"][1]
    # perfpy record: the jitdump, perf's own unwinder not used, and it works.
    assert "perf 5.10.0's own unwinder is not used" in checks["plan"][1], out
    assert checks["recording"][0] == "pass", out
    whole, inner = recording_counts(checks["recording"][1])
    assert inner >= 10 and whole >= 0.8 * inner, (whole, inner)
    # perf alone: perf_jit can't, -g can't; what does work instead.
    assert checks["perf_jit"][0] == "warn" and "perf 5.10.0 can't unwind" in checks["perf_jit"][1]
    assert checks["perf map"][0] == "warn"
    fix = fix_of(out, "perf map")
    assert fix.startswith("use perfpy record -- python app.py, which unwinds the stacks itself"), fix
    assert "a perf that unwinds JIT code with DWARF (from 6.8, 6.7.2, 6.1.187)" in fix, fix
    assert "with perf alone: PYTHONPERFSUPPORT=1 perf record --call-graph dwarf" in out
    assert_agrees_with_itself(out)


def test_doctor_with_a_perf_that_cannot_record_fails(tmp_path):
    env = fake_perf(tmp_path, 'if [ "$1" = version ]; then echo "perf version 6.8.0"; exit 0; fi\n'
                              'echo "Error: perf_event_open failed: Operation not permitted" >&2; exit 1\n')
    r = perfpy("doctor", "--python", NO_FP_PYTHONS[-1].path, env=env)
    assert r.returncode == 1
    checks = lines_of(r.stdout)
    assert checks["recording"][0] == "FAIL" and "Operation not permitted" in checks["recording"][1]
    assert "profiling can't work here" in r.stdout
    # perf can't record: nothing is recommended, with perfpy record or with perf alone.
    assert ALONE not in sections_of(r.stdout) and "recommended:" not in r.stdout, r.stdout


@requires_perf
def test_doctor_lends_perfpy_record_what_perf_alone_lacks(tmp_path):
    """An interpreter without perfpy (CPython 3.8-3.11 has no perf support of its own):
    perfpy record lends it this command's package and records it; perf alone's switches do
    nothing there, and doctor says what to install."""
    old = [p for p in NO_FP_PYTHONS if p.version < (3, 12)]
    if not old:
        pytest.skip("no CPython 3.8-3.11 here")
    venv = old[0]
    package = subprocess.check_output(
        [venv.path, "-c", "import os, perfpy; print(os.path.dirname(perfpy.__file__))"],
        text=True).strip()
    env = dict(os.environ, PERFPY_PACKAGE_DIR=package)
    r = perfpy("doctor", "--python", venv.base, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    checks = lines_of(out)
    assert checks["support"][0] == "warn" and "perfpy is not installed there" in checks["support"][1]
    assert "which it lends the interpreter for each run" in checks["plan"][1], out
    assert checks["recording"][0] == "pass", out
    for way in ("perf map", "perf_jit"):
        assert checks[way][0] == "warn" and "does nothing in this interpreter" in checks[way][1]
        assert fix_of(out, way) == "%s -m pip install perfpy" % venv.base
    assert "with perf alone: nothing" in out
    # Without a package to lend, perfpy record refuses, and says so.
    env = dict(os.environ, PERFPY_PACKAGE_DIR=str(tmp_path))
    r = perfpy("doctor", "--python", venv.base, env=env)
    assert r.returncode == 1, r.stdout
    assert lines_of(r.stdout)["plan"][0] == "FAIL" and "recording" not in lines_of(r.stdout)
    assert "perfpy record can't work here until the FAIL lines are fixed" in r.stdout
    assert "recommended:" not in r.stdout and "perfpy record --" not in r.stdout


def test_doctor_with_a_bad_python_fails(tmp_path):
    r = perfpy("doctor", "--no-record", "--python", str(tmp_path / "nope"))
    assert r.returncode == 1
    assert lines_of(r.stdout)["python"][0] == "FAIL"


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_clean_lists_then_deletes_only_dead_processes_files(tmp_path):
    dead, alive = dead_pid(), os.getpid()
    names = ["perf-%d.map", "jit-%d.dump", "jitted-%d-1.so", "jitted-%d-22.so"]
    for pid in (dead, alive):
        for n in names:
            (tmp_path / (n % pid)).write_text("x" * 10)
    (tmp_path / "perf.data").write_text("keep")
    (tmp_path / ("perf-%d.map.bak" % dead)).write_text("keep")
    # A killed perfpy record's start-up hook directory (it holds symlinks and byte code).
    hook = tmp_path / ("perfpy-lend-%d-0" % dead)
    hook.mkdir()
    (hook / "__pycache__").mkdir()
    (hook / "__pycache__" / "sitecustomize.cpython-311.pyc").write_bytes(b"x")
    os.symlink("/nonexistent/perfpy", str(hook / "perfpy"))
    (tmp_path / ("perfpy-lend-%d-0" % alive)).mkdir()
    r = perfpy("clean", "--dir", str(tmp_path))
    assert r.returncode == 0
    for n in names + ["perfpy-lend-%d-0"]:
        assert str(tmp_path / (n % dead)) in r.stdout
        assert str(tmp_path / (n % alive)) not in r.stdout
    assert "5 files, " in r.stdout and "from 1 processes" in r.stdout
    assert all((tmp_path / (n % dead)).exists() for n in names)  # listing deletes nothing

    r = perfpy("clean", "--dir", str(tmp_path), "--delete")
    assert r.returncode == 0 and "removed 5 files" in r.stdout
    assert not any((tmp_path / (n % dead)).exists() for n in names) and not hook.exists()
    assert all((tmp_path / (n % alive)).exists() for n in names + ["perfpy-lend-%d-0"])
    assert (tmp_path / "perf.data").exists() and (tmp_path / ("perf-%d.map.bak" % dead)).exists()
    assert "nothing to clean" in perfpy("clean", "--dir", str(tmp_path)).stdout


def test_clean_removes_build_id_cache_entries(tmp_path):
    dead = dead_pid()
    data = tmp_path / "data"
    data.mkdir()
    home = tmp_path / "home"
    entry = home / ".debug" / str(data).lstrip("/") / ("jitted-%d-3.so" % dead) / "abcdef"
    entry.mkdir(parents=True)
    (entry / "elf").write_text("x")
    (data / ("jitted-%d-3.so" % dead)).write_text("x")
    env = dict(os.environ, HOME=str(home))
    r = perfpy("clean", "--dir", str(data), "--build-id-cache", "--delete", env=env)
    assert r.returncode == 0 and "1 build-id cache entries" in r.stdout
    assert not entry.parent.exists()


def test_clean_of_a_missing_directory_explains(tmp_path):
    r = perfpy("clean", "--dir", str(tmp_path / "missing"))
    assert r.returncode == 2
    assert r.stderr.startswith("perfpy: cannot list %s" % (tmp_path / "missing"))


def test_a_mistyped_record_option_is_refused_not_run(tmp_path):
    """`--outptu` before the program is perfpy's option, mistyped: refused by name with the
    nearest real one, and nothing is run or recorded."""
    r = subprocess.run([PERFPY, "record", "--outptu", "w.data", "--", sys.executable, "-c",
                        "open('ran', 'w')"], capture_output=True, text=True, cwd=str(tmp_path))
    assert r.returncode == 2, r.stderr
    assert "unexpected argument '--outptu'" in r.stderr, r.stderr
    assert "a similar argument exists: '--output'" in r.stderr, r.stderr
    assert "can't tell which Python" not in r.stderr
    assert os.listdir(str(tmp_path)) == []


@requires_perf
def test_a_program_whose_name_starts_with_a_dash_runs_after_double_dash(tmp_path):
    prog = tmp_path / "-prog"
    prog.write_text("#!%s\nprint('ran')\n" % PYTHONS[-1].path)
    prog.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (tmp_path, os.environ["PATH"]))
    r = subprocess.run([PERFPY, "record", "-o", "d.data", "--", "-prog"], capture_output=True,
                       text=True, cwd=str(tmp_path), env=env)
    assert r.returncode == 0, r.stderr
    assert "ran" in r.stdout and (tmp_path / "d.data").exists()
