"""A WSGI app whose requests are pure-Python work (crunch → step), for the system-wide tests:
each worker reports its evaluator (telltale.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import telltale  # noqa: E402,F401  (its thread starts on import, in each worker)


def step(i):
    return (i * i) % 7


def crunch(n):
    total = 0
    for i in range(n):
        total += step(i)
    return total


def app(environ, start_response):
    body = str(crunch(20000)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
