# Sourced by the scripts that install Debian packages. apt-get that waits while another
# program (unattended upgrades, a second build) holds the package manager, instead of failing:
#
#   apt_install [--root DIR] PACKAGE...     apt-get update, then install (in DIR's chroot)
#
# apt-get install waits for dpkg's locks by itself (DPkg::Lock::Timeout); apt-get update's
# lock on the package lists takes no timeout, so it is retried while another process holds it.
# Both give up after PERFPY_APT_WAIT seconds (default 600), with apt's own message.

apt_wait="${PERFPY_APT_WAIT:-600}"

apt_update() {  # [--root DIR]
    local run=() deadline=$((SECONDS + apt_wait)) out
    [ "${1:-}" = --root ] && run=(chroot "$2")
    while :; do
        if out="$("${run[@]}" apt-get -o Acquire::Check-Valid-Until=false \
                -o DPkg::Lock::Timeout="$apt_wait" update -qq 2>&1)"; then
            [ -z "$out" ] || echo "$out" >&2
            return 0
        fi
        if [[ "$out" == *"Could not get lock"* ]] && [ "$SECONDS" -lt "$deadline" ]; then
            echo "apt: another process holds the package lists; waiting" >&2
            sleep 5
            continue
        fi
        echo "$out" >&2
        return 1
    done
}

apt_install() {  # [--root DIR] PACKAGE...
    local run=()
    if [ "${1:-}" = --root ]; then
        run=(chroot "$2")
        apt_update --root "$2"
        shift 2
    else
        apt_update
    fi
    "${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$apt_wait" \
        install -y -qq "$@" >&2
}
