"""The source tree keeps the shape ARCHITECTURE.md describes: the extension's modules import
each other in one direction only, the hot path names no backend, and the report pipeline's
files stay small enough to read in one sitting."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXT = os.path.join(ROOT, "crates", "ext", "src")
REPORT = os.path.join(ROOT, "crates", "cli", "src", "report")


def rust_files(top):
    for d, _, files in os.walk(top):
        for f in files:
            if f.endswith(".rs"):
                yield os.path.join(d, f)


def module_of(path, top):
    """`backend/perf_map.rs` -> `backend::perf_map`; `backend/mod.rs` -> `backend`."""
    rel = os.path.relpath(path, top)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel == ["lib"]:
        return "crate"
    return "::".join(rel)


def strip_comments(text):
    """Rust source without comments and string literals (which may name anything)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def imports(path, top, modules):
    """The crate's modules that `path` names: through `crate::`/`super::` paths, and (in a
    `lib.rs` or `mod.rs`) its own child modules named anywhere but their `mod` line."""
    me = module_of(path, top)
    sup = me.rsplit("::", 1)[0] if "::" in me else ""  # what `super` names here
    text = strip_comments(open(path).read())
    names = set()
    for m in re.finditer(r"\b(crate|super)::\{([^}]*)\}", text):
        base = "" if m.group(1) == "crate" else sup
        for part in m.group(2).split(","):
            part = part.strip().split(" as ")[0]
            if part and part != "self":
                names.add(base + "::" + part)
    for m in re.finditer(r"\b(crate|super)((?:::\w+)+)", text):
        base = "" if m.group(1) == "crate" else sup
        names.add(base + m.group(2))
    if os.path.basename(path) in ("mod.rs", "lib.rs"):
        prefix = "" if me == "crate" else me + "::"
        body = re.sub(r"^\s*(pub(\([^)]*\))?\s+)?mod \w+;", "", text, flags=re.M)
        for child in re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod (\w+);", text, flags=re.M):
            if re.search(r"\b%s\b" % child, body):
                names.add(prefix + child)
    out = set()
    for name in names:
        parts = name.strip(":").split("::")
        while parts and "::".join(parts) not in modules:
            parts.pop()
        target = "::".join(parts) if parts else "crate"
        if target != me:
            out.add(target)
    return out


def test_extension_modules_form_no_cycle():
    files = {module_of(p, EXT): p for p in rust_files(EXT)}
    modules = set(files)
    graph = {m: imports(p, EXT, modules) for m, p in files.items()}
    state = {}
    stack = []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycle = stack[stack.index(n):] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    # The graph is not trivially empty: the cold path's work does use the backend interface.
    assert "backend" in graph["compile"], graph["compile"]
    assert "compile" in graph["hook"], graph["hook"]
    assert "crate" not in set().union(*graph.values()), "a module imports lib.rs"


def test_hot_path_names_no_backend_file():
    for name in ("hook.rs", "compile.rs"):
        text = strip_comments(open(os.path.join(EXT, name)).read())
        for backend in ("perf_map", "perf_jit", "PerfMap", "PerfJit", "Kind::Perf", "map_file",
                        "jit_file"):
            assert backend not in text, "%s names a backend: %s" % (name, backend)


def test_report_record_top_and_attach_files_are_small():
    """The report pipeline, `record`'s steps, `top`, and the attach machinery: one job per
    file."""
    long = {}
    cli = os.path.join(ROOT, "crates", "cli", "src")
    for top in (REPORT, os.path.join(cli, "commands", "record"),
                os.path.join(cli, "commands", "top"), os.path.join(cli, "attach")):
        for p in rust_files(top):
            n = sum(1 for _ in open(p))
            if n > 320:
                long[os.path.relpath(p, ROOT)] = n
    assert not long, "over ~300 lines: %s" % long


def test_scripts_fetch_from_the_machines_sources_not_from_addresses_of_their_own():
    """Packages come from where the machine's own configuration says (apt's sources, npm's,
    pip's, cargo's), so a machine behind a mirror or a proxy builds and tests as any other:
    no script, CI step or test names a registry or archive by its address. Loopback servers
    the tests start themselves are the exception."""
    url = re.compile(r"\b(?:https?|ftp)://([^/\s\"'`)]+)")
    found = []
    for top in ("scripts", ".ci", "tests"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                path = os.path.join(d, f)
                try:
                    text = open(path, encoding="utf-8").read()
                except UnicodeDecodeError:
                    continue
                for n, line in enumerate(text.splitlines(), 1):
                    for m in url.finditer(line):
                        host = m.group(1).split(":")[0]
                        if host not in ("127.0.0.1", "localhost"):
                            found.append("%s:%d: %s" % (os.path.relpath(path, ROOT), n, m.group(0)))
    assert not found, "addresses written into the tree:\n" + "\n".join(found)
