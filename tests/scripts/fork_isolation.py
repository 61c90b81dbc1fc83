# A parent that names 200 functions, forks inside foo() <- bar() <- baz(), then names 200
# more; the child runs a chain of its own and exits without cleanup. Prints the child's pid.
import os


def foo_fork(): pass
def bar_fork(): foo_fork()
def baz_fork(): bar_fork()


def foo():
    for i in range(200):
        exec("def p%d(): pass" % i, globals())
        globals()["p%d" % i]()
    pid = os.fork()
    if pid == 0:
        print(os.getpid(), flush=True)
        baz_fork()
        os._exit(0)          # no exit handlers: nothing buffered may be lost
    _, status = os.waitpid(pid, 0)
    assert status == 0
    for i in range(200):
        exec("def q%d(): pass" % i, globals())
        globals()["q%d" % i]()


def bar(): foo()
def baz(): bar()


baz()
