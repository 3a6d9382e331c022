#!/usr/bin/env python3
"""Writes the package index of the build benchmark (scripts/bench/build.sh).

    make-bench-index.py DIR

DIR receives a PEP 503 "simple" index of generated pure-python wheels, shaped
like the dependencies of a NeMo-RL image (a big framework every env needs, two
inference backends sharing a package, a training backend, a cache-only extra,
a dev group), big enough that building an image from them is real work:
~200 MB of wheels, ~400 MB and ~12,000 files installed.

    DIR/simple/index.html, DIR/simple/<name>/index.html   (#sha256=, PEP 658 metadata)
    DIR/files/<wheel>, DIR/files/<wheel>.metadata
    DIR/packages.json        name, version, requires, file, sha256, size, files, unpacked
    DIR/.complete            written last; a DIR with it is reused as it is

Every byte is deterministic (seeded PRNG, fixed zip times, sorted entries), so
the wheels' digests, and the lock made from them, are the same on every run.

Wheel contents: python modules (text that compresses ~4x, as real sources do)
and "shared objects" (binary data that compresses ~1.5x, as real .so files
do), spread over sub-packages of at most 60 files.
"""
import base64
import hashlib
import html
import io
import json
import os
import random
import re
import shutil
import sys
import zipfile

MB = 1024 * 1024

# name -> (requires-dist, python MB, binary MB, modules, binaries)
# (sizes unpacked; the generator splits them evenly over the files)
PACKAGES = {
    # [project] dependencies: in every venv (NeMo RL: torch, ray, transformers, ...)
    "bench-numpy": ([], 6, 14, 300, 4),
    "bench-torch": (["bench-numpy"], 24, 70, 1400, 10),
    "bench-ray": (["bench-numpy"], 12, 18, 800, 4),
    "bench-transformers": (["bench-torch", "bench-tokenizers"], 30, 0, 2200, 0),
    "bench-tokenizers": ([], 2, 8, 60, 1),
    # many small packages, as a real lock has
    **{"bench-util%02d" % i: ([], 0.4, 0.2, 40, 1) for i in range(12)},
    # extra vllm (inference): vllm + xformers + the package shared with sglang
    "bench-vllm": (["bench-xformers", "bench-infer-common", "bench-torch"], 16, 30, 1000, 6),
    "bench-xformers": (["bench-torch"], 2, 18, 100, 3),
    "bench-infer-common": (["bench-torch"], 8, 10, 500, 2),
    # extra sglang (inference)
    "bench-sglang": (["bench-infer-common", "bench-torch"], 12, 14, 800, 3),
    # extra mcore (training)
    "bench-megatron": (["bench-transformer-engine", "bench-torch"], 16, 8, 1100, 2),
    "bench-transformer-engine": (["bench-torch"], 3, 22, 120, 4),
    # extra automodel: cache only (no venv)
    "bench-automodel": (["bench-transformers"], 8, 4, 500, 1),
    # group dev (main venv)
    "bench-pytest": ([], 4, 0, 300, 0),
}
VERSION = "1.0.0"
ZIP_TIME = (2020, 1, 1, 0, 0, 0)
FORMAT = "bench-index v1"  # bump when the output changes; a DIR of another format is rebuilt

WORDS = None


def words():
    global WORDS
    if WORDS is None:
        r = random.Random("dockless-bench-words")
        letters = "abcdefghijklmnopqrstuvwxyz"
        WORDS = ["".join(r.choice(letters) for _ in range(r.randint(3, 10))) for _ in range(6000)]
    return WORDS


def module_text(r, size):
    """Python-looking source of about `size` bytes, compressing about 4x."""
    w = words()
    out = ['"""Generated module of the dockless build benchmark."""\n', "import os\n\n"]
    n = sum(len(s) for s in out)
    while n < size:
        name = "_".join(r.choices(w, k=2))
        args = ", ".join(r.choices(w, k=r.randint(1, 4)))
        lines = ["\n\ndef %s(%s):\n" % (name, args),
                 '    """%s."""\n' % " ".join(r.choices(w, k=r.randint(4, 12))).capitalize()]
        for _ in range(r.randint(3, 9)):
            a, b, c = r.choices(w, k=3)
            kind = r.randrange(4)
            if kind == 0:
                lines.append("    %s = %s.%s(%d, %r)\n" % (a, b, c, r.getrandbits(20), r.choice(w)))
            elif kind == 1:
                lines.append("    if %s > 0x%x:\n        return %s\n" % (a, r.getrandbits(32), b))
            elif kind == 2:
                lines.append("    for %s in %s:\n        %s += %s\n" % (a, b, c, a))
            else:
                lines.append("    %s = [%s]\n" % (a, ", ".join(str(r.getrandbits(16)) for _ in range(6))))
        lines.append("    return %s\n" % r.choice(w))
        s = "".join(lines)
        out.append(s)
        n += len(s)
    return "".join(out).encode()


