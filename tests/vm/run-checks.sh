#!/usr/bin/env bash
# Boots one of perfpy's VMs once (scripts/vm.sh NAME) with its checks: fills SHARE with the
# wheel for the VM's architecture (dist/ or dist-aarch64/, scripts/build-wheels.sh), the seed,
# the programs the checks run and the checks script as run.sh (tests/vm/aarch64-checks.sh for
# arm64, tests/vm/distro-checks.sh for the x86_64 distributions), then boots. What the guest
# leaves in SHARE is read by tests/test_aarch64_vm.py and tests/test_distro_vms.py. SHARE/finished
# holds the VM's exit status when it is over, whatever happened.
#
#   tests/vm/run-checks.sh bullseye /tmp/share-bullseye
set -uo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
name="${1:?usage: tests/vm/run-checks.sh NAME SHARE}"
share="${2:?usage: tests/vm/run-checks.sh NAME SHARE}"
rm -rf "$share"
mkdir -p "$share/scripts" "$share/apps"
finish() { echo "$1" > "$share/finished"; exit "$1"; }
dist="$here/dist"
checks="$here/tests/vm/distro-checks.sh"
if [ "$name" = arm64 ]; then
    dist="$here/dist-aarch64"
    checks="$here/tests/vm/aarch64-checks.sh"
fi
wheel="$(ls "$dist"/perfpy-*.whl 2>/dev/null | head -n1)"
[ -n "$wheel" ] || { echo "run-checks: no wheel in $dist (scripts/build-wheels.sh)" >&2; finish 2; }
cp "$wheel" "$share/"
cp "$here/examples/seed.py" "$share/seed.py"
cp "$checks" "$share/run.sh"
for f in busy.py in_sub.py known_waits.py; do cp "$here/tests/scripts/$f" "$share/scripts/"; done
cp "$here/tests/apps/telltale.py" "$share/apps/"
# What pipx's pip installs, for the guest to install offline: the pip >= 23.1 pipx 1.7 puts in
# its shared venv (it reinstalls it even where the venv's is newer), and on Debian 11, which has
# no pipx package, PyPI's pipx itself.
if [ "$name" != arm64 ]; then
    pip="$here/.venv-tools/bin/pip"
    [ -x "$pip" ] || pip="python3 -m pip"
    wanted=("pip==24.3.1")
    [ "$name" = bullseye ] && wanted+=("pipx==1.7.1" "tomli==2.2.1")
    $pip download -q --disable-pip-version-check --only-binary=:all: --python-version 3.9 \
        -d "$share/pipx-wheels" "${wanted[@]}" >&2 || finish 2
fi
"$here/scripts/vm.sh" "$name" "$share"
finish $?
