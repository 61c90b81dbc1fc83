"""perfpy's VMs as the tests see them: the share one boot of a VM (tests/vm/run-checks.sh NAME:
scripts/vm.sh booting scripts/build-vm.sh's image with the checks script) filled with its
results. scripts/test.sh boots every VM in the background beside the other steps and points
PERFPY_VM_RESULTS at a directory of shares, one per VM (RESULTS/NAME/); without it, a test
module boots its VM itself, once."""

import glob
import os
import pathlib
import subprocess
import time

import pytest

from conftest import ROOT

CACHE = os.path.expanduser(os.environ.get("PERFPY_VM_DIR", "~/.cache/perfpy"))
RESULTS = os.environ.get("PERFPY_VM_RESULTS")
#: The VMs scripts/test.sh boots (PERFPY_SKIP_VMS, PERFPY_SKIP_AARCH64 leave some out).
BOOTED = os.environ.get("PERFPY_VMS", "").split()
#: How long the tests wait for the boots scripts/test.sh started, all together: they begin
#: when their VM and wheel are built (a cold run builds the arm64 VM for about 20 minutes).
WAIT = 2400

_shares = {}
_deadline = []


def _wheel_dir(name):
    return os.path.join(ROOT, "dist-aarch64" if name == "arm64" else "dist")


def share(name, tmp_path_factory):
    """The share VM `name` left its results in (a pathlib.Path), after its one boot: the boot
    scripts/test.sh started (waited for), or one made here. Skips, saying what to run, when
    the VM or its wheel is not built."""
    if name in _shares:
        return _shares[name]
    if RESULTS:
        if name not in BOOTED:
            pytest.skip("scripts/test.sh did not boot the %s VM (PERFPY_SKIP_VMS or "
                        "PERFPY_SKIP_AARCH64)" % name)
        out = pathlib.Path(RESULTS, name)
        if not _deadline:
            _deadline.append(time.time() + WAIT)
        while not (out / "finished").exists():
            assert time.time() < _deadline[0], (
                "the %s VM's checks did not finish within %d minutes of the first wait (its "
                "log: %s.log)" % (name, WAIT // 60, out))
            time.sleep(5)
    else:
        if not os.path.exists(os.path.join(CACHE, "%s-vm" % name, ".perfpy-vm")):
            pytest.skip("no %s VM: scripts/build-vm.sh %s builds it (scripts/test.sh does)"
                        % (name, name))
        if not glob.glob(os.path.join(_wheel_dir(name), "perfpy-*.whl")):
            pytest.skip("no wheel in %s: scripts/build-wheels.sh (scripts/test.sh builds it)"
                        % _wheel_dir(name))
        out = tmp_path_factory.mktemp("%s-share" % name)
        subprocess.run([os.path.join(ROOT, "tests", "vm", "run-checks.sh"), name, str(out)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=3600)
    finished = (out / "finished").read_text().strip()
    log = out / "guest.log"
    console = out / "console.log"
    assert finished == "0", (name, finished,
                             log.read_text(errors="replace")[-4000:] if log.exists() else "no guest log",
                             console.read_text(errors="replace")[-2000:] if console.exists() else "")
    _shares[name] = out
    return out
