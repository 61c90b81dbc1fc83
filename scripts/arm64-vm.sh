#!/usr/bin/env bash
# Runs SHARE_DIR/run.sh on an emulated arm64 machine: perfpy's VM (scripts/build-arm64-vm.sh,
# built on first use), Debian bookworm with perf 6.1 and python3.11 under qemu-system-aarch64
# (2 CPUs, 2 GB, no network but loopback). SHARE_DIR is the guest's /mnt/out and run.sh's
# working directory: put run.sh (run by bash, as root) and whatever it needs there, and have
# it leave its results there. The guest's perf samples up to 100 kHz without throttling; it
# drains its buffers slowly there, so --call-graph dwarf at perf's default 4 kHz now and then
# loses a chunk with the default 512 KiB buffer (with -m 4M: none seen).
#
# Each run boots from a throwaway overlay of the image, so runs start clean and may run side by
# side. Booting takes ~15 s, and Python runs 25-35x slower than on this machine. Shows the
# guest's output (SHARE_DIR/guest.log) as it comes and exits with run.sh's status.
#
#   PERFPY_VM_TIMEOUT   seconds before qemu is killed (default 900)
#   PERFPY_VM_CONSOLE   1: the VM's console on stderr rather than in SHARE_DIR/console.log
#   PERFPY_ARM64_VM     the VM's directory (default: ~/.cache/perfpy/arm64-vm)
#
#   scripts/arm64-vm.sh /tmp/share    # runs /tmp/share/run.sh in the VM
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
log() { echo "arm64-vm: $*" >&2; }
if [ "$#" -ne 1 ] || [ ! -f "$1/run.sh" ]; then
    echo "usage: scripts/arm64-vm.sh SHARE_DIR   (a directory with a run.sh)" >&2
    exit 2
fi
share="$(cd "$1" && pwd)"
timeout="${PERFPY_VM_TIMEOUT:-900}"
vm="$("$here/build-arm64-vm.sh")"

tmp="$(mktemp -d)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
qemu-img create -q -f qcow2 -b "$vm/base.img" -F raw "$tmp/disk.qcow2"
rm -f "$share/status"
: > "$share/guest.log"
console="$share/console.log"
[ "${PERFPY_VM_CONSOLE:-}" = 1 ] && console=/dev/stderr

timeout "$timeout" qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on -smp 2 -m 2048 \
    -nographic -no-reboot -nic none -device virtio-rng-pci \
    -kernel "$vm/vmlinuz" -initrd "$vm/initrd.img" \
    -append "root=/dev/vda rw console=ttyAMA0 init=/sbin/perfpy-init panic=1" \
    -drive file="$tmp/disk.qcow2",format=qcow2,if=virtio \
    -virtfs local,path="$share",mount_tag=out,security_model=none,id=out \
    < /dev/null > "$console" 2>&1 &
pids+=($!)
tail -n +1 -f --pid="${pids[0]}" "$share/guest.log" &
pids+=($!)
rc=0
wait "${pids[0]}" || rc=$?
wait "${pids[1]}" || true
[ "$rc" -ne 124 ] || log "the VM did not power off within ${timeout}s (PERFPY_VM_TIMEOUT): killed"
if [ ! -f "$share/status" ]; then
    [ "$console" = /dev/stderr ] || tail -n 20 "$console" >&2
    log "the guest wrote no status: run.sh did not finish (qemu's exit status $rc; the console" \
        "is in $console)"
    exit 1
fi
exit "$(cat "$share/status")"
