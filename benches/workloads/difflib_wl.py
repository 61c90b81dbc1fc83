"""difflib: unified_diff and ndiff on generated text."""
import difflib, sys, time


def main(n):
    a = ["line %d %s\n" % (i, "x" * (i % 13)) for i in range(400)]
    b = [l if i % 9 else l.upper() for i, l in enumerate(a)]
    for _ in range(n):
        list(difflib.unified_diff(a, b))
        list(difflib.ndiff(a[:60], b[:60]))


if __name__ == "__main__":
    t = time.perf_counter(); main(int(sys.argv[1])); print(time.perf_counter() - t)
