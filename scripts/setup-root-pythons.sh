#!/usr/bin/env bash
# Installs perfpy's wheel (dist/, from scripts/build-wheels.sh, which builds its 3.14 and 3.15
# extensions inside the Debian sid root) into a venv for the root's CPython 3.14 and 3.15
# (.venvs-root/py3.X), and into the root's tools venv (.venv-root-tools: pytest, the readers
# the tests use, pipx, uv and auditwheel, and the `perfpy` command the tests run there).
#
# Prints nothing on stdout but the venv interpreters, one per line (paths inside the root,
# which are the same as outside for the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir="$PWD"
log() { echo "setup-root-pythons: $*" >&2; }

scripts/build-sid-root.sh >/dev/null
in_root() { scripts/in-root.sh "$@"; }
wheel="$(ls "$root_dir"/dist/perfpy-*.whl 2>/dev/null | head -n1 || true)"
[ -n "$wheel" ] || { log "no wheel in dist/: run scripts/build-wheels.sh first"; exit 1; }

tools="$root_dir/.venv-root-tools"
if ! in_root "$tools/bin/python" -c "import pytest, jsonschema, PIL, pipx, auditwheel" 2>/dev/null \
        || [ ! -x "$tools/bin/uv" ]; then
    log "installing the test tools into the root's $tools"
    in_root bash -c "[ -x '$tools/bin/python' ] || python3.14 -m venv '$tools'"
    in_root "$tools/bin/pip" install -q --disable-pip-version-check pytest \
        "jsonschema>=4,<5" "pillow>=10" "pipx==1.18.4" "uv==0.13.8" "auditwheel==6.8.2" >&2
fi

install_into() {  # interpreter, venv dir
    local py="$1" venv="$2"
    [ -x "$venv/bin/python" ] || in_root "$py" -m venv "$venv" >&2
    in_root "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-index \
        --force-reinstall "$wheel" >&2
    echo "$venv/bin/python"
}
install_into "$tools/bin/python" "$tools" >/dev/null
mkdir -p "$root_dir/.venvs-root"
for minor in ${PERFPY_ROOT_MINORS:-3.14 3.15}; do
    install_into "python$minor" "$root_dir/.venvs-root/py$minor"
done
# The real programs' packages (tests/apps/requirements.txt), into both.
for minor in ${PERFPY_ROOT_MINORS:-3.14 3.15}; do
    py="$root_dir/.venvs-root/py$minor/bin/python"
    in_root "$py" -c "import gunicorn, aiohttp, jinja2, numpy" 2>/dev/null && continue
    log "installing tests/apps/requirements.txt into .venvs-root/py$minor"
    in_root "$py" -m pip install -q --disable-pip-version-check --only-binary :all: \
        -r "$root_dir/tests/apps/requirements.txt" >&2
done
