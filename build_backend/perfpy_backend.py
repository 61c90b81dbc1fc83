"""perfpy's PEP 517 build backend: maturin's, plus the perfpy command.

maturin builds the extension (crates/ext) into a wheel, but it packages one crate only, and
the perfpy command is another (crates/cli, a native program with no Python linked). This
backend delegates every hook to maturin and adds what maturin can't do:

* build_wheel: after maturin's wheel, ``cargo build --release`` of crates/cli, and the
  binary added to the wheel as ``perfpy/_bin/perfpy`` (mode 0755, its RECORD row written), so
  ``pip install .`` or an sdist install gives the whole product, as the released wheel does.
* build_editable: the same binary, copied into the source tree's package
  (``python/perfpy/_bin/perfpy``, ignored by git), where the editable install imports from;
  and maturin's .pth for that renamed, so perfpy's own start-up .pth doesn't overwrite it.
* build_sdist: maturin's sdist lists only the extension's crates as workspace members (it
  rewrites the workspace Cargo.toml); the sdist gets the checkout's Cargo.toml back, so the
  command builds from it (pyproject.toml's [tool.maturin] include adds crates/cli and this
  directory).

The command is built by cargo with the environment pip gives the backend (CARGO_TARGET_DIR,
CARGO_BUILD_JOBS, RUSTFLAGS... apply to it as to maturin's build), and these of maturin's
build arguments (MATURIN_PEP517_ARGS, or the config setting ``maturin.build-args``) are passed
on: --target, --target-dir, --profile, -j/--jobs, --config, --locked, --frozen, --offline,
--ignore-rust-version, -v/--verbose, -q/--quiet, --color, and --strip (as
``profile.<profile>.strip``). --zig is not: the command is linked by the host's toolchain
(scripts/build-wheels.sh builds the manylinux wheel perfpy ships).

prepare_metadata_for_build_wheel is maturin's: the command changes no metadata, only the
wheel's files and RECORD.

Runs on any Python pip builds with (3.8+).
"""

import base64
import csv
import gzip
import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import zipfile

import maturin
from maturin import (  # PEP 517 hooks, re-exported as they are
    get_requires_for_build_editable,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)

__all__ = [
    "build_editable", "build_sdist", "build_wheel", "get_requires_for_build_editable",
    "get_requires_for_build_sdist", "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable", "prepare_metadata_for_build_wheel",
]

#: Where the command goes inside the wheel (what python/perfpy/__main__.py runs).
COMMAND = "perfpy/_bin/perfpy"
#: The crate and binary target of the command, relative to the source tree.
CLI_MANIFEST = os.path.join("crates", "cli", "Cargo.toml")
BIN_NAME = "perfpy"
#: Where an editable install's package lives (pyproject.toml: python-source = "python").
EDITABLE_PACKAGE = os.path.join("python", "perfpy")
#: The name of the .pth that puts python/ on sys.path in an editable install.
EDITABLE_PTH = "__editable__.perfpy.pth"

# maturin warns that pip won't use it when build-backend isn't "maturin"; through this
# backend, pip does.
os.environ.setdefault("MATURIN_NO_MISSING_BUILD_BACKEND_WARNING", "1")

#: maturin build options cargo takes the same way: with a value, and flags.
_WITH_VALUE = {"--target", "--target-dir", "--profile", "-j", "--jobs", "--config", "--color"}
_FLAGS = {"--locked", "--frozen", "--offline", "--ignore-rust-version", "-v", "--verbose", "-q",
          "--quiet"}
#: maturin options whose value is optional (`--strip` or `--strip true`).
_OPTIONAL_VALUE = {"--strip"}


def _fail(message):
    """Stops the build with `message` on stderr (no traceback: the message is the help)."""
    sys.stderr.write("\nperfpy build: %s\n\n" % message)
    sys.stderr.flush()
    raise SystemExit(1)


def _maturin_args(config_settings):
    return list(maturin.get_maturin_pep517_args(config_settings))


