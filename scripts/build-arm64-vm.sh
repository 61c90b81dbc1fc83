#!/usr/bin/env bash
# Builds perfpy's arm64 VM, which scripts/arm64-vm.sh boots: a Debian bookworm arm64 root
# (debootstrap, its second stage run under qemu-user through binfmt_misc; ~870 MB, about 20
# minutes) with the kernel, perf 6.1, python3.11 and python3-venv, and from it a raw ext4 image
# whose init, /sbin/perfpy-init, runs the host's run.sh and powers off. The image is never
# written: each run boots from an overlay of its own. Cached; a second run does nothing.
#
#   PERFPY_ARM64_VM      where (default: ~/.cache/perfpy/arm64-vm): root/, base.img, vmlinuz,
#                        initrd.img
#   PERFPY_ARM64_MIRROR  the Debian archive (default: the one this machine's apt uses)
#
#   scripts/build-arm64-vm.sh               build (or find) the VM; prints its directory
#   scripts/build-arm64-vm.sh --host-tools  only install and check what the build needs on this
#                                           machine (qemu, debootstrap), in seconds: run it
#                                           before starting the long build in the background
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/apt.sh"

vm="${PERFPY_ARM64_VM:-$HOME/.cache/perfpy/arm64-vm}"
mirror="${PERFPY_ARM64_MIRROR:-}"
packages=(linux-image-arm64 initramfs-tools linux-perf python3 python3-venv binutils udev kmod
          procps iproute2)
log() { echo "build-arm64-vm: $*" >&2; }

# PID 1 of the VM. The share (9p tag "out") is its /mnt/out and run.sh's working directory.
init="$(cat <<'EOF'
#!/bin/sh
# PID 1 of perfpy's arm64 VM (scripts/build-arm64-vm.sh): mounts the host's share on /mnt/out,
# runs its run.sh (by bash) with its output in /mnt/out/guest.log and on the console and its
# exit status in /mnt/out/status, then powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 TERM=dumb
on() { mountpoint -q "$2" || mount -t "$1" "$1" "$2"; }  # TYPE DIR
on proc /proc; on sysfs /sys; on devtmpfs /dev; on tmpfs /run; on tmpfs /tmp
mkdir -p /dev/pts /dev/shm; on devpts /dev/pts; on tmpfs /dev/shm
on tracefs /sys/kernel/tracing; on debugfs /sys/kernel/debug
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
echo perfpy-arm64 > /proc/sys/kernel/hostname
ip link set lo up
# perf samples as often as asked (the emulated CPU is slow), for any user, with kernel symbols.
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
# A second root inside the image, at /srv/sid: Debian sid's arm64 CPython 3.14 (PEP 768's
# remote execution), for record --pid on aarch64; its processes run chroot'd there.
sid_packages=(python3.14)
want="packages=${packages[*]} sid=${sid_packages[*]} init=$(sha256sum <<<"$init" | cut -c1-16)"
stamp="$vm/.perfpy-arm64-vm"

# What the build runs on this machine. qemu's packages come at the version of the machine's
# qemu-utils (scripts/apt.sh), so nothing it came with is removed or downgraded.
host_tools() {
    local qemu=() other=()
    command -v qemu-system-aarch64 >/dev/null || qemu+=(qemu-system-arm)
    command -v qemu-aarch64-static >/dev/null || qemu+=(qemu-user-static)
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
    [ -n "$mirror" ] || mirror="$(debian_archive)"
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

host_tools
[ "${1:-}" = --host-tools ] && exit 0
mkdir -p "$vm"
exec 9> "$vm/.lock"
flock 9  # one build at a time
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$vm"
    exit 0
fi

root="$vm/root"
if [ "$(cat "$root/.perfpy-root" 2>/dev/null)" != "packages=${packages[*]}" ]; then
    binfmt_aarch64
    log "debootstrap of bookworm arm64 into $root (once; about 20 minutes)"
    rm -rf "$root.partial"
    if ! debootstrap --arch=arm64 --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
            bookworm "$root.partial" "$mirror" > "$vm/debootstrap.log" 2>&1; then
        tail -n 20 "$vm/debootstrap.log" >&2
        log "debootstrap failed; its log is $vm/debootstrap.log"
        exit 1
    fi
    rm -f "$root.partial"/var/cache/apt/archives/*.deb
    echo "packages=${packages[*]}" > "$root.partial/.perfpy-root"
    rm -rf "$root"
    mv "$root.partial" "$root"
    log "root done after ${SECONDS}s: $(du -sh "$root" | cut -f1)"
fi

sid="$vm/sid"
if [ "$(cat "$sid/.perfpy-root" 2>/dev/null)" != "packages=${sid_packages[*]}" ]; then
    binfmt_aarch64
    log "debootstrap of sid arm64 (${sid_packages[*]}) into $sid (once; about 10 minutes)"
    rm -rf "$sid.partial"
    if ! debootstrap --arch=arm64 --variant=minbase --include="$(IFS=,; echo "${sid_packages[*]}")" \
            sid "$sid.partial" "$mirror" > "$vm/debootstrap-sid.log" 2>&1; then
        tail -n 20 "$vm/debootstrap-sid.log" >&2
        log "debootstrap of sid failed; its log is $vm/debootstrap-sid.log"
        exit 1
    fi
    rm -f "$sid.partial"/var/cache/apt/archives/*.deb
    echo "packages=${sid_packages[*]}" > "$sid.partial/.perfpy-root"
    rm -rf "$sid"
    mv "$sid.partial" "$sid"
fi
rm -rf "$root/srv/sid"
cp -a "$sid" "$root/srv/sid"

log "making $vm/base.img"
install -m 755 /dev/stdin "$root/sbin/perfpy-init" <<<"$init"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tperfpy-arm64\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    > "$root/etc/hosts"
echo perfpy-arm64 > "$root/etc/hostname"
kernels=("$root"/boot/vmlinuz-*)
[ "${#kernels[@]}" -eq 1 ] || { log "not one kernel in $root/boot: ${kernels[*]}"; exit 1; }
cp "${kernels[0]}" "$vm/vmlinuz"
cp "$root/boot/initrd.img-${kernels[0]#*/vmlinuz-}" "$vm/initrd.img"
rm -f "$vm/base.img.partial"
mkfs.ext4 -q -L perfpy-arm64 -d "$root" "$vm/base.img.partial" 3G >&2  # says it creates the file
mv "$vm/base.img.partial" "$vm/base.img"
echo "$want" > "$stamp"
log "done after ${SECONDS}s: $(du -sh --apparent-size "$vm/base.img" | cut -f1) image," \
    "$(du -sh "$vm/base.img" | cut -f1) on disk"
echo "$vm"
