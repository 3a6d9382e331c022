#!/usr/bin/env python3
"""The zip and tar work of scripts/package.sh (read its header first).

  wheel.py raw OUT_DIR VERSION BINARY SHARE_DIR
      a linux_x86_64 wheel of the binary (VERSION.data/scripts/dockless), the
      dockless/ package and SHARE_DIR (completions, man page) as .data/data/share
  wheel.py relocate REPAIRED_WHL OUT_DIR
      undoes auditwheel's script shim: the binary goes back to .data/scripts
      and the vendored libraries to .data/data/lib/dockless, so that after any
      install they sit at BIN/../lib/dockless (the binary's rpath)
  wheel.py tarball WHL OUT_TAR_GZ
      the wheel's install tree (bin/, lib/dockless/, share/) as a .tar.gz

Times in the archives come from SOURCE_DATE_EPOCH (default 315532800, 1980),
entries are sorted: the same inputs make the same bytes.
"""
import base64
import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

EPOCH = max(int(os.environ.get("SOURCE_DATE_EPOCH", "315532800")), 315532800)

INIT_PY = '''"""dockless: a rootless, daemonless OCI image builder for uv projects.

This package only finds the dockless binary that the wheel installed.
"""
import os
import sys
import sysconfig

__all__ = ["find_dockless_bin"]


def find_dockless_bin() -> str:
    """The path of the dockless binary installed with this package."""
    candidates = []
    for scheme in (None, "posix_user", "posix_prefix", "posix_home"):
        try:
            scripts = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
        except KeyError:
            continue
        candidates.append(os.path.join(scripts, "dockless"))
    # Next to this package's install tree: <prefix>/lib/pythonX.Y/site-packages/dockless
    here = os.path.dirname(os.path.abspath(__file__))
    candidates.append(os.path.normpath(os.path.join(here, "..", "..", "..", "..", "bin", "dockless")))
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError("the dockless binary is not installed next to this package: " + ", ".join(candidates))
'''

MAIN_PY = '''import os
import sys

from dockless import find_dockless_bin


def _run() -> None:
    binary = find_dockless_bin()
    os.execv(binary, [binary, *sys.argv[1:]])


if __name__ == "__main__":
    _run()
'''


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(path, files):
    """files: {name: (bytes, mode)}; adds RECORD; writes path atomically."""
    dist_info = next(n.split("/")[0] for n in files if n.split("/")[0].endswith(".dist-info"))
    record = dist_info + "/RECORD"
    files = {n: v for n, v in files.items() if n != record}
    lines = [record_line(n, files[n][0]) for n in sorted(files)] + [record + ",,"]
    files[record] = (("\n".join(lines) + "\n").encode(), 0o644)
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        # dist-info last, as the wheel spec recommends.
        for name in sorted(files, key=lambda n: (n.startswith(dist_info), n)):
            data, mode = files[name]
            info = zipfile.ZipInfo(name, date_time=zip_time())
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def zip_time():
    import time
    t = time.gmtime(EPOCH)
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def read_wheel(path):
    files = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if info.is_dir():
                continue
            mode = (info.external_attr >> 16) & 0o777 or 0o644
            files[info.filename] = (z.read(info), mode)
    return files


def raw(out_dir, version, binary, share_dir):
    data = f"dockless-{version}.data"
    dist_info = f"dockless-{version}.dist-info"
    files = {
        "dockless/__init__.py": (INIT_PY.encode(), 0o644),
        "dockless/__main__.py": (MAIN_PY.encode(), 0o644),
        f"{data}/scripts/dockless": (open(binary, "rb").read(), 0o755),
    }
    for root, _, names in os.walk(share_dir):
        for n in names:
            full = os.path.join(root, n)
            rel = os.path.relpath(full, share_dir)
            files[f"{data}/data/share/{rel}"] = (open(full, "rb").read(), 0o644)
    files[f"{dist_info}/METADATA"] = (metadata(version).encode(), 0o644)
    files[f"{dist_info}/WHEEL"] = (wheel_file("py3-none-linux_x86_64").encode(), 0o644)
    out = os.path.join(out_dir, f"dockless-{version}-py3-none-linux_x86_64.whl")
    write_wheel(out, files)
    print(out)


def metadata(version):
    return (
        "Metadata-Version: 2.1\n"
        "Name: dockless\n"
        f"Version: {version}\n"
        "Summary: A rootless, daemonless OCI image builder for uv projects\n"
        "License: Apache-2.0\n"
        "Requires-Python: >=3.8\n"
        "Classifier: Environment :: Console\n"
        "Classifier: Operating System :: POSIX :: Linux\n"
        "Classifier: Topic :: Software Development :: Build Tools\n"
    )


def wheel_file(tags):
    """WHEEL for a tag such as py3-none-manylinux_2_36_x86_64 (dotted platforms: one Tag each)."""
    py, abi, plats = tags.split("-")
    lines = ["Wheel-Version: 1.0", "Generator: dockless scripts/package/wheel.py", "Root-Is-Purelib: false"]
    lines += [f"Tag: {py}-{abi}-{p}" for p in plats.split(".")]
    return "\n".join(lines) + "\n"


def relocate(repaired, out_dir):
    files = read_wheel(repaired)
    name = os.path.basename(repaired)
    version = name.split("-")[1]
    tags = name[len(f"dockless-{version}-"):-len(".whl")]
    data = f"dockless-{version}.data"
    moved = files.pop("dockless.scripts/dockless", None)
    binary = moved or files[f"{data}/scripts/dockless"]
    libs = {n: v for n, v in files.items() if n.startswith("dockless.libs/")}
    for n in libs:
        files.pop(n)
        files[f"{data}/data/lib/dockless/" + n.split("/", 1)[1]] = libs[n]
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "dockless")
        with open(exe, "wb") as f:
            f.write(binary[0])
        # BIN/../lib/dockless holds in every install scheme: scripts is
        # {data}/bin and data is {data} (venv, --user, /usr/local alike).
        subprocess.run(["patchelf", "--force-rpath", "--set-rpath", "$ORIGIN/../lib/dockless", exe], check=True)
        files[f"{data}/scripts/dockless"] = (open(exe, "rb").read(), 0o755)
    files[f"dockless-{version}.dist-info/WHEEL"] = (wheel_file(tags).encode(), 0o644)
    out = os.path.join(out_dir, name)
    write_wheel(out, files)
    print(out)


def tarball(whl, out):
    files = read_wheel(whl)
    version = os.path.basename(whl).split("-")[1]
    top = f"dockless-{version}-linux-x86_64"
    prefixes = {f"dockless-{version}.data/scripts/": "bin/", f"dockless-{version}.data/data/": ""}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = []
        for n, (data, mode) in files.items():
            for p, dest in prefixes.items():
                if n.startswith(p):
                    entries.append((f"{top}/{dest}{n[len(p):]}", data, mode))
        dirs = sorted({os.path.dirname(e[0]) for e in entries} | {top})
        dirs = sorted({d for e in dirs for d in parents(e)})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            tar.addfile(info)
        for name, data, mode in sorted(entries):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, EPOCH
            tar.addfile(info, io.BytesIO(data))
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=EPOCH, compresslevel=9) as gz:
            gz.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    print(out)


def parents(path):
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"raw": raw, "relocate": relocate, "tarball": tarball}[cmd](*args)