def cargo_args(maturin_args):
    """The cargo options for the command's build, from maturin's build arguments."""
    out = []
    profile = "release"
    strip = False
    args = list(maturin_args)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith("-j") and len(arg) > 2 and arg[2] != "=":  # -j4
            arg = "-j=" + arg[2:]
        elif len(arg) > 2 and arg[0] == "-" and set(arg[1:]) == {"v"}:  # -vv
            out.append(arg)
            continue
        name, eq, value = arg.partition("=")
        if name in _WITH_VALUE:
            if not eq:
                if i >= len(args):
                    _fail("maturin build argument %s has no value" % name)
                value = args[i]
                i += 1
            if name == "--profile":
                profile = value
            else:
                out += [name, value]
        elif name in _FLAGS:
            out.append(name)
        elif name in _OPTIONAL_VALUE:
            if not eq and i < len(args) and args[i] in ("true", "false"):
                value = args[i]
                i += 1
            strip = (value or "true") == "true"
    if profile == "release":
        out.append("--release")
    else:
        out += ["--profile", profile]
    if strip:
        out += ["--config", "profile.%s.strip=true" % profile]
    return out


def _ensure_cargo():
    """Makes sure cargo is on PATH before maturin and the command's build run.

    Where it isn't, maturin installs Rust into a cache directory with puccinialin (which its
    get_requires_for_build_wheel asked pip for) unless MATURIN_NO_INSTALL_RUST is set; that
    is done here once, for both builds, by putting that Rust on this process's PATH."""
    if shutil.which("cargo"):
        return
    if not os.environ.get("MATURIN_NO_INSTALL_RUST"):
        try:
            from puccinialin import setup_rust
        except ImportError:
            pass
        else:
            print("perfpy build: cargo is not on PATH; installing Rust into a cache directory "
                  "(as maturin does)")
            sys.stdout.flush()
            try:
                os.environ.update(setup_rust())
            except Exception as e:  # a download refused, a failed install: say so, and how
                sys.stderr.write("perfpy build: installing Rust failed: %s\n" % e)
            if shutil.which("cargo"):
                return
    _fail("cargo, Rust's build tool, is not on PATH. perfpy builds from source with it: its "
          "extension and the perfpy command are written in Rust. Install Rust with rustup "
          "(https://rustup.rs: curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh), "
          "or your distribution's cargo package, then run the install again. Or install a "
          "perfpy wheel, which needs no Rust.")


def build_command(source_dir, maturin_args):
    """Builds the perfpy command with cargo; returns the binary's path."""
    manifest = os.path.join(source_dir, CLI_MANIFEST)
    if not os.path.isfile(manifest):
        _fail("%s is missing: this source tree has no perfpy command to build (an sdist made "
              "by `maturin sdist` directly? make it with `python -m build --sdist`)" % manifest)
    cmd = ["cargo", "build", "--manifest-path", manifest, "--bin", BIN_NAME,
           "--message-format=json-render-diagnostics"] + cargo_args(maturin_args)
    print("perfpy build: the perfpy command: %s" % " ".join(shlex.quote(c) for c in cmd))
    sys.stdout.flush()
    # Cargo's progress and diagnostics go to stderr as they come; its JSON messages to stdout.
    proc = subprocess.Popen(cmd, cwd=source_dir, stdout=subprocess.PIPE)
    executable = None
    for line in proc.stdout:
        try:
            msg = json.loads(line)
        except ValueError:
            sys.stderr.write(line.decode("utf-8", "replace"))
            continue
        target = msg.get("target") or {}
        if (msg.get("reason") == "compiler-artifact" and target.get("name") == BIN_NAME
                and "bin" in target.get("kind", ())):
            executable = msg.get("executable")
    if proc.wait() != 0:
        _fail("building the perfpy command failed (`%s` exited with %d; cargo's messages are "
              "above). perfpy needs Rust 1.88 or newer: `rustc --version` says which this is, "
              "`rustup update` updates a rustup installation." % (" ".join(cmd[:2]), proc.returncode))
    if not executable or not os.path.isfile(executable):
        _fail("cargo built no %s binary (no artifact message named it)" % BIN_NAME)
    return executable


