import os, sys
def child_work(n):
    s = 0
    for i in range(n):
        s += i
    return s
def parent_work(n):
    return child_work(n)
def outer():
    pid = os.fork()
    if pid == 0:
        child_work(int(sys.argv[1]))
        os._exit(0)
    parent_work(int(sys.argv[1]) // 4)
    os.waitpid(pid, 0)
outer()
