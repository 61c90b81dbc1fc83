#!/usr/bin/env bash
# Builds perfpy's wheels for the Debian sid root's CPython 3.14 and 3.15 (inside the root, one
# maturin run, its own cargo target directory) and installs each into a venv under
# .venvs-root/, plus a tools venv (pytest and the readers the tests use). Builds the root
# first if needed (scripts/build-sid-root.sh).
#
# Prints nothing on stdout but the venv interpreters, one per line (paths inside the root,
# which are the same as outside for the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir="$PWD"
log() { echo "setup-root-pythons: $*" >&2; }

scripts/build-sid-root.sh >/dev/null
in_root() { scripts/in-root.sh "$@"; }

tools="$root_dir/.venv-root-tools"
if ! in_root "$tools/bin/python" -c "import pytest, jsonschema, PIL, maturin" 2>/dev/null; then
    log "creating the root's tools venv ($tools)"
    in_root python3.14 -m venv --clear "$tools" >&2
    in_root "$tools/bin/pip" install -q --disable-pip-version-check "maturin>=1.16,<2" pytest \
        "jsonschema>=4,<5" "pillow>=10" >&2
fi

log "building wheels for CPython 3.14 and 3.15 inside the root"
rm -rf "$root_dir/dist-root"
in_root env CARGO_TARGET_DIR="$root_dir/target/sid" "$tools/bin/maturin" build --release --quiet \
    -o "$root_dir/dist-root" $(for m in ${PERFPY_ROOT_MINORS:-3.14 3.15}; do echo -i python$m; done) >&2

mkdir -p "$root_dir/.venvs-root"
for minor in ${PERFPY_ROOT_MINORS:-3.14 3.15}; do
    venv="$root_dir/.venvs-root/py$minor"
    tag="cp${minor/./}"
    wheel="$(ls "$root_dir"/dist-root/perfpy-*-"$tag"-*.whl | head -n1)"
    [ -x "$venv/bin/python" ] || in_root "python$minor" -m venv "$venv" >&2
    in_root "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-index \
        --force-reinstall "$wheel" >&2
    echo "$venv/bin/python"
done
