"""`perfpy record` then `perfpy report`, with the real perf, on every interpreter; each output
format checked by a consumer that isn't perfpy."""

import glob
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import FP_PYTHONS, PYTHONS, ROOT, SEED, child_env, script
from test_perf_record import PERF, perf_problem, requires_perf, script_samples

PERFPY = os.path.join(ROOT, "target", "debug", "perfpy")
pytestmark = [
    requires_perf,
    pytest.mark.skipif(not os.path.exists(PERFPY),
                       reason="the perfpy command is not built: cargo build -p perfpy-cli "
                              "(scripts/test.sh does)"),
]

#: Test tools scripts/test.sh installs: the speedscope file-format schema (npm package
#: speedscope), profile.proto (Debian golang-github-google-pprof-dev), protoc, chromium.
CACHE = os.path.expanduser(os.environ.get("PERFPY_TOOLS_CACHE", "~/.cache/perfpy"))
SPEEDSCOPE_SCHEMA = os.path.join(CACHE, "speedscope", "package", "dist", "release",
                                 "file-format-schema.json")
PROFILE_PROTO_DIR = "/usr/share/gocode/src/github.com/google/pprof/proto"

SEED_CHAIN = ";".join("py::%s:%s" % (f, SEED) for f in ("<module>", "baz", "bar", "foo"))


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


def python_rows(text):
    """The rows of the text report's Python table: [(self%, total%, samples, function)]."""
    rows, inside = [], False
    for line in text.splitlines():
        if line.startswith("Python functions"):
            inside = True
            continue
        if inside and not line.strip():
            break
        m = re.match(r"^\s+([\d.]+)%\s+([\d.]+)%\s+(\d+)\s+(\S+)", line)
        if inside and m:
            rows.append((float(m.group(1)), float(m.group(2)), int(m.group(3)), m.group(4)))
    return rows


def recorded_pids(tmp_path, data="perf.data"):
    side = tmp_path / (data + ".perfpy")
    return sorted({int(re.search(r"-(\d+)\.", p).group(1)) for p in os.listdir(side)})


