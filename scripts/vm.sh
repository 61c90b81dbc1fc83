#!/usr/bin/env bash
# Runs SHARE_DIR/run.sh in one of perfpy's VMs (scripts/build-vm.sh NAME, built on first use):
# a Debian machine booting its own kernel, with its own perf and python3, 2 CPUs, 2 GB, no
# network but loopback. SHARE_DIR is the guest's /mnt/out and run.sh's working directory: put
# run.sh (run by bash, as root) and whatever it needs there, and have it leave its results
# there. The guest's perf samples up to 100 kHz without throttling.
#
# arm64 runs under qemu-system-aarch64 (TCG, -cpu max: BTI and pointer authentication
# emulated); Python there runs 25-35x slower than on this machine, and perf drains its buffers
# slowly (--call-graph dwarf at 4 kHz now and then loses a chunk with the default 512 KiB
# buffer; with -m 4M none seen). The x86_64 VMs run under qemu-system-x86_64 with KVM where
# KVM works (tried once per host kernel, the verdict kept in ~/.cache/perfpy/kvm.verdict: on
# some hosts /dev/kvm is offered but its guests hang at boot), else TCG.
#
# Each run boots from a throwaway overlay of the image, so runs start clean and may run side by
# side. Shows the guest's output (SHARE_DIR/guest.log) as it comes and exits with run.sh's
# status.
#
#   PERFPY_VM_TIMEOUT   seconds before qemu is killed (default 1200)
#   PERFPY_VM_CONSOLE   1: the VM's console on stderr rather than in SHARE_DIR/console.log
#   PERFPY_VM_ACCEL     kvm or tcg: no trial (x86_64 VMs)
#   PERFPY_VM_DIR       where the VMs live (default: ~/.cache/perfpy)
#
#   scripts/vm.sh bullseye /tmp/share    # runs /tmp/share/run.sh on Debian 11
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
log() { echo "vm: $*" >&2; }
if [ "$#" -ne 2 ] || [ ! -f "$2/run.sh" ]; then
    echo "usage: scripts/vm.sh arm64|bullseye|bookworm|trixie SHARE_DIR   (a directory with a run.sh)" >&2
    exit 2
fi
name="$1"
share="$(cd "$2" && pwd)"
timeout="${PERFPY_VM_TIMEOUT:-1200}"
vm="$("$here/build-vm.sh" "$name")"
cache="${PERFPY_VM_DIR:-$HOME/.cache/perfpy}"

tmp="$(mktemp -d)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# qemu ACCEL SHARE CONSOLE TIMEOUT: boots the VM once, in the background; its pid in $qemu_pid.
boot() {
    local accel="$1" dir="$2" console="$3" secs="$4"
    qemu-img create -q -f qcow2 -b "$vm/base.img" -F raw "$tmp/disk-$accel.qcow2"
    local common=(-smp 2 -m 2048 -nographic -no-reboot -nic none -device virtio-rng-pci
                  -kernel "$vm/vmlinuz" -initrd "$vm/initrd.img"
                  -drive file="$tmp/disk-$accel.qcow2",format=qcow2,if=virtio
                  -virtfs local,path="$dir",mount_tag=out,security_model=none,id=out)
    local append="root=/dev/vda rw init=/sbin/perfpy-init panic=1"
    if [ "$name" = arm64 ]; then
        timeout "$secs" qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on "${common[@]}" \
            -append "$append console=ttyAMA0" < /dev/null > "$console" 2>&1 &
    elif [ "$accel" = kvm ]; then
        timeout "$secs" qemu-system-x86_64 -M q35 -accel kvm -cpu host "${common[@]}" \
            -append "$append console=ttyS0" < /dev/null > "$console" 2>&1 &
    else
        timeout "$secs" qemu-system-x86_64 -M q35 -accel tcg -cpu max "${common[@]}" \
            -append "$append console=ttyS0" < /dev/null > "$console" 2>&1 &
    fi
    qemu_pid=$!
}

# KVM or TCG for the x86_64 VMs: one boot with KVM that must come back within 90 s, once per
# host kernel.
accel=tcg
if [ "$name" != arm64 ]; then
    accel="${PERFPY_VM_ACCEL:-}"
    if [ -z "$accel" ]; then
        mkdir -p "$cache"
        exec 8> "$cache/kvm.lock"
        flock 8  # one trial at a time
        verdict="$(cat "$cache/kvm.verdict" 2>/dev/null || true)"
        if [ "${verdict#* }" != "$(uname -r)" ]; then
            accel=tcg
            if [ -w /dev/kvm ]; then
                log "trying KVM once (its verdict is kept in $cache/kvm.verdict)"
                mkdir -p "$tmp/probe"
                echo 'uname -r' > "$tmp/probe/run.sh"
                boot kvm "$tmp/probe" "$tmp/probe/console.log" 90
                wait "$qemu_pid" || true
                [ "$(cat "$tmp/probe/status" 2>/dev/null)" = 0 ] && accel=kvm
                [ "$accel" = kvm ] || log "KVM's guest did not come back: TCG"
            fi
            echo "$accel $(uname -r)" > "$cache/kvm.verdict"
        else
            accel="${verdict%% *}"
        fi
        exec 8>&-
    fi
fi

console="$share/console.log"
[ "${PERFPY_VM_CONSOLE:-}" = 1 ] && console=/dev/stderr
echo "$accel" > "$share/accel.txt"
# qemu under TCG now and then aborts while the guest boots (an assertion in its memory map,
# seen once in some dozens of boots on a loaded host): a boot that died before run.sh began
# is tried again, once.
for attempt in 1 2; do
    rm -f "$share/status"
    : > "$share/guest.log"
    boot "$accel" "$share" "$console" "$timeout"
    pids=("$qemu_pid")
    tail -n +1 -f --pid="$qemu_pid" "$share/guest.log" &
    pids+=($!)
    rc=0
    wait "${pids[0]}" || rc=$?
    wait "${pids[1]}" || true
    if [ "$attempt" = 1 ] && [ "$rc" -gt 128 ] && [ ! -s "$share/guest.log" ]; then
        [ "$console" = /dev/stderr ] || tail -n 3 "$console" >&2
        log "qemu died while the guest booted (exit status $rc): booting again"
        rm -f "$tmp/disk-$accel.qcow2"
        continue
    fi
    break
done
[ "$rc" -ne 124 ] || log "the VM did not power off within ${timeout}s (PERFPY_VM_TIMEOUT): killed"
if [ ! -f "$share/status" ]; then
    [ "$console" = /dev/stderr ] || tail -n 20 "$console" >&2
    log "the guest wrote no status: run.sh did not finish (qemu's exit status $rc; the console" \
        "is in $console)"
    exit 1
fi
exit "$(cat "$share/status")"
