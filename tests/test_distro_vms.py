"""The hosts production runs, as their distributions ship them: x86_64 VMs (scripts/vm.sh)
booting Debian 11's, 12's and 13's own kernels (5.10, 6.1, 6.12), with their own perf and
their own stripped python3 (3.9, 3.11, 3.13). One boot per VM and run
(tests/vm/distro-checks.sh): the wheel pip-installed into a venv and installed with pipx,
`perfpy doctor`, the seed recorded and reported in every format, `--mode wall` and `off-cpu`
on the known-waits program (its disk part on the guest's ext4), `record --pid`, `record -a`
with two programs, `perfpy top --plain`, an unprivileged user at perf_event_paranoid 2 and 1,
and kptr_restrict 1. What each boot brings back is checked here.

scripts/test.sh boots the VMs in the background beside the other steps and points
PERFPY_VM_RESULTS at their shares; run alone, this module boots each VM itself."""

import gzip
import json
import os
import re
import pytest

import vms
from recording import by_leaf

#: name: (kernel and perf version, CPython)
VMS = {
    "bullseye": ("5.10", "3.9"),
    "bookworm": ("6.1", "3.11"),
    "trixie": ("6.12", "3.13"),
}
#: The seed's chain, each frame `py::NAME:FILE`.
SEED_CHAIN = re.compile(";".join(r"py::%s:[^;]*" % f for f in ("baz", "bar", "foo")))

pytestmark = [
    pytest.mark.skipif(os.path.exists("/.perfpy-root"),
                       reason="the VMs are booted by the host's run, not the sid root's"),
]


class Guest:
    def __init__(self, share):
        self.share = share

    def text(self, name):
        with open(os.path.join(self.share, name), errors="replace") as f:
            return f.read()

    def exists(self, name):
        return os.path.exists(os.path.join(self.share, name))

    def steps(self):
        out = {}
        for line in self.text("steps.txt").splitlines():
            step, rc, secs = line.split()
            out[step] = (int(rc), int(secs))
        return out

    def ok(self, step):
        rc = self.steps().get(step, (None, None))[0]
        err = "%s.err" % step
        assert rc == 0, (step, rc, self.text(err)[-3000:] if self.exists(err) else "no output")
        return self.text("%s.out" % step), self.text(err)

    def folded(self, step):
        counts = {}
        for line in self.ok(step)[0].splitlines():
            stack, n = line.rsplit(" ", 1)
            counts[stack] = counts.get(stack, 0) + int(n)
        return counts


@pytest.fixture(params=sorted(VMS), scope="module")
def vm(request, tmp_path_factory):
    return request.param, Guest(vms.share(request.param, tmp_path_factory))


def whole_share(counts):
    """(samples in the seed's foo with baz -> bar -> foo whole, samples in foo)."""
    in_foo = sum(n for s, n in counts.items() if "py::foo:" in s)
    whole = sum(n for s, n in counts.items() if SEED_CHAIN.search(s))
    return whole, in_foo


def assert_whole(counts, what):
    whole, in_foo = whole_share(counts)
    assert in_foo >= 100 and whole >= 0.8 * in_foo, (what, whole, in_foo,
                                                     sorted(counts.items(), key=lambda kv: -kv[1])[:3])


def test_the_machine_is_the_distributions_own(vm):
    """Its kernel, its perf, its python3, stripped as shipped."""
    name, g = vm
    version, minor = VMS[name]
    uname = g.text("uname.txt").split()
    assert uname[0].startswith(version + ".") and uname[-1] == "x86_64", uname
    assert re.match(r"perf version %s\." % re.escape(version), g.text("perf-version.txt")), \
        g.text("perf-version.txt")
    assert g.text("python-version.txt").startswith("Python %s." % minor)
    assert ".symtab" not in g.text("python-sections.txt"), "the interpreter has its symbols"


def test_the_wheel_installs_with_pip_and_pipx_and_doctor_passes(vm):
    name, g = vm
    g.ok("venv")
    g.ok("pip")
    g.ok("pipx")
    for step in ("doctor", "pipx-doctor"):
        out, err = g.ok(step)
        assert re.search(r"^pass +recording +perf record of a one-second Python run worked", out,
                         re.M), (step, out)
        assert not re.search(r"^FAIL", out, re.M), (step, out)


