"""perfpy: Linux ``perf`` sees your Python functions, on every CPython from 3.8.

Before each Python function runs, the interpreter is sent through a tiny machine-code stub made
for that function, and ``/tmp/perf-<pid>.map`` tells ``perf`` which stub is which function. A
profile then shows ``py::<qualname>:<filename>`` frames instead of a wall of
``_PyEval_EvalFrameDefault``.

Switch it on with ``PYTHONPERFSUPPORT=1``, ``-X perf`` (on interpreters without built-in
support) or ``PERFPY_BACKEND=perf`` (any interpreter), or at run time::

    import perfpy
    perfpy.activate_stack_trampoline("perf")

The functions mirror CPython's ``sys.activate_stack_trampoline``,
``sys.deactivate_stack_trampoline`` and ``sys.is_stack_trampoline_active``.
"""

import os as _os
import sys as _sys
import warnings as _warnings

try:
    from . import _native
except ImportError as _e:
    from ._interp import in_subinterpreter as _in_subinterpreter

    if not _in_subinterpreter():
        import sysconfig as _sysconfig

        _here = _os.path.dirname(_os.path.abspath(__file__))
        _build = "_native" + (_sysconfig.get_config_var("EXT_SUFFIX") or ".so")
        if _os.path.exists(_os.path.join(_here, _build)):
            raise
        raise ImportError(
            "perfpy has no build for this interpreter (Python %s: no %s in %s; it has %s). "
            "perfpy supports CPython 3.8-3.15 with the GIL on x86_64 Linux"
            % (
                _sys.version.split()[0],
                _build,
                _here,
                ", ".join(sorted(n for n in _os.listdir(_here) if n.startswith("_native.")))
                or "none",
            )
        ) from None
    # A subinterpreter: the extension loads in the main interpreter only, and names this
    # interpreter's functions from there. Each function here says so.
    from ._interp import Elsewhere as _Elsewhere

    _native = _Elsewhere()

__all__ = [
    "PerfpyWarning",
    "activate_stack_trampoline",
    "build_info",
    "compile_code",
    "deactivate_stack_trampoline",
    "is_stack_trampoline_active",
    "set_persist_after_fork",
    "status",
    "trampoline",
    "write_perf_map_entry",
]

__version__ = _native.build_info()["version"]

#: Backends perfpy implements, in the order CPython names them.
BACKENDS = ("perf", "perf_jit")


#: The category of every warning perfpy issues (a ``RuntimeWarning``): perfpy could not
#: profile, and the program continues unprofiled. Defined in the extension, so warnings from
#: inside the evaluator hook carry it too.
PerfpyWarning = _native.PerfpyWarning


def _cpython_trampoline_active():
    """Whether CPython's own perf trampoline (3.12+) is switched on in this interpreter."""
    check = getattr(_sys, "is_stack_trampoline_active", None)
    if check is None:
        return False
    try:
        return bool(check())
    except Exception:
        return False


def activate_stack_trampoline(backend="perf", /):
    """Activate the stack profiler trampoline *backend*: ``"perf"`` or ``"perf_jit"``.

    From now on each Python function is entered through a stub of its own, named
    ``py::<qualname>:<filename>`` for perf: with ``"perf"`` in ``/tmp/perf-<pid>.map`` (for
    ``perf record -g`` on interpreters built with frame pointers), with ``"perf_jit"`` in
    ``/tmp/jit-<pid>.dump``, which also carries each stub's unwind information (for
    ``perf record -k 1 --call-graph dwarf`` then ``perf inject --jit``, on any build).
    Functions already running when this is called are named the next time they are entered.
    Activating the other backend while one is active switches to it.

    Raises ``ValueError`` for an unknown backend and ``RuntimeError`` when CPython's own perf
    trampoline is already active. If this machine can't be profiled (the map file can't be
    written, executable memory is refused), a :class:`PerfpyWarning` says why and the program
    continues unprofiled.
    """
    if not isinstance(backend, str):
        raise TypeError(
            "activate_stack_trampoline() argument must be str, not %s" % type(backend).__name__
        )
    if "\0" in backend:
        raise ValueError("embedded null character")
    if backend not in BACKENDS:
        raise ValueError("invalid backend: %s" % backend)
    if _cpython_trampoline_active():
        raise RuntimeError(
            "CPython's own perf trampoline is already active in this interpreter "
            "(sys.is_stack_trampoline_active() is True, from PYTHONPERFSUPPORT, -X perf or "
            "sys.activate_stack_trampoline()); use one of them: call "
            "sys.deactivate_stack_trampoline() first, or drop the CPython switch"
        )
    try:
        _native.activate(backend)
    except _native.SetupError as e:
        _warnings.warn(
            "perfpy: cannot activate the perf trampoline, the program continues unprofiled: %s"
            % e,
            PerfpyWarning,
            stacklevel=2,
        )