def binary_data(r, size):
    """Binary bytes compressing about 1.5x: random blocks with runs and repeats between."""
    parts = []
    n = 0
    while n < size:
        k = r.randrange(3)
        block = 4096
        if k == 0:
            parts.append(b"\0" * (block // 2) + r.randbytes(block // 2))
        else:
            parts.append(r.randbytes(block))
        n += block
    return b"".join(parts)[:size]


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(name, requires, py_mb, bin_mb, modules, binaries):
    r = random.Random("dockless-bench:" + name)
    mod = name.replace("-", "_")
    dist_info = "%s-%s.dist-info" % (mod, VERSION)
    files = []
    deps = [d.replace("-", "_") for d in requires]
    files.append(("%s/__init__.py" % mod, (
        '"""%s: generated package of the dockless build benchmark."""\n' % name
        + "".join("import %s  # noqa: F401\n" % d for d in deps)
        + "VALUE = %r\n" % name).encode()))
    per_mod = int(py_mb * MB / max(modules, 1))
    for i in range(modules):
        sub = "sub%03d" % (i // 60)
        if i % 60 == 0:
            files.append(("%s/%s/__init__.py" % (mod, sub), b""))
        files.append(("%s/%s/m%04d.py" % (mod, sub, i), module_text(r, per_mod)))
    per_bin = int(bin_mb * MB / max(binaries, 1))
    for i in range(binaries):
        files.append(("%s/_lib/lib%s_%d.so" % (mod, mod, i), binary_data(r, per_bin)))
    meta = ("Metadata-Version: 2.1\nName: %s\nVersion: %s\n"
            "Summary: generated package of the dockless build benchmark\nLicense: MIT\n" % (name, VERSION)
            + "".join("Requires-Dist: %s\n" % d for d in requires)).encode()
    files.sort()
    files.append(("%s/METADATA" % dist_info, meta))
    files.append(("%s/WHEEL" % dist_info, b"Wheel-Version: 1.0\nGenerator: dockless-bench (1.0)\n"
                  b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    files.append(("%s/top_level.txt" % dist_info, (mod + "\n").encode()))
    record_name = "%s/RECORD" % dist_info
    record = "".join("%s,%s,%d\n" % (p, record_hash(b), len(b)) for p, b in files) + "%s,,\n" % record_name
    files.append((record_name, record.encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, data in files:
            zi = zipfile.ZipInfo(path, date_time=ZIP_TIME)
            zi.external_attr = (0o100644 & 0xFFFF) << 16
            zi.create_system = 3
            level = 1 if path.endswith(".so") else 6
            z.writestr(zi, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)
    unpacked = sum(len(b) for _, b in files)
    return "%s-%s-py3-none-any.whl" % (mod, VERSION), buf.getvalue(), meta, len(files), unpacked


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main(argv):
    if len(argv) != 2 or argv[1].startswith("-"):
        print("usage: make-bench-index.py DIR", file=sys.stderr)
        return 2
    root = os.path.abspath(argv[1])
    stamp = os.path.join(root, ".complete")
    if os.path.exists(stamp) and open(stamp).read().strip() == FORMAT:
        return 0
    tmp = root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "files"))
    os.makedirs(os.path.join(tmp, "simple"))
    listing, projects = [], []
    for name in sorted(PACKAGES):
        requires, py_mb, bin_mb, modules, binaries = PACKAGES[name]
        filename, wheel, meta, nfiles, unpacked = build_wheel(name, requires, py_mb, bin_mb, modules, binaries)
        write(os.path.join(tmp, "files", filename), wheel)
        write(os.path.join(tmp, "files", filename + ".metadata"), meta)
        sha = hashlib.sha256(wheel).hexdigest()
        msha = hashlib.sha256(meta).hexdigest()
        norm = normalize(name)
        projects.append(norm)
        os.makedirs(os.path.join(tmp, "simple", norm))
        page = ("<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.0\">"
                "<title>Links for %s</title></head><body>\n<h1>Links for %s</h1>\n"
                "<a href=\"../../files/%s#sha256=%s\" data-core-metadata=\"sha256=%s\" "
                "data-dist-info-metadata=\"sha256=%s\">%s</a><br/>\n</body></html>\n") % (
            html.escape(norm), html.escape(norm), html.escape(filename), sha, msha, msha, html.escape(filename))
        write(os.path.join(tmp, "simple", norm, "index.html"), page.encode())
        listing.append({"name": name, "version": VERSION, "requires": requires, "file": filename,
                        "sha256": sha, "size": len(wheel), "files": nfiles, "unpacked": unpacked})
        print("make-bench-index: %-28s %6.1f MB wheel, %6.1f MB unpacked, %5d files"
              % (name, len(wheel) / MB, unpacked / MB, nfiles), file=sys.stderr)
    index = "<!DOCTYPE html>\n<html><head><title>Simple index</title></head><body>\n"
    index += "".join("<a href=\"%s/\">%s</a><br/>\n" % (p, p) for p in projects) + "</body></html>\n"
    write(os.path.join(tmp, "simple", "index.html"), index.encode())
    write(os.path.join(tmp, "packages.json"), (json.dumps(listing, indent=1, sort_keys=True) + "\n").encode())
    write(os.path.join(tmp, ".complete"), (FORMAT + "\n").encode())
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