BACKENDS = ["perf", "perf-jit"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("py", PYTHONS, ids=lambda p: p.minor)
def test_record_then_report_gives_whole_python_stacks(py, backend, tmp_path):
    """Both backends on every stock interpreter (no frame pointers): perf's own unwinder names
    only the innermost Python frame of a perf-map recording here; perfpy report gives the
    whole stack, and record leaves nothing in /tmp or ~/.debug."""
    r = record(tmp_path, py.path, "--backend", backend)
    assert ("jitdump" if backend == "perf-jit" else "perf map") in r.stderr
    assert "switched on with PERFPY_BACKEND=%s" % backend.replace("-", "_") in r.stderr
    assert "DWARF call graphs" in r.stderr
    # The summary names foo hottest.
    summary = r.stderr[r.stderr.index("hottest Python functions"):]
    assert summary.splitlines()[2].split()[2] == "py::foo", summary

    counts = collapsed(tmp_path)
    total = sum(counts.values())
    whole = sum(n for s, n in counts.items() if SEED_CHAIN in s)
    assert total >= 50 and whole >= 0.8 * total, (whole, total, sorted(counts.items())[:5])

    text = perfpy("report", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    rows = python_rows(text.stdout)
    assert rows[0][3] == "py::foo" and rows[0][0] >= 80, text.stdout
    by_name = {row[3]: row for row in rows}
    for caller in ("py::bar", "py::baz", "py::<module>"):
        assert by_name[caller][1] >= by_name["py::foo"][1], text.stdout

    # The names moved next to the recording; nothing of the program's stays in /tmp.
    pids = recorded_pids(tmp_path)
    assert pids
    for pid in pids:
        for left in ("/tmp/perf-%d.map" % pid, "/tmp/jit-%d.dump" % pid):
            assert not os.path.exists(left), left
        assert not glob.glob("/tmp/jitted-%d-*.so" % pid)
    assert not os.path.exists(tmp_path / "home" / ".debug")


BUILTIN = [p for p in PYTHONS if p.has_builtin_perf]


@pytest.mark.skipif(not BUILTIN, reason="no CPython 3.12+ here")
@pytest.mark.parametrize("py", BUILTIN, ids=lambda p: p.minor)
def test_cpython_builtin_perf_map_gives_whole_stacks_too(py, tmp_path):
    """The interpreter without perfpy: CPython's own perf-map trampoline keeps no frame record,
    and perf's DWARF unwinder stops at it; perfpy report derives its CFI from the template in
    libpython and unwinds through it."""
    r = record(tmp_path, py.base, "--backend", "perf")
    assert "perf map" in r.stderr and "switched on with PYTHONPERFSUPPORT=1" in r.stderr
    counts = collapsed(tmp_path)
    total = sum(counts.values())
    assert sum(n for s, n in counts.items() if SEED_CHAIN in s) >= 0.8 * total, \
        sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    # And perf itself sees only the innermost Python function of each sample.
    samples = script_samples(str(tmp_path / "perf.data"))
    assert not any(sum(1 for f in s if f.startswith("py::")) > 1 for s in samples)


@pytest.mark.skipif(not BUILTIN, reason="no CPython 3.12+ here")
def test_cpython_map_unwinds_even_with_perfpy_imported(tmp_path):
    """CPython 3.12+ serving PYTHONPERFSUPPORT itself while the program also imports perfpy
    (its extension mapped): the stubs are still CPython's, told apart by their size."""
    py = BUILTIN[0]
    prog = script(tmp_path, "import perfpy, runpy, sys\nrunpy.run_path(%r, run_name='__main__')\n" % SEED)
    data = str(tmp_path / "plain.data")
    subprocess.run([PERF, "record", "-q", "-F", "999", "--call-graph", "dwarf,65528", "-o", data,
                    "--", py.path, prog, "8000000"], check=True, capture_output=True,
                   env=child_env(PYTHONPERFSUPPORT="1"))
    try:
        counts = collapsed(tmp_path, data="plain.data")
        total = sum(counts.values())
        chain = ";".join("py::%s:%s" % (f, SEED) for f in ("baz", "bar", "foo"))
        assert sum(n for st, n in counts.items() if chain in st) >= 0.8 * total, \
            sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    finally:
        for pid in set(subprocess.run([PERF, "script", "-i", data, "-F", "pid"],
                                      capture_output=True, text=True).stdout.split()):
            if os.path.exists("/tmp/perf-%s.map" % pid):
                os.unlink("/tmp/perf-%s.map" % pid)


@pytest.mark.skipif(not [p for p in PYTHONS if p.version >= (3, 13)], reason="no CPython 3.13+ here")
def test_auto_uses_cpython_313_own_jitdump_without_perfpy(tmp_path):
    py = [p for p in PYTHONS if p.version >= (3, 13)][0]
    r = record(tmp_path, py.base)
    assert "jitdump, DWARF call graphs" in r.stderr, r.stderr
    counts = collapsed(tmp_path)
    total = sum(counts.values())
    assert sum(n for s, n in counts.items() if SEED_CHAIN in s) >= 0.8 * total


def test_report_keeps_every_native_frame_on_request(tmp_path):
    py = PYTHONS[-1]
    record(tmp_path, py.path)
    counts = collapsed(tmp_path, "--native", "all")
    # The interpreter between the Python frames, and the process's entry at the root.
    glue = re.compile(r"py::baz:[^;]+;(?:[^;]+;)*_PyEval_EvalFrameDefault;(?:[^;]+;)*py::bar:")
    total = sum(counts.values())
    assert sum(n for s, n in counts.items() if glue.search(s)) >= 0.8 * total
    assert sum(n for s, n in counts.items() if s.startswith("_start;")) >= 0.8 * total
    python_only = collapsed(tmp_path, "--native", "none")
    assert sum(n for s, n in python_only.items() if s == SEED_CHAIN) >= 0.8 * total


@pytest.mark.skipif(not FP_PYTHONS, reason="no frame-pointer interpreter; run scripts/build-fp-python.sh")
def test_auto_picks_frame_pointers_where_the_interpreter_has_them(tmp_path):
    r = record(tmp_path, FP_PYTHONS[0].path)
    assert "perf map, frame-pointer call graphs" in r.stderr, r.stderr
    assert "interpreter has frame pointers" in r.stderr
    counts = collapsed(tmp_path)
    total = sum(counts.values())
    assert sum(n for s, n in counts.items() if SEED_CHAIN in s) >= 0.8 * total


def test_auto_picks_the_jitdump_and_dwarf_without_frame_pointers(tmp_path):
    r = record(tmp_path, PYTHONS[0].path)
    assert "jitdump, DWARF call graphs" in r.stderr, r.stderr
    assert "interpreter lacks frame pointers (0 of" in r.stderr


SPIN = """
    import time
    def spin():
        while True:
            pass
    print("spinning", flush=True)
    spin()
"""


def wait_for_samples(path, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 200_000:
            return
        time.sleep(0.2)
    raise AssertionError("no recording appeared at %s" % path)


@pytest.mark.parametrize("how", ["sigterm-to-perfpy", "ctrl-c-to-the-group"])
def test_stopping_the_program_still_gives_the_profile(how, tmp_path):
    (tmp_path / "home").mkdir()
    prog = script(tmp_path, SPIN)
    proc = subprocess.Popen([PERFPY, "record", "--", PYTHONS[-1].path, prog], cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(HOME=str(tmp_path / "home")), start_new_session=True)
    try:
        wait_for_samples(str(tmp_path / "perf.data"))
        time.sleep(1.0)
        if how == "sigterm-to-perfpy":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "hottest Python functions" in err, err
    assert re.search(r"py::spin\s+%s" % re.escape(prog), err), err
    text = perfpy("report", cwd=tmp_path)
    assert python_rows(text.stdout)[0][3] == "py::spin", text.stdout
    for pid in recorded_pids(tmp_path):
        assert not os.path.exists("/tmp/jit-%d.dump" % pid)


FORKING = """
    import os, sys
    def child_work(n):
        s = 0
        for i in range(n):
            s += i
        return s
    def parent_work(n):
        return child_work(n)
    def outer():
        pid = os.fork()
        if pid == 0:
            child_work(int(sys.argv[1]))
            os._exit(0)
        parent_work(int(sys.argv[1]) // 4)
        os.waitpid(pid, 0)
    outer()
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_forked_child_stacks_are_named_from_both_processes(backend, tmp_path):
    """A child forked inside outer(): its samples show outer() and <module> (named from the
    parent's file: they were on the stack at the fork) above child_work (from the child's own
    file). Both processes' files move beside the recording."""
    prog = script(tmp_path, FORKING)
    record(tmp_path, PYTHONS[-1].path, "--backend", backend, program=[prog, "4000000"])
    assert len(recorded_pids(tmp_path)) == 2, os.listdir(tmp_path / "perf.data.perfpy")
    counts = collapsed(tmp_path, "--native", "none")
    chain = lambda *fs: ";".join("py::%s:%s" % (f, prog) for f in fs)
    in_child = sum(n for s, n in counts.items() if s == chain("<module>", "outer", "child_work"))
    in_parent = sum(n for s, n in counts.items()
                    if s == chain("<module>", "outer", "parent_work", "child_work"))
    total = sum(counts.values())
    assert in_child >= 0.5 * total and in_parent >= 0.1 * total, sorted(counts.items())
    text = perfpy("report", "--format", "text", cwd=tmp_path)
    assert "2 processes" in text.stdout.splitlines()[0]


def test_report_agrees_with_perf_inject_and_perf_script(tmp_path):
    """Same recording, two readers: perf inject --jit + perf script, and perfpy report. The
    same Python frames, and each function's samples within 2% of all samples."""
    py = PYTHONS[-1]
    prog = script(tmp_path, """
        import sys
        def leaf_a(n):
            return sum(i * i for i in range(n))
        def leaf_b(n):
            s = 0
            for i in range(n):
                s += i % 7
            return s
        def middle(n):
            return leaf_a(n) + leaf_b(n)
        def top(n):
            return [middle(n) for _ in range(3)]
        top(int(sys.argv[1]))
    """)
    record(tmp_path, py.path, "--backend", "perf-jit", "--keep-jit-files",
           program=[prog, "400000"])
    data = str(tmp_path / "perf.data")
    pids = set(subprocess.run([PERF, "script", "-i", data, "-F", "pid"], capture_output=True,
                              text=True).stdout.split())
    env = child_env(HOME=str(tmp_path / "home"))
    try:
        r = perfpy("report", "--format", "collapsed", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        injected = str(tmp_path / "perf.jit.data")
        subprocess.run([PERF, "inject", "--jit", "-i", data, "-o", injected],
                       check=True, capture_output=True, env=env)
        theirs = script_samples(injected, env=env)
    finally:
        # --keep-jit-files left the dump in /tmp, and perf inject put jitted-<pid>-<n>.so there.
        for pid in pids:
            for f in glob.glob("/tmp/jitted-%s-*.so" % pid) + glob.glob("/tmp/jit-%s.dump" % pid):
                os.unlink(f)
    ours = {}
    for line in r.stdout.splitlines():
        stack, n = line.rsplit(" ", 1)
        ours[stack] = int(n)

    def innermost_python(frames):
        py_frames = [f for f in frames if f.startswith("py::")]
        return py_frames[0].split(":")[2] if py_frames else None

    from collections import Counter
    their_counts = Counter(innermost_python(s) for s in theirs)
    our_counts = Counter()
    for stack, n in ours.items():
        frames = stack.split(";")[::-1]
        our_counts[innermost_python(frames)] += n
    total = sum(our_counts.values())
    assert total == sum(their_counts.values()) and total >= 100, (total, their_counts)
    names = lambda c: {k for k, v in c.items() if k and v >= 0.005 * total}
    assert names(our_counts) == names(their_counts), (our_counts, their_counts)
    for name in names(our_counts):
        assert abs(our_counts[name] - their_counts[name]) <= 0.02 * total, (name, our_counts, their_counts)
    # Totals too: the samples with the function anywhere on the stack.
    def anywhere(stacks):
        c = Counter()
        for frames, n in stacks:
            for name in {f.split(":")[2] for f in frames if f.startswith("py::")}:
                c[name] += n
        return c
    their_total = anywhere((s, 1) for s in theirs)
    our_total = anywhere((stack.split(";"), n) for stack, n in ours.items())
    assert names(our_total) == names(their_total), (our_total, their_total)
    for name in names(our_total):
        assert abs(our_total[name] - their_total[name]) <= 0.02 * total, (name, our_total, their_total)
    assert our_total["top"] >= 0.7 * total  # the rest is interpreter start-up and exit
    # Whole stacks on both sides: leaf_b under middle under top.
    chain = re.compile(r"py::top:[^;]+;(?:[^;]+;)*py::middle:[^;]+;(?:[^;]+;)*py::leaf_b:")
    assert sum(n for s, n in ours.items() if chain.search(s)) >= 0.9 * our_counts["leaf_b"]


@pytest.fixture(scope="module")
def seed_recording(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("formats")
    record(tmp, PYTHONS[-1].path, "--backend", "perf-jit")
    return tmp


def test_speedscope_output_matches_the_published_schema(seed_recording):
    if not os.path.exists(SPEEDSCOPE_SCHEMA):
        pytest.fail("speedscope's schema is missing at %s: scripts/test.sh fetches it (npm pack speedscope)"
                    % SPEEDSCOPE_SCHEMA)
    import jsonschema
    r = perfpy("report", "--format", "speedscope", "-o", "out.speedscope.json", cwd=seed_recording)
    assert r.returncode == 0, r.stderr
    doc = json.load(open(seed_recording / "out.speedscope.json"))
    schema = json.load(open(SPEEDSCOPE_SCHEMA))
    jsonschema.validate(doc, schema)
    frames = [f["name"] for f in doc["shared"]["frames"]]
    main = doc["profiles"][0]
    chains = [[frames[i] for i in s if frames[i].startswith("py::")] for s in main["samples"]]
    full = [c for c in chains if c == ["py::<module>", "py::baz", "py::bar", "py::foo"]]
    assert len(full) >= 0.8 * len(chains)
    assert main["unit"] == "seconds" and abs(sum(main["weights"]) - main["endValue"]) < 1e-6
    # The jitdump's debug info gives each function its def line.
    lines = {f["name"]: f.get("line") for f in doc["shared"]["frames"] if f.get("file") == SEED}
    assert (lines["py::foo"], lines["py::bar"], lines["py::baz"]) == (4, 11, 15), lines


def test_pprof_output_decodes_with_protoc_and_profile_proto(seed_recording):
    proto = os.path.join(PROFILE_PROTO_DIR, "profile.proto")
    if not os.path.exists(proto) or not shutil_which("protoc"):
        pytest.fail("protoc and profile.proto are missing: scripts/test.sh installs "
                    "protobuf-compiler and golang-github-google-pprof-dev")
    r = perfpy("report", "--format", "pprof", "-o", "out.pb.gz", cwd=seed_recording)
    assert r.returncode == 0, r.stderr
    raw = gzip.decompress((seed_recording / "out.pb.gz").read_bytes())
    dec = subprocess.run(["protoc", "--decode=perftools.profiles.Profile", "-I", PROFILE_PROTO_DIR,
                          "profile.proto"], input=raw, capture_output=True, check=True)
    text = dec.stdout.decode()
    strings = [json.loads(s) for s in re.findall(r'^string_table: (".*")$', text, re.M)]
    assert strings[0] == ""
    functions = {}
    start_lines = {}
    for block in re.findall(r"^function \{\n(.*?)^\}", text, re.M | re.S):
        fields = dict(re.findall(r"^\s+(\w+): (\d+)$", block, re.M))
        functions[int(fields["id"])] = strings[int(fields.get("name", 0))]
        start_lines[strings[int(fields.get("name", 0))]] = int(fields.get("start_line", 0))
    assert start_lines["py::foo"] == 4 and start_lines["py::baz"] == 15, start_lines
    locations = {}
    for block in re.findall(r"^location \{\n(.*?)^\}\n", text, re.M | re.S):
        loc_id = int(re.search(r"^\s+id: (\d+)$", block, re.M).group(1))
        locations[loc_id] = functions[int(re.search(r"function_id: (\d+)", block).group(1))]
    total, full = 0, 0
    for block in re.findall(r"^sample \{\n(.*?)^\}", text, re.M | re.S):
        locs = [locations[int(x)] for x in re.findall(r"location_id: (\d+)", block)]
        count = int(re.findall(r"value: (-?\d+)", block)[0])
        total += count
        py = [f for f in locs if f.startswith("py::")]
        if py[:4] == ["py::foo", "py::bar", "py::baz", "py::<module>"]:  # leaf first
            full += count
    assert total >= 50 and full >= 0.8 * total
    assert "sample_type" in text and strings.count("samples") == 1


def shutil_which(name):
    import shutil
    return shutil.which(name)


def test_flamegraph_svg_shows_foo_in_chromium(seed_recording):
    chromium = shutil_which("chromium")
    if not chromium:
        pytest.fail("chromium is missing: scripts/test.sh installs Debian's chromium")
    from PIL import Image
    r = perfpy("report", "--format", "flamegraph", "-o", "fg.svg", cwd=seed_recording)
    assert r.returncode == 0, r.stderr
    svg = seed_recording / "fg.svg"
    height = int(re.search(r'height="(\d+)"', svg.read_text()).group(1))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", "--user-data-dir=%s" % (seed_recording / "chromium")]
    dom = subprocess.run([chromium] + flags + ["--dump-dom", svg.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    # After the SVG's script ran: the label text inferno fits into py::foo's box.
    m = re.search(r'<g><title>py::foo:[^<]*</title><rect x="([\d.]+)%" y="([\d.]+)" '
                  r'width="([\d.]+)%" height="([\d.]+)"[^>]*?/?>(?:</rect>)?<text[^>]*>(py::foo[^<]*)</text>',
                  dom)
    assert m, dom[:2000]
    x, y, w, h = (float(v) for v in m.groups()[:4])
    assert w >= 80
    shot = seed_recording / "fg.png"
    subprocess.run([chromium] + flags + ["--window-size=1200,%d" % height,
                                         "--screenshot=%s" % shot, svg.as_uri()],
                   capture_output=True, timeout=120)
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, height)
    # Inside py::foo's box: the Python colour (blue-dominant), not the pale background; in
    # _PyEval_EvalFrameDefault's box just above it, a warm native colour.
    px = img.getpixel((int(1200 * (x + w / 2) / 100), int(y + h / 2)))
    assert px[2] > 200 and px[0] < 120, px
    above = img.getpixel((int(1200 * (x + w / 2) / 100), int(y - h / 2)))
    assert above[0] > 200 and above[2] < 100, above
    # Above the whole flame, only background.
    bg = img.getpixel((600, 40))
    assert bg[0] > 200 and bg[1] > 200, bg


def test_firefox_output_is_a_processed_profile(seed_recording):
    r = perfpy("report", "--format", "firefox", cwd=seed_recording)
    assert r.returncode == 0, r.stderr
    doc = json.load(open(seed_recording / "profile.firefox.json"))
    assert doc["meta"]["version"] >= 24 and doc["meta"]["categories"]
    assert any(c["name"] == "Python" for c in doc["meta"]["categories"])
    thread = max(doc["threads"], key=lambda t: t["samples"]["length"])
    strings = thread.get("stringArray") or doc.get("shared", {}).get("stringArray")
    assert "py::foo:" + SEED in strings
    assert thread["samples"]["length"] >= 50


def test_report_finds_names_of_a_plain_perf_recording_in_tmp(tmp_path):
    """Recorded with perf itself (not perfpy record): the map stays in /tmp, where
    perfpy report finds it by pid."""
    py = PYTHONS[0]
    data = str(tmp_path / "plain.data")
    subprocess.run([PERF, "record", "-q", "-F", "999", "--call-graph", "dwarf", "-o", data, "--",
                    py.path, SEED, "2000000"], check=True, capture_output=True,
                   env=child_env(PERFPY_BACKEND="perf"))
    try:
        counts = collapsed(tmp_path, data="plain.data")
        total = sum(counts.values())
        assert sum(n for s, n in counts.items() if SEED_CHAIN in s) >= 0.7 * total
    finally:
        for line in subprocess.run([PERF, "script", "-i", data, "-F", "pid"], capture_output=True,
                                   text=True).stdout.split():
            p = "/tmp/perf-%s.map" % line.strip()
            if os.path.exists(p):
                os.unlink(p)


def test_report_pid_filter_keeps_one_process(tmp_path):
    prog = script(tmp_path, FORKING)
    record(tmp_path, PYTHONS[-1].path, program=[prog, "3000000"])
    pids = recorded_pids(tmp_path)
    assert len(pids) == 2
    for pid in pids:
        r = perfpy("report", "--pid", str(pid), "--format", "speedscope", "-o", "-", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert [p["name"].endswith("tid %d)" % pid) for p in doc["profiles"]] == [True]
    r = perfpy("report", "--pid", "1", cwd=tmp_path)
    assert r.returncode == 2 and "no samples for the pids given" in r.stderr


def test_threads_each_get_their_whole_stack(tmp_path):
    prog = script(tmp_path, """
        import sys, threading
        def spin_a(n):
            s = 0
            for i in range(n):
                s += i
        def spin_b(n):
            s = 0
            for i in range(n):
                s ^= i
        ts = [threading.Thread(target=spin_a, args=(int(sys.argv[1]),), name="worker-a"),
              threading.Thread(target=spin_b, args=(int(sys.argv[1]),), name="worker-b")]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    """)
    record(tmp_path, PYTHONS[-1].path, program=[prog, "2000000"])
    r = perfpy("report", "--format", "speedscope", "-o", "-", cwd=tmp_path)
    doc = json.loads(r.stdout)
    frames = [f["name"] for f in doc["shared"]["frames"]]
    by_thread = {}
    for prof in doc["profiles"]:
        pys = [[frames[i] for i in st if frames[i].startswith("py::")] for st in prof["samples"]]
        by_thread[prof["name"]] = pys
    for leaf in ("py::spin_a", "py::spin_b"):
        # One thread (not the main one) runs it, under threading's bootstrap frames.
        owners = [name for name, stacks in by_thread.items()
                  if sum(1 for s in stacks if s and s[-1] == leaf) >= 0.5 * len(stacks)]
        assert len(owners) == 1, (leaf, {k: len(v) for k, v in by_thread.items()})
        stacks = by_thread[owners[0]]
        assert all("py::Thread._bootstrap" in s for s in stacks if s and s[-1] == leaf)


def test_time_in_a_c_extension_shows_under_the_python_function(tmp_path):
    """The case of ML and data code: the Python function is thin, the time is in a native
    library it calls. The default view keeps that native code above the Python frame."""
    prog = script(tmp_path, """
        import os, sys, zlib
        def compress_all(n):
            data = os.urandom(1 << 20)
            for _ in range(n):
                zlib.compress(data, 9)
        compress_all(int(sys.argv[1]))
    """)
    record(tmp_path, PYTHONS[-1].path, program=[prog, "20"])
    r = perfpy("report", "--format", "collapsed", cwd=tmp_path)
    counts = {}
    for line in r.stdout.splitlines():
        stack, n = line.rsplit(" ", 1)
        counts[stack] = int(n)
    total = sum(counts.values())
    in_zlib = sum(n for st, n in counts.items()
                  if re.search(r"py::compress_all:[^;]+;(?:[^;]+;)*(zlib_compress|deflate)", st))
    assert in_zlib >= 0.5 * total, sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    text = perfpy("report", cwd=tmp_path).stdout
    assert re.search(r"libz\.so", text), text


def test_python_called_back_from_c_keeps_both_python_frames(tmp_path):
    """A Python -> C -> Python sandwich (sorted() calling a Python key function): the stack
    has outer, the C sort, and key, in that order."""
    prog = script(tmp_path, """
        import sys
        def key(x):
            s = 0
            for i in range(30):
                s += i * x
            return s
        def outer(n):
            for _ in range(n):
                sorted(range(2000), key=key)
        outer(int(sys.argv[1]))
    """)
    record(tmp_path, PYTHONS[-1].path, program=[prog, "300"])
    full = collapsed(tmp_path, "--native", "all")
    total = sum(full.values())
    sandwich = re.compile(r"py::outer:[^;]+;(?:[^;]+;)*[^;]*sort[^;]*;(?:[^;]+;)*py::key:")
    assert sum(n for st, n in full.items() if sandwich.search(st)) >= 0.5 * total, \
        sorted(full.items(), key=lambda kv: -kv[1])[:2]
    leaf = collapsed(tmp_path)
    glued = re.compile(r"py::outer:[^;]+;py::key:")
    assert sum(n for st, n in leaf.items() if glued.search(st)) >= 0.5 * total


def test_multiprocessing_spawn_children_are_profiled_too(tmp_path):
    """Spawned workers are new interpreters: they inherit the switch through the environment,
    write their own files, and record collects those too."""
    prog = script(tmp_path, """
        import multiprocessing as mp, sys
        def work(n):
            s = 0
            for i in range(n):
                s += i
            return s
        if __name__ == "__main__":
            ctx = mp.get_context("spawn")
            with ctx.Pool(2) as pool:
                pool.map(work, [int(sys.argv[1])] * 2)
    """)
    record(tmp_path, PYTHONS[-1].path, program=[prog, "3000000"])
    assert len(recorded_pids(tmp_path)) >= 3  # the parent and two workers
    r = perfpy("report", "--format", "collapsed", "--native", "none", cwd=tmp_path)
    work = sum(int(l.rsplit(" ", 1)[1]) for l in r.stdout.splitlines()
               if re.search(r"py::worker:[^;]+;(?:[^;]+;)*py::work:%s$" % re.escape(prog),
                            l.rsplit(" ", 1)[0]))
    total = sum(int(l.rsplit(" ", 1)[1]) for l in r.stdout.splitlines())
    assert work >= 0.4 * total, r.stdout[-3000:]


def test_a_script_with_a_python_shebang_is_recorded_with_that_python(tmp_path):
    py = PYTHONS[0]
    tool = tmp_path / "tool"
    tool.write_text("#!%s\n%s" % (py.path, open(SEED).read()))
    os.chmod(tool, 0o755)
    (tmp_path / "home").mkdir()
    r = perfpy("record", "--", str(tool), "2000000", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "python%s" % py.minor in r.stderr  # the interpreter probed is the shebang's
    assert "switched on with PERFPY_BACKEND" in r.stderr
    text = perfpy("report", cwd=tmp_path).stdout
    assert python_rows(text)[0][3] == "py::foo", text


def kallsyms_readable():
    try:
        with open("/proc/kallsyms") as f:
            return int(f.readline().split()[0], 16) != 0
    except (OSError, ValueError, IndexError):
        return False


@pytest.mark.skipif(not kallsyms_readable(), reason="/proc/kallsyms hides addresses (kptr_restrict)")
def test_kernel_frames_are_named_above_the_python_function(tmp_path):
    """A function that spends its time in read(2): its stack continues into the kernel,
    named from /proc/kallsyms (the recording is of this boot's kernel)."""
    prog = script(tmp_path, """
        import os, sys, time
        def reader(seconds):
            fd = os.open("/dev/zero", os.O_RDONLY)
            end = time.time() + seconds
            while time.time() < end:
                os.read(fd, 1 << 16)
        reader(float(sys.argv[1]))
    """)
    record(tmp_path, PYTHONS[-1].path, program=[prog, "1.5"])
    counts = collapsed(tmp_path)
    total = sum(counts.values())
    in_read = sum(n for s, n in counts.items()
                  if re.search(r"py::reader:[^;]+;.*;(__x64_sys_read|ksys_read|vfs_read)(;|$)", s))
    assert in_read >= 0.3 * total, sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    text = perfpy("report", cwd=tmp_path).stdout
    assert re.search(r"^\s+[\d.]+%\s+[\d.]+%\s+\d+\s+\S+\s+\[kernel\]$", text, re.M), text


def test_report_warns_when_the_names_are_missing(tmp_path):
    record(tmp_path, PYTHONS[0].path, "--backend", "perf")
    for f in os.listdir(tmp_path / "perf.data.perfpy"):
        os.unlink(tmp_path / "perf.data.perfpy" / f)
    r = perfpy("report", cwd=tmp_path)
    assert r.returncode == 0
    assert "no perf map or jitdump found for pid" in r.stderr, r.stderr
    assert "--jit-dir" in r.stderr


def test_record_and_report_errors_are_actionable(tmp_path):
    r = perfpy("record", "--", "/bin/true", cwd=tmp_path)
    assert r.returncode == 2 and "can't tell which Python" in r.stderr and "--python" in r.stderr
    r = perfpy("report", "-i", "nope.data", cwd=tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr and "perfpy record" in r.stderr
    (tmp_path / "junk.data").write_bytes(b"not perf data at all" * 10)
    r = perfpy("report", "-i", "junk.data", cwd=tmp_path)
    assert r.returncode == 2 and "not a perf.data file" in r.stderr
    old = [p for p in PYTHONS if p.version < (3, 12)]
    if old:
        # The interpreter outside its venv: no perfpy there, and no built-in support.
        r = perfpy("record", "--", old[0].base, SEED, cwd=tmp_path)
        assert r.returncode == 2 and "pip install perfpy" in r.stderr, r.stderr
    r = perfpy("record", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "EXAMPLES" in r.stdout
    # No perf on PATH.
    (tmp_path / "empty").mkdir()
    r = perfpy("record", "--", PYTHONS[0].path, SEED, cwd=tmp_path,
               env=child_env(PATH=str(tmp_path / "empty")))
    assert r.returncode == 2 and "perf is not on PATH" in r.stderr and "apt-get install" in r.stderr
    # A perf that fails to record: its message, then what to do.
    fake = tmp_path / "fakeperf"
    fake.mkdir()
    (fake / "perf").write_text("#!/bin/sh\n[ \"$1\" = version ] && echo 'perf version 5.15.143' && exit 0\n"
                               "echo 'perf_event_open(..., PERF_FLAG_FD_CLOEXEC) failed' >&2; exit 255\n")
    os.chmod(fake / "perf", 0o755)
    r = perfpy("record", "--", PYTHONS[0].path, SEED, cwd=tmp_path,
               env=child_env(PATH="%s:%s" % (fake, os.environ["PATH"])))
    assert r.returncode == 2 and "perf_event_open" in r.stderr, r.stderr
    assert "wrote no recording" in r.stderr and "perfpy doctor" in r.stderr
    # An old perf: the jitdump still serves perfpy report, and the reason says so.
    assert "perf 5.15.143's own unwinder can't step through perf inject --jit code" in r.stderr


@pytest.mark.skipif(not BUILTIN, reason="needs a CPython 3.12+ (its own perf map) outside /tmp")
def test_a_process_in_its_own_pid_and_mount_namespace(tmp_path):
    """A "container": its own PID namespace and a private /tmp, running CPython's own perf
    map (the interpreter itself, not a venv: a venv may live under the hidden /tmp). Its map is
    at /tmp/perf-<namespace pid>.map inside; perfpy record --pid finds it through
    /proc/<pid>/root and keeps a copy under the host pid."""
    py = BUILTIN[-1]
    # The private /tmp hides the test's own directory: the program comes with -c.
    marker = "perfpy-ns-test-%d" % os.getpid()
    code = "# %s\n%s" % (marker, textwrap.dedent(SPIN))
    prog = "<string>"
    inner = 'mount -t tmpfs tmpfs /tmp && exec %s -c "$0"' % py.base
    proc = subprocess.Popen(["unshare", "--pid", "--mount", "--fork", "--kill-child", "--mount-proc",
                             "sh", "-c", inner,
                             code],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(PYTHONPERFSUPPORT="1"))
    try:
        assert proc.stdout.readline().strip() == "spinning", proc.stderr.read()
        # The python process: a descendant of unshare whose namespace pid differs.
        host_pid = None
        for _ in range(50):
            out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
            for p in map(int, out):
                status = open("/proc/%d/status" % p).read()
                nspid = re.search(r"^NSpid:\s+(.*)$", status, re.M).group(1).split()
                if len(nspid) == 2 and "python" in os.readlink("/proc/%d/exe" % p):
                    host_pid = p
            if host_pid:
                break
            time.sleep(0.1)
        assert host_pid, "python inside the namespace not found"
        assert not os.path.exists("/tmp/perf-%d.map" % host_pid)
        (tmp_path / "home").mkdir()
        r = perfpy("record", "--pid", str(host_pid), "--duration", "1.5", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert re.search(r"py::spin\s+%s" % re.escape(prog), r.stderr), r.stderr
        assert os.path.exists(tmp_path / "perf.data.perfpy" / ("perf-%d.map" % host_pid))
        # The running program's own file is copied, not moved.
        ns_pid = re.search(r"^NSpid:\s+\d+\s+(\d+)", open("/proc/%d/status" % host_pid).read(), re.M).group(1)
        assert os.path.exists("/proc/%d/root/tmp/perf-%s.map" % (host_pid, ns_pid))
    finally:
        # The program is its namespace's init: only SIGKILL reaches it from outside.
        subprocess.run(["pkill", "-KILL", "-f", marker])
        proc.kill()
        proc.wait()
        deadline = time.time() + 10
        while time.time() < deadline and subprocess.run(["pgrep", "-f", marker],
                                                         capture_output=True).returncode == 0:
            time.sleep(0.1)
        assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode != 0
