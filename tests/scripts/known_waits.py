"""A program whose waits are known: it times each of its parts itself (perf_counter) and
writes the times to the file argv[2]: 20 x time.sleep(0.02), a lock held 200 ms by one thread
while another waits for it, a child process of 0.3 s, and a CPU loop of argv[1] iterations
(and main, the whole of them), argv[3] times (once by default), the times added up. Given a
directory in argv[4], a writer first writes 4 KiB and fsyncs it 20 times in a file there, and
waits for the disk."""

import json
import os
import subprocess
import sys
import threading
import time

truth = {}


def timed(f):
    def run(*a):
        t = time.perf_counter()
        f(*a)
        truth[f.__name__] = truth.get(f.__name__, 0) + time.perf_counter() - t
    return run


def sleeper():
    for _ in range(20):
        time.sleep(0.02)


def holder(lock, held):
    with lock:
        held.set()
        time.sleep(0.2)


def contender(lock, held):
    held.wait()
    with lock:
        pass


def child():
    subprocess.run(["sleep", "0.3"])


def writer(directory):
    path = os.path.join(directory, "known_waits.dat")
    with open(path, "wb") as f:
        for _ in range(20):
            f.write(os.urandom(4096))
            f.flush()
            os.fsync(f.fileno())
    os.unlink(path)


def spinner(n):
    s = 0
    for i in range(n):
        s += i
    return s


def main():
    if len(sys.argv) > 4:
        timed(writer)(sys.argv[4])
    timed(sleeper)()
    lock, held = threading.Lock(), threading.Event()
    a = threading.Thread(target=timed(holder), args=(lock, held))
    b = threading.Thread(target=timed(contender), args=(lock, held))
    a.start()
    b.start()
    a.join()
    b.join()
    timed(child)()
    timed(spinner)(int(sys.argv[1]))


if __name__ == "__main__":
    for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 1):
        timed(main)()
    with open(sys.argv[2], "w") as f:
        json.dump(truth, f)
