"""Call-heavy recursion: the worst case for any eval-frame hook."""
import sys, time


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def main(n):
    for _ in range(n):
        fib(25)


if __name__ == "__main__":
    t = time.perf_counter(); main(int(sys.argv[1])); print(time.perf_counter() - t)
