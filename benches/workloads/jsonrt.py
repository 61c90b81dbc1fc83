"""stdlib json round trips (the C accelerator does most of the work)."""
import json, sys, time


def tree(depth, width):
    if depth == 0:
        return {"leaf": [1, 2.5, "text", None, True]}
    return {"k%d" % i: tree(depth - 1, width) for i in range(width)}


def main(n):
    data = tree(4, 6)
    for _ in range(n):
        assert json.loads(json.dumps(data)) == data


if __name__ == "__main__":
    t = time.perf_counter(); main(int(sys.argv[1])); print(time.perf_counter() - t)
