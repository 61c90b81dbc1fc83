#!/usr/bin/env python3
"""Mirrors the checkout's Cargo workspace into one fixed directory and prints its path.

Cargo keys a path crate's build on the crate's absolute path and its files' mtimes, so every
fresh clone (CI's, at a new path, with new mtimes) rebuilds all of perfpy's crates, for each
interpreter, and leaves one more copy of every artifact in the shared target directory. Built
from here instead, a crate is rebuilt only when one of its files changed: a file whose bytes
are the same is left alone, mtime and all.

    scripts/build-tree.py TREE     # mirror into TREE (created if missing), print TREE

What is mirrored: the workspace (Cargo.toml, Cargo.lock, .cargo/, crates/), the fuzz targets'
corpus that `cargo test` replays (fuzz/), and what maturin packages (pyproject.toml, python/,
README.md) with the build backend pyproject.toml names (build_backend/), so that pip builds
the tree too (tests/test_source_install.py does). Files the checkout ignores (.gitignore) are
left out; files it no longer has are removed from the tree.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP_FILES = {"Cargo.toml", "Cargo.lock", "pyproject.toml", "README.md"}
TOP_DIRS = {".cargo", "build_backend", "crates", "fuzz", "python"}


def wanted(path):
    top = path.split("/", 1)[0]
    return path in TOP_FILES or (top in TOP_DIRS and "/" in path)


def walked_files():
    """Without git (a source tarball): every file under the mirrored paths but build output."""
    names = [n for n in TOP_FILES if os.path.isfile(os.path.join(HERE, n))]
    for top in TOP_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(HERE, top)):
            dirnames[:] = [d for d in dirnames if d not in ("target", "artifacts", "coverage",
                                                            "__pycache__")]
            names += [os.path.relpath(os.path.join(dirpath, f), HERE) for f in filenames
                      if not f.endswith((".so", ".pyc"))]
    return names


def checkout_files():
    """The checkout's files, tracked or not, that .gitignore doesn't exclude."""
    try:
        out = subprocess.run(["git", "-C", HERE, "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], check=True, capture_output=True).stdout
        names = [n for n in out.decode("utf-8", "surrogateescape").split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = walked_files()
    # A file deleted from the working tree but not yet from the index is gone.
    return sorted(n for n in set(names) if wanted(n) and os.path.isfile(os.path.join(HERE, n)))


def same(a, b):
    try:
        if os.path.getsize(a) != os.path.getsize(b):
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            return fa.read() == fb.read()
    except FileNotFoundError:
        return False


def mirror(tree):
    files = checkout_files()
    keep = set(files)
    written = 0
    for name in files:
        src, dst = os.path.join(HERE, name), os.path.join(tree, name)
        mode = os.stat(src).st_mode & 0o777
        if not same(src, dst):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            tmp = dst + ".build-tree-tmp"
            with open(src, "rb") as fs, open(tmp, "wb") as fd:
                fd.write(fs.read())
            os.replace(tmp, dst)
            written += 1
        if os.stat(dst).st_mode & 0o777 != mode:
            os.chmod(dst, mode)
    removed = 0
    for top in TOP_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(tree, top), topdown=False):
            for f in filenames:
                rel = os.path.relpath(os.path.join(dirpath, f), tree)
                if rel not in keep and not rel.startswith("fuzz/target/"):
                    os.unlink(os.path.join(dirpath, f))
                    removed += 1
            if dirpath != os.path.join(tree, top) and not os.listdir(dirpath):
                os.rmdir(dirpath)
    print("build-tree: %s: %d files, %d written, %d removed" % (tree, len(files), written, removed),
          file=sys.stderr)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: scripts/build-tree.py TREE")
    tree = os.path.abspath(sys.argv[1])
    os.makedirs(tree, exist_ok=True)
    mirror(tree)
    print(tree)


if __name__ == "__main__":
    main()
