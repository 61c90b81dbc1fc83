#!/usr/bin/env bash
# Quick start: builds perfpy for one interpreter, profiles the bundled example
# (examples/seed.py: baz -> bar -> foo) with `perf record`, and prints what `perf report`
# and `perf script` show.
#
#   scripts/quickstart.sh                    stock CPython 3.11 (no frame pointers) with the
#                                            perf_jit backend: perf record -k 1 --call-graph
#                                            dwarf, then perf inject --jit: the whole Python
#                                            stack, py::foo <- py::bar <- py::baz
#   scripts/quickstart.sh --map              the perf map backend on the same interpreter:
#                                            perf --call-graph dwarf names the innermost
#                                            Python function of every sample
#   scripts/quickstart.sh --frame-pointers   the perf map backend on a CPython 3.11 built
#                                            with frame pointers (built once, ~5 minutes):
#                                            perf -g shows the whole Python stack
#
#   PERFPY_QUICKSTART_MINOR=3.9 scripts/quickstart.sh   another pyenv CPython (3.8-3.13)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v perf >/dev/null; then
    echo "quickstart: perf is not installed; installing Debian's linux-perf" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >&2
fi

mode="jit"
case "${1:-}" in
    "") ;;
    --jit) mode="jit" ;;
    --map) mode="stock" ;;
    --frame-pointers) mode="fp" ;;
    *) echo "usage: scripts/quickstart.sh [--jit | --map | --frame-pointers]" >&2; exit 2 ;;
esac
minor="${PERFPY_QUICKSTART_MINOR:-3.11}"
if [ "$mode" = "fp" ]; then
    scripts/build-fp-python.sh >/dev/null
    minor=3.11
fi
echo "== building perfpy for CPython $minor" >&2
PERFPY_ONLY="$minor" scripts/setup-pythons.sh >/dev/null
if [ "$mode" = "fp" ]; then
    python=".venvs/py3.11-fp/bin/python"
    callgraph=(-g)
elif [ "$mode" = "jit" ]; then
    python=".venvs/py$minor/bin/python"
    callgraph=(-k 1 --call-graph dwarf,65528)
else
    python=".venvs/py$minor/bin/python"
    callgraph=(--call-graph dwarf)
fi

out="$(mktemp -d)"
mkdir "$out/home"   # perf's build-id cache goes here, not into ~/.debug
trap 'rm -rf "$out"' EXIT
# CPython's own switch on interpreters without built-in support; perfpy's on 3.12+.
switch="PYTHONPERFSUPPORT=1"
case "$minor" in 3.12|3.13|3.14) switch="PERFPY_BACKEND=perf" ;; esac
if [ "$mode" = "jit" ]; then
    switch="PYTHON_PERF_JIT_SUPPORT=1"
    case "$minor" in 3.13|3.14) switch="PERFPY_BACKEND=perf_jit" ;; esac
fi
echo "== $switch perf record -F 999 ${callgraph[*]} -- python$minor examples/seed.py" >&2
env HOME="$out/home" "$switch" perf record -q -F 999 "${callgraph[@]}" -o "$out/perf.data" \
    -- "$python" examples/seed.py 3000000
pid="$( (perf script -i "$out/perf.data" -F pid 2>/dev/null || true) | awk 'NR == 1 { print $1 }')"
if [ "$mode" = "jit" ]; then
    echo "== perf inject --jit (reads /tmp/jit-$pid.dump)" >&2
    HOME="$out/home" perf inject --jit -i "$out/perf.data" -o "$out/perf.jit.data"
    mv "$out/perf.jit.data" "$out/perf.data"
    # perf report reads the jitted-*.so files inject wrote; remove them when done.
    trap 'rm -rf "$out"; rm -f /tmp/jitted-"$pid"-*.so "/tmp/jit-$pid.dump"' EXIT
fi

echo
echo "== perf report --children --sort symbol: the Python functions"
echo "   (Children: samples in the function or anything it called; Self: in its own stub)"
HOME="$out/home" perf report -i "$out/perf.data" --stdio --children --sort symbol -g none 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | sed -E 's/ +- +- +$//' | grep -E 'py::' | head -n 8 || true
echo
echo "== one sample, as perf script prints it (innermost frame first)"
HOME="$out/home" perf script -i "$out/perf.data" -F ip,sym 2>/dev/null \
    | awk 'BEGIN { RS = "" } /py::foo/ && !done { print; done = 1 }' \
    | grep -E 'py::|_PyEval_EvalFrameDefault|main' | head -n 14 || true
echo
if [ "$mode" != "jit" ]; then
    echo "perf read the names from /tmp/perf-$pid.map:"
    grep -E ' py::(foo|bar|baz):' "/tmp/perf-$pid.map"
    rm -f "/tmp/perf-$pid.map"
fi
