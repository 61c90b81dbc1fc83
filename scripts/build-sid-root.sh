#!/usr/bin/env bash
# Builds a Debian sid root with the CPython 3.14 and 3.15 and the perf 7 that distributions
# ship (Debian 12's own archive has neither), for the test suite's run on those interpreters.
#
# The root is made once with debootstrap (about two minutes, ~860 MB) and cached; a second run
# with the root complete does nothing. Prints the root's path on its last line of stdout.
#
#   PERFPY_SID_ROOT    where (default: ~/.cache/perfpy/sid-root)
#   PERFPY_SID_MIRROR  the Debian archive (default: the one this machine's apt uses)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/apt.sh"

root="${PERFPY_SID_ROOT:-$HOME/.cache/perfpy/sid-root}"
packages=(python3.14 python3.14-dev python3.14-venv python3.15 python3.15-dev python3.15-venv
          linux-perf gcc libc6-dev ca-certificates valgrind)
stamp="$root/.perfpy-root"
want="packages=${packages[*]}"
log() { echo "build-sid-root: $*" >&2; }

# Tools the tests run inside the root, added to a root made without them by apt.
extras=(wrk)
add_extras() {
    local need=()
    for p in "${extras[@]}"; do
        chroot "$root" dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
            || need+=("$p")
    done
    [ "${#need[@]}" -eq 0 ] && return
    log "installing ${need[*]} into the root"
    apt_install --root "$root" "${need[@]}"
}

if [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$want" ]; then
    add_extras
    echo "$root"
    exit 0
fi

mirror="${PERFPY_SID_MIRROR:-$(debian_archive)}"
if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    apt_install debootstrap
fi

log "debootstrap sid into $root from $mirror (once; about two minutes)"
rm -rf "$root.partial"
mkdir -p "$(dirname "$root")"
include="$(IFS=,; echo "${packages[*]}")"
if ! debootstrap --variant=minbase --include="$include" sid "$root.partial" "$mirror" >&2; then
    log "debootstrap failed; the log is $root.partial/debootstrap/debootstrap.log"
    exit 1
fi
rm -rf "$root"
mv "$root.partial" "$root"
{
    echo "$want"
    for p in "${packages[@]}"; do
        chroot "$root" dpkg-query -W -f '${Package} ${Version}\n' "$p"
    done
} > "$stamp"
log "$(grep -E '^(python3\.1[45]|linux-perf) ' "$stamp" | tr '\n' ' ')"
add_extras
echo "$root"
