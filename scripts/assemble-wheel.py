#!/usr/bin/env python3
"""Merges perfpy's per-interpreter wheels (maturin's, one extension build each) and the perfpy
command into the one wheel perfpy ships:

    perfpy-<version>-cp38.cp39...cp315-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl

It holds ``perfpy/_native.cpython-3XY-x86_64-linux-gnu.so`` for every interpreter given (each
interpreter's import system picks its own by file name) and ``perfpy/_bin/perfpy``, so one
install serves any CPython 3.8-3.15 and ``perfpy record`` can lend the package to an
interpreter that doesn't have it. Deterministic: sorted entries, fixed timestamps.

usage: assemble-wheel.py --cli BINARY --out DIR WHEEL...
"""

import argparse
import base64
import hashlib
import os
import re
import sys
import zipfile

WHEEL_NAME = re.compile(
    r"^(?P<name>[^-]+)-(?P<version>[^-]+)-(?P<py>cp3\d+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$"
)
NATIVE = re.compile(r"^perfpy/_native\.cpython-3\d+[a-z]*-[^/]+\.so$")
EPOCH = (1980, 1, 1, 0, 0, 0)


def fail(message):
    sys.exit("assemble-wheel: " + message)


def record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (path, digest, len(data))


def read(wheel):
    with zipfile.ZipFile(wheel) as z:
        return {i.filename: (z.read(i), i.external_attr) for i in z.infolist() if not i.is_dir()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cli", required=True, help="the perfpy command (a manylinux binary)")
    ap.add_argument("--out", required=True, help="directory for the merged wheel")
    ap.add_argument("wheels", nargs="+")
    args = ap.parse_args()

    parsed = []
    for w in args.wheels:
        m = WHEEL_NAME.match(os.path.basename(w))
        if not m:
            fail("%s is not a per-interpreter perfpy wheel name" % w)
        parsed.append((int(m.group("py")[3:]), m, w))
    parsed.sort(key=lambda t: t[0])
    versions = {m.group("version") for _, m, _ in parsed}
    if len(versions) != 1:
        fail("wheels of different versions: %s" % ", ".join(sorted(versions)))
    version = versions.pop()
    plats = {m.group("plat") for _, m, _ in parsed}
    if len(plats) != 1:
        fail("wheels for different platforms: %s" % ", ".join(sorted(plats)))
    plat = plats.pop()  # e.g. manylinux2014_x86_64.manylinux_2_17_x86_64
    dist_info = "perfpy-%s.dist-info" % version

    files = {}
    natives = []
    for _, m, w in parsed:
        contents = read(w)
        so = [p for p in contents if NATIVE.match(p)]
        if len(so) != 1:
            fail("%s should hold one extension build, holds %s" % (w, so))
        natives.append(so[0])
        for path, (data, attr) in contents.items():
            if path.startswith(dist_info + "/") and path.rsplit("/", 1)[1] in ("WHEEL", "RECORD"):
                continue
            if path in files and "/sboms/" in path:
                continue  # the same bill of materials, with its own serial number and time
            if path in files and path not in so and files[path][0] != data:
                fail("%s differs between the wheels (%s): build them from one tree" % (path, w))
            files[path] = (data, attr)
    if len(set(natives)) != len(natives):
        fail("two wheels for one interpreter: %s" % natives)

    with open(args.cli, "rb") as f:
        files["perfpy/_bin/perfpy"] = (f.read(), (0o100755 << 16))
    if not any(p.endswith("/entry_points.txt") for p in files):
        fail("no entry_points.txt: pyproject.toml's [project.scripts] is missing perfpy")

    pys = [m.group("py") for _, m, _ in parsed]
    plat_tags = sorted(plat.split("."), key=lambda t: (not t.startswith("manylinux_"), t))
    lines = ["Wheel-Version: 1.0", "Generator: perfpy scripts/assemble-wheel.py",
             "Root-Is-Purelib: false"]
    lines += ["Tag: %s-none-%s" % (py, p) for py in pys for p in plat_tags]
    files[dist_info + "/WHEEL"] = (("\n".join(lines) + "\n").encode(), 0o100644 << 16)

    record = dist_info + "/RECORD"
    order = sorted(p for p in files if not p.startswith(dist_info + "/"))
    order += sorted(p for p in files if p.startswith(dist_info + "/"))
    rows = [record_line(p, files[p][0]) for p in order] + [record + ",,"]
    files[record] = (("\n".join(rows) + "\n").encode(), 0o100644 << 16)
    order.append(record)

    name = "perfpy-%s-%s-none-%s.whl" % (version, ".".join(pys), ".".join(plat_tags))
    os.makedirs(args.out, exist_ok=True)
    out = os.path.join(args.out, name)
    tmp = out + ".part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for p in order:
            data, attr = files[p]
            info = zipfile.ZipInfo(p, EPOCH)
            info.external_attr = attr or (0o100644 << 16)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    os.replace(tmp, out)
    print(out)


if __name__ == "__main__":
    main()
