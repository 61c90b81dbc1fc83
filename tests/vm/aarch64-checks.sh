#!/bin/bash
# Runs inside the arm64 VM (scripts/vm.sh arm64 boots it with this directory as its share):
# the aarch64 wheel installed as a user would, then perf and perfpy on the seed example with
# both backends. Everything the host-side tests (tests/test_aarch64_vm.py) check is written
# here: recordings, perf script's text, perfpy's reports, the machine's facts. One line per
# step in steps.txt: "NAME STATUS SECONDS".
set -u
out="$(cd "$(dirname "$0")" && pwd)"
cd "$out"
: > steps.txt
step() {
    local name="$1"; shift
    local t0=$SECONDS
    "$@" > "$name.out" 2> "$name.err"
    local rc=$?
    echo "$name $rc $((SECONDS - t0))" >> steps.txt
    echo "== $name: exit $rc, $((SECONDS - t0)) s"
    return 0
}
N="${SEED_N:-1500000}"   # about 5 s of the emulated CPU
work=/root/work   # the guest's own disk: raw DWARF recordings are large
mkdir -p "$work"

uname -r > uname.txt; uname -m >> uname.txt
perf version > perf-version.txt 2>&1
python3 --version > python-version.txt 2>&1
grep -m1 Features /proc/cpuinfo > cpu-features.txt
cat /proc/kallsyms > kallsyms.txt
# Branch protection: whether the interpreter was built with BTI/PAC (its GNU property note).
readelf -n "$(readlink -f /usr/bin/python3)" > python-notes.txt 2>&1

# The wheel, as a user installs it: a fresh venv, no Rust, no network.
step venv python3 -m venv /root/venv
step pip /root/venv/bin/pip install --no-index --no-deps "$out"/perfpy-*.whl
PY=/root/venv/bin/python
PERFPY=/root/venv/bin/perfpy
ls /tmp > tmp-before.txt
# The package's files as this machine has them, for the host's --sysroot (the venv is on the
# guest's own disk, which goes with the VM).
site=/root/venv/lib/python3.11/site-packages
mkdir -p "$out/venv-root$site" && cp -r "$site/perfpy" "$out/venv-root$site/"

# perfpy record, each backend and call graph, then perfpy report here.
step doctor "$PERFPY" doctor --python "$PY"
step rec-auto "$PERFPY" record -F 499 --flamegraph="$out/auto.svg" -o "$out/auto.data" -- "$PY" seed.py "$N"
step rec-map-fp "$PERFPY" record -F 499 --backend perf --call-graph fp -o "$out/map-fp.data" -- "$PY" seed.py "$N"
step rec-map-dwarf "$PERFPY" record -F 499 --backend perf --call-graph dwarf -o "$out/map-dwarf.data" -- "$PY" seed.py "$N"
step rec-jit "$PERFPY" record -F 499 --backend perf_jit -o "$out/jit.data" -- "$PY" seed.py "$N"
for r in auto map-fp map-dwarf jit; do
    step "report-$r" "$PERFPY" report -i "$out/$r.data" --format collapsed
done
# Code that only a subinterpreter runs, named by the main interpreter's switch.
step rec-sub "$PERFPY" record -F 499 -o "$out/sub.data" -- "$PY" scripts/in_sub.py "${SUB_N:-500000}"
step report-sub "$PERFPY" report -i "$out/sub.data" --format collapsed --native all
ls /tmp > tmp-after.txt

# Branch protection at run time: each executable mapping of an interpreter running through
# perfpy's stubs, with its VmFlags ("bt": guarded by BTI, indirect branches into it must land
# on a bti instruction).
step bti "$PY" -c '
import perfpy, re
perfpy.activate_stack_trampoline("perf")
def f(n): return n if n < 2 else f(n - 1) + f(n - 2)
f(15)
maps = open("/proc/self/smaps").read().split("\n")
cur = None
for line in maps:
    m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)", line)
    if m:
        cur = (m.group(1), m.group(3), m.group(4) or "[anon]")
    elif line.startswith("VmFlags:") and cur and "x" in cur[1]:
        print(cur[0], cur[2], line.split(":", 1)[1].strip())
print("stubs", perfpy.status()["stubs"])
'

# record --pid on aarch64: Debian sid's arm64 CPython 3.14, chroot'd in /srv/sid, started
# with no switch: names switched on through PEP 768 for the recording, and off again (as the
# target says itself, every 0.2 s, in states/).
if [ -x /srv/sid/usr/bin/python3.14 ]; then
    mkdir -p /srv/sid/mnt/out states && mount --bind "$out" /srv/sid/mnt/out
    chroot /srv/sid env PERFPY_TEST_STATE=/mnt/out/states python3.14 /mnt/out/scripts/busy.py \
        > busy.log 2>&1 &
    target=$!
    # The target's last state, copied. The target replaces the file every 0.2 s (a rename), and
    # a copy over the share's 9p once found no file at all: a miss is tried again.
    state() {
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            cp "states/$target.json" "$1" 2>/dev/null && return 0
            sleep 0.1
        done
        echo "no state file from pid $target" >&2
    }
    for _ in $(seq 300); do [ -f "states/$target.json" ] && break; sleep 0.2; done
    state attach-state-before.json
    ls /srv/sid/tmp > attach-tmp-before.txt
    # Halfway through, the target's executable mappings with their VmFlags: whether sid's
    # interpreter is BTI-guarded ("bt") and the trampolines' code is not.
    (sleep 4; awk '/^[0-9a-f]+-[0-9a-f]+ /{m=($2 ~ /x/) ? $1 " " $6 : ""}
                   /^VmFlags:/ && m != "" {print m, $0}' "/proc/$target/smaps" \
        > attach-smaps.txt) &
    step attach "$PERFPY" record --pid "$target" --duration 6 -F 499 -o "$out/attach.data"
    sleep 2
    state attach-state-after.json
    ls /srv/sid/tmp > attach-tmp-after.txt
    kill "$target"
    step report-attach "$PERFPY" report -i "$out/attach.data" --format collapsed --pid "$target"
    echo "$target" > attach.pid
fi

# perf alone: the perf map with frame pointers, and the jitdump through perf inject --jit.
step perf-map-fp env PYTHONPERFSUPPORT=1 perf record -F 499 -g -o "$work/map-fp.data" -- "$PY" seed.py "$N"
step script-map-fp perf script -F comm,pid,ip,sym -i "$work/map-fp.data"
step perf-jit env PYTHON_PERF_JIT_SUPPORT=1 perf record -F 499 -k 1 --call-graph dwarf -o "$work/jit.data" -- "$PY" seed.py "$N"
cp /tmp/jit-*.dump "$out/" 2>/dev/null
step inject perf inject --jit -i "$work/jit.data" -o "$work/jit.inj.data"
step script-jit perf script -F comm,pid,ip,sym -i "$work/jit.inj.data"
sync
