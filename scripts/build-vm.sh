#!/usr/bin/env bash
# Builds one of perfpy's VMs, which scripts/vm.sh boots: a Debian root made by debootstrap from
# Debian's packages only, with the distribution's own kernel, perf and python3 (stripped, as
# shipped), and from it a raw ext4 image whose init, /sbin/perfpy-init, runs the host's run.sh
# and powers off. The image is never written: each boot runs from an overlay of its own.
# Cached; a second run does nothing.
#
#   NAME      machine                    kernel  perf  CPython
#   arm64     Debian 12 bookworm arm64   6.1     6.1   3.11 (and sid's 3.14 at /srv/sid)
#   bullseye  Debian 11 x86_64           5.10    5.10  3.9
#   bookworm  Debian 12 x86_64           6.1     6.1   3.11 (and its debug symbols, put aside)
#   trixie    Debian 13 x86_64           6.12    6.12  3.13
#
# The arm64 root's second stage runs under qemu-user through binfmt_misc (about 20 minutes);
# the x86_64 roots are native (a few minutes each).
#
#   PERFPY_VM_DIR        where the VMs live (default: ~/.cache/perfpy); NAME's is NAME-vm/:
#                        root/, base.img, vmlinuz, initrd.img
#   PERFPY_DEBIAN_MIRROR the Debian archive (default: the one this machine's apt uses)
#
#   scripts/build-vm.sh NAME               build (or find) the VM; prints its directory
#   scripts/build-vm.sh NAME --host-tools  only install and check what the build needs on this
#                                          machine (qemu, debootstrap), in seconds: run it
#                                          before starting the long build in the background
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/apt.sh"

name="${1:-}"
log() { echo "build-vm $name: $*" >&2; }
case "$name" in
    arm64)
        arch=arm64 suite=bookworm kernel=linux-image-arm64
        qemu_system=qemu-system-aarch64 qemu_package=qemu-system-arm ;;
    bullseye|bookworm|trixie)
        arch=amd64 suite="$name" kernel=linux-image-amd64
        qemu_system=qemu-system-x86_64 qemu_package=qemu-system-x86 ;;
    *) echo "usage: scripts/build-vm.sh arm64|bullseye|bookworm|trixie [--host-tools]" >&2; exit 2 ;;
esac
vm="${PERFPY_VM_DIR:-$HOME/.cache/perfpy}/$name-vm"
packages=("$kernel" initramfs-tools linux-perf python3 python3-venv binutils udev kmod procps
          iproute2)
# What a user installs perfpy with there: pipx (Debian's from bookworm on; on bullseye, which has
# none, the checks install PyPI's), and bookworm's debug symbols for its interpreter (kept aside
# in the image, put in place by a check that reads them).
case "$name" in bookworm|trixie) packages+=(pipx) ;; esac
[ "$name" = bookworm ] && packages+=(python3.11-dbg)
# A second root inside the arm64 image, at /srv/sid: Debian sid's arm64 CPython 3.14 (PEP 768's
# remote execution), for record --pid on aarch64; its processes run chroot'd there.
sid_packages=()
[ "$name" = arm64 ] && sid_packages=(python3.14)

