"""ast.unparse of a stdlib module: a call-heavy visitor."""
import ast, inspect, sys, time
import difflib


def main(n):
    tree = ast.parse(inspect.getsource(difflib))
    for _ in range(n):
        ast.unparse(tree)


if __name__ == "__main__":
    if not hasattr(ast, "unparse"):  # 3.8
        print("nan"); sys.exit(0)
    t = time.perf_counter(); main(int(sys.argv[1])); print(time.perf_counter() - t)
