"""A program busy in Python until killed (middle → leaf), which reports its evaluator
(tests/apps/telltale.py); for the system-wide and top tests."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "apps"))
import telltale  # noqa: E402,F401


def leaf(n):
    return n * 2


def middle(n):
    s = 0
    for i in range(n):
        s += leaf(i)
    return s


def serve():
    while True:
        middle(2000)


serve()
