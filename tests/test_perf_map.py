"""The map file: content, exact line format (against CPython's own as the oracle), names."""

import os
import re

import pytest

from conftest import PYTHONS, SEED, map_names, map_path, read_map, run, script

SEED_FUNCS = ("foo", "bar", "baz")


def test_seed_example_maps_foo_bar_baz(py):
    r = run(py, [SEED, "100000"], PERFPY_BACKEND="perf").check()
    assert r.stdout == "" and r.stderr == ""
    names = map_names(r.pid)
    for f in SEED_FUNCS:
        assert names.count("py::%s:%s" % (f, SEED)) == 1, names
    assert "py::<module>:%s" % SEED in names
    for addr, size, name in read_map(r.pid):
        assert name.startswith("py::")
        assert size == 8  # the x86_64 stub; the stride (16) is not reported
        assert addr % 16 == 0
    # Every address is distinct: one stub per code object.
    addrs = [a for a, _, _ in read_map(r.pid)]
    assert len(addrs) == len(set(addrs))


def test_map_file_mode_is_0600(py):
    r = run(py, [SEED, "10"], PERFPY_BACKEND="perf").check()
    assert os.stat(map_path(r.pid)).st_mode & 0o777 == 0o600


ORACLES = [p for p in PYTHONS if p.has_builtin_perf]


@pytest.mark.parametrize("oracle", ORACLES, ids=lambda p: p.minor)
def test_line_format_matches_cpython(oracle, tmp_path):
    """CPython 3.12/3.13 ``-X perf`` writes the map we must match, field by field."""
    theirs = run(oracle.base, ["-X", "perf", SEED, "1000"]).check()
    ours = run(oracle, [SEED, "1000"], PERFPY_BACKEND="perf").check()
    with open(map_path(theirs.pid)) as f:
        their_lines = f.read().splitlines()
    with open(map_path(ours.pid)) as f:
        our_lines = f.read().splitlines()

    def fields(lines):
        out = {}
        for line in lines:
            addr, size, name = line.split(" ", 2)
            out[name] = (addr, size)
        return out

    t, o = fields(their_lines), fields(our_lines)
    for func in SEED_FUNCS + ("<module>",):
        name = "py::%s:%s" % (func, SEED)
        assert name in t and name in o, (name, sorted(t)[:5], sorted(o)[:5])
        for (ta, ts), (oa, os_) in [(t[name], o[name])]:
            # Address: lowercase hex, no 0x, same magnitude (user-space mmap addresses).
            assert re.fullmatch(r"[0-9a-f]+", ta) and re.fullmatch(r"[0-9a-f]+", oa)
            assert not oa.startswith("0x") and len(oa) == len(ta)
            # Size: lowercase hex of the stub's code size.
            assert re.fullmatch(r"[0-9a-f]+", ts) and re.fullmatch(r"[0-9a-f]+", os_)
    # Names of everything both mapped (stdlib functions run after startup) agree exactly.
    common = set(t) & set(o)
    assert len(common) >= 10
    # Every line of ours has CPython's shape.
    shape = re.compile(r"^[0-9a-f]+ [0-9a-f]+ py::.+:.+$")
    assert all(shape.match(line) for line in our_lines)


QUALNAMES = r'''
import sys

def top():
    def inner():
        return (lambda: 1)()
    return inner()

class A:
    def method(self):
        def helper():
            return 2
        return helper()
    @classmethod
    def cm(cls):
        return 3
    @staticmethod
    def sm():
        return 4
    class Inner:
        def deep(self):
            return 5

def gen():
    yield 6

async def coro():
    return 7

def run_all():
    top(); A().method(); A.cm(); A.sm(); A.Inner().deep(); list(gen())
    c = coro()
    try:
        c.send(None)
    except StopIteration:
        pass

run_all()
for f in (top, A.method, A.cm, A.sm, A.Inner.deep, gen, coro, run_all):
    f = getattr(f, "__func__", f)
    print(f.__qualname__)
print("A")
print("A.Inner")
print("top.<locals>.inner")
print("A.method.<locals>.helper")
print("top.<locals>.inner.<locals>.<lambda>")
'''


def test_qualified_names(py, tmp_path):
    """co_qualname on 3.11+; on 3.8-3.10 perfpy works out the same names itself."""
    path = script(tmp_path, QUALNAMES)
    r = run(py, [path], PERFPY_BACKEND="perf").check()
    expected = r.stdout.split()
    names = {n[len("py::"):-len(":" + path)] for n in map_names(r.pid) if n.endswith(":" + path)}
    missing = [q for q in expected if q not in names]
    assert not missing, (missing, sorted(names))


def test_names_with_line_breaks_stay_on_one_line(py, tmp_path):
    path = script(tmp_path, '''
        src = "def f():\\n    return 1\\nf()\\n"
        exec(compile(src, "odd\\nname\\r.py", "exec"))
    ''')
    r = run(py, [path], PERFPY_BACKEND="perf").check()
    names = map_names(r.pid)  # read_map asserts every line is well formed
    assert "py::f:odd\\nname\\r.py" in names


def test_unencodable_filename_is_escaped(py, tmp_path):
    path = script(tmp_path, '''
        exec(compile("def g():\\n    return 1\\ng()\\n", "bad\\udcff.py", "exec"))
        print("ok")
    ''')
    r = run(py, [path], PERFPY_BACKEND="perf").check()
    assert r.stdout == "ok\n" and r.stderr == ""
    assert "py::g:bad\\udcff.py" in map_names(r.pid)


def test_write_perf_map_entry(py, tmp_path):
    """The equivalent of CPython's PyUnstable_WritePerfMapEntry (test_perfmaps)."""
    path = script(tmp_path, '''
        import perfpy
        perfpy.write_perf_map_entry(0x1234, 5678, "entry1")
        perfpy.write_perf_map_entry(0x2345, 6789, "entry2")
    ''')
    r = run(py, [path]).check()
    with open(map_path(r.pid)) as f:
        text = f.read()
    assert "1234 162e entry1\n" in text and "2345 1a85 entry2\n" in text
