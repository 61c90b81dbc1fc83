# Sourced by the scripts that install Debian packages or fetch from Debian's archive.
#
#   apt_install [--root DIR] PACKAGE...  apt-get update, then install (in DIR's chroot); never
#                                        removes a package (--no-remove): what the machine came
#                                        with stays as it was
#   apt_install_qemu PACKAGE...          qemu's packages at the version of the qemu-utils the
#                                        machine has (from the same suite: backports, if that is
#                                        where it came from), so nothing is removed or downgraded
#   apt_check PACKAGE...                 whether apt_install would succeed (apt-get -s), before a
#                                        long step depends on it; says why not
#   debian_archive                       prints the Debian archive this machine's apt uses
#   debian_codename                      prints this machine's Debian release (bookworm)
#
# apt-get install waits for dpkg's locks by itself (DPkg::Lock::Timeout); apt-get update's
# lock on the package lists takes no timeout, so it is retried while another process holds it.
# Both give up after PERFPY_APT_WAIT seconds (default 600), with apt's own message.
#
# No archive address is written here: the archive is the one in the machine's apt sources
# (a company mirror or proxy included), or PERFPY_DEBIAN_MIRROR.

apt_wait="${PERFPY_APT_WAIT:-600}"

debian_codename() {
    (. /etc/os-release && echo "${VERSION_CODENAME:-}")
}

# The URI of the first apt source (deb822 .sources or one-line .list) that serves the release
# itself (not its -security suite).
debian_archive() {
    if [ -n "${PERFPY_DEBIAN_MIRROR:-}" ]; then
        echo "$PERFPY_DEBIAN_MIRROR"
        return 0
    fi
    local codename uri
    codename="$(debian_codename)"
    uri="$(awk -v want="$codename" '
        FNR == 1 { uris = ""; suites = ""; types = "" }
        /^[[:space:]]*$/ { if (types ~ /(^| )deb( |$)/ && suites ~ "(^| )" want "( |$)" && uris != "") { split(uris, u, " "); print u[1]; exit }
                           uris = ""; suites = ""; types = ""; next }
        /^URIs:/ { sub(/^URIs:[[:space:]]*/, ""); uris = $0 }
        /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
        /^Types:/ { sub(/^Types:[[:space:]]*/, ""); types = $0 }
        END { if (types ~ /(^| )deb( |$)/ && suites ~ "(^| )" want "( |$)" && uris != "") { split(uris, u, " "); print u[1] } }
        ' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)"
    if [ -z "$uri" ]; then
        uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk -v want="$codename" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                                                     if ($(i + 1) == want) { print $i; exit } }')"
    fi
    if [ -z "$uri" ]; then
        echo "apt.sh: no Debian archive for '$codename' in /etc/apt/sources.list{,.d}; set" \
            "PERFPY_DEBIAN_MIRROR to the archive's address" >&2
        return 1
    fi
    echo "${uri%/}"
}

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
        install -y -qq --no-remove "$@" >&2
}

# Adds the release's backports suite from the machine's own archive, once (a file of its own;
# the machine's source files are left as they are).
apt_add_backports() {
    local codename archive keyring list=/etc/apt/sources.list.d/perfpy-backports.sources
    codename="$(debian_codename)"
    if grep -rqs "[[:space:]]$codename-backports\([[:space:]]\|$\)" /etc/apt/sources.list \
            /etc/apt/sources.list.d/; then
        return 0
    fi
    archive="$(debian_archive)" || return 1
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    echo "apt: adding $codename-backports from $archive ($list)" >&2
    cat > "$list" <<SRC
Types: deb
URIs: $archive
Suites: $codename-backports
Components: main
Signed-By: $keyring
SRC
}

# The qemu packages the machine lacks, at the version of its qemu-utils: qemu's packages depend
# on each other at one exact version, so another version can't be installed beside it without
# removing it. A qemu-utils from backports (~bpoNN) means the rest comes from backports too.
_qemu_args() {  # PACKAGE... -> the apt-get install arguments, on stdout, one per line
    local have
    have="$(dpkg-query -W -f '${Status} ${Version}' qemu-utils 2>/dev/null || true)"
    if [[ "$have" == "install ok installed "*"~bpo"* ]]; then
        echo "-t"
        echo "$(debian_codename)-backports"
    fi
    printf '%s\n' --no-install-recommends "$@"
}

apt_install_qemu() {  # PACKAGE...
    local args want have p
    mapfile -t args < <(_qemu_args "$@")
    [ "${args[0]}" = -t ] && { apt_add_backports || return 1; }
    apt_install "${args[@]}" || return 1
    want="$(dpkg-query -W -f '${Version}' qemu-utils 2>/dev/null || true)"
    [ -n "$want" ] || return 0
    for p in "$@"; do
        have="$(dpkg-query -W -f '${Version}' "$p")"
        if [ "$have" != "$want" ]; then
            echo "apt: $p $have was installed beside qemu-utils $want" >&2
            return 1
        fi
    done
}

apt_check() {  # [--qemu] PACKAGE...
    local args=("$@") out
    if [ "${1:-}" = --qemu ]; then
        shift
        mapfile -t args < <(_qemu_args "$@")
        [ "${args[0]}" = -t ] && { apt_add_backports || return 1; }
    fi
    apt_update || return 1
    if ! out="$(apt-get -s install -qq --no-remove "${args[@]}" 2>&1)"; then
        echo "apt: these packages can't be installed on this machine without removing or" \
            "downgrading what it has: ${args[*]}" >&2
        echo "$out" | grep -E '^(E:| )' | head -n 12 >&2
        return 1
    fi
}
