"""What a test program's own interpreter says of its evaluator, written every 0.2 s to
$PERFPY_TEST_STATE/<pid>.json by a thread of its own (imported by the programs of the
system-wide and top tests, which ask each process after perfpy has switched its names
off): whether perfpy's or CPython's trampoline is active, and whether the evaluator is
CPython's default again. PERFPY_TEST_STATE=stdout prints it instead, a JSON line each time
(a program in a container, whose /tmp the test can't see)."""

import ctypes
import json
import os
import sys
import threading
import time


def state():
    api = ctypes.pythonapi
    api.PyInterpreterState_Get.restype = ctypes.c_void_p
    api._PyInterpreterState_GetEvalFrameFunc.restype = ctypes.c_void_p
    api._PyInterpreterState_GetEvalFrameFunc.argtypes = [ctypes.c_void_p]
    default = ctypes.cast(api._PyEval_EvalFrameDefault, ctypes.c_void_p).value
    evaluator = api._PyInterpreterState_GetEvalFrameFunc(api.PyInterpreterState_Get())
    pf = sys.modules.get("perfpy")
    return {
        "pid": os.getpid(),
        "perfpy": bool(pf and pf.is_stack_trampoline_active()),
        "sys": bool(getattr(sys, "is_stack_trampoline_active", lambda: False)()),
        "default_eval": evaluator == default,
        "time": time.time(),
    }


def _tell(where):
    path = os.path.join(where, "%d.json" % os.getpid())
    while True:
        if where == "stdout":
            print(json.dumps(state()), flush=True)
            time.sleep(0.2)
            continue
        try:
            with open(path + ".part", "w") as f:
                json.dump(state(), f)
            os.replace(path + ".part", path)
        except Exception:
            pass
        time.sleep(0.2)


def start():
    where = os.environ.get("PERFPY_TEST_STATE")
    if where:
        threading.Thread(target=_tell, args=(where,), daemon=True, name="telltale").start()


start()
