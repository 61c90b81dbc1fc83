"""The bundled example: baz() calls bar() calls foo(), which burns CPU."""


def foo(n):
    f = 0
    for i in range(n):
        f += i
    return f


def bar(n):
    return foo(n)


def baz(n):
    return bar(n)


if __name__ == "__main__":
    import sys

    baz(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000)
