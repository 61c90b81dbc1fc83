/* A minimal third-party PEP 523 hook that chains to whatever evaluator was installed before
 * it (as debuggers and profilers do), counting calls. Built by tests/test_chaining.py against
 * each interpreter's headers (3.9+). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX >= 0x030B0000
typedef struct _PyInterpreterFrame frame_t;
#else
typedef PyFrameObject frame_t;
#endif
typedef PyObject *(*eval_fn)(PyThreadState *, frame_t *, int);

static eval_fn prev = NULL;
static long calls = 0;

static PyObject *hook(PyThreadState *ts, frame_t *f, int throwflag) {
    calls++;
    return prev(ts, f, throwflag);
}

static PyObject *install(PyObject *self, PyObject *unused) {
    PyInterpreterState *interp = PyInterpreterState_Get();
    prev = (eval_fn)_PyInterpreterState_GetEvalFrameFunc(interp);
    _PyInterpreterState_SetEvalFrameFunc(interp, (_PyFrameEvalFunction)hook);
    Py_RETURN_NONE;
}

static PyObject *uninstall(PyObject *self, PyObject *unused) {
    _PyInterpreterState_SetEvalFrameFunc(PyInterpreterState_Get(), (_PyFrameEvalFunction)prev);
    Py_RETURN_NONE;
}

static PyObject *count(PyObject *self, PyObject *unused) { return PyLong_FromLong(calls); }

static PyMethodDef methods[] = {
    {"install", install, METH_NOARGS, NULL},
    {"uninstall", uninstall, METH_NOARGS, NULL},
    {"count", count, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "chainhook", NULL, -1, methods};
PyMODINIT_FUNC PyInit_chainhook(void) { return PyModule_Create(&module); }
