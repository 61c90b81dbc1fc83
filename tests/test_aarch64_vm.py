"""aarch64 end to end, on a real arm64 kernel: a full-system VM (qemu-system-aarch64, TCG,
`-cpu max`: BTI and pointer authentication emulated) booting Debian bookworm's arm64 kernel,
with its perf and its CPython 3.11. One boot per run (tests/vm/aarch64-checks.sh): the
aarch64 wheel pip-installed into a fresh venv, `perfpy doctor`, `perfpy record` with both
backends and both call graphs, `perfpy report` there, and perf alone (the perf map with frame
pointers; the jitdump through `perf inject --jit`). What it brings back is checked here, and
its recordings are read again by this machine's `perfpy report --sysroot`: an aarch64
recording read on x86_64."""

import glob
import os
import re
import struct
import subprocess

import pytest

import vms
from conftest import PERFPY
from jitdump import CODE_LOAD, CODE_UNWINDING_INFO, Dump, check_unwind_record
from test_perf_record import python_frames

VM_ROOT = os.path.join(vms.CACHE, "arm64-vm", "root")
RECORDINGS = ("auto", "map-fp", "map-dwarf", "jit")

pytestmark = [
    pytest.mark.skipif(os.path.exists("/.perfpy-root"),
                       reason="the VM is booted by the host's run, not the sid root's"),
]


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    """The share the VM wrote its results into, after its one boot (tests/vm/run-checks.sh
    arm64: the aarch64 wheel, the seed, busy.py and tests/vm/aarch64-checks.sh)."""
    return vms.share("arm64", tmp_path_factory)


def steps(share):
    """{step: (exit status, seconds)} from the guest's steps.txt."""
    out = {}
    for line in (share / "steps.txt").read_text().splitlines():
        name, rc, secs = line.split()
        out[name] = (int(rc), int(secs))
    return out


def ok(share, name):
    rc = steps(share).get(name, (None, None))[0]
    assert rc == 0, (name, rc, (share / ("%s.err" % name)).read_text()[-3000:]
                     if (share / ("%s.err" % name)).exists() else "no output")


def folded(text):
    counts = {}
    for line in text.splitlines():
        stack, n = line.rsplit(" ", 1)
        counts[stack] = counts.get(stack, 0) + int(n)
    return counts


def chain_share(counts, seed):
    """(samples with <module> -> baz -> bar -> foo whole, samples in the seed's code, all
    samples). The interpreter's start-up takes seconds of the emulated CPU: the seed's own
    samples are judged, and must be most of them."""
    chain = ";".join("py::%s:%s" % (f, seed) for f in ("<module>", "baz", "bar", "foo"))
    whole = sum(n for s, n in counts.items() if chain in s)
    in_seed = sum(n for s, n in counts.items() if ":%s" % seed in s)
    return whole, in_seed, sum(counts.values())


def guest_seed(share):
    # The guest ran the seed from its share, wherever it mounted it: the path is in the
    # recording's names.
    m = re.search(r"py::foo:(\S+/seed\.py)", (share / "report-jit.out").read_text())
    assert m, (share / "report-jit.out").read_text()[:2000]
    return m.group(1)


def test_the_machine_is_aarch64_with_its_own_perf_and_python(guest):
    uname = (guest / "uname.txt").read_text().split()
    assert uname[-1] == "aarch64", uname
    assert re.match(r"perf version \d+\.\d+", (guest / "perf-version.txt").read_text())
    assert (guest / "python-version.txt").read_text().startswith("Python 3.11")


def test_the_wheel_installs_into_a_fresh_venv_and_doctor_passes(guest):
    ok(guest, "venv")
    ok(guest, "pip")
    ok(guest, "doctor")
    text = (guest / "doctor.out").read_text()
    assert re.search(r"^pass +recording +perf record of a one-second Python run worked", text,
                     re.M), text
    assert not re.search(r"^FAIL", text, re.M), text


