"""A hot loop with few calls."""
import sys, time


def work():
    x = 0
    i = 0
    while i < 1_000_000:
        x += i * 3 % 7
        i += 1
    return x


def main(n):
    for _ in range(n):
        work()


if __name__ == "__main__":
    t = time.perf_counter(); main(int(sys.argv[1])); print(time.perf_counter() - t)
