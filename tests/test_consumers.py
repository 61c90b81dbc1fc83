"""perfpy's output opened by the tools people already use, each installed by scripts/test.sh
from a registry: `go tool pprof` (Debian's golang-go), samply 0.13.1 (crates.io), the
speedscope app (npm) and the flamegraph SVG's own search, both in headless Chromium."""

import gzip
import http.server
import json
import os
import shutil
import re
import socketserver
import subprocess
import threading

import pytest

from conftest import PYTHONS, SCRIPTS, SEED
from recording import (CACHE, CLI_MARKS, on_the_host_only, perfpy, python_rows, record,
                       seed_recording, shutil_which)

pytestmark = CLI_MARKS + [on_the_host_only("the consumers (go, samply, Chromium, speedscope)")]

SPEEDSCOPE_APP = os.path.join(CACHE, "speedscope", "package", "dist", "release")
SAMPLY = os.path.join(CACHE, "samply", "bin", "samply")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def text_report(tmp):
    r = perfpy("report", cwd=tmp)
    assert r.returncode == 0, r.stderr
    total = int(re.match(r"(\d+) samples", r.stdout).group(1))
    native = {}
    inside = False
    for line in r.stdout.splitlines():
        if line.startswith("native code"):
            inside = True
            continue
        m = re.match(r"^\s+([\d.]+)%\s+([\d.]+)%\s+(\d+)\s+(\S+)", line)
        if inside and m:
            native[m.group(4)] = int(m.group(3))
    return total, python_rows(r.stdout), native


def chromium():
    c = shutil_which("chromium")
    if not c:
        pytest.fail("chromium is missing: scripts/test.sh installs Debian's chromium")
    return c


def test_go_tool_pprof_agrees_on_totals_and_top_functions(seed_recording):
    go = shutil_which("go")
    if not go:
        pytest.fail("go is missing: scripts/test.sh installs Debian's golang-go")
    r = perfpy("report", "--format", "pprof", "-o", "out.pb.gz", cwd=seed_recording)
    assert r.returncode == 0, r.stderr
    top = subprocess.run([go, "tool", "pprof", "-sample_index=0", "-top", "-nodecount=500",
                          str(seed_recording / "out.pb.gz")], capture_output=True, text=True,
                         timeout=300,
                         env=dict(os.environ, HOME=str(seed_recording / "home")))
    assert top.returncode == 0, top.stderr
    total, rows, native = text_report(seed_recording)
    assert re.search(r"Total samples = %d\b" % total, top.stdout), top.stdout[:500]
    flat, cum = {}, {}
    for line in top.stdout.splitlines():
        m = re.match(r"^\s+(\d+)\s+[\d.]+%\s+[\d.]+%\s+(\d+)\s+[\d.]+%\s+(.+?)\s*$", line)
        if m:
            flat[m.group(3)], cum[m.group(3)] = int(m.group(1)), int(m.group(2))
    # The hottest native function (the leaf of most samples) is pprof's top flat row too.
    hottest = max(native, key=native.get)
    assert flat.get(hottest) == native[hottest], (hottest, native[hottest], flat.get(hottest))
    # Each Python function's total is pprof's cumulative count.
    for _, _, samples_total, func, _ in rows[:5]:
        pass
    for row in rows[:5]:
        func, total_pct = row[3], row[1]
        assert func in cum, (func, sorted(cum)[:20])
        assert abs(100.0 * cum[func] / total - total_pct) <= 0.1, (func, cum[func], total_pct)