def deactivate_stack_trampoline():
    """Deactivate the current stack profiler trampoline backend.

    If no stack profiler is activated, this function has no effect. Stubs already on the
    stack keep working; no memory is released (it may still be executing).
    """
    _native.deactivate()


def is_stack_trampoline_active():
    """Return *True* if perfpy's stack profiler trampoline is active."""
    return _native.is_active()


def compile_code(code, /):
    """Make *code*'s stub and map entry now, before it first runs.

    For pre-fork servers: warm up, compile the hot functions' code objects, call
    ``set_persist_after_fork(True)``, then fork; workers then start with a complete map.
    Accepts a code object (``f.__code__``).
    """
    try:
        _native.compile_code(code)
    except _native.SetupError as e:
        _warnings.warn("perfpy: %s" % e, PerfpyWarning, stacklevel=2)


def set_persist_after_fork(flag, /):
    """After ``fork()``, keep the trampoline active in the child and start the child's map
    as a copy of the parent's (entries made up to the fork), so code compiled before the
    fork is named in the child too (with ``perf_jit``, the child's dump announces the
    parent's stubs again under the child's pid). Off by default: a child then announces in
    its own file only the functions it runs.
    """
    _native.set_persist_after_fork(bool(flag))


def write_perf_map_entry(code_addr, code_size, entry_name, /):
    """Append one line ``<code_addr> <code_size> <entry_name>`` to this process's perf map
    (as CPython's ``PyUnstable_WritePerfMapEntry``), for code generated by other means."""
    _native.write_perf_map_entry(code_addr, code_size, entry_name)


def status():
    """A dict describing perfpy in this process: whether it is active and with which backend,
    its map or jitdump file, how many stubs it made and announced (``map_lines`` counts map
    lines or jitdump stubs), arenas and their bytes, the reason if it turned itself off, and
    how many subinterpreters run its hook (``interpreters``; ``interpreters_limit`` says why
    some can't, if any)."""
    return _native.status()


def build_info():
    """Facts about this build of perfpy (version, CPython family, architecture)."""
    return _native.build_info()


class trampoline:
    """Context manager: the trampoline is active inside the ``with`` block.

    ``with perfpy.trampoline(): run()``
    """

    def __init__(self, backend="perf"):
        self.backend = backend
        self._was_active = False

    def __enter__(self):
        self._was_active = is_stack_trampoline_active()
        if not self._was_active:
            activate_stack_trampoline(self.backend)
        return self

    def __exit__(self, *exc):
        if not self._was_active:
            deactivate_stack_trampoline()
        return False


_os.register_at_fork(after_in_child=_native._after_fork_child)

if "t" in getattr(_sys, "abiflags", ""):
    # A free-threaded build (3.13t+): the extension declares that it needs the GIL.
    if _sys._is_gil_enabled():
        _warnings.warn(
            "perfpy: this free-threaded interpreter now runs with the GIL, which perfpy "
            "needs for now (importing it turned the GIL on)",
            PerfpyWarning,
            stacklevel=2,
        )
    else:
        _warnings.warn(
            "perfpy: the GIL is off (-X gil=0 or PYTHON_GIL=0), and perfpy is not yet safe "
            "without it on free-threaded builds: profile with the GIL on",
            PerfpyWarning,
            stacklevel=2,
        )
