#!/usr/bin/env python3
"""Writes the package index of the scale benchmark (scripts/bench/scale.sh).

    make-scale-index.py DIR GIB WORKERS

A PEP 503 index in DIR (DIR/simple/..., DIR/files/*.whl, DIR/packages.json,
DIR/layout.json) whose wheels add up to about GIB GiB, shaped like NeMo RL's:
torch and the nvidia-* CUDA wheels in every environment, a package per worker
family (inference, training, environments), one shared by two inference
workers (flash-attn), one of its own per worker, a dev group and a cache-only
extra. The content is shaped like real CUDA/torch wheels: a few large
incompressible .so files (random bytes, stored) and many small .py files
(~6 KiB of Python-looking text, compressing ~4x). Deterministic: the same
arguments give the same bytes; a DIR made with the same arguments is kept.
"""
import base64
import hashlib
import html
import json
import math
import os
import random
import re
import shutil
import sys
import zipfile

MiB = 1024 * 1024
VERSION = "1.0.0"
ZIP_TIME = (2020, 1, 1, 0, 0, 0)
FORMAT = "scale-index v1"
PY_FILE = 6 * 1024       # average .py file
SO_MAX = 96 * MiB        # largest .so file (torch's libtorch_cuda.so is ~1 GiB; split to bound memory here)
FAMILIES = ("infer", "train", "env")


def layout(workers):
    """name -> (requires, share of the total bytes, .py share of the package), and the extras."""
    common = {
        "bench-torch": (["bench-numpy", "bench-triton"] + ["bench-nvidia-%s" % n for n in
                        ("cudnn", "cublas", "nccl", "cusparse")], 0.22, 0.08),
        "bench-nvidia-cudnn": ([], 0.12, 0.005),
        "bench-nvidia-cublas": ([], 0.09, 0.005),
        "bench-nvidia-nccl": ([], 0.06, 0.005),
        "bench-nvidia-cusparse": ([], 0.05, 0.005),
        "bench-triton": ([], 0.04, 0.10),
        "bench-numpy": ([], 0.015, 0.20),
        "bench-ray": (["bench-numpy"], 0.025, 0.40),
        "bench-transformers": (["bench-torch"], 0.02, 1.0),
        **{"bench-util%02d" % i: ([], 0.001, 0.8) for i in range(20)},
    }
    pk = dict(common)
    pk["bench-infer-common"] = (["bench-torch"], 0.06, 0.30)
    pk["bench-transformer-engine"] = (["bench-torch"], 0.07, 0.10)
    pk["bench-env-common"] = ([], 0.02, 0.60)
    pk["bench-flash-attn"] = (["bench-torch"], 0.03, 0.05)
    pk["bench-pytest"] = ([], 0.01, 1.0)
    pk["bench-automodel"] = (["bench-transformers"], 0.03, 0.30)
    family_pkg = {"infer": "bench-infer-common", "train": "bench-transformer-engine", "env": "bench-env-common"}
    extras = {}
    for i in range(workers):
        fam = FAMILIES[i % len(FAMILIES)]
        own = "bench-w%02d-%s" % (i, fam)
        req = [family_pkg[fam]]
        if i in (0, 3):  # two inference workers share flash-attn (vllm and sglang)
            req.append("bench-flash-attn")
        pk[own] = (req, 0.12 / workers, 0.40)
        extras["w%02d" % i] = [own]
    extras["automodel"] = ["bench-automodel"]
    return pk, extras, sorted(common)


def words(r):
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(r.choice(letters) for _ in range(r.randint(3, 10))) for _ in range(4000)]


def text_pool():
    """64 Python-looking texts of 32 KiB; a module is a unique header and a slice of one."""
    r = random.Random("dockless-scale-text")
    w = words(r)
    pool = []
    for _ in range(64):
        out, n = [], 0
        while n < 32 * 1024:
            s = "\n\ndef %s(%s):\n" % ("_".join(r.choices(w, k=2)), ", ".join(r.choices(w, k=3)))
            for _ in range(r.randint(3, 9)):
                a, b, c = r.choices(w, k=3)
                s += "    %s = %s.%s(%d, %r)\n" % (a, b, c, r.getrandbits(20), r.choice(w))
            s += "    return %s\n" % r.choice(w)
            out.append(s)
            n += len(s)
        pool.append("".join(out).encode())
    return pool


