"""The start-up hook ``perfpy record`` lends an interpreter that doesn't have perfpy.

For one run, ``perfpy record`` puts a private directory first on the program's ``PYTHONPATH``,
holding this package as ``perfpy`` and this file as ``sitecustomize.py``. At start-up the
interpreter imports it: it switches perfpy's trampoline on as ``perfpy.pth`` does where perfpy
is installed (``PERFPY_BACKEND``), takes its directory off ``sys.path`` again, and then runs the
``sitecustomize`` the interpreter would have run without it, if there is one, under that name.
Nothing is written into the program's environment; the directory goes when the run ends.
(``PYTHONPATH`` keeps the directory, so the program's child interpreters are profiled too.)
"""

import os
import sys


def _switch_on():
    try:
        import perfpy._startup  # noqa: F401  (switches on from PERFPY_BACKEND on import)
    except Exception as e:  # the program must run even if perfpy can't
        import warnings

        warnings.warn(
            "perfpy: cannot switch perfpy on in this interpreter, profiling is off: %r" % (e,),
            RuntimeWarning,
        )


def _leave_sys_path(here):
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    sys.path_importer_cache.pop(here, None)


def _run_shadowed_sitecustomize():
    """Imports the ``sitecustomize`` this file stands in front of, if there is one; its
    errors reach ``site`` as they would have without perfpy."""
    import importlib.machinery
    import importlib.util

    # This file's own directory is off sys.path by now: what is found is the other one. With
    # none, the import of this module ends as it would have without it: an ImportError of
    # "sitecustomize", which site takes silently, and no "sitecustomize" in sys.modules.
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
    if spec is None or spec.loader is None:
        raise ImportError("no sitecustomize but perfpy's start-up hook", name="sitecustomize")
    sys.modules.pop("sitecustomize", None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop("sitecustomize", None)
        raise


_switch_on()
_leave_sys_path(os.path.dirname(os.path.abspath(__file__)))
_run_shadowed_sitecustomize()
