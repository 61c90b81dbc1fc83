"""Startup switches, run from ``perfpy.pth`` only when one of them is set.

The rules are CPython's (``Python/initconfig.c``), applied on interpreters that lack built-in
support and to ``PERFPY_BACKEND`` everywhere; the last setting that applies wins:

1. ``PYTHONPERFSUPPORT`` (an integer; nonzero means ``perf``),
2. ``PERFPY_BACKEND`` (``perf``: perfpy's implementation, on every version),
3. ``-X perf`` (any value, even ``-X perf=0``),

ignoring the environment under ``-E``/``-I``. A later ``activate_stack_trampoline()`` call
overrides all of them. On 3.12+ CPython handles ``PYTHONPERFSUPPORT`` and ``-X perf`` itself;
perfpy steps in there only for ``PERFPY_BACKEND``.
"""

import os
import sys
import warnings


def _env_int(name):
    value = os.environ.get(name)
    if value is None:
        return 0
    try:
        return int(value.strip())
    except ValueError:
        return 0


def requested():
    """(backend, forced) from the switches: backend is None or a backend name; forced is
    True when PERFPY_BACKEND asks for perfpy's implementation."""
    backend = None
    forced = False
    use_env = not sys.flags.ignore_environment
    if use_env and _env_int("PYTHONPERFSUPPORT"):
        backend = "perf"
    if use_env and os.environ.get("PERFPY_BACKEND"):
        backend = os.environ["PERFPY_BACKEND"].strip()
        forced = True
    if "perf" in sys._xoptions:
        backend = "perf"
    return backend, forced


def _warn(message):
    import perfpy

    warnings.warn("perfpy: " + message, perfpy.PerfpyWarning, stacklevel=2)


def main():
    backend, forced = requested()
    if backend is None:
        return
    builtin = sys.version_info >= (3, 12)
    if builtin and not forced:
        return  # CPython's own trampoline serves PYTHONPERFSUPPORT / -X perf here.
    try:
        import perfpy
    except Exception as e:  # a broken install must not stop the program
        warnings.warn("perfpy: cannot import perfpy, profiling is off: %r" % (e,), RuntimeWarning)
        return
    if backend not in perfpy.BACKENDS:
        _warn(
            "PERFPY_BACKEND=%r is not a backend perfpy knows (use one of: %s); "
            "profiling is off" % (backend, ", ".join(perfpy.BACKENDS))
        )
        return
    if perfpy._cpython_trampoline_active():
        _warn(
            "PERFPY_BACKEND=%s asks for perfpy's trampoline, but CPython's own is already "
            "active (PYTHONPERFSUPPORT or -X perf); keeping CPython's. Unset one of them."
            % backend
        )
        return
    try:
        perfpy.activate_stack_trampoline(backend)
    except Exception as e:
        _warn("cannot activate the %s trampoline, profiling is off: %s" % (backend, e))


main()