# PID 1 of the VM. The share (9p tag "out") is its /mnt/out and run.sh's working directory.
init="$(cat <<'EOF'
#!/bin/sh
# PID 1 of perfpy's VMs (scripts/build-vm.sh): mounts the host's share on /mnt/out, runs its
# run.sh (by bash) with its output in /mnt/out/guest.log and on the console and its exit status
# in /mnt/out/status, then powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 TERM=dumb
on() { mountpoint -q "$2" || mount -t "$1" "$1" "$2"; }  # TYPE DIR
on proc /proc; on sysfs /sys; on devtmpfs /dev; on tmpfs /run; on tmpfs /tmp
mkdir -p /dev/pts /dev/shm; on devpts /dev/pts; on tmpfs /dev/shm
on tracefs /sys/kernel/tracing; on debugfs /sys/kernel/debug
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
hostname "$(cat /etc/hostname)"
ip link set lo up
# perf samples as often as asked (the emulated CPU is slow), for any user, with kernel symbols;
# run.sh changes these where it checks the defaults.
echo 100000 > /proc/sys/kernel/perf_event_max_sample_rate
echo 0 > /proc/sys/kernel/perf_cpu_time_max_percent
echo -1 > /proc/sys/kernel/perf_event_paranoid
echo 0 > /proc/sys/kernel/kptr_restrict
modprobe 9pnet_virtio
mkdir -p /mnt/out
# cache=mmap: perf record maps the file it wrote, shared, to find build ids; 9p without it
# refuses ("failed to mmap file") and the recording has no build ids.
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=mmap out /mnt/out \
        && [ -f /mnt/out/run.sh ]; then
    cd /mnt/out
    (bash ./run.sh < /dev/null; echo $? > /tmp/status) 2>&1 | tee /mnt/out/guest.log
    cp /tmp/status /mnt/out/status
else
    echo "perfpy-init: no share with a run.sh at /mnt/out"
fi
sync
echo o > /proc/sysrq-trigger
sleep 60
EOF
)"
want="packages=${packages[*]} sid=${sid_packages[*]} venvs=/opt/venv,/opt/pipx/shared,/opt/pipx-venv init=$(sha256sum <<<"$init" | cut -c1-16)"
stamp="$vm/.perfpy-vm"

# What the build runs on this machine. qemu's packages come at the version of the machine's
# qemu-utils (scripts/apt.sh), so nothing it came with is removed or downgraded.
host_tools() {
    local qemu=() other=()
    command -v "$qemu_system" >/dev/null || qemu+=("$qemu_package")
    if [ "$arch" = arm64 ]; then
        command -v qemu-aarch64-static >/dev/null || qemu+=(qemu-user-static)
    fi
    command -v qemu-img >/dev/null || qemu+=(qemu-utils)
    command -v debootstrap >/dev/null || other+=(debootstrap)
    command -v mkfs.ext4 >/dev/null || other+=(e2fsprogs)
    if [ "${#qemu[@]}" -gt 0 ]; then
        log "installing ${qemu[*]}"
        apt_install_qemu "${qemu[@]}" || { log "can't install ${qemu[*]}"; return 1; }
    fi
    if [ "${#other[@]}" -gt 0 ]; then
        log "installing ${other[*]}"
        apt_install --no-install-recommends "${other[@]}" || { log "can't install ${other[*]}"; return 1; }
    fi
    mirror="${PERFPY_DEBIAN_MIRROR:-$(debian_archive)}"
}

# debootstrap's second stage runs arm64 programs in the root: through binfmt_misc, by qemu's
# user-mode emulator, opened when registered (flag F) so that it runs inside the chroot too.
# Registered under a name of perfpy's, and taken away again when the build ends.
binfmt_aarch64() {
    local dir=/proc/sys/fs/binfmt_misc
    local magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
    local mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
    [ -e "$dir/register" ] || mount -t binfmt_misc binfmt_misc "$dir"
    grep -qsx enabled "$dir/qemu-aarch64" "$dir/perfpy-aarch64" && return 0
    printf ':perfpy-aarch64:M::%s:%s:%s:F\n' "$magic" "$mask" \
        "$(command -v qemu-aarch64-static)" > "$dir/register"
    trap 'echo -1 > /proc/sys/fs/binfmt_misc/perfpy-aarch64' EXIT
}

