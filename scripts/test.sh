#!/usr/bin/env bash
# The whole test suite, from a fresh machine: builds what it needs, then runs the Rust unit
# tests and the pytest suite against every CPython 3.8-3.14 found (pyenv), plus a CPython 3.11
# built with frame pointers for the end-to-end `perf record -g` tests.
#
#   scripts/test.sh                 everything
#   scripts/test.sh -k fork         extra arguments go to pytest
#   PERFPY_SKIP_FP_BUILD=1 ...      don't build the frame-pointer interpreter (its tests skip)
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "== $*" >&2; }

missing=()
command -v perf >/dev/null || missing+=(linux-perf)
command -v cc >/dev/null || missing+=(build-essential)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if [ -z "${PERFPY_SKIP_FP_BUILD:-}" ]; then
    log "CPython 3.11 with frame pointers (cached after the first build)"
    scripts/build-fp-python.sh >/dev/null
fi

log "wheels and venvs for every interpreter"
scripts/setup-pythons.sh >/dev/null

log "cargo test"
cargo test --workspace --exclude perfpy-ext --quiet
cargo build --quiet -p perfpy-format --example jitdump_check
cargo build --quiet -p perfpy-cli

log "pytest"
set +e
.venv-tools/bin/pytest tests -q -ra "$@"
rc=$?
set -e
# pytest exits 5 when it collected nothing: a broken setup, not a pass.
exit "$rc"
