"""A multiprocessing Pool doing CPU work, with the start method given on the command line."""

import multiprocessing as mp
import os
import sys


def crunch(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return os.getpid(), s


if __name__ == "__main__":
    mp.set_start_method(sys.argv[1])
    with mp.Pool(2) as pool:
        pids = {pid for pid, _ in pool.map(crunch, [300000] * 24)}
    print(" ".join(str(p) for p in sorted(pids)))
