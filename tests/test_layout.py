"""Every struct offset perfpy hard-codes matches the interpreter's own headers."""

import os
import shutil
import subprocess
import sysconfig

import pytest

from conftest import ROOT, run

PROBE = os.path.join(ROOT, "tests", "probes", "layout.c")


def test_offsets_match_the_headers(py, tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the header probe")
    include = run(py.base, ["-c", "import sysconfig; print(sysconfig.get_paths()['include'])"]).check().stdout.strip()
    if not os.path.exists(os.path.join(include, "Python.h")):
        pytest.skip("CPython %s has no headers installed at %s" % (py.minor, include))
    exe = str(tmp_path / "layout")
    subprocess.run([cc, "-I", include, "-I", os.path.join(include, "internal"), PROBE, "-o", exe],
                   check=True, capture_output=True, text=True)
    from_headers = dict(
        (k, int(v)) for k, v in (l.split() for l in subprocess.check_output([exe], text=True).splitlines())
    )
    ours = run(py, ["-c", "import perfpy; print(perfpy.build_info()['offsets'])"]).check()
    assert eval(ours.stdout) == from_headers