def _record_row(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return [path, "sha256=" + digest, str(len(data))]


def rewrite_wheel(wheel, add=None, rename=None):
    """Rewrites `wheel` in place: `add` maps a path to (bytes, mode) to add (replacing a file
    of that path), `rename` maps a path to a new one; RECORD gets their rows. Files keep their
    order, but added ones go before the .dist-info files, which stay last, RECORD at the end."""
    add = add or {}
    rename = rename or {}
    tmp = wheel + ".part"
    with zipfile.ZipFile(wheel) as src:
        infos = [i for i in src.infolist() if i.filename not in add]
        records = [i for i in infos if i.filename.endswith(".dist-info/RECORD")
                   and i.filename.count("/") == 1]
        if len(records) != 1:
            _fail("maturin's wheel %s has %d RECORD files, not one" % (wheel, len(records)))
        record = records[0]
        rows = [r for r in csv.reader(io.StringIO(src.read(record).decode("utf-8")))
                if r and r[0] not in add and r[0] != record.filename]
        rows = [[rename.get(r[0], r[0])] + r[1:] for r in rows]
        rows += [_record_row(path, data) for path, (data, _) in sorted(add.items())]
        rows.append([record.filename, "", ""])
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        first_meta = next(n for n, i in enumerate(infos) if ".dist-info/" in i.filename)
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for n, info in enumerate(infos):
                if n == first_meta:
                    for path, (data, mode) in sorted(add.items()):
                        new = zipfile.ZipInfo(path, date_time=record.date_time)
                        new.external_attr = (0o100000 | mode) << 16
                        new.compress_type = zipfile.ZIP_DEFLATED
                        dst.writestr(new, data)
                data = out.getvalue().encode("utf-8") if info is record else src.read(info)
                if info.filename in rename:
                    renamed = zipfile.ZipInfo(rename[info.filename], date_time=info.date_time)
                    renamed.external_attr = info.external_attr
                    renamed.compress_type = info.compress_type
                    info = renamed
                dst.writestr(info, data)
    os.replace(tmp, wheel)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _ensure_cargo()
    name = maturin.build_wheel(wheel_directory, config_settings, metadata_directory)
    binary = build_command(os.getcwd(), _maturin_args(config_settings))
    with open(binary, "rb") as f:
        # A perfpy/_bin/perfpy maturin found in python/ (left by an editable install) is replaced.
        rewrite_wheel(os.path.join(wheel_directory, name), add={COMMAND: (f.read(), 0o755)})
    print("perfpy build: added the perfpy command to %s as %s" % (name, COMMAND))
    return name


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """maturin's editable wheel (the package is imported from python/perfpy, where maturin
    puts the extension), and the command put beside it there, as maturin does the extension.

    maturin's wheel puts python/ on sys.path with a perfpy.pth, the name of perfpy's own
    start-up hook (python/perfpy.data/purelib/perfpy.pth), which would overwrite it; it is
    renamed so that it sorts, and so runs, before the hook, which imports perfpy."""
    _ensure_cargo()
    name = maturin.build_editable(wheel_directory, config_settings, metadata_directory)
    rewrite_wheel(os.path.join(wheel_directory, name), rename={"perfpy.pth": EDITABLE_PTH})
    binary = build_command(os.getcwd(), _maturin_args(config_settings))
    bin_dir = os.path.join(os.getcwd(), EDITABLE_PACKAGE, "_bin")
    os.makedirs(bin_dir, exist_ok=True)
    dest = os.path.join(bin_dir, BIN_NAME)
    tmp = dest + ".part"
    shutil.copyfile(binary, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)
    print("perfpy build: the perfpy command is at %s" % dest)
    return name


def build_sdist(sdist_directory, config_settings=None):
    name = maturin.build_sdist(sdist_directory, config_settings)
    restore_workspace_manifest(os.path.join(sdist_directory, name), "Cargo.toml")
    return name


def restore_workspace_manifest(sdist, manifest):
    """Puts the checkout's workspace `manifest` back into `sdist` (maturin's rewrite drops
    crates/cli from its members), and checks that every member's manifest is in the sdist."""
    with open(manifest, "rb") as f:
        data = f.read()
    with tarfile.open(sdist, "r:gz") as src:
        members = src.getmembers()
        top = members[0].name.split("/", 1)[0]
        path = top + "/" + manifest
        contents = [(m, src.extractfile(m).read() if m.isfile() else None) for m in members]
    names = {m.name for m in members}
    if path not in names:
        os.unlink(sdist)
        _fail("maturin's sdist %s has no %s" % (sdist, path))
    try:
        import tomllib
    except ImportError:  # Python < 3.11: maturin requires tomli there
        import tomli as tomllib
    workspace_members = tomllib.loads(data.decode("utf-8"))["workspace"]["members"]
    missing = [m for m in workspace_members if "%s/%s/Cargo.toml" % (top, m) not in names]
    if missing:
        os.unlink(sdist)
        _fail("the sdist lacks the workspace members %s: add them to [tool.maturin] include in "
              "pyproject.toml" % ", ".join(missing))
    tmp = sdist + ".part"
    # The same gzip stream settings as maturin's (no name, the members' own times).
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as dst:
                for member, content in contents:
                    if member.name == path:
                        content = data
                        member.size = len(data)
                    dst.addfile(member, io.BytesIO(content) if content is not None else None)
    os.replace(tmp, sdist)
