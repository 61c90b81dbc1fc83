"""Hot code that only a subinterpreter runs, on CPython 3.9+: the main interpreter's drive()
hands spin_in_sub() to an interpreter of its own (`_xxsubinterpreters.run_string` up to 3.12,
`_interpreters.exec` from 3.13), which runs it in drive()'s thread, then destroys it.

usage: in_sub.py N   (leaf() counts to N, three times)
"""

import sys

try:
    import _interpreters as interpreters
except ImportError:
    import _xxsubinterpreters as interpreters

WORK = """
def leaf(n):
    t = 0
    for i in range(n):
        t += i
    return t

def spin_in_sub(n):
    return leaf(n)

for _ in range(3):
    spin_in_sub(%d)
"""


def drive(n):
    interp = interpreters.create()
    try:
        if hasattr(interpreters, "exec"):
            failure = interpreters.exec(interp, WORK % n)
            assert failure is None, failure
        else:
            interpreters.run_string(interp, WORK % n)
    finally:
        interpreters.destroy(interp)


if __name__ == "__main__":
    drive(int(sys.argv[1]))
