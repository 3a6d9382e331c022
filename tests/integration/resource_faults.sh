#!/usr/bin/env bash
# Resource faults of `dockless build` (and pull): the cache dir on an 8 MiB
# tmpfs that fills while the base image comes in, and on one that fills after
# the base's blobs are in (one clear "No space left"
# error line, nothing corrupt: every blob hashes to its name, no layer-cache
# entry points at a missing blob), then the same cache dir after a
# `mount -o remount,size=` to 4 GiB (the build succeeds and the image runs);
# a read-only cache dir and a read-only output dir (a clear error each).
# Needs root (tmpfs mounts).
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

if [[ $(id -u) -ne 0 ]]; then
  echo "resource_faults: needs root for its tmpfs mounts; skipped"
  exit 77
fi

# mount_tmpfs DIR OPTS: a tmpfs on DIR, unmounted when the script ends.
mount_tmpfs() {
  mkdir -p -- "$1"
  mount -t tmpfs -o "$2" tmpfs "$1" || fail "mount -t tmpfs -o $2 on $1"
  at_exit umount -l "$1"
}

# cache_consistent DESC DIR: every content-addressed file under DIR hashes to
# its name, and every digest a layer-cache entry (DIR/layers/**.json) names is
# a blob that exists.
cache_consistent() {
  local bad
  bad=$(python3 - "$2" <<'PY'
import hashlib, json, os, re, sys
root = sys.argv[1]
hexre = re.compile(r"(?:sha256[:_-])?([0-9a-f]{64})")
have, n = set(), 0
for dirpath, _, files in os.walk(root):
    for name in files:
        m = hexre.fullmatch(name)
        if not m:
            continue
        n += 1
        h = hashlib.sha256()
        with open(os.path.join(dirpath, name), "rb") as f:
            for c in iter(lambda: f.read(1 << 20), b""):
                h.update(c)
        if h.hexdigest() != m.group(1):
            print("%s has sha256 %s" % (os.path.join(dirpath, name), h.hexdigest()))
        have.add("sha256:" + m.group(1))

def digests(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "digest" and isinstance(x, str):
                yield x
            else:
                yield from digests(x)
    elif isinstance(v, list):
        for x in v:
            yield from digests(x)

entries = 0
for dirpath, _, files in os.walk(os.path.join(root, "layers")):
    for name in files:
        if not name.endswith(".json"):
            continue
        entries += 1
        p = os.path.join(dirpath, name)
        try:
            doc = json.load(open(p))
        except ValueError:
            print("%s is not valid JSON" % p)
            continue
        for d in digests(doc):
            if d not in have:
                print("%s names %s, which is not in the store" % (p, d))
print("checked %d blobs, %d layer-cache entries" % (n, entries), file=sys.stderr)
PY
  )
  if [[ -z $bad ]]; then
    pass "$1"
  else
    failed "$1" "$bad"
  fi
}

build_setup

section "the cache dir fills up (an 8 MiB tmpfs)"
SMALL=$T/small
mount_tmpfs "$SMALL" size=8m,mode=0755
check_build_fails "a build whose cache dir fills" "$T/e-full" 1 'no space left' -- \
  "$PROJ" --set "image.base=$BASE_REF" --output "oci:$T/o-full:app" --cache-dir "$SMALL/cache" -q
echo "        error: $ERRLINE"
echo "        tmpfs use: $(df -h --output=used,size "$SMALL" | tail -n 1)"
cache_consistent "after the full disk: every blob hashes to its name, no entry without its blob" "$SMALL/cache"
check_eq "after the full disk: no tag in the output layout" "" "$(layout_tags "$T/o-full")"

section "the same cache dir with room (remount,size=4g)"
mount -o remount,size=4g "$SMALL" || fail "mount -o remount,size=4g $SMALL"
check_build "the build with room succeeds" "$T/b-room" \
  "$PROJ" --set "image.base=$BASE_REF" --output "oci:$T/o-room:app" --cache-dir "$SMALL/cache" -q
check_blobs_intact "its layout's blobs are intact" "$T/o-room"
check_eq "its layout is tagged" "$DIGEST" "$(layout_manifest_digest "$T/o-room" app)"
cache_consistent "the cache is consistent after it" "$SMALL/cache"
check_eq "the image runs" "ok" "$(podman_run "oci:$T/o-room:app" /opt/app_venv/bin/python -c 'print("ok")' 2>&1 | tail -n 1)"

section "the cache dir fills later: room for the base's blobs and 4 MiB more"
BASE_MIB=$(( $(du -sb "$T/base/blobs" | cut -f1) / 1048576 ))
MID=$T/mid
mount_tmpfs "$MID" "size=$((BASE_MIB + 4))m,mode=0755"
check_build_fails "a build whose cache dir fills after the base (${BASE_MIB} MiB + 4 MiB)" "$T/e-mid" 1 'no space left' -- \
  "$PROJ" --set "image.base=$BASE_REF" --output "oci:$T/o-mid:app" --cache-dir "$MID/cache" -q
echo "        error: $ERRLINE"
echo "        tmpfs use: $(df -h --output=used,size "$MID" | tail -n 1)"
cache_consistent "after it: every blob hashes to its name, no entry without its blob" "$MID/cache"
mount -o remount,size=4g "$MID" || fail "mount -o remount,size=4g $MID"
check_build "then with room: the build succeeds" "$T/b-mid" \
  "$PROJ" --set "image.base=$BASE_REF" --output "oci:$T/o-mid:app" --cache-dir "$MID/cache" -q
check_eq "then with room: the layout is tagged" "$DIGEST" "$(layout_manifest_digest "$T/o-mid" app)"
cache_consistent "then with room: the cache is consistent" "$MID/cache"

section "a pull into a full cache dir"
TINY=$T/tiny
mount_tmpfs "$TINY" size=2m,mode=0755
dl "$T/e-pullfull" pull -q "$BASE_REF" --output "oci:$TINY/layout:py" --cache-dir "$TINY/cache"
ERRLINE=$(cat "$T/e-pullfull.err")
check_eq "pull into a 2 MiB tmpfs: exit 1" 1 "$RC"
check_contains "pull into a 2 MiB tmpfs: the error names the lack of space" "$ERRLINE" "No space left"
check_eq "pull into a 2 MiB tmpfs: one error line" 1 "$(grep -c '^dockless: error: ' "$T/e-pullfull.err" || true)"
check_blobs_intact "pull into a 2 MiB tmpfs: the layout's blobs are intact" "$TINY/layout"
check_eq "pull into a 2 MiB tmpfs: no tag" "" "$(layout_tags "$TINY/layout")"

section "a read-only cache dir, a read-only output dir"
RO=$T/ro
mount_tmpfs "$RO" size=1m,mode=0755
mkdir -p "$RO/cache" "$RO/out"
mount -o remount,ro "$RO" || fail "mount -o remount,ro $RO"
check_build_fails "a build with a read-only cache dir" "$T/e-rocache" 1 'read-only|cache' -- \
  "$PROJ" --set "image.base=$BASE_REF" --output "oci:$T/o-rocache:app" --cache-dir "$RO/cache" -q
echo "        error: $ERRLINE"
check_build_fails "a build into a read-only output dir" "$T/e-roout" 1 'read-only' "$RO/out" -- \
  "$PROJ" --set "image.base=$BASE_REF" --output "oci:$RO/out/img:app" --cache-dir "$SMALL/cache" -q
echo "        error: $ERRLINE"
check_build_fails "a docker-archive into a read-only dir" "$T/e-roarch" 1 'read-only' -- \
  "$PROJ" --set "image.base=$BASE_REF" --output "docker-archive:$RO/out/img.tar:app:1" --cache-dir "$SMALL/cache" -q
echo "        error: $ERRLINE"