@pytest.mark.parametrize("name", RECORDINGS)
def test_perfpy_records_and_reports_whole_stacks_on_aarch64(guest, name):
    """Each backend and call graph, recorded and reported in the VM: at least 80% of the
    seed's samples carry baz -> bar -> foo whole (the thresholds of x86_64)."""
    ok(guest, "rec-" + name)
    ok(guest, "report-" + name)
    whole, in_seed, total = chain_share(
        folded((guest / ("report-%s.out" % name)).read_text()), guest_seed(guest))
    assert in_seed >= 100 and in_seed >= 0.5 * total, (name, in_seed, total)
    assert whole >= 0.8 * in_seed, (name, whole, in_seed)


def test_a_subinterpreters_code_is_named_on_aarch64(guest):
    """CPython 3.11's `_xxsubinterpreters.run_string` (tests/scripts/in_sub.py), recorded and
    reported in the VM: the subinterpreter's functions named, through perfpy's hook for
    interpreters other than the main one, with whole stacks in at least 80% of their
    samples."""
    from test_subinterpreters import WHOLE_IN_SUB

    ok(guest, "rec-sub")
    ok(guest, "report-sub")
    counts = folded((guest / "report-sub.out").read_text())
    leaf = {s: n for s, n in counts.items() if "py::leaf:" in s}
    whole = sum(n for s, n in leaf.items() if WHOLE_IN_SUB.search(s))
    assert sum(leaf.values()) >= 100 and whole >= 0.8 * sum(leaf.values()), \
        (whole, sum(leaf.values()), sorted(leaf.items(), key=lambda kv: -kv[1])[:2])


def test_record_leaves_nothing_in_the_guests_tmp(guest):
    assert (guest / "tmp-after.txt").read_text() == (guest / "tmp-before.txt").read_text()


def test_the_flamegraph_has_the_chain(guest):
    svg = (guest / "auto.svg").read_text()
    for f in ("foo", "bar", "baz"):
        assert "py::%s" % f in svg, f


