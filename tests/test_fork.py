"""fork(): parent and child keep separate maps, in both directions, and nothing crashes."""

import os

from conftest import map_names, map_path, run, script


def names_for(pid, path):
    return {n[len("py::"):-len(":" + path)] for n in map_names(pid) if n.endswith(":" + path)}




def test_child_announces_functions_compiled_before_the_fork(py, tmp_path):
    """A function the parent ran is named in the child's map when the child runs it."""
    path = script(tmp_path, '''
        import os
        def shared(): pass
        def parent_only(): pass
        shared(); parent_only()
        pid = os.fork()
        if pid == 0:
            print(os.getpid(), flush=True)
            shared()
            os._exit(0)
        os.waitpid(pid, 0)
        shared()
    ''')
    r = run(py, [path], PERFPY_BACKEND="perf").check()
    child = int(r.stdout)
    parent_lines = [l for l in open(map_path(r.pid)) if l.rstrip().endswith(":" + path)]
    child_lines = [l for l in open(map_path(child)) if l.rstrip().endswith(":" + path)]
    shared_parent = [l for l in parent_lines if " py::shared:" in l]
    shared_child = [l for l in child_lines if " py::shared:" in l]
    assert len(shared_parent) == 1 and shared_child == shared_parent  # same stub, announced again
    assert "parent_only" not in names_for(child, path)


def test_many_code_objects_then_fork_then_gc(py, tmp_path):
    path = script(tmp_path, '''
        import gc, os
        for round_ in range(20):
            ns = {}
            for i in range(50):
                exec("def f%d(): return %d" % (i, i), ns)
                ns["f%d" % i]()
            pid = os.fork()
            if pid == 0:
                more = {}
                for i in range(50):
                    exec("def g%d(): return %d" % (i, i), more)
                    more["g%d" % i]()
                del ns, more
                gc.collect()
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            assert status == 0, status
            del ns
            gc.collect()
        print("ok")
    ''')
    r = run(py, [path], PERFPY_BACKEND="perf").check()
    assert r.stdout == "ok\n"


def test_exec_after_fork_leaves_no_map(py, tmp_path):
    """A child that only exec()s never writes a map (subprocess, fork+exec)."""
    path = script(tmp_path, '''
        import os
        def f(): pass
        f()
        pid = os.fork()
        if pid == 0:
            os.execv("/bin/true", ["true"])
        os.waitpid(pid, 0)
        print(pid)
    ''')
    r = run(py, [path], PERFPY_BACKEND="perf").check()
    assert not os.path.exists(map_path(int(r.stdout)))
