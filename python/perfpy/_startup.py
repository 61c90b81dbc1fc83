"""Startup switches, run from ``perfpy.pth`` only when one of them is set.

The rules are CPython's (``Python/initconfig.c``), applied where the interpreter lacks
built-in support for the backend asked for, and to ``PERFPY_BACKEND`` everywhere; the last
setting that applies wins:

1. ``PYTHONPERFSUPPORT`` (an integer; nonzero means ``perf``),
2. ``-X perf`` (any value, even ``-X perf=0``),
3. ``PYTHON_PERF_JIT_SUPPORT`` (an integer; nonzero means ``perf_jit``),
4. ``-X perf_jit``,

so ``perf_jit`` wins when both are given. ``PERFPY_BACKEND`` (``perf`` or ``perf_jit``: perfpy's
implementation, on every version) counts as an environment setting: it overrides the other
variables, and ``-X`` overrides it. The environment is ignored under ``-E``/``-I``. A later
``activate_stack_trampoline()`` call overrides all of them. CPython 3.12+ handles ``perf``
itself, and 3.13+ ``perf_jit``; perfpy steps in there only for ``PERFPY_BACKEND``.

``PERFPY_ATTACH=1`` is independent of these: it arms the dormant attach (see ``arm_attach``).

In a subinterpreter (which runs ``site``, and so this, as it starts) nothing is done: perfpy's
extension can't load there, and the main interpreter's perfpy already names its code.
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
    env = {}
    if not sys.flags.ignore_environment:
        env = os.environ
    xopts = getattr(sys, "_xoptions", {})
    backend = None
    if _env_int("PYTHONPERFSUPPORT") if env else 0:
        backend = "perf"
    if "perf" in xopts:
        backend = "perf"
    if _env_int("PYTHON_PERF_JIT_SUPPORT") if env else 0:
        backend = "perf_jit"
    if "perf_jit" in xopts:
        backend = "perf_jit"
    forced = bool(env.get("PERFPY_BACKEND", "").strip())
    if forced:
        backend = env["PERFPY_BACKEND"].strip()
        # -X still wins over an environment variable.
        if "perf_jit" in xopts:
            backend = "perf_jit"
        elif "perf" in xopts:
            backend = "perf"
    return backend, forced


def _warn(message):
    import perfpy

    warnings.warn("perfpy: " + message, perfpy.PerfpyWarning, stacklevel=2)


def arm_attach():
    """``PERFPY_ATTACH=1``: dormant until ``perfpy record --pid`` switches names on (for
    interpreters without PEP 768's remote execution, 3.8-3.13; harmless elsewhere)."""
    if sys.flags.ignore_environment or os.environ.get("PERFPY_ATTACH", "").strip() in ("", "0"):
        return
    try:
        import perfpy

        perfpy._native.arm_attach()
    except Exception as e:  # a broken install must not stop the program
        warnings.warn("perfpy: PERFPY_ATTACH is set but perfpy can't be armed: %r" % (e,),
                      RuntimeWarning)


def main():
    from perfpy._interp import in_subinterpreter

    if in_subinterpreter():
        return  # perfpy, switched on in the main interpreter, names this one's code too.
    arm_attach()
    backend, forced = requested()
    if backend is None:
        return
    builtin = sys.version_info >= ((3, 13) if backend == "perf_jit" else (3, 12))
    if builtin and not forced:
        return  # CPython's own trampoline serves this switch here.
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
            "%s asks for perfpy's %s trampoline, but CPython's own is already active "
            "(PYTHONPERFSUPPORT or -X perf); keeping CPython's. Unset one of them."
            % ("PERFPY_BACKEND=" + backend if forced else "the perf_jit switch", backend)
        )
        return
    try:
        perfpy.activate_stack_trampoline(backend)
    except Exception as e:
        _warn("cannot activate the %s trampoline, profiling is off: %s" % (backend, e))


main()