@pytest.mark.parametrize("name", RECORDINGS)
def test_this_machine_reads_the_aarch64_recordings_with_sysroot(guest, name, tmp_path):
    """The same recordings read here, on x86_64: the guest's binaries from its root
    (--sysroot), its kernel's symbols from a copy of its kallsyms: the same samples, the same
    whole stacks, kernel frames named."""
    r = subprocess.run([PERFPY, "report", "-i", str(guest / ("%s.data" % name)), "--format",
                        "collapsed", "--sysroot", VM_ROOT, "--sysroot", str(guest / "venv-root"),
                        "--kallsyms",
                        str(guest / "kallsyms.txt")],
                       capture_output=True, text=True, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    here = folded(r.stdout)
    there = folded((guest / ("report-%s.out" % name)).read_text())
    assert sum(here.values()) == sum(there.values())
    assert here == there, set(here.items()) ^ set(there.items())
    whole, in_seed, _ = chain_share(here, guest_seed(guest))
    assert whole >= 0.8 * in_seed, (whole, in_seed)
    assert "another CPU" not in r.stderr and "can't be read" not in r.stderr, r.stderr


def test_kernel_frames_are_named_from_the_guests_kallsyms(guest, tmp_path):
    """arm64's kallsyms has no _text: the recording's kernel mapping is anchored at _stext.
    With the guest's kallsyms the kernel's frames are named; without, one [kernel] frame."""
    args = [PERFPY, "report", "-i", str(guest / "auto.data"), "--format", "collapsed",
            "--sysroot", VM_ROOT]
    named = folded(subprocess.run(args + ["--kallsyms", str(guest / "kallsyms.txt")],
                                  capture_output=True, text=True, cwd=str(tmp_path)).stdout)
    assert any(re.search(r";(do_)?el0_svc(;|$)", s) for s in named), list(named)[:5]
    unnamed = folded(subprocess.run(args, capture_output=True, text=True,
                                    cwd=str(tmp_path)).stdout)
    assert any(s.endswith(";[kernel]") for s in unnamed), list(unnamed)[:5]


def test_without_sysroot_the_foreign_binaries_are_said(guest, tmp_path):
    """Read here without the guest's files: this machine's files at the same paths are
    x86_64's, refused (never used to name aarch64 code), and the fix said."""
    r = subprocess.run([PERFPY, "report", "-i", str(guest / "jit.data")],
                       capture_output=True, text=True, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "--sysroot" in r.stderr, r.stderr


def script_samples_of(text):
    samples = []
    for block in text.split("\n\n"):
        lines = [l.split(None, 1) for l in block.strip().splitlines()[1:]]
        samples.append([l[1] if len(l) > 1 else "" for l in lines])
    return [s for s in samples if s]


@pytest.mark.parametrize("name", ["map-fp", "jit"])
def test_perf_alone_shows_baz_bar_foo(guest, name):
    """perf on aarch64, without perfpy's command: the perf map with frame pointers
    (`perf record -g`, PYTHONPERFSUPPORT=1), and the jitdump (`-k 1 --call-graph dwarf`,
    PYTHON_PERF_JIT_SUPPORT=1, then `perf inject --jit`): baz -> bar -> foo whole."""
    ok(guest, "perf-" + name)
    ok(guest, "script-" + name)
    if name == "jit":
        ok(guest, "inject")
    chains = [python_frames(s) for s in script_samples_of(
        (guest / ("script-%s.out" % name)).read_text())]
    in_foo = [c for c in chains if c and c[0] == "foo"]
    whole = [c for c in in_foo if c[:3] == ["foo", "bar", "baz"]]
    assert len(in_foo) >= 50 and len(whole) >= 0.8 * len(in_foo), (len(whole), len(in_foo))


def test_the_jitdump_is_aarch64s(guest):
    """EM_AARCH64, each stub's unwinding record before its load, and CIE/FDE as perf reads
    them."""
    dumps = glob.glob(str(guest / "jit-*.dump"))
    assert dumps
    d = Dump(dumps[0])
    assert d.elf_mach == 183
    pending = None
    loads = 0
    for r in d.records:
        if r["id"] == CODE_UNWINDING_INFO:
            pending = r
        elif r["id"] == CODE_LOAD:
            assert pending is not None, "a load without unwinding info before it"
            check_unwind_record(pending, r["code_size"])
            # The stub keeps a frame record: stp x29, x30, [sp, #-16]!
            assert struct.unpack_from("<I", r["code"], 0)[0] == 0xA9BF7BFD, r["code"].hex()
            loads += 1
    assert loads >= 4


def test_record_pid_switches_a_running_314_on_and_off_on_aarch64(guest):
    """Debian sid's arm64 CPython 3.14, started with no switch (chroot'd: its files reached
    through /proc/<pid>/root): `record --pid` switches names on through PEP 768, the
    recording names its functions with whole stacks, and afterwards the target says its
    trampoline is off and the default evaluator back; nothing new in its /tmp."""
    import json

    ok(guest, "attach")
    ok(guest, "report-attach")
    err = (guest / "attach.err").read_text()
    pid = int((guest / "attach.pid").read_text())
    m = re.search(r"switched Python names on in pid %d \(CPython 3\.14\.\d+ .*(perfpy|cpython)'s "
                  r"(perf|perf_jit) trampoline\)" % pid, err)
    assert m, err
    # CPython's own trampoline (the wheel here has no 3.14 extension to lend) writes its perf
    # map, flushed line by line: its jitdump would wait in a buffer until the process exits.
    assert m.group(1) == "perfpy" or m.group(2) == "perf", err
    assert "switched Python names off in pid %d" % pid in err, err
    counts = folded((guest / "report-attach.out").read_text())
    py = sum(n for s, n in counts.items() if "py::" in s)
    chain = sum(n for s, n in counts.items()
                if re.search(r"py::middle:[^;]*busy\.py;py::leaf:", s))
    middle = sum(n for s, n in counts.items() if "py::middle:" in s)
    assert py >= 100 and middle >= 0.8 * py and chain >= 0.1 * py, (py, middle, chain)
    before = json.loads((guest / "attach-state-before.json").read_text())
    after = json.loads((guest / "attach-state-after.json").read_text())
    assert before["default_eval"] and not before["sys"], before
    assert after["time"] > before["time"] and after["default_eval"] and not after["sys"] \
        and not after["perfpy"], after
    # perfpy's file is removed as it switches off; CPython's stays, as CPython leaves it.
    new = set((guest / "attach-tmp-after.txt").read_text().split()) - \
        set((guest / "attach-tmp-before.txt").read_text().split())
    assert new <= ({"perf-%d.map" % pid} if m.group(1) == "cpython" else set()), new
