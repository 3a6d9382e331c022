#!/usr/bin/env bash
# `dockless import` is reproducible: the same rootfs gives the same manifest
# digest; SOURCE_DATE_EPOCH changes it (and clamps the layer's mtimes). A tar,
# .tar.gz or .tar.zst of the rootfs imports to an image with the same tree that
# runs in podman.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ROOTFS=$(fixture_rootfs) || fail "the debootstrap rootfs fixture is not available (scripts/fixtures/debian-rootfs.sh)"
echo "rootfs: $ROOTFS"
echo "dockless: $DOCKLESS"
echo "scratch: $T"

# import NAME SRC [ENV...]: imports SRC into oci:$T/NAME:r with the given
# environment (SOURCE_DATE_EPOCH unset unless given); one check.
import() {
  local name=$1 src=$2
  shift 2
  check "import $(basename -- "$src") into $name${1:+ with $*}" \
    env -u SOURCE_DATE_EPOCH "$@" "$DOCKLESS" import "$src" --output "oci:$T/$name:r"
}
digest_of() { layout_manifest_digest "$T/$1" r; }

section "same rootfs twice -> same digest"
import a "$ROOTFS"
import b "$ROOTFS"
da=$(digest_of a)
db=$(digest_of b)
check_digests_equal "index.json manifest digests are equal" "$da" "$db"
check_same_file "index.json files are byte-identical" "$T/a/index.json" "$T/b/index.json"
run_capture "$T/ma" "$DOCKLESS" inspect "oci:$T/a:r" --format manifest
ra=$RC
run_capture "$T/mb" "$DOCKLESS" inspect "oci:$T/b:r" --format manifest
rb=$RC
check_eq "dockless inspect --format manifest succeeds on both" "0 0" "$ra $rb"
check_same_file "dockless inspect --format manifest prints the same bytes" "$T/ma.out" "$T/mb.out"
check_eq "the blob directories hold the same files" "$(ls "$T/a/blobs/sha256")" "$(ls "$T/b/blobs/sha256")"

section "SOURCE_DATE_EPOCH"
import e17a "$ROOTFS" SOURCE_DATE_EPOCH=1700000000
import e17b "$ROOTFS" SOURCE_DATE_EPOCH=1700000000
import e16 "$ROOTFS" SOURCE_DATE_EPOCH=1600000000
check_digests_equal "SOURCE_DATE_EPOCH=1700000000 twice -> equal digests" "$(digest_of e17a)" "$(digest_of e17b)"
check_digests_differ "SOURCE_DATE_EPOCH=1700000000 vs 1600000000 -> different digests" "$(digest_of e17a)" "$(digest_of e16)"
check_digests_differ "SOURCE_DATE_EPOCH=1700000000 vs unset -> different digests" "$(digest_of e17a)" "$da"
# Independent look at the layer: no entry's mtime is after SOURCE_DATE_EPOCH
# (the rootfs was built after 2023, so every file's time had to be clamped).
check "every entry in the SOURCE_DATE_EPOCH=1600000000 layer has mtime <= 1600000000" python3 -c '
import json, sys, tarfile
layout, epoch = sys.argv[1], int(sys.argv[2])
idx = json.load(open(layout + "/index.json"))
blob = lambda d: layout + "/blobs/sha256/" + d.split(":")[1]
m = json.load(open(blob(idx["manifests"][0]["digest"])))
n = bad = 0
with tarfile.open(blob(m["layers"][0]["digest"]), "r:*") as t:
    for e in t:
        n += 1
        if e.mtime > epoch:
            bad += 1
            if bad <= 5: print("mtime", e.mtime, ">", epoch, e.name)
assert n > 1000 and bad == 0, (n, bad)
' "$T/e16" 1600000000

section "rootfs as a tar, .tar.gz and .tar.zst"
tar -C "$ROOTFS" -cf "$T/rootfs.tar" .
gzip -c "$T/rootfs.tar" >"$T/rootfs.tar.gz"
zstd -q -c "$T/rootfs.tar" >"$T/rootfs.tar.zst"
ls -l "$T"/rootfs.tar* | sed 's/^/        /'
for ext in tar tar.gz tar.zst; do
  name=from-${ext//./-}
  import "$name" "$T/rootfs.$ext"
  ((CHECK_OK)) || continue
  out=$(podman_run "oci:$T/$name:r" python3 -c 'print(42)' 2>"$T/$name.podman.err") || true
  check_eq "podman runs python3 -c 'print(42)' in the image from rootfs.$ext" 42 "$out"
  [[ $out == 42 ]] || tail -n 20 "$T/$name.podman.err" | sed 's/^/        | /'
  run_capture "$T/$name.umoci" umoci unpack --image "$T/$name:r" "$T/$name.bundle"
  if ((RC == 0)); then
    check_same_tree "the image from rootfs.$ext unpacks (umoci) to the source tree" "$ROOTFS" "$T/$name.bundle/rootfs"
    check_eq "the image from rootfs.$ext keeps hardlinks" "$(hardlink_groups "$ROOTFS")" "$(hardlink_groups "$T/$name.bundle/rootfs")"
    check_eq "the image from rootfs.$ext keeps owners" "$(tree_owners "$ROOTFS")" "$(tree_owners "$T/$name.bundle/rootfs")"
  else
    failed "umoci unpack of the image from rootfs.$ext" "exit $RC" "$(tail -n 20 "$T/$name.umoci.err")"
  fi
  rm -rf --one-file-system -- "$T/$name.bundle"
done
import from-tar-again "$T/rootfs.tar"
check_digests_equal "the same tar imported twice -> equal digests" "$(digest_of from-tar)" "$(digest_of from-tar-again)"
