#!/usr/bin/env bash
# Runs a command inside the Debian sid root (scripts/build-sid-root.sh), as if on a sid
# machine that shares this one's kernel, checkout, /tmp and Rust toolchain:
#
# * a private mount namespace (nothing stays mounted when the command ends) with /proc, /sys,
#   /dev, /tmp and the checkout bind-mounted at the same paths, so pids, perf maps, jitdumps
#   and file names are the same inside and out;
# * ~/.cargo, ~/.rustup and $CARGO_TARGET_DIR (if set) bind-mounted, for maturin;
# * the host's CA bundle and pip configuration, so the package registries answer.
#
#   scripts/in-root.sh python3.14 -c 'import sys; print(sys.version)'
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="${PERFPY_SID_ROOT:-$HOME/.cache/perfpy/sid-root}"
[ -f "$root/.perfpy-root" ] || { echo "in-root: no root at $root; run scripts/build-sid-root.sh" >&2; exit 2; }
[ "$#" -gt 0 ] || { echo "usage: scripts/in-root.sh COMMAND [ARG...]" >&2; exit 2; }

cp -f /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
cp -f /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt" 2>/dev/null || true
[ -f /etc/pip.conf ] && cp -f /etc/pip.conf "$root/etc/pip.conf"

exec unshare --mount --propagation private -- bash -c '
set -e
root="$1"; here="$2"; shift 2
# The root is a mount point of its own, so that namespaces made inside it (unshare --mount) can
# change its propagation.
mount --rbind "$root" "$root"
bind() { mkdir -p "$root$2"; mount --rbind "$1" "$root$2"; }
bind /proc /proc
bind /sys /sys
bind /dev /dev
bind /tmp /tmp
bind "$here" "$here"
for d in "$HOME/.cargo" "$HOME/.rustup" "${CARGO_TARGET_DIR:-}"; do
    [ -n "$d" ] && [ -d "$d" ] && bind "$d" "$d"
done
cd "$PWD" 2>/dev/null || cd "$here"
exec chroot "$root" /usr/bin/env -C "$PWD" \
    PATH="$HOME/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    HOME="$HOME" "$@"
' in-root "$root" "$here" "$@"