@pytest.mark.parametrize("how", ["keep-jit-files", "no-compress"])
def test_samply_imports_the_recording_with_the_python_names(tmp_path, how):
    """samply 0.13.1 reads no sample of a compressed recording (perfpy record's default):
    both ways of recording for it that `perfpy record --help` gives work."""
    if not os.path.exists(SAMPLY):
        pytest.fail("samply is missing at %s: scripts/test.sh installs it (cargo install "
                    "samply --version 0.13.1)" % SAMPLY)
    # samply reads the names from /tmp, where the program wrote them: keep them there, or put
    # the dump back there after perfpy record moved it next to perf.data.
    record(tmp_path, PYTHONS[-1].path, "--backend", "perf-jit", "--" + how)
    if how == "no-compress":
        for f in os.listdir(tmp_path / "perf.data.perfpy"):
            shutil.copy(tmp_path / "perf.data.perfpy" / f, "/tmp/" + f)
    out = tmp_path / "samply.json.gz"
    r = subprocess.run([SAMPLY, "import", str(tmp_path / "perf.data"), "--save-only", "-o",
                        str(out)], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, HOME=str(tmp_path / "home")))
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    profile = json.loads(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    samples = 0
    names = set()
    for thread in profile["threads"]:
        samples += thread["samples"]["length"]
        strings = thread.get("stringArray") or profile.get("shared", {}).get("stringArray", [])
        names.update(s for s in strings if s.startswith("py::"))
    total, _, _ = text_report(tmp_path)
    assert samples == total, (samples, total)
    for f in ("foo", "bar", "baz"):
        assert any(n.startswith("py::%s:%s" % (f, SEED)) for n in names), sorted(names)[:20]


def test_flamegraph_search_finds_a_python_function_in_chromium(seed_recording):
    r = perfpy("report", "--format", "flamegraph", "-o", "fg.svg", cwd=seed_recording)
    assert r.returncode == 0, r.stderr
    _, rows, _ = text_report(seed_recording)
    foo = [row for row in rows if row[3] == "py::foo"][0]
    dom = subprocess.run([chromium()] + CHROMIUM_FLAGS + [
        "--user-data-dir=%s" % (seed_recording / "chromium-search"), "--dump-dom",
        (seed_recording / "fg.svg").as_uri() + "?s=py::foo"], capture_output=True, text=True,
        timeout=120).stdout
    # The SVG's own search ran (its ?s= parameter): it highlights and reports the share.
    m = re.search(r'id="matched"[^>]*>Matched: ([\d.]+)%<', dom)
    assert m, dom[-2000:]
    assert abs(float(m.group(1)) - foo[1]) <= 0.2, (m.group(1), foo)
    assert "rgb(230,0,230)" in dom


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def draws_in_speedscope(tmp, profile):
    """Opens `profile` in the speedscope app in headless Chromium: how many distinct saturated
    colours the flame chart has (an empty or failed load is a plain page with a message)."""
    if not os.path.exists(os.path.join(SPEEDSCOPE_APP, "index.html")):
        pytest.fail("the speedscope app is missing at %s: scripts/test.sh unpacks the npm "
                    "package" % SPEEDSCOPE_APP)
    from PIL import Image
    served = os.path.join(SPEEDSCOPE_APP, "perfpy-test-profile.json")
    shutil.copy(profile, served)
    handler = lambda *a: _Quiet(*a, directory=SPEEDSCOPE_APP)
    shot = tmp / "speedscope.png"
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as httpd:
        port = httpd.server_address[1]
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            url = "http://127.0.0.1:%d/index.html#profileURL=http://127.0.0.1:%d/" \
                  "perfpy-test-profile.json" % (port, port)
            subprocess.run([chromium()] + CHROMIUM_FLAGS + [
                "--user-data-dir=%s" % (tmp / "chromium-speedscope"),
                "--window-size=1200,800", "--virtual-time-budget=10000",
                "--screenshot=%s" % shot, url], capture_output=True, timeout=120)
        finally:
            httpd.shutdown()
            os.unlink(served)
    img = Image.open(shot).convert("RGB")
    colours = set()
    for x in range(0, 1200, 6):
        for y in range(150, 780, 6):
            px = img.getpixel((x, y))
            if max(px) - min(px) > 60:
                colours.add(px)
    return len(colours)


def test_speedscope_app_draws_the_profile(seed_recording):
    r = perfpy("report", "--format", "speedscope", "-o", "profile.json", cwd=seed_recording)
    assert r.returncode == 0, r.stderr
    # The flame chart: many distinct saturated colours in the chart area.
    assert draws_in_speedscope(seed_recording, seed_recording / "profile.json") >= 8


# Wall-clock recordings: every format carries time, and each consumer reads it as time.

@pytest.fixture(scope="module")
def wall_recording(tmp_path_factory):
    """The known-waits program recorded once with --mode wall (newest interpreter)."""
    tmp = tmp_path_factory.mktemp("wall")
    record(tmp, PYTHONS[-1].path, "--mode", "wall",
           program=[os.path.join(SCRIPTS, "known_waits.py"), "1000000", str(tmp / "t.json")])
    return tmp


def wall_rows(tmp):
    """{function: (total %, total wall ms)} from the wall-clock text report, and its total ms (as
    the header rounds it: to 3 significant digits in seconds)."""
    r = perfpy("report", "--top", "100000", cwd=tmp)
    assert r.returncode == 0, r.stderr
    m = re.match(r"([\d.]+) (m?s) of wall time", r.stdout)
    total_ms = float(m.group(1)) * (1 if m.group(2) == "ms" else 1000)
    rows = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^\s+[\d.]+%\s+([\d.]+)%\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+(py::\S+)", line)
        if m:
            # (The ms columns are the function's self time; its total is its total share.)
            total_pct = float(m.group(1))
            rows.setdefault(m.group(3), (total_pct, total_pct * total_ms / 100))
    return total_ms, rows


def test_go_tool_pprof_reads_wall_time_in_nanoseconds(wall_recording):
    go = shutil_which("go")
    if not go:
        pytest.fail("go is missing: scripts/test.sh installs Debian's golang-go")
    r = perfpy("report", "--format", "pprof", "-o", "wall.pb.gz", cwd=wall_recording)
    assert r.returncode == 0, r.stderr
    top = subprocess.run([go, "tool", "pprof", "-sample_index=wall", "-unit=ms", "-top",
                          "-nodecount=500", str(wall_recording / "wall.pb.gz")],
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, HOME=str(wall_recording / "home")))
    assert top.returncode == 0, top.stderr
    total_ms, rows = wall_rows(wall_recording)
    m = re.search(r"of ([\d.]+)ms total", top.stdout)
    assert m and abs(float(m.group(1)) - total_ms) <= max(1.0, 0.005 * total_ms), (
        top.stdout[:600], total_ms)
    cum = {}
    for line in top.stdout.splitlines():
        # (pprof prints a zero without its unit.)
        m = re.match(r"^\s+[\d.]+(?:ms)?\s+[\d.]+%\s+[\d.]+%\s+([\d.]+)(?:ms)?\s+[\d.]+%\s+"
                     r"(.+?)\s*$", line)
        if m:
            cum[m.group(2)] = float(m.group(1))
    for func in ("py::sleeper", "py::holder", "py::contender", "py::child", "py::spinner"):
        assert func in cum, (func, sorted(cum)[:20])
        assert abs(cum[func] - rows[func][1]) <= max(1.0, 0.01 * rows[func][1]), (
            func, cum[func], rows[func])


