#!/usr/bin/env bash
# Builds the wheel perfpy ships: one file for Linux x86_64 with glibc 2.17 or newer
# (manylinux_2_17 / manylinux2014), holding the extension built for each CPython found (host
# 3.8-3.13 through pyenv, 3.14 and 3.15 in the Debian sid root) and the perfpy command:
#
#   dist/perfpy-<version>-cp38.cp39...cp315-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
#
# No C toolchain of the right age is needed: zig (PyPI's ziglang) links against glibc 2.17's
# symbol versions, through maturin --zig for the extension and cargo-zigbuild for the command.
# auditwheel then checks the result and the script fails unless it says manylinux_2_17 or older.
# Cargo's target directories (<target>/wheel/<tag>, <target>/sid/<tag>) keep each build warm.
#
#   PERFPY_SKIP_ROOT=1          host interpreters only (no 3.14 / 3.15 builds)
#   PERFPY_WHEEL_ARCH=aarch64   cross-compile the aarch64 wheel instead, into dist-aarch64/
#                               (manylinux_2_17_aarch64; built and checked by auditwheel, but
#                               not tested here: no aarch64 machine runs the suite)
#   PERFPY_PYTHONS, PERFPY_ONLY: as for scripts/pythons.sh
#
# Prints nothing on stdout but the wheel's path.
set -euo pipefail
cd "$(dirname "$0")/.."
here="$PWD"
log() { echo "build-wheels: $*" >&2; }
export CARGO_TERM_COLOR=never
# pyproject.toml's build backend is maturin's wrapped (build_backend/perfpy_backend.py, for
# builds from source), which maturin run directly here would warn about.
export MATURIN_NO_MISSING_BUILD_BACKEND_WARNING=1

# The build tools, in the host's tools venv (the tests' tools live there too).
tools="$here/.venv-tools"
mapfile -t pythons < <(scripts/pythons.sh)
[ "${#pythons[@]}" -gt 0 ] || { log "no CPython 3.8-3.13 found (set PERFPY_PYTHONS)"; exit 1; }
host_python="${pythons[-1]}"
for py in "${pythons[@]}"; do case "$py" in *3.11*) host_python="$py" ;; esac; done
build_tools=("maturin>=1.16,<2" "ziglang==0.17.0" "cargo-zigbuild==0.24.0" "auditwheel==6.8.2")
if ! "$tools/bin/python" -c "import maturin, ziglang, auditwheel" 2>/dev/null \
        || [ ! -x "$tools/bin/cargo-zigbuild" ]; then
    log "installing the build tools into $tools"
    [ -x "$tools/bin/python" ] || "$host_python" -m venv "$tools"
    "$tools/bin/pip" install -q --disable-pip-version-check "${build_tools[@]}" >&2
fi
export PATH="$tools/bin:$PATH"

# Cargo's target directory: $CARGO_TARGET_DIR (CI shares one under ~/.cache/perfpy), else ./target.
target="${CARGO_TARGET_DIR:-$here/target}"
mkdir -p "$target"
target="$(cd "$target" && pwd)"
# Everything is built from a mirror of the workspace at a fixed path inside it, so that a fresh
# clone rebuilds only the crates whose files changed (scripts/build-tree.py says why).
tree="$(python3 scripts/build-tree.py "$target/tree")"
arch="${PERFPY_WHEEL_ARCH:-x86_64}"
case "$arch" in x86_64|aarch64) ;; *) log "PERFPY_WHEEL_ARCH=$arch: x86_64 or aarch64"; exit 2 ;; esac
triple="$arch-unknown-linux-gnu"
if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
    log "adding the Rust standard library for $triple (rustup target add)"
    rustup target add "$triple" >&2
fi
dist="$here/dist"
[ "$arch" = x86_64 ] || dist="$here/dist-$arch"
parts="$target/wheel-parts-$arch"
rm -rf "$parts"
mkdir -p "$parts"

# One cargo target directory per interpreter: pyo3 is built for one interpreter at a time, so a
# shared directory would rebuild it for each on every run.
for py in "${pythons[@]}"; do
    tag="$("$py" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
    log "the extension for $py (maturin --zig, manylinux2014)"
    (cd "$tree" && CARGO_TARGET_DIR="$target/wheel/$tag" maturin build --release --quiet --zig \
        --target "$triple" --compatibility manylinux2014 -o "$parts" -i "$py" >&2)
done

if [ -z "${PERFPY_SKIP_ROOT:-}" ]; then
    scripts/build-sid-root.sh >/dev/null
    root_tools="$here/.venv-root-tools"
    if ! scripts/in-root.sh "$root_tools/bin/python" -c "import maturin, ziglang" 2>/dev/null; then
        log "installing the build tools into the root's $root_tools"
        scripts/in-root.sh bash -c "[ -x '$root_tools/bin/python' ] || python3.14 -m venv '$root_tools'"
        scripts/in-root.sh "$root_tools/bin/pip" install -q --disable-pip-version-check \
            "maturin>=1.16,<2" "ziglang==0.17.0" >&2
    fi
    for minor in ${PERFPY_ROOT_MINORS:-3.14 3.15}; do
        log "the extension for CPython $minor inside the sid root"
        (cd "$tree" && "$here/scripts/in-root.sh" env \
            PATH="$root_tools/bin:$HOME/.cargo/bin:/usr/local/bin:/usr/bin:/bin" \
            CARGO_TARGET_DIR="$target/sid/cp${minor/./}" "$root_tools/bin/maturin" build \
            --release --quiet --zig --target "$triple" --compatibility manylinux2014 -o "$parts" \
            -i "python$minor" >&2)
    done
fi

log "the perfpy command (cargo zigbuild, glibc 2.17)"
(cd "$tree" && CARGO_TARGET_DIR="$target/wheel/cli" cargo zigbuild --release --quiet \
    -p perfpy-cli --target "$triple.2.17" >&2)
cli="$target/wheel/cli/$triple/release/perfpy"

rm -rf "$dist"
wheel="$(python3 scripts/assemble-wheel.py --cli "$cli" --out "$dist" "$parts"/*.whl)"

log "auditwheel show $(basename "$wheel")"
report="$(auditwheel show "$wheel")"
echo "$report" | sed 's/^/    /' >&2
tag="$(echo "$report" | tr -s ' \n' ' ' | grep -o 'consistent with the following platform tag: "[^"]*"' \
    | grep -o '"[^"]*"' | tr -d '"' || true)"
case "$tag" in
    manylinux_2_5_"$arch"|manylinux_2_12_"$arch"|manylinux_2_17_"$arch"|manylinux1_"$arch"|manylinux2010_"$arch"|manylinux2014_"$arch") ;;
    *) log "auditwheel says the wheel is ${tag:-of no manylinux tag}, not manylinux_2_17 or older"; exit 1 ;;
esac
log "$(basename "$wheel"): $tag, $(( $(stat -c %s "$wheel") / 1024 )) KiB"
echo "$wheel"
