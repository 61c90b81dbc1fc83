"""``python -m perfpy`` and the ``perfpy`` command: run the perfpy CLI.

The CLI is a native program shipped inside this package (``perfpy/_bin/perfpy``); this
process becomes it (``exec``), so signals, exit status and the terminal are the CLI's own.
"""

import os
import sys


def command():
    """The path of the perfpy CLI this package ships."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "perfpy")


def main():
    exe = command()
    if not os.access(exe, os.X_OK):
        sys.stderr.write(
            "perfpy: this perfpy installation has no perfpy command (%s is missing or not "
            "executable). A wheel has it, and so does a build from source by pip (pip install "
            "., an sdist); maturin run by hand (maturin develop, maturin build) builds the "
            "extension only. Reinstall perfpy with pip, or build the command with cargo "
            "build --release -p perfpy-cli and copy target/release/perfpy to that path.\n" % exe
        )
        return 2
    try:
        os.execv(exe, ["perfpy"] + sys.argv[1:])
    except OSError as e:
        sys.stderr.write("perfpy: cannot run %s: %s\n" % (exe, e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