def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(path, name, requires, size, py_share, pool):
    r = random.Random("dockless-scale:" + name)
    mod = name.replace("-", "_")
    dist_info = "%s-%s.dist-info" % (mod, VERSION)
    py_bytes = int(size * py_share)
    so_bytes = size - py_bytes
    nmods = max(1, py_bytes // PY_FILE)
    nso = math.ceil(so_bytes / SO_MAX) if so_bytes >= 64 * 1024 else 0
    record = []
    nfiles = unpacked = 0
    with zipfile.ZipFile(path, "w") as z:
        def add(rel, data, stored=False):
            nonlocal nfiles, unpacked
            zi = zipfile.ZipInfo(rel, date_time=ZIP_TIME)
            zi.external_attr = (0o100644 & 0xFFFF) << 16
            zi.create_system = 3
            z.writestr(zi, data, compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED,
                       compresslevel=None if stored else 6)
            record.append("%s,%s,%d\n" % (rel, record_hash(data), len(data)))
            nfiles += 1
            unpacked += len(data)
        deps = [d.replace("-", "_") for d in requires]
        add("%s/__init__.py" % mod, ('"""%s (dockless scale benchmark)."""\n' % name
                                     + "".join("import %s  # noqa: F401\n" % d for d in deps)
                                     + "VALUE = %r\n" % name).encode())
        for i in range(nmods):
            sub = "sub%03d" % (i // 100)
            if i % 100 == 0:
                add("%s/%s/__init__.py" % (mod, sub), b"")
            text = pool[r.randrange(len(pool))]
            n = max(256, int(PY_FILE * (0.25 + 1.5 * r.random())))
            off = r.randrange(len(text) - n)
            add("%s/%s/m%05d.py" % (mod, sub, i), b'"""%s module %d."""\n' % (mod.encode(), i) + text[off:off + n])
        for i in range(nso):
            n = min(SO_MAX, so_bytes - i * SO_MAX)
            add("%s/_lib/lib%s_%d.so" % (mod, mod, i), r.randbytes(n), stored=True)
        meta = ("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: dockless scale benchmark\n" % (name, VERSION)
                + "".join("Requires-Dist: %s\n" % d for d in requires)).encode()
        add("%s/METADATA" % dist_info, meta)
        add("%s/WHEEL" % dist_info, b"Wheel-Version: 1.0\nGenerator: dockless-bench (1.0)\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n")
        add("%s/top_level.txt" % dist_info, (mod + "\n").encode())
        rec = "%s/RECORD" % dist_info
        zi = zipfile.ZipInfo(rec, date_time=ZIP_TIME)
        zi.external_attr = (0o100644 & 0xFFFF) << 16
        z.writestr(zi, "".join(record) + "%s,,\n" % rec, compress_type=zipfile.ZIP_DEFLATED)
    return meta, nfiles + 1, unpacked


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def main(argv):
    if len(argv) != 4:
        print("usage: make-scale-index.py DIR GIB WORKERS", file=sys.stderr)
        return 2
    root, gib, workers = os.path.abspath(argv[1]), float(argv[2]), int(argv[3])
    stamp_text = "%s gib=%g workers=%d" % (FORMAT, gib, workers)
    stamp = os.path.join(root, ".complete")
    if os.path.exists(stamp) and open(stamp).read().strip() == stamp_text:
        return 0
    tmp = root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "files"))
    os.makedirs(os.path.join(tmp, "simple"))
    pkgs, extras, common = layout(workers)
    total = gib * 1024 * MiB
    pool = text_pool()
    listing = []
    for name in sorted(pkgs):
        requires, share, py_share = pkgs[name]
        mod = name.replace("-", "_")
        filename = "%s-%s-py3-none-any.whl" % (mod, VERSION)
        path = os.path.join(tmp, "files", filename)
        meta, nfiles, unpacked = build_wheel(path, name, requires, int(total * share), py_share, pool)
        with open(path + ".metadata", "wb") as f:
            f.write(meta)
        sha, msha = file_sha256(path), hashlib.sha256(meta).hexdigest()
        norm = re.sub(r"[-_.]+", "-", name).lower()
        os.makedirs(os.path.join(tmp, "simple", norm))
        with open(os.path.join(tmp, "simple", norm, "index.html"), "w") as f:
            f.write("<!DOCTYPE html>\n<html><body>\n<a href=\"../../files/%s#sha256=%s\" "
                    "data-core-metadata=\"sha256=%s\" data-dist-info-metadata=\"sha256=%s\">%s</a><br/>\n"
                    "</body></html>\n" % (html.escape(filename), sha, msha, msha, html.escape(filename)))
        size = os.path.getsize(path)
        listing.append({"name": name, "file": filename, "size": size, "files": nfiles, "unpacked": unpacked})
        print("make-scale-index: %-32s %8.1f MiB, %6d files" % (name, size / MiB, nfiles), file=sys.stderr)
    with open(os.path.join(tmp, "simple", "index.html"), "w") as f:
        f.write("<!DOCTYPE html>\n<html><body>\n" + "".join(
            "<a href=\"%s/\">%s</a><br/>\n" % (x["name"], x["name"]) for x in listing) + "</body></html>\n")
    with open(os.path.join(tmp, "packages.json"), "w") as f:
        json.dump(listing, f, indent=1, sort_keys=True)
    with open(os.path.join(tmp, "layout.json"), "w") as f:
        json.dump({"dependencies": common, "extras": extras, "dev": ["bench-pytest"],
                   "workers": ["w%02d" % i for i in range(workers)]}, f, indent=1, sort_keys=True)
    with open(stamp.replace(root, tmp), "w") as f:
        f.write(stamp_text + "\n")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
