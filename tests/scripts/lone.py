"""A program with one thread, busy in Python, with no I/O and nothing else running in it
(main -> hot -> spin until killed): nothing in it ever hands the GIL over or makes a system
call, so a switch asked from another thread must reach a busy main thread by itself."""

import time


def spin(n):
    s = 0
    for i in range(n):
        s += i
    return s


def hot():
    return spin(20000)


def main():
    end = time.monotonic() + 600
    while time.monotonic() < end:
        hot()


main()
