#!/usr/bin/env bash
# Installs perfpy's wheel (dist/, from scripts/build-wheels.sh) into a venv of its own for
# every host CPython 3.8-3.13 (.venvs/py3.X), into the frame-pointer 3.11 if it has been built
# (.venvs/py3.11-fp), and into the tools venv (.venv-tools), whose `perfpy` command the tests
# run, with pytest and the readers the tests check perfpy's output with (jsonschema for
# speedscope's schema, Pillow for the flamegraph screenshot), pipx and uv; and the packages of
# the real-program tests (tests/apps/requirements.txt: gunicorn, aiohttp, numpy) into the
# venvs PERFPY_APP_VENVS names (default: py3.12 and the frame-pointer py3.11-fp).
#
#   PERFPY_PYTHONS, PERFPY_ONLY: as for scripts/pythons.sh
#
# Prints nothing on stdout but the venv interpreters, one per line.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
log() { echo "setup-pythons: $*" >&2; }

wheel="$(ls "$root"/dist/perfpy-*.whl 2>/dev/null | head -n1 || true)"
[ -n "$wheel" ] || { log "no wheel in dist/: run scripts/build-wheels.sh first"; exit 1; }
mapfile -t pythons < <(scripts/pythons.sh)

tools="$root/.venv-tools"
if ! "$tools/bin/python" -c "import pytest, jsonschema, PIL, pipx" 2>/dev/null \
        || [ ! -x "$tools/bin/uv" ] || [ ! -x "$tools/bin/py-spy" ]; then
    log "installing the test tools into $tools"
    "$tools/bin/pip" install -q --disable-pip-version-check pytest "jsonschema>=4,<5" \
        "pillow>=10" "pipx==1.18.4" "uv==0.13.8" "py-spy==0.4.1" >&2
fi

install_into() {  # interpreter, venv dir
    local py="$1" venv="$2"
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-index \
        --force-reinstall "$wheel" >&2
    echo "$venv/bin/python"
}
mkdir -p "$root/.venvs"
tools_tag="$("$tools/bin/python" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
case "$(basename "$wheel")" in
    *-"$tools_tag"[.-]*|*."$tools_tag"[.-]*) install_into "$tools/bin/python" "$tools" >/dev/null ;;
    *) log "the wheel has no $tools_tag build: the tools venv gets no perfpy command" ;;
esac
for py in "${pythons[@]}"; do
    minor="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    install_into "$py" "$root/.venvs/py$minor"
done
fp="${PERFPY_FP_PREFIX:-$HOME/.cache/perfpy/python3.11-fp}/bin/python3.11"
if [ -x "$fp" ]; then
    install_into "$fp" "$root/.venvs/py3.11-fp"
fi

# The real programs' packages, from PyPI (pip's cache keeps them for the next run).
apps_into() {  # venv python
    "$1" -c "import gunicorn, aiohttp, jinja2, numpy" 2>/dev/null && return
    log "installing tests/apps/requirements.txt into $(dirname "$(dirname "$1")")"
    "$1" -m pip install -q --disable-pip-version-check --only-binary :all: \
        -r "$root/tests/apps/requirements.txt" >&2
}
for v in ${PERFPY_APP_VENVS:-py3.12 py3.11-fp}; do
    if [ -x "$root/.venvs/$v/bin/python" ]; then
        apps_into "$root/.venvs/$v/bin/python"
    fi
done
