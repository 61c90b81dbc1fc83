#!/bin/bash
# Runs inside one of the x86_64 VMs of a distribution as shipped (scripts/vm.sh NAME boots it
# with this directory as its share): the wheel installed as a user would (pip into a venv of
# the distribution's python3, and pipx), then what a user does with it, on the distribution's
# own kernel, perf and stripped interpreter. Everything the host-side tests
# (tests/test_distro_vms.py) check is written here; one line per step in steps.txt:
# "NAME STATUS SECONDS".
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
N="${SEED_N:-1500000}"
# The recordings on the guest's own disk, as a user's are (raw DWARF recordings are large, and
# the share is slow to write), as the disk the known-waits program's fsync waits on; what the
# host checks (reports, output, files written by `-o`) goes to the share.
work=/srv/work
mkdir -p "$work"

uname -r > uname.txt; uname -m >> uname.txt
perf version > perf-version.txt 2>&1
python3 --version > python-version.txt 2>&1
. /etc/os-release; echo "$PRETTY_NAME" > os-release.txt
# Whether the distribution's interpreter is stripped (no .symtab), as shipped.
py3="$(readlink -f /usr/bin/python3)"
readelf -S "$py3" > python-sections.txt 2>&1
minor="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

# The wheel, as a user installs it: into a venv of the distribution's python3 (/opt/venv, for
# the unprivileged user too; made by `python3 -m venv` when the image was built, which takes
# minutes under emulation), no Rust, no network.
step venv /opt/venv/bin/python -c 'import sys; assert sys.prefix != sys.base_prefix; print(sys.prefix)'
step pip /opt/venv/bin/pip install --no-index --no-deps "$out"/perfpy-*.whl
PY=/opt/venv/bin/python
PERFPY=/opt/venv/bin/perfpy
# And with pipx: the distribution's (bookworm on), else PyPI's, installed with pip.
export PIPX_HOME=/opt/pipx PIPX_BIN_DIR=/usr/local/bin
pipx=pipx
if ! command -v pipx > /dev/null; then
    # (Its venv made by python3 -m venv when the image was built.)
    step pipx-itself /opt/pipx-venv/bin/pip install --no-index --find-links "$out/pipx-wheels" pipx
    pipx=/opt/pipx-venv/bin/pipx
fi
# pipx's own pip, offline (the guest has no network): from pipx-wheels where the share has it
# (bullseye: the pip >= 23.1 pipx 1.7 wants in its shared venv), without retrying an index.
export PIP_NO_INDEX=1
[ ! -d "$out/pipx-wheels" ] || export PIP_FIND_LINKS="$out/pipx-wheels"
step pipx "$pipx" install --pip-args=--no-index "$(ls "$out"/perfpy-*.whl)"
unset PIP_NO_INDEX PIP_FIND_LINKS
step pipx-doctor /usr/local/bin/perfpy doctor
ls /tmp > tmp-before.txt

step doctor "$PERFPY" doctor --python "$PY"

# The seed, recorded and reported in every format.
step rec-seed "$PERFPY" record -F 499 -o "$work/seed.data" -- "$PY" seed.py "$N"
step rec-seed-fp "$PERFPY" record -F 499 --call-graph fp -o "$work/seed-fp.data" -- "$PY" seed.py "$N"
step report-seed "$PERFPY" report -i "$work/seed.data" --format collapsed
step report-seed-fp "$PERFPY" report -i "$work/seed-fp.data" --format collapsed
step report-seed-native "$PERFPY" report -i "$work/seed.data" --format collapsed --native all
step report-text "$PERFPY" report -i "$work/seed.data"
for f in flamegraph speedscope firefox pprof; do
    step "report-$f" "$PERFPY" report -i "$work/seed.data" --format "$f" -o "$out/seed.$f"
done
# The interpreter's debug symbols, where the image has them (bookworm's python3.11-dbg, kept
# aside): the same recording reported again with them in /usr/lib/debug.
if [ -d /usr/lib/debug.aside ]; then
    mv /usr/lib/debug.aside /usr/lib/debug
    step report-seed-debug "$PERFPY" report -i "$work/seed.data" --format collapsed --native all
    mv /usr/lib/debug /usr/lib/debug.aside
fi

# Where the time goes, waits included, and why: known_waits with its disk part on the guest's
# disk (ext4 on virtio).
for mode in wall off-cpu; do
    step "rec-$mode" "$PERFPY" record --mode "$mode" -o "$work/$mode.data" -- \
        "$PY" scripts/known_waits.py 300000 "$out/truth-$mode.json" 3 "$work"
    step "report-$mode" "$PERFPY" report -i "$work/$mode.data" --format collapsed
