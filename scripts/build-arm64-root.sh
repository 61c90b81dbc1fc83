#!/usr/bin/env bash
# An aarch64 CPython to run the aarch64 wheel on, under qemu-user: Debian bookworm's arm64
# python3.11 and the libraries it needs, unpacked (debootstrap --foreign, then dpkg -x; no
# second stage, since that would need binfmt_misc). Cached; a second run does nothing. Run
# its interpreter with:
#
#   qemu-aarch64-static -L "$root" "$root/usr/bin/python3.11" ...
#
#   PERFPY_ARM64_ROOT    where (default: ~/.cache/perfpy/arm64-root)
#   PERFPY_ARM64_MIRROR  the Debian archive (default: the one this machine's apt uses)
#
# Prints the root's path on stdout.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/apt.sh"
root="${PERFPY_ARM64_ROOT:-$HOME/.cache/perfpy/arm64-root}"
stamp="$root/.perfpy-arm64-root"
log() { echo "build-arm64-root: $*" >&2; }
if ! command -v qemu-aarch64-static >/dev/null; then
    log "installing qemu-user-static"
    apt_install_qemu qemu-user-static
fi
if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    apt_install debootstrap
fi
if [ ! -f "$stamp" ]; then
    log "unpacking Debian bookworm's arm64 python3.11 into $root (once; about 30 s)"
    rm -rf "$root.partial"
    debootstrap --arch=arm64 --foreign --variant=minbase \
        --include=python3.11-minimal,libpython3.11-stdlib bookworm "$root.partial" \
        "${PERFPY_ARM64_MIRROR:-$(debian_archive)}" > "$root.log" 2>&1 \
        || { tail -n 20 "$root.log" >&2; exit 1; }
    for deb in "$root.partial"/var/cache/apt/archives/*.deb; do dpkg -x "$deb" "$root.partial"; done
    qemu-aarch64-static -L "$root.partial" "$root.partial/usr/bin/python3.11" -c 'import platform; assert platform.machine() == "aarch64"'
    touch "$root.partial/.perfpy-arm64-root"
    rm -rf "$root"
    mv "$root.partial" "$root"
fi
echo "$root"
