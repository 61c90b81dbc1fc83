"""Pure-Python decimal arithmetic (_pydecimal): realistic object-oriented code."""
import sys, time
import _pydecimal as D


def main(n):
    D.getcontext().prec = 40
    x = D.Decimal("1.2345678901234567890123")
    for _ in range(n):
        for i in range(1, 100):
            d = D.Decimal(i)
            (x * d / (d + 1)).sqrt()


if __name__ == "__main__":
    t = time.perf_counter(); main(int(sys.argv[1])); print(time.perf_counter() - t)
