#!/usr/bin/env bash
# Builds CPython 3.11 with frame pointers from Debian's python3.11 source package, for the
# end-to-end `perf record -g` tests (no interpreter shipped here keeps frame pointers).
#
# The result is cached: a second run with the interpreter already built does nothing.
# Prints the path of the interpreter on its last line of stdout.
#
#   PERFPY_FP_PREFIX   where to install (default: ~/.cache/perfpy/python3.11-fp)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/apt.sh"

prefix="${PERFPY_FP_PREFIX:-$HOME/.cache/perfpy/python3.11-fp}"
python="$prefix/bin/python3.11"
if [ -x "$python" ] && "$python" -c 'import sysconfig, zlib; assert "no-omit-frame-pointer" in sysconfig.get_config_var("CFLAGS")' 2>/dev/null; then
    echo "$python"
    exit 0
fi

log() { echo "build-fp-python: $*" >&2; }

need_apt=0
command -v gcc >/dev/null || need_apt=1
command -v make >/dev/null || need_apt=1
dpkg -s zlib1g-dev libffi-dev dpkg-dev >/dev/null 2>&1 || need_apt=1
src_list=/etc/apt/sources.list.d/perfpy-deb-src.sources
if [ ! -f "$src_list" ] && ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    archive="$(debian_archive)"
    log "adding a deb-src source for Debian $(debian_codename) from $archive"
    cat > "$src_list" <<SRC
Types: deb-src
URIs: $archive
Suites: $(debian_codename)
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    need_apt=1
fi
if [ "$need_apt" = 1 ]; then
    log "apt-get update / install build tools"
    apt_install build-essential zlib1g-dev libffi-dev dpkg-dev xz-utils
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
log "fetching Debian's python3.11 source package"
apt-get source --download-only -qq python3.11 >&2
orig="$(ls python3.11_*.orig.tar.* | head -n1)"
tar xf "$orig"
srcdir="$(find . -maxdepth 1 -type d -name 'Python-3.11*' | head -n1)"
cd "$srcdir"
log "configuring $(basename "$srcdir") with frame pointers into $prefix"
./configure --prefix="$prefix" --enable-shared --with-ensurepip=install \
    LDFLAGS="-Wl,-rpath,$prefix/lib" \
    CFLAGS="-fno-omit-frame-pointer -mno-omit-leaf-frame-pointer" >configure.log 2>&1 \
    || { tail -n 30 configure.log >&2; exit 1; }
log "compiling (a few minutes)"
make -j"$(nproc)" >make.log 2>&1 || { tail -n 40 make.log >&2; exit 1; }
make install >install.log 2>&1 || { tail -n 40 install.log >&2; exit 1; }
"$python" -c 'import sysconfig; assert "no-omit-frame-pointer" in sysconfig.get_config_var("CFLAGS")'
log "built $python"
echo "$python"
