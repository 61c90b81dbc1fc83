"""numpy's C code and its BLAS, each called from a Python function of its own."""

import sys
import time

import numpy as np

rng = np.random.default_rng(0)
A = rng.random((256, 256))
B = rng.random((256, 256))
X = rng.random(400_000)


def matmul():
    return A @ B


def sort():
    return np.sort(X)


def ufuncs():
    return np.exp(X) + np.sin(X) * np.sqrt(X)


def main(seconds):
    end = time.time() + seconds
    while time.time() < end:
        matmul()
        sort()
        ufuncs()


main(float(sys.argv[1]) if len(sys.argv) > 1 else 3)
