#!/usr/bin/env python3
"""Makes the benchmark tree: ~1 GiB of real files from this machine's /usr
(many small ones: headers, python sources, docs, shared objects) plus a few
large ones (shared objects concatenated), so compression sees realistic data.

usage: make-tree.py DEST [TOTAL_MIB]   (DEST is created atomically; reused when present)
"""
import os
import shutil
import sys

dest = sys.argv[1]
total = int(sys.argv[2]) * 1024 * 1024 if len(sys.argv) > 2 else 1024 * 1024 * 1024
if os.path.exists(os.path.join(dest, ".complete")):
    sys.exit(0)

tmp = dest + ".tmp"
shutil.rmtree(tmp, ignore_errors=True)
os.makedirs(tmp)
small_budget = total * 7 // 8
large_budget = total - small_budget
roots = ["/usr/include", "/usr/lib/python3", "/usr/share", "/usr/lib/x86_64-linux-gnu", "/usr/lib"]
written = 0
big_sources = []
seen = set()
for root in roots:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            src = os.path.join(dirpath, name)
            try:
                st = os.lstat(src)
            except OSError:
                continue
            if not os.path.isfile(src) or os.path.islink(src) or st.st_ino in seen:
                continue
            seen.add(st.st_ino)
            if st.st_size > 1024 * 1024:
                big_sources.append(src)
                continue
            if written + st.st_size > small_budget:
                break
            out = os.path.join(tmp, "small", os.path.relpath(src, "/usr"))
            os.makedirs(os.path.dirname(out), exist_ok=True)
            try:
                shutil.copyfile(src, out)
            except OSError:
                continue
            written += st.st_size
        if written >= small_budget * 0.999:
            break

os.makedirs(os.path.join(tmp, "large"))
count = 8
per_file = large_budget // count
for i in range(count):
    with open(os.path.join(tmp, "large", f"blob{i}.bin"), "wb") as out:
        size = 0
        j = i
        while size < per_file and big_sources:
            with open(big_sources[j % len(big_sources)], "rb") as f:
                chunk = f.read(per_file - size)
            out.write(chunk)
            size += len(chunk)
            j += 7
open(os.path.join(tmp, ".complete"), "w").close()
shutil.rmtree(dest, ignore_errors=True)
os.rename(tmp, dest)