done

# record --pid of a running program, started with PERFPY_ATTACH=1 (perfpy installed in its
# interpreter): names switched on for the recording and off after.
mkdir -p states
PERFPY_ATTACH=1 PERFPY_TEST_STATE="$out/states" "$PY" scripts/busy.py > busy.log 2>&1 &
target=$!
for _ in $(seq 300); do [ -f "states/$target.json" ] && break; sleep 0.2; done
ls /tmp > attach-tmp-before.txt
step attach "$PERFPY" record --pid "$target" --duration 4 -F 499 -o "$work/attach.data"
sleep 1
ls /tmp > attach-tmp-after.txt
cp "states/$target.json" attach-state-after.json 2>/dev/null
kill "$target"; wait "$target" 2>/dev/null
echo "$target" > attach.pid
step report-attach "$PERFPY" report -i "$work/attach.data" --format collapsed --pid "$target"

# The whole machine: two Python programs, one started with perfpy's switch and one with
# PERFPY_ATTACH=1.
PYTHONPERFSUPPORT=1 "$PY" scripts/busy.py > busy-a.log 2>&1 &
a=$!
PERFPY_ATTACH=1 "$PY" scripts/busy.py > busy-b.log 2>&1 &
b=$!
sleep 3
step all "$PERFPY" record -a --duration 4 -F 499 -o "$work/all.data"
step report-all "$PERFPY" report -i "$work/all.data" --format collapsed --pid "$a" --pid "$b"
# Live, plain: snapshots on standard output.
step top timeout 60 "$PERFPY" top --plain -a --interval 2 --duration 5
kill "$a" "$b"; wait "$a" "$b" 2>/dev/null
echo "$a $b" > all.pids

# An unprivileged user, at the distribution's default paranoia (2: its own user space only),
# then at 1 (its own kernel frames too), and with kernel addresses hidden (kptr_restrict 1).
as_user() { runuser -u perfpy -- env HOME=/home/perfpy "$@"; }
mkdir -p "$out/user" "$work/user" && chmod 777 "$out/user" "$work/user"
echo 2 > /proc/sys/kernel/perf_event_paranoid
echo 0 > /proc/sys/kernel/kptr_restrict
step user-doctor-2 as_user "$PERFPY" doctor --python "$PY"
step user-rec-2 as_user "$PERFPY" record -F 499 -o "$work/user/p2.data" -- "$PY" seed.py "$N"
step user-report-2 as_user "$PERFPY" report -i "$work/user/p2.data" --format collapsed
# Wall-clock time needs a stack at each context switch, which perf gives a user at 1 and below
# only: refused at 2, with the fix; recorded at 1 (its reasons from the user's own frames and
# the system call's arguments, and its own kernel frames).
step user-wall-2 as_user "$PERFPY" record --mode wall -o "$work/user/w2.data" -- "$PY" seed.py 1000
echo 1 > /proc/sys/kernel/perf_event_paranoid
# A user's perf has perf's default 512 KiB buffer (only root gets a larger one): 8 stacks of
# 64 KiB, which the emulated CPU's perf drains too slowly to keep every context switch (a third
# lost, perfpy says so and advises a smaller --stack-size): as advised, 16 KiB, which the
# known-waits program's threads fit in.
step user-wall-1 as_user "$PERFPY" record --mode wall --stack-size 16384 -o "$work/user/w1.data" -- \
    "$PY" scripts/known_waits.py 300000 "$out/user/truth-w1.json" 3
step user-report-wall-1 as_user "$PERFPY" report -i "$work/user/w1.data" --format collapsed
step user-rec-1 as_user "$PERFPY" record -F 499 -o "$work/user/p1.data" -- "$PY" seed.py "$N"
step user-report-1 as_user "$PERFPY" report -i "$work/user/p1.data" --format collapsed
echo 1 > /proc/sys/kernel/kptr_restrict
step user-rec-kptr as_user "$PERFPY" record -F 499 -o "$work/user/k1.data" -- "$PY" seed.py "$N"
step user-report-kptr as_user "$PERFPY" report -i "$work/user/k1.data" --format collapsed
step root-rec-kptr "$PERFPY" record -F 499 -o "$work/k1.data" -- "$PY" seed.py "$N"
step root-report-kptr "$PERFPY" report -i "$work/k1.data" --format collapsed
echo -1 > /proc/sys/kernel/perf_event_paranoid
echo 0 > /proc/sys/kernel/kptr_restrict
ls /tmp > tmp-after.txt
sync
