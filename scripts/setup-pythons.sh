#!/usr/bin/env bash
# Builds perfpy's wheel for every CPython 3.8-3.14 found on this machine (one maturin run,
# one shared cargo target directory) and installs each into its own venv under .venvs/.
# Also installs the 3.11 wheel into the frame-pointer interpreter if it has been built.
#
#   PERFPY_PYTHONS   space-separated interpreter paths (default: every pyenv CPython 3.8-3.14)
#   PERFPY_ONLY      a single minor version to set up (e.g. 3.11), for a quick start
#
# Prints nothing on stdout but the venv interpreters, one per line.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
log() { echo "setup-pythons: $*" >&2; }

find_pythons() {
    if [ -n "${PERFPY_PYTHONS:-}" ]; then
        printf '%s\n' $PERFPY_PYTHONS
        return
    fi
    local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    for d in "$pyenv_root"/versions/3.*; do
        [ -d "$d" ] || continue
        local v; v="$(basename "$d")"
        local minor; minor="$(echo "$v" | cut -d. -f1-2)"
        case "$minor" in 3.8|3.9|3.10|3.11|3.12|3.13|3.14) ;; *) continue ;; esac
        [[ "$v" =~ ^3\.[0-9]+\.[0-9]+$ ]] || continue   # CPython releases only, no -dev/t builds
        [ -n "${PERFPY_ONLY:-}" ] && [ "$minor" != "$PERFPY_ONLY" ] && continue
        [ -x "$d/bin/python$minor" ] && echo "$d/bin/python$minor"
    done
}

mapfile -t pythons < <(find_pythons)
if [ "${#pythons[@]}" -eq 0 ]; then
    log "no CPython 3.8-3.14 found (set PERFPY_PYTHONS)"
    exit 1
fi

# Tools: maturin, pytest, and the readers the tests check perfpy's output with (jsonschema
# for speedscope's schema, Pillow for the flamegraph screenshot), in a venv of their own, on
# 3.11 if there is one.
tools="$root/.venv-tools"
host_python="${pythons[-1]}"
for py in "${pythons[@]}"; do
    case "$py" in *3.11*) host_python="$py" ;; esac
done
if [ ! -x "$tools/bin/maturin" ] || [ ! -x "$tools/bin/pytest" ] \
        || ! "$tools/bin/python" -c "import jsonschema, PIL" 2>/dev/null; then
    log "creating the tools venv ($tools)"
    [ -x "$tools/bin/python" ] || "$host_python" -m venv "$tools"
    "$tools/bin/pip" install -q --disable-pip-version-check "maturin>=1.16,<2" pytest \
        "jsonschema>=4,<5" "pillow>=10" >&2
fi

log "building wheels for: ${pythons[*]}"
rm -rf "$root/dist"
"$tools/bin/maturin" build --release --quiet -o "$root/dist" -i "${pythons[@]}" >&2

mkdir -p "$root/.venvs"
install_into() {  # interpreter, venv dir
    local py="$1" venv="$2"
    local tag; tag="$("$py" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
    local wheel; wheel="$(ls "$root"/dist/perfpy-*-"$tag"-*.whl | head -n1)"
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-index \
        --force-reinstall "$wheel" >&2
    echo "$venv/bin/python"
}
for py in "${pythons[@]}"; do
    minor="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    install_into "$py" "$root/.venvs/py$minor"
done
fp="${PERFPY_FP_PREFIX:-$HOME/.cache/perfpy/python3.11-fp}/bin/python3.11"
if [ -x "$fp" ] && ls "$root"/dist/perfpy-*-cp311-*.whl >/dev/null 2>&1; then
    install_into "$fp" "$root/.venvs/py3.11-fp"
fi
