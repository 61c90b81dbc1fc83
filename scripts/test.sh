#!/usr/bin/env bash
# The whole test suite, from a fresh machine: builds what it needs, then runs the Rust unit
# tests and the pytest suite against every CPython 3.8-3.13 found (pyenv) and a CPython 3.11
# built with frame pointers, with this machine's perf; then the same pytest suite inside a
# Debian sid root against the CPython 3.14 and 3.15 Debian ships, with its perf 7.
#
#   scripts/test.sh                 everything
#   scripts/test.sh -k fork         extra arguments go to both pytest runs
#   scripts/test.sh --cold ...      as on a fresh machine: every cache moved aside for the run and
#                                   put back after (scripts/cold.sh)
#   PERFPY_SKIP_FP_BUILD=1 ...      don't build the frame-pointer interpreter (its tests skip)
#   PERFPY_SKIP_ROOT=1 ...          don't build or use the sid root (3.14 and 3.15 untested)
#   PERFPY_SKIP_AARCH64=1 ...       don't cross-compile the aarch64 wheel nor build the arm64 VM
#                                   (their tests skip)
set -euo pipefail
if [ "${1:-}" = --cold ]; then
    shift
    here="$(cd "$(dirname "$0")" && pwd)"
    exec "$here/cold.sh" "$here/test.sh" "$@"
fi
. "$(cd "$(dirname "$0")" && pwd)/apt.sh"
cd "$(dirname "$0")/.."
log() { echo "== $* (${SECONDS}s)" >&2; }

missing=()
command -v perf >/dev/null || missing+=(linux-perf)
command -v cc >/dev/null || missing+=(build-essential)
# Independent readers of perfpy report's output: protoc with pprof's profile.proto, and
# Chromium for the flamegraph SVG.
command -v protoc >/dev/null || missing+=(protobuf-compiler)
[ -f /usr/share/gocode/src/github.com/google/pprof/proto/profile.proto ] \
    || missing+=(golang-github-google-pprof-dev)
command -v chromium >/dev/null || missing+=(chromium)
# The real-program tests' HTTP load generator, and `go tool pprof` reading --format pprof.
command -v wrk >/dev/null || missing+=(wrk)
command -v go >/dev/null || missing+=(golang-go)
# speedscope's package comes through npm (the user's npm configuration: registry, proxy).
command -v npm >/dev/null || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_install "${missing[@]}"
fi

# The arm64 VM (Debian's arm64 kernel, perf and CPython under qemu-system-aarch64): about 20
# minutes the first time, mostly its packages' set-up under qemu-user, so it is built beside
# the rest; cached after. What its build needs on this machine is installed first, here, so
# that a machine that can't have it says so now rather than after the long steps.
vm_log="$HOME/.cache/perfpy/arm64-vm.build.log"
if [ -z "${PERFPY_SKIP_AARCH64:-}" ]; then
    mkdir -p "$(dirname "$vm_log")"
    log "what the arm64 VM's build needs on this machine (qemu, debootstrap)"
    scripts/build-arm64-vm.sh --host-tools \
        || { echo "the arm64 VM can't be built on this machine (above); PERFPY_SKIP_AARCH64=1 skips it" >&2; exit 1; }
    log "the arm64 VM (scripts/build-arm64-vm.sh, in the background; its log: $vm_log)"
    scripts/build-arm64-vm.sh > "$vm_log" 2>&1 &
    vm_pid=$!
fi

if [ -z "${PERFPY_SKIP_FP_BUILD:-}" ]; then
    log "CPython 3.11 with frame pointers (cached after the first build)"
    scripts/build-fp-python.sh >/dev/null
fi

# speedscope's npm package: its published file-format schema, and the app itself (loaded in
# headless Chromium by tests/test_consumers.py).
schema_dir="$HOME/.cache/perfpy/speedscope"
if [ ! -f "$schema_dir/package/dist/release/index.html" ]; then
    log "speedscope's schema and app (npm pack speedscope@1.25.0)"
    rm -rf "$schema_dir"
    mkdir -p "$schema_dir"
    (cd "$schema_dir" && npm pack --silent speedscope@1.25.0 >/dev/null \
        && tar xzf speedscope-1.25.0.tgz && rm speedscope-1.25.0.tgz)
fi

# samply 0.13.1 (crates.io), which imports perf.data itself: a second reader of perfpy's
# stubs and names (cached after the first build).
samply="$HOME/.cache/perfpy/samply/bin/samply"
if [ ! -x "$samply" ] || ! "$samply" --version | grep -q "0.13.1"; then
    log "samply 0.13.1 (cargo install, once)"
    cargo install --quiet --locked samply --version 0.13.1 --root "$HOME/.cache/perfpy/samply"
fi

# What is tested is what ships: the one wheel (every interpreter's extension and the perfpy
# command; 3.14 and 3.15 built in the Debian sid root), installed into a venv per interpreter
# and into the tools venvs whose `perfpy` command the tests run.
log "the wheel (scripts/build-wheels.sh; the sid root with CPython 3.14, 3.15 and perf 7 is cached)"
scripts/build-wheels.sh >/dev/null
if [ -z "${PERFPY_SKIP_AARCH64:-}" ]; then
    # Only the 3.11 build: the arm64 CPython that runs here is Debian bookworm's 3.11 (the
    # whole aarch64 wheel is PERFPY_WHEEL_ARCH=aarch64 scripts/build-wheels.sh).
    log "the aarch64 wheel for CPython 3.11 (cross-compiled), and an arm64 CPython 3.11 under qemu-user"
    PERFPY_WHEEL_ARCH=aarch64 PERFPY_ONLY=3.11 PERFPY_SKIP_ROOT=1 scripts/build-wheels.sh >/dev/null
    scripts/build-arm64-root.sh >/dev/null
fi
log "venvs for every interpreter, from the wheel"
scripts/setup-pythons.sh >/dev/null
if [ -z "${PERFPY_SKIP_ROOT:-}" ]; then
    root_pythons="$(scripts/setup-root-pythons.sh | tr '\n' ' ')"
fi

log "cargo test"
# From the same mirror of the workspace the wheel was built from (scripts/build-tree.py), into
# the same target directory, so a fresh clone rebuilds only what changed.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
tree="$(python3 scripts/build-tree.py "$CARGO_TARGET_DIR/tree")"
(cd "$tree" && cargo test --workspace --exclude perfpy-ext --quiet \
    && cargo build --quiet -p perfpy-format --example jitdump_check)

if [ -n "${vm_pid:-}" ]; then
    log "waiting for the arm64 VM"
    wait "$vm_pid" || { tail -n 30 "$vm_log" >&2; echo "the arm64 VM could not be built" >&2; exit 1; }
fi

log "pytest: CPython 3.8-3.13 and the frame-pointer 3.11, $(perf version)"
set +e
.venv-tools/bin/pytest tests -q -ra --durations=12 "$@"
rc=$?
set -e
if [ -z "${PERFPY_SKIP_ROOT:-}" ]; then
    log "pytest in the sid root: CPython 3.14 and 3.15, $(scripts/in-root.sh perf version)"
    set +e
    scripts/in-root.sh env PERFPY_FORMAT_READERS=host PERFPY_TEST_PYTHONS="$root_pythons" \
        "$PWD/.venv-root-tools/bin/pytest" tests -q -ra --durations=12 -p no:cacheprovider "$@"
    root_rc=$?
    set -e
    [ "$rc" -ne 0 ] || rc=$root_rc
fi
# pytest exits 5 when it collected nothing: a broken setup, not a pass.
exit "$rc"
