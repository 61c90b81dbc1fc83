"""fork(): parent and child keep separate maps, in both directions, and nothing crashes."""


import pytest

from conftest import map_names, map_path, run, script, written_since


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
    assert not written_since(map_path(int(r.stdout)), r.started)


def test_a_child_forked_from_c_keeps_a_descriptor_it_reused(py, tmp_path):
    """With persist-after-fork, a child forked from C (no os.fork hooks) holds the parent's map
    descriptor until its first new function. If the program closed that number and opened a
    pipe under it meanwhile, perfpy must neither read from the pipe nor close it."""
    path = script(tmp_path, '''
        import ctypes, os, perfpy
        perfpy.set_persist_after_fork(True)
        perfpy.activate_stack_trampoline("perf")
        def before(): pass
        def after(): pass   # first run in the child
        before()
        libc = ctypes.CDLL(None, use_errno=True)
        pid = libc.fork()
        if pid == 0:
            # Nothing here may be Python code the parent didn't run (a comprehension before
            # 3.12, os.path.realpath): it would open the child's map first.
            mine = []
            parent_map = "/tmp/perf-%d.map" % os.getppid()
            for fd in os.listdir("/proc/self/fd"):
                try:
                    if os.readlink("/proc/self/fd/" + fd) == parent_map:
                        mine.append(int(fd))
                except OSError:
                    pass
            if len(mine) != 1:
                os._exit(4)
            r, w = os.pipe()
            os.dup2(w, mine[0])
            os.close(w)
            os.write(mine[0], b"still mine")
            after()   # the child's first stub: its own map is opened now
            os.write(mine[0], b"!")
            got = os.read(r, 100)
            os._exit(0 if got == b"still mine!" else 3)
        _, status = os.waitpid(pid, 0)
        print(pid, status >> 8)
    ''')
    r = run(py, [path]).check()
    child, code = (int(x) for x in r.stdout.split())
    assert code == 0, (code, r.stderr)
    assert "after" in names_for(child, path), map_names(child)
    assert r.stderr == "", r.stderr


@pytest.mark.parametrize("backend", ["perf", "perf_jit"])
def test_every_process_that_writes_a_file_enrols_on_the_roster(py, tmp_path, backend):
    """`perfpy record` names a roster file in PERFPY_ROSTER; each process that creates its perf
    map or jitdump (forked children, with and without persist-after-fork, included) appends
    its pid, so record can collect its file even if perf lost the fork record. A roster that
    doesn't exist is not created."""
    roster = tmp_path / "roster"
    roster.write_text("")
    path = script(tmp_path, '''
        import os, sys, perfpy
        def work(): pass
        work()
        kids = []
        for persist in (False, True, False):
            perfpy.set_persist_after_fork(persist)
            pid = os.fork()
            if pid == 0:
                def child_work(): pass
                child_work()
                os._exit(0)
            os.waitpid(pid, 0)
            kids.append(pid)
        pid = os.fork()
        if pid == 0:
            os._exit(0)   # runs nothing new: writes no file, so not enrolled
        os.waitpid(pid, 0)
        print(os.getpid(), *kids)
        print(pid)
    ''')
    r = run(py, [path], PERFPY_BACKEND=backend, PERFPY_ROSTER=str(roster)).check()
    enrolled, idle = r.stdout.splitlines()
    assert sorted(int(p) for p in roster.read_text().split()) == sorted(
        int(p) for p in enrolled.split())
    assert not written_since(map_path(int(idle)), r.started)
    assert not written_since("/tmp/jit-%s.dump" % idle, r.started)
    missing = tmp_path / "no-such-roster"
    run(py, [path], PERFPY_BACKEND=backend, PERFPY_ROSTER=str(missing)).check()
    assert not missing.exists()
