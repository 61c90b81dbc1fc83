"""A WSGI app whose requests mostly wait: each writes a row to an on-disk SQLite database with
PRAGMA synchronous=FULL (the commit waits for the disk) and then sleeps 5 ms."""

import os
import sqlite3
import time

DB_DIR = os.environ.get("PERFPY_TEST_DB") or os.getcwd()
_db = None


def database():
    """This worker's own database (one per process: no worker waits on another's lock)."""
    global _db
    if _db is None:
        _db = sqlite3.connect(os.path.join(DB_DIR, "hits-%d.sqlite" % os.getpid()))
        _db.execute("PRAGMA synchronous=FULL")
        _db.execute("CREATE TABLE IF NOT EXISTS hits (pid INTEGER, at REAL)")
    return _db


def store(pid):
    db = database()
    with db:
        db.execute("INSERT INTO hits VALUES (?, ?)", (pid, time.time()))


def pause():
    time.sleep(0.005)


def app(environ, start_response):
    store(os.getpid())
    pause()
    body = b"stored\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
