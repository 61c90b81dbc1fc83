#!/usr/bin/env bash
# Prints the host's CPython 3.8-3.13 interpreters perfpy is built and tested for, one per line:
# every pyenv release build, or PERFPY_PYTHONS (space-separated paths) if set. PERFPY_ONLY=3.11
# keeps one minor version (a quick start).
set -euo pipefail
if [ -n "${PERFPY_PYTHONS:-}" ]; then
    printf '%s\n' $PERFPY_PYTHONS
    exit 0
fi
pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
for d in "$pyenv_root"/versions/3.*; do
    [ -d "$d" ] || continue
    v="$(basename "$d")"
    minor="$(echo "$v" | cut -d. -f1-2)"
    case "$minor" in 3.8|3.9|3.10|3.11|3.12|3.13|3.14|3.15) ;; *) continue ;; esac
    [[ "$v" =~ ^3\.[0-9]+\.[0-9]+$ ]] || continue   # CPython releases only, no -dev/t builds
    [ -n "${PERFPY_ONLY:-}" ] && [ "$minor" != "$PERFPY_ONLY" ] && continue
    [ -x "$d/bin/python$minor" ] && echo "$d/bin/python$minor"
done