def test_flamegraph_search_weighs_wall_time(wall_recording):
    r = perfpy("report", "--format", "flamegraph", "-o", "wall.svg", cwd=wall_recording)
    assert r.returncode == 0, r.stderr
    _, rows = wall_rows(wall_recording)
    svg = (wall_recording / "wall.svg").read_text()
    # Each frame's tooltip in microseconds (inferno's counts, the time's unit in its label).
    assert re.search(r"<title>py::sleeper[^<]*\([\d,]+ µs, [\d.]+%\)</title>", svg), \
        re.findall(r"<title>py::sleeper[^<]*</title>", svg)[:3]
    dom = subprocess.run([chromium()] + CHROMIUM_FLAGS + [
        "--user-data-dir=%s" % (wall_recording / "chromium-search"), "--dump-dom",
        (wall_recording / "wall.svg").as_uri() + "?s=py::sleeper"], capture_output=True,
        text=True, timeout=120).stdout
    m = re.search(r'id="matched"[^>]*>Matched: ([\d.]+)%<', dom)
    assert m, dom[-2000:]
    assert abs(float(m.group(1)) - rows["py::sleeper"][0]) <= 0.2, (m.group(1), rows)


def test_speedscope_reads_wall_time_as_time(wall_recording):
    r = perfpy("report", "--format", "speedscope", "-o", "wall.json", cwd=wall_recording)
    assert r.returncode == 0, r.stderr
    doc = json.load(open(wall_recording / "wall.json"))
    total_ms, _ = wall_rows(wall_recording)
    assert {p["unit"] for p in doc["profiles"]} == {"nanoseconds"}, doc["profiles"][0]["unit"]
    weights = sum(sum(p["weights"]) for p in doc["profiles"])
    assert abs(weights / 1e6 - total_ms) <= max(1.0, 0.005 * total_ms), (weights, total_ms)
    assert draws_in_speedscope(wall_recording, wall_recording / "wall.json") >= 8
