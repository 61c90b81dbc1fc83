#!/usr/bin/env bash
# Runs a command as on a fresh machine: every cache the build and the suite keep is moved aside
# first and put back afterwards (what the cold run built in their place is deleted), so a cold
# run can be measured on a machine that has run the suite before.
#
#   scripts/cold.sh .ci/run          what CI does on a fresh machine (PERFPY_COLD=1 .ci/run)
#   scripts/cold.sh scripts/test.sh  the same as scripts/test.sh --cold
#
# Moved aside: ~/.cache/perfpy (cargo's target directory, the sid root, the VMs, the
# frame-pointer CPython, samply, speedscope), pip's, npm's and Go's caches, cargo's registry and
# git checkouts, and the checkout's venvs and wheels. Debian packages stay installed: a cold run
# checks what it installs with apt-get -s first (scripts/apt.sh). If a run is killed before it
# could put the caches back, the next run of this script puts them back first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$#" -gt 0 ] || { echo "usage: scripts/cold.sh COMMAND [ARG...]" >&2; exit 2; }

caches=("$HOME/.cache/perfpy" "$HOME/.cache/pip" "$HOME/.cache/go-build" "$HOME/.npm"
        "$HOME/.cargo/registry" "$HOME/.cargo/git"
        "$PWD/.venvs" "$PWD/.venv-tools" "$PWD/.venvs-root" "$PWD/.venv-root-tools"
        "$PWD/dist" "$PWD/dist-root" "$PWD/dist-aarch64")
suffix=.perfpy-warm

restore() {
    local c
    for c in "${caches[@]}"; do
        [ -e "$c$suffix" ] || continue
        rm -rf "$c"
        mv "$c$suffix" "$c"
    done
}

restore  # an earlier cold run that was killed
for c in "${caches[@]}"; do
    if [ -e "$c" ]; then mv "$c" "$c$suffix"; fi
done
echo "cold: caches moved aside (they come back when the command ends)" >&2
trap restore EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export PERFPY_COLD=running
rc=0
"$@" || rc=$?
exit "$rc"
