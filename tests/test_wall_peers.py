"""Side by side with the wall-clock profilers people use: py-spy (`record --idle`) and CPython
3.15's Tachyon (`profiling.sampling run --mode wall`) on the known-waits program. Each tool's
time per Python function agrees with perfpy's, and ranks them the same; run with -s, each test
prints the table the README shows."""

import json
import os
import re
import subprocess

import pytest

from conftest import PYTHONS, SCRIPTS, child_env
from recording import CLI_MARKS, collapsed, record

pytestmark = CLI_MARKS

PROGRAM = os.path.join(SCRIPTS, "known_waits.py")
FUNCTIONS = ["sleeper", "child", "holder", "contender", "spinner"]
#: Five rounds of the program (about 6 s): py-spy's times of a 1 s run are off by up to 40%
#: here (its sampling falls behind its rate unevenly), of a 6 s run by under 10%.
ROUNDS = "5"
PY_SPY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      ".venv-tools", "bin", "py-spy")


def perfpy_ms(tmp_path, py, loops):
    record(tmp_path, py.path, "--mode", "wall",
           program=[PROGRAM, str(loops), str(tmp_path / "perfpy.json"), ROUNDS])
    counts = collapsed(tmp_path)
    return {f: sum(us for s, us in counts.items() if "py::%s:" % f in s) / 1000
            for f in FUNCTIONS}, json.loads((tmp_path / "perfpy.json").read_text())


def sampled_ms(path, frame, main_ms):
    """Milliseconds per function from a folded-stacks file, the function's frames matched by
    `frame` (a pattern with {f}). A sample stands for the main thread's measured time over its
    sample count: a sampler that falls behind its rate (py-spy does, here) samples every
    thread less often, not some more than others."""
    counts = dict.fromkeys(FUNCTIONS + ["main"], 0)
    for line in open(path):
        stack, n = line.rstrip("\n").rsplit(" ", 1)
        for f in counts:
            if re.search(frame.format(f=re.escape(f)), stack):
                counts[f] += int(n)
    ms = main_ms / max(counts["main"], 1)
    return {f: counts[f] * ms for f in FUNCTIONS}


def compare(name, tool, ours, truth, our_truth, within):
    """The table (printed: ms, each tool beside what the program measured of itself in the
    tool's run), then the checks: each function's time, as a share of what the program
    measured in that run (runs differ on a busy machine), within `within` of perfpy's share
    of its own run's, and any two functions whose true times differ by a fifth ranked alike."""
    print("\n%-10s %10s %10s %10s %10s" % ("function", "program", "perfpy", "program", name))
    for f in FUNCTIONS:
        print("%-10s %10.0f %10.0f %10.0f %10.0f" % (f, our_truth[f] * 1000, ours[f],
                                                     truth[f] * 1000, tool[f]))
    for f in FUNCTIONS:
        theirs, mine = tool[f] / (truth[f] * 1000), ours[f] / (our_truth[f] * 1000)
        assert abs(theirs - mine) <= within, (f, theirs, mine, tool, ours)
    for a in FUNCTIONS:
        for b in FUNCTIONS:
            if truth[a] > 1.2 * truth[b]:
                assert tool[a] > tool[b] and ours[a] > ours[b], (a, b, tool, ours, truth)


HOST = [p for p in PYTHONS if (3, 8) <= p.version < (3, 14)]


@pytest.mark.skipif(not HOST, reason="py-spy 0.4.1 reads CPython 3.8-3.13, which the host's "
                                     "run has (the sid root's 3.14 and 3.15 are Tachyon's)")
def test_py_spy_idle_agrees(tmp_path):
    if not os.path.exists(PY_SPY):
        pytest.fail("py-spy is missing at %s: scripts/setup-pythons.sh installs py-spy 0.4.1 "
                    "into the tools venv" % PY_SPY)
    py = HOST[-1]
    ours, our_truth = perfpy_ms(tmp_path, py, 6_000_000)
    # At 250 Hz without pausing the program (--nonblocking): at 1 kHz, pausing it for each
    # sample, py-spy slowed its CPU loop sixfold here. Its times drift from the program's by
    # up to 11% on a loaded machine (measured in CI): it is held to 15%, Tachyon to 10%.
    r = subprocess.run([PY_SPY, "record", "--idle", "--rate", "250", "--nonblocking",
                        "--format", "raw", "-o", str(tmp_path / "py-spy.txt"), "--", py.path,
                        PROGRAM, "6000000", str(tmp_path / "py-spy.json"), ROUNDS],
                       capture_output=True, text=True, timeout=300, env=child_env())
    # py-spy 0.4.1 writes its profile, then fails to wait for a child that has exited ("No
    # child process (os error 10)") when the program ran a child process of its own.
    assert r.returncode == 0 or "No child process" in r.stderr, r.stderr
    assert "Wrote raw flamegraph data" in r.stdout, r.stdout
    truth = json.loads((tmp_path / "py-spy.json").read_text())
    compare("py-spy", sampled_ms(tmp_path / "py-spy.txt", r"(^|;){f} \(", truth["main"] * 1000),
            ours, truth, our_truth, within=0.15)


NEWEST = [p for p in PYTHONS if p.version >= (3, 15)]


@pytest.mark.skipif(not NEWEST, reason="Tachyon is CPython 3.15's: the sid root's run has it")
def test_tachyon_wall_mode_agrees(tmp_path):
    py = NEWEST[-1]
    ours, our_truth = perfpy_ms(tmp_path, py, 6_000_000)
    r = subprocess.run([py.path, "-m", "profiling.sampling", "run", "--mode", "wall", "-a",
                        "-r", "1000", "--collapsed", "-o", str(tmp_path / "tachyon.txt"),
                        PROGRAM, "6000000", str(tmp_path / "tachyon.json"), ROUNDS],
                       capture_output=True, text=True, timeout=300, env=child_env(),
                       cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    truth = json.loads((tmp_path / "tachyon.json").read_text())
    compare("Tachyon", sampled_ms(tmp_path / "tachyon.txt", r"(^|;)[^;]*:{f}:\d+(;|$)",
                                  truth["main"] * 1000), ours, truth, our_truth, within=0.1)
