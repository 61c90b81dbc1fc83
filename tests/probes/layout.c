/* Prints, from the real CPython headers, each struct offset perfpy hard-codes (see
 * crates/ext/src/cpython/). Compiled and compared by tests/test_layout.py. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#if PY_VERSION_HEX >= 0x030E0000
#include "internal/pycore_interpframe_structs.h"
#elif PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_frame.h"
#else
#include "frameobject.h"
#endif
#if PY_VERSION_HEX < 0x03090000
#include "internal/pycore_pystate.h"
#endif
int main(void) {
#if PY_VERSION_HEX >= 0x030D0000
    printf("frame_code_offset %zu\n", offsetof(_PyInterpreterFrame, f_executable));
#elif PY_VERSION_HEX >= 0x030B0000
    printf("frame_code_offset %zu\n", offsetof(_PyInterpreterFrame, f_code));
#else
    printf("frame_code_offset %zu\n", offsetof(PyFrameObject, f_code));
#endif
    printf("code_extra_offset %zu\n", offsetof(PyCodeObject, co_extra));
#if PY_VERSION_HEX >= 0x03090000
    printf("tstate_interp_offset %zu\n", offsetof(PyThreadState, interp));
#endif
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    printf("tstate_recursion_remaining_offset %zu\n", offsetof(PyThreadState, recursion_remaining));
    printf("tstate_recursion_limit_offset %zu\n", offsetof(PyThreadState, recursion_limit));
#endif
#if PY_VERSION_HEX < 0x03090000
    printf("interp_eval_frame_offset %zu\n", offsetof(PyInterpreterState, eval_frame));
#endif
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
    printf("tstate_c_recursion_remaining_offset %zu\n", offsetof(PyThreadState, c_recursion_remaining));
#endif
    return 0;
}