# debootstrap SUITE DIR PACKAGE...: a minimal root with those packages, made in DIR.partial and
# moved into place when whole.
debootstrap_root() {
    local suite="$1" dir="$2"; shift 2
    local want_root="packages=$*"
    [ "$(cat "$dir/.perfpy-root" 2>/dev/null)" = "$want_root" ] && return 0
    [ "$arch" = arm64 ] && binfmt_aarch64
    log "debootstrap of $suite $arch ($*) into $dir (once)"
    rm -rf "$dir.partial"
    if ! debootstrap --arch="$arch" --variant=minbase --include="$(IFS=,; echo "$*")" \
            "$suite" "$dir.partial" "$mirror" > "$dir.debootstrap.log" 2>&1; then
        tail -n 20 "$dir.debootstrap.log" >&2
        log "debootstrap of $suite failed; its log is $dir.debootstrap.log"
        return 1
    fi
    rm -f "$dir.partial"/var/cache/apt/archives/*.deb
    echo "$want_root" > "$dir.partial/.perfpy-root"
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
    log "$suite root done after ${SECONDS}s: $(du -sh "$dir" | cut -f1)"
}

host_tools
[ "${2:-}" = --host-tools ] && exit 0
mkdir -p "$vm"
exec 9> "$vm/.lock"
flock 9  # one build at a time
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$vm"
    exit 0
fi

root="$vm/root"
debootstrap_root "$suite" "$root" "${packages[@]}"
rm -rf "$root/srv/sid"
if [ "${#sid_packages[@]}" -gt 0 ]; then
    debootstrap_root sid "$vm/sid" "${sid_packages[@]}"
    cp -a "$vm/sid" "$root/srv/sid"
fi
# The interpreter's debug symbols, put aside: python3 runs stripped, as most machines have it,
# until a check moves them back to /usr/lib/debug.
if [ -d "$root/usr/lib/debug" ] && [ ! -d "$root/usr/lib/debug.aside" ]; then
    mv "$root/usr/lib/debug" "$root/usr/lib/debug.aside"
fi

# The venvs made once on a machine, made here at the machine's speed rather than in each boot
# under emulation (ensurepip takes minutes there): the venv a user makes first, which each boot
# pip-installs the wheel into, and the venv of pip that pipx shares between the apps it
# installs (PIPX_HOME=/opt/pipx), which each boot's `pipx install` then finds, and on Debian
# 11, which packages no pipx, the venv each boot installs PyPI's pipx into
# (tests/vm/distro-checks.sh). The arm64 checks make their own.
if [ "$arch" = amd64 ]; then
    venvs=(/opt/venv /opt/pipx/shared)
    [ "$name" != bullseye ] || venvs+=(/opt/pipx-venv)
    for v in "${venvs[@]}"; do
        [ -x "$root$v/bin/python" ] || chroot "$root" python3 -m venv "$v"
    done
fi

log "making $vm/base.img"
install -m 755 /dev/stdin "$root/sbin/perfpy-init" <<<"$init"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tperfpy-%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    "$name" > "$root/etc/hosts"
echo "perfpy-$name" > "$root/etc/hostname"
# An unprivileged user, for the checks at perf_event_paranoid 1 and 2.
if ! grep -q '^perfpy:' "$root/etc/passwd"; then
    [ "$arch" = arm64 ] && binfmt_aarch64
    chroot "$root" useradd -m -s /bin/bash perfpy
fi
kernels=("$root"/boot/vmlinuz-*)
[ "${#kernels[@]}" -eq 1 ] || { log "not one kernel in $root/boot: ${kernels[*]}"; exit 1; }
cp "${kernels[0]}" "$vm/vmlinuz"
cp "$root/boot/initrd.img-${kernels[0]#*/vmlinuz-}" "$vm/initrd.img"
rm -f "$vm/base.img.partial"
mkfs.ext4 -q -L "perfpy-$name" -d "$root" "$vm/base.img.partial" 3G >&2  # says it creates the file
mv "$vm/base.img.partial" "$vm/base.img"
echo "$want" > "$stamp"
log "done after ${SECONDS}s: $(du -sh --apparent-size "$vm/base.img" | cut -f1) image," \
    "$(du -sh "$vm/base.img" | cut -f1) on disk"
echo "$vm"
