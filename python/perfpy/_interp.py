"""Which interpreter this code runs in, without perfpy's extension (importable anywhere)."""


def _id(value):
    # 3.13+ return (id, whence); 3.8-3.12 an InterpreterID (an int subclass).
    return int(value[0] if isinstance(value, tuple) else value)


def in_subinterpreter():
    """True inside a subinterpreter (``concurrent.interpreters``, ``_interpreters``,
    ``_xxsubinterpreters``): perfpy's extension lives in the main interpreter, and names the
    code of every interpreter from there."""
    for name in ("_interpreters", "_xxsubinterpreters"):
        try:
            module = __import__(name)
            return _id(module.get_current()) != _id(module.get_main())
        except Exception:
            continue
    return False


#: The same words as the extension's own refusal, where it loads but is not the main one's.
ELSEWHERE_MESSAGE = (
    "perfpy is switched on and off in the main interpreter only; switched on there "
    "(PYTHONPERFSUPPORT=1, PERFPY_BACKEND, perfpy.activate_stack_trampoline() or "
    "perfpy record), it names the functions of every interpreter of the process"
)


class _PerfpyWarning(RuntimeWarning):
    """perfpy could not profile, and the program continues unprofiled."""


class Elsewhere:
    """What ``perfpy`` finds in place of its extension in a subinterpreter: the package
    imports (the interpreter's start-up may import it), and each function says where it
    works."""

    PerfpyWarning = _PerfpyWarning
    SetupError = type("SetupError", (Exception,), {})

    @staticmethod
    def build_info():
        return {"version": None}

    @staticmethod
    def _after_fork_child():
        pass

    def __getattr__(self, name):
        raise RuntimeError(ELSEWHERE_MESSAGE)
