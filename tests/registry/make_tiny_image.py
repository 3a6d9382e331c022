#!/usr/bin/env python3
"""Writes a tiny single-layer OCI image into an OCI image layout, by hand.

    make_tiny_image.py DIR TAG [--text TEXT] [--random-bytes N] [--seed S]
                       [--arch ARCH] [--print-digest]

The layer (tar.gz) holds /hello.txt (TEXT, default "hello from TAG\n") and,
with --random-bytes N, /random.bin: N incompressible bytes from a seeded PRNG
(so the blob is about N bytes: useful to cut a download in the middle).
Output is reproducible: same arguments, same digests. DIR may already be a
layout: TAG is added (or replaced) in its index.json. Use as oci:DIR:TAG.
With --print-digest, prints the manifest digest on stdout.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import random
import tarfile

MTIME = 1700000000


def host_arch():
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)


def put_blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    if not os.path.exists(path):
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
    return "sha256:" + digest


def make_layer(files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=6, filename="") as g:
        g.write(tar_bytes)
    return tar_bytes, gz.getvalue()


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir")
    p.add_argument("tag")
    p.add_argument("--text")
    p.add_argument("--random-bytes", type=int, default=0)
    p.add_argument("--seed", default="dockless")
    p.add_argument("--arch", default=host_arch())
    p.add_argument("--print-digest", action="store_true")
    a = p.parse_args()

    os.makedirs(os.path.join(a.dir, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(a.dir, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)

    files = {"hello.txt": (a.text if a.text is not None else "hello from %s\n" % a.tag).encode()}
    if a.random_bytes:
        files["random.bin"] = random.Random(a.seed).randbytes(a.random_bytes)
    tar_bytes, gz_bytes = make_layer(files)
    layer_digest = put_blob(a.dir, gz_bytes)

    config = {
        "architecture": a.arch,
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "make_tiny_image.py"}],
    }
    config_bytes = dumps(config)
    config_digest = put_blob(a.dir, config_bytes)

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": len(gz_bytes)}],
    }
    manifest_bytes = dumps(manifest)
    manifest_digest = put_blob(a.dir, manifest_bytes)

    index_path = os.path.join(a.dir, "index.json")
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": []}
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
    index["manifests"] = [m for m in index.get("manifests", [])
                          if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") != a.tag]
    index["manifests"].append({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": len(manifest_bytes),
        "platform": {"architecture": a.arch, "os": "linux"},
        "annotations": {"org.opencontainers.image.ref.name": a.tag},
    })
    with open(index_path + ".tmp", "w") as f:
        json.dump(index, f, indent=2)
    os.replace(index_path + ".tmp", index_path)
    if a.print_digest:
        print(manifest_digest)


if __name__ == "__main__":
    main()
