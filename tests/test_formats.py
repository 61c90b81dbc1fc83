"""Each output format of `perfpy report`, checked by a reader that isn't perfpy: speedscope's
published schema, protoc with pprof's profile.proto, Chromium for the flamegraph, and the
Firefox Profiler's processed-format structure."""

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

from conftest import FP_PYTHONS, PYTHONS, ROOT, SCRIPTS, SEED, child_env, script
from test_perf_record import PERF, perf_problem, requires_perf, script_samples
from recording import (BACKENDS, BUILTIN, CLI_MARKS, PERFPY, PROFILE_PROTO_DIR, SEED_CHAIN,
                       SPEEDSCOPE_SCHEMA, collapsed, kallsyms_readable, on_the_host_only, perfpy,
                       python_rows, record, recorded_pids, seed_recording, shutil_which,
                       wait_for_samples)

pytestmark = CLI_MARKS + [on_the_host_only("the readers (speedscope's schema, protoc, Chromium)")]


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