def test_doctor_does_not_contradict_itself(vm):
    """What it says of perf alone and of `perfpy record` apart: no line advises a backend
    another line says this perf can't use."""
    name, g = vm
    out, _ = g.ok("doctor")
    if re.search(r"perf_jit.*can't unwind", out):
        advice = [l for l in out.splitlines() if re.search(r"\buse perf_jit\b|PYTHON_PERF_JIT_SUPPORT=1 perf", l)]
        assert not advice, out


def test_the_seed_is_whole_and_reported_in_every_format(vm):
    name, g = vm
    g.ok("rec-seed")
    assert_whole(g.folded("report-seed"), "dwarf")
    text, _ = g.ok("report-text")
    assert "py::foo" in text, text[:2000]
    g.ok("report-flamegraph")
    assert "py::foo" in g.text("seed.flamegraph")
    g.ok("report-speedscope")
    names = {f["name"] for f in json.loads(g.text("seed.speedscope"))["shared"]["frames"]}
    assert {"py::foo", "py::bar", "py::baz"} <= {n.split(":")[0] + ":" + n.split(":")[2]
                                                  if n.count(":") >= 2 else n
                                                  for n in names} or \
        any(n.startswith("py::foo") for n in names), sorted(names)[:20]
    g.ok("report-firefox")
    assert "py::foo" in g.text("seed.firefox")
    g.ok("report-pprof")
    with gzip.open(os.path.join(g.share, "seed.pprof")) as f:
        assert b"py::foo" in f.read()


def test_frame_pointer_call_graphs_on_the_distributions_interpreter(vm):
    """`--call-graph fp` with an interpreter built without frame pointers: either whole stacks
    (perfpy's stubs keep the chain) or a clear word about frame pointers."""
    name, g = vm
    out, err = g.ok("rec-seed-fp")
    counts = g.folded("report-seed-fp")
    whole, in_foo = whole_share(counts)
    assert (in_foo >= 100 and whole >= 0.8 * in_foo) or "frame pointer" in err, (whole, in_foo, err)


def test_the_stripped_interpreters_frames_say_why(vm):
    """Its own frames can't be named without its symbols: perfpy says so once, and what to
    install; with bookworm's python3.11-dbg in /usr/lib/debug, they are named."""
    name, g = vm
    _, minor = VMS[name]
    unnamed = "[python%s]" % minor

    def through_unnamed(text):
        """The share of the samples with a frame of the interpreter's that has no name (its
        exported functions, `_PyEval_EvalFrameDefault` among them, have theirs)."""
        counts = {}
        for line in text.splitlines():
            stack, n = line.rsplit(" ", 1)
            counts[stack] = counts.get(stack, 0) + int(n)
        return sum(n for st, n in counts.items() if unnamed in st) / max(sum(counts.values()), 1)

    out, err = g.ok("report-seed-native")
    assert through_unnamed(out) > 0.5, out[:3000]
    assert len(re.findall(r"stripped", err)) == 1, err
    assert "python%s-dbg" % minor in err, err
    if name == "bookworm":
        out, err = g.ok("report-seed-debug")
        assert through_unnamed(out) == 0, out[:3000]
        assert "stripped" not in err, err


#: known_waits' functions and the reason of their waits.
REASONS = [("sleeper", "[wait: sleep]"), ("holder", "[wait: sleep]"),
           ("contender", "[wait: lock]"), ("child", "[wait: child]"), ("writer", "[wait: disk]")]
#: What else a thread of theirs may be doing: running (the emulated CPU is slow: a fork, the
#: writes' own work), waiting for a CPU or for the GIL.
NOT_THEIR_WAIT = {"cpu", "[wait: preempted]", "[wait: GIL]"}


def assert_reasons(counts, functions):
    """Each function's waits have its reason: at least 85% of its time off the CPU for another
    reason than a CPU or the GIL (starting a child reads a pipe until it has run, for one), and
    that time at least 30% of its time."""
    for function, reason in functions:
        t = by_leaf(counts, function)
        waits = {k: v for k, v in t.items() if k not in NOT_THEIR_WAIT}
        total, waited = sum(t.values()), sum(waits.values())
        assert total > 0 and waited >= 0.3 * total, (function, t)
        assert waits.get(reason, 0) >= 0.85 * waited, (function, t)


