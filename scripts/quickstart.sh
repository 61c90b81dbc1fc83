#!/usr/bin/env bash
# Quick start: builds perfpy's wheel for one interpreter (the extension and the perfpy
# command), installs it, profiles the bundled
# example (examples/seed.py: baz -> bar -> foo) with `perfpy record`, and prints what
# `perfpy report` shows: the hottest Python functions and the hottest whole stacks. It also
# writes flamegraph.svg into the current directory.
#
#   scripts/quickstart.sh                    stock CPython 3.11 (no frame pointers): perfpy
#                                            picks the jitdump backend and DWARF call graphs
#   scripts/quickstart.sh --map              the perf map backend on the same interpreter:
#                                            perf itself would name only the innermost Python
#                                            function; perfpy report unwinds the whole stack
#   scripts/quickstart.sh --frame-pointers   a CPython 3.11 built with frame pointers (built
#                                            once, ~5 minutes): perf map and perf record -g
#
#   PERFPY_QUICKSTART_MINOR=3.9 scripts/quickstart.sh   another pyenv CPython (3.8-3.13)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/apt.sh"
cd "$(dirname "$0")/.."

if ! command -v perf >/dev/null; then
    echo "quickstart: perf is not installed; installing Debian's linux-perf" >&2
    apt_install linux-perf
fi

minor="${PERFPY_QUICKSTART_MINOR:-3.11}"
backend=()
case "${1:-}" in
    "") ;;
    --map) backend=(--backend perf) ;;
    --frame-pointers) minor=3.11-fp ;;
    *) echo "usage: scripts/quickstart.sh [--map | --frame-pointers]" >&2; exit 2 ;;
esac
only="${minor%-fp}"
[ "$minor" = "3.11-fp" ] && scripts/build-fp-python.sh >/dev/null
echo "== building perfpy's wheel for CPython $only (the extension and the perfpy command)" >&2
PERFPY_ONLY="$only" PERFPY_SKIP_ROOT=1 scripts/build-wheels.sh >/dev/null
PERFPY_ONLY="$only" scripts/setup-pythons.sh >/dev/null
python="$PWD/.venvs/py$minor/bin/python"
perfpy="$PWD/.venvs/py$minor/bin/perfpy"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo
echo "== perfpy record -- python examples/seed.py" >&2
"$perfpy" record -o "$out/perf.data" "${backend[@]}" -- "$python" examples/seed.py 3000000
echo
echo "== perfpy report --top 6"
"$perfpy" report -i "$out/perf.data" --top 6
echo
echo "== perfpy report --format collapsed: the hottest whole stacks"
# awk reads to the end, so sort never meets a closed pipe (pipefail would stop the script).
"$perfpy" report -i "$out/perf.data" --format collapsed | sort -t' ' -k2 -nr | awk 'NR <= 3' \
    | cut -c1-200
"$perfpy" report -i "$out/perf.data" --format flamegraph -o flamegraph.svg
