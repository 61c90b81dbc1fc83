"""A small WSGI app that does real work per request: numpy, Jinja2 templating and JSON."""

import json
import os

import numpy as np
from jinja2 import Environment

PAGE = Environment(autoescape=True).from_string(
    "<ul>{% for r in rows %}<li>{{ r.name }}: {{ '%.3f' % r.score }}</li>{% endfor %}</ul>")


def score(n):
    a = np.arange(n, dtype=float)
    return float(np.sqrt(a @ a))


def render_rows(count):
    rows = [{"name": "item%d" % i, "score": score(64 + i)} for i in range(count)]
    return PAGE.render(rows=rows)


def encode(obj):
    return json.dumps(obj, sort_keys=True).encode()


SERVED = os.environ.get("PERFPY_TEST_SERVED")
served = 0


def count():
    """Writes how many requests this process has served into $PERFPY_TEST_SERVED/<pid>."""
    global served
    served += 1
    if SERVED and served in (1, 100, 200, 300, 400):
        with open(os.path.join(SERVED, str(os.getpid())), "w") as f:
            f.write(str(served))


def app(environ, start_response):
    count()
    body = encode({"html": render_rows(60), "pid": os.getpid()})
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
