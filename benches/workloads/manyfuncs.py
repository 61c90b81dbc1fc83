"""N distinct functions (made with exec), called round-robin for about `seconds`."""
import sys, time


def main(n, seconds):
    ns = {}
    for i in range(n):
        exec("def f%d(x):\n    s = 0\n    for j in range(x):\n        s += j\n    return s\n" % i, ns)
    funcs = [ns["f%d" % i] for i in range(n)]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for f in funcs:
            f(50)


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]))
