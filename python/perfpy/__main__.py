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
            "perfpy: this perfpy installation has no perfpy command (%s is missing): it was "
            "built from source without it. Install a perfpy wheel (pip install perfpy), or "
            "build the command: cargo install --path crates/cli\n" % exe
        )
        return 2
    try:
        os.execv(exe, ["perfpy"] + sys.argv[1:])
    except OSError as e:
        sys.stderr.write("perfpy: cannot run %s: %s\n" % (exe, e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
