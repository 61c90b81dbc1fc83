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
#   PERFPY_SKIP_VMS=1 ...           don't build or boot the x86_64 VMs of Debian 11, 12 and 13
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

# perfpy's VMs (scripts/build-vm.sh): Debian 11, 12 and 13 on x86_64 with their own kernels,
# perfs and stripped interpreters, and Debian 12 on arm64. Built in the background (a few
# minutes each for x86_64; about 20 for arm64, its packages set up under qemu-user), cached
# after; each is booted once with its checks (tests/vm/run-checks.sh) as soon as it and its
# wheel are there, beside the other steps and the host's pytest, which reads their results
# from .vm-results/ last (tests/vms.py). What the builds need on this machine is installed
# first, here, so that a machine that can't have it says so now rather than after the long
# steps.
vms=()
[ -n "${PERFPY_SKIP_VMS:-}" ] || vms+=(bullseye bookworm trixie)
[ -n "${PERFPY_SKIP_AARCH64:-}" ] || vms+=(arm64)
vm_log="$HOME/.cache/perfpy/vms.build.log"
vm_results="$PWD/.vm-results"
rm -rf "$vm_results"
vm_jobs=()
if [ "${#vms[@]}" -gt 0 ]; then
    mkdir -p "$(dirname "$vm_log")" "$vm_results"
    log "what the VMs' builds need on this machine (qemu, debootstrap)"
    for n in "${vms[@]}"; do
        scripts/build-vm.sh "$n" --host-tools || { echo "the $n VM can't be built on this" \
            "machine (above); PERFPY_SKIP_VMS=1 / PERFPY_SKIP_AARCH64=1 skip the VMs" >&2; exit 1; }
    done
    log "the VMs ${vms[*]} (scripts/build-vm.sh, in the background; its log: $vm_log), each" \
        "booted with its checks when built (tests/vm/run-checks.sh, into $vm_results)"
    # Each job its own process group (setsid), killed whole if this script ends first.
    setsid bash -c 'for n in "$@"; do
                        scripts/build-vm.sh "$n"; echo $? > "'"$vm_results"'/.built-$n"
                    done' vms "${vms[@]}" > "$vm_log" 2>&1 &
    vm_jobs+=($!)
    export PERFPY_VM_RESULTS="$vm_results" PERFPY_VMS="${vms[*]}"
    # The checks wait for their VM and their wheel (.wheel-dist, .wheel-dist-aarch64: touched
    # below when built); a VM that could not be built finishes its share with "not built".
    setsid bash -c 'r="$1"; shift
        for n in "$@"; do
            w=dist; [ "$n" = arm64 ] && w=dist-aarch64
            until [ -e "$r/.built-$n" ] && [ -e "$r/.wheel-$w" ]; do sleep 2; done
            if [ "$(cat "$r/.built-$n")" != 0 ]; then
                mkdir -p "$r/$n"; echo "not built: see '"$vm_log"'" > "$r/$n/finished"
                continue
            fi
            tests/vm/run-checks.sh "$n" "$r/$n" > "$r/$n.log" 2>&1
        done' checks "$vm_results" "${vms[@]}" > /dev/null 2>&1 &
    vm_jobs+=($!)
    trap 'for j in "${vm_jobs[@]}"; do kill -- "-$j" 2>/dev/null || true; done' EXIT
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
[ ! -d "$vm_results" ] || touch "$vm_results/.wheel-dist"
if [ -z "${PERFPY_SKIP_AARCH64:-}" ]; then
    # Only the 3.11 build: the arm64 CPython that runs here is Debian bookworm's 3.11 (the
    # whole aarch64 wheel is PERFPY_WHEEL_ARCH=aarch64 scripts/build-wheels.sh).
    log "the aarch64 wheel for CPython 3.11 (cross-compiled), and an arm64 CPython 3.11 under qemu-user"
    PERFPY_WHEEL_ARCH=aarch64 PERFPY_ONLY=3.11 PERFPY_SKIP_ROOT=1 scripts/build-wheels.sh >/dev/null
    touch "$vm_results/.wheel-dist-aarch64"
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

# The VMs' modules run last, apart, after the sid root's run: their boots go on in the
# background until then.
vm_tests=(tests/test_aarch64_vm.py tests/test_distro_vms.py)
log "pytest: CPython 3.8-3.13 and the frame-pointer 3.11, $(perf version)"
set +e
.venv-tools/bin/pytest tests -q -ra --durations=12 "${vm_tests[@]/#/--ignore=}" "$@"
rc=$?
set -e
if [ -z "${PERFPY_SKIP_ROOT:-}" ]; then
    log "pytest in the sid root: CPython 3.14 and 3.15, $(scripts/in-root.sh perf version)"
    set +e
    scripts/in-root.sh env PERFPY_FORMAT_READERS=host PERFPY_TEST_PYTHONS="$root_pythons" \
        "$PWD/.venv-root-tools/bin/pytest" tests -q -ra --durations=12 -p no:cacheprovider \
        "${vm_tests[@]/#/--ignore=}" "$@"
    root_rc=$?
    set -e
    [ "$rc" -ne 0 ] || rc=$root_rc
fi
log "pytest: what the VMs ${vms[*]} brought back (waited for)"
set +e
.venv-tools/bin/pytest "${vm_tests[@]}" -q -ra --durations=5 "$@"
vm_rc=$?
set -e
# pytest exits 5 when it collected nothing (a broken setup, not a pass); in the VMs' run, only
# when -k deselected every VM test.
[ "$rc" -ne 0 ] || [ "$vm_rc" -eq 5 ] || rc=$vm_rc
exit "$rc"