@pytest.mark.parametrize("mode", ["wall", "off-cpu"])
def test_each_wait_gets_its_reason(vm, mode):
    """known_waits: 20 x time.sleep, a lock, a child, 20 x fsync on ext4, a CPU loop; each
    reason right (on 3.9, time.sleep is select() with no descriptors: a sleep)."""
    name, g = vm
    g.ok("rec-" + mode)
    counts = g.folded("report-" + mode)
    assert_reasons(counts, REASONS)
    if mode == "wall":
        t = by_leaf(counts, "spinner")
        on = t.get("cpu", 0) + t.get("[wait: preempted]", 0)
        assert on > 0.9 * sum(t.values()) and t.get("cpu", 0) > 0, ("spinner", t)


def test_record_pid_switches_a_running_program_on_and_off(vm):
    name, g = vm
    out, err = g.ok("attach")
    pid = int(g.text("attach.pid"))
    assert "switched Python names on in pid %d" % pid in err, err
    assert "switched Python names off in pid %d" % pid in err, err
    counts = g.folded("report-attach")
    middle = sum(n for s, n in counts.items() if "py::middle:" in s)
    assert middle >= 50, sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    new = set(g.text("attach-tmp-after.txt").split()) - set(g.text("attach-tmp-before.txt").split())
    assert not new, new


def test_record_all_names_both_programs(vm):
    name, g = vm
    g.ok("all")
    a, b = g.text("all.pids").split()
    counts = g.folded("report-all")
    middle = sum(n for s, n in counts.items() if "py::middle:" in s)
    assert middle >= 50, sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    out, err = g.ok("all")
    # Debian's perf (perf_5.10 and the like, linking libpython for its scripts) is not one.
    assert not re.search(r"new: pid \d+ perf", err), err
    for pid in (a, b):
        assert re.search(r"pid %s\b" % pid, err), (pid, err)


def test_top_plain_shows_the_programs(vm):
    name, g = vm
    out, err = g.ok("top")
    assert "py::middle" in out, (out[-2000:], err[-2000:])


@pytest.mark.parametrize("paranoid", ["2", "1", "kptr"])
def test_an_unprivileged_user_gets_whole_stacks(vm, paranoid):
    """At the distribution's default perf_event_paranoid (2), at 1, and with kernel addresses
    hidden (kptr_restrict 1): whole Python stacks, and nothing that fails."""
    name, g = vm
    g.ok("user-rec-%s" % paranoid)
    assert_whole(g.folded("user-report-%s" % paranoid), paranoid)
    if paranoid == "2":
        out, _ = g.ok("user-doctor-2")
        assert not re.search(r"^FAIL", out, re.M), out


def test_an_unprivileged_users_waits_get_their_reasons(vm):
    """Wall-clock time at paranoid 2 is refused with the fix (perf gives no stack at a context
    switch there); at 1, the reasons are right without the interpreter's symbols."""
    name, g = vm
    rc = g.steps()["user-wall-2"][0]
    err = g.text("user-wall-2.err")
    assert rc == 2 and "perf_event_paranoid" in err and "sudo" in err, (rc, err)
    g.ok("user-wall-1")
    assert_reasons(g.folded("user-report-wall-1"), REASONS[:4])  # no disk of the user's there


def test_kernel_addresses_hidden_from_root_too(vm):
    name, g = vm
    g.ok("root-rec-kptr")
    assert_whole(g.folded("root-report-kptr"), "kptr root")


def test_nothing_left_in_tmp(vm):
    """Nothing of perfpy's: only the perf map of the program started with PYTHONPERFSUPPORT=1
    (killed by the checks), which it keeps, as CPython does, for perf to read after it."""
    name, g = vm
    own = "perf-%s.map" % g.text("all.pids").split()[0]
    left = set(g.text("tmp-after.txt").split()) - set(g.text("tmp-before.txt").split())
    assert left <= {own}, left
