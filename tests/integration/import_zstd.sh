#!/usr/bin/env bash
# `dockless import --compression zstd`: a tar+zstd layer that skopeo and podman
# read (Debian 12's umoci and oci-image-tool reject zstd layers, so they are
# not used here).
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ROOTFS=$(fixture_rootfs) || fail "the debootstrap rootfs fixture is not available (scripts/fixtures/debian-rootfs.sh)"
LAYOUT=$T/layout
REF=oci:$LAYOUT:z
echo "rootfs: $ROOTFS"
echo "dockless: $DOCKLESS"
echo "scratch: $T"

section "import --compression zstd"
require "dockless import --compression zstd into $REF" \
  "$DOCKLESS" import "$ROOTFS" --output "$REF" --compression zstd --cmd '["python3"]'

run_capture "$T/manifest" "$DOCKLESS" inspect "$REF" --format manifest
if ((RC == 0)); then
  pass "dockless inspect --format manifest"
  check_python "the one layer has mediaType application/vnd.oci.image.layer.v1.tar+zstd" "$T/manifest.out" '
ls = d["layers"]
assert len(ls) == 1, ls
assert ls[0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd", ls[0]["mediaType"]'
else
  failed "dockless inspect --format manifest" "exit $RC" "$(cat "$T/manifest.err")"
fi

# Independent look at the blob: a zstd frame, whose content is a tar whose
# sha256 is the config's diff_id.
check "the layer blob is zstd data, its digest matches, diff_id = sha256 of the decompressed tar" python3 -c '
import hashlib, json, subprocess, sys
layout = sys.argv[1]
idx = json.load(open(layout + "/index.json"))
blob = lambda d: layout + "/blobs/sha256/" + d.split(":")[1]
m = json.load(open(blob([x for x in idx["manifests"] if x["annotations"]["org.opencontainers.image.ref.name"] == "z"][0]["digest"])))
cfg = json.load(open(blob(m["config"]["digest"])))
path = blob(m["layers"][0]["digest"])
with open(path, "rb") as f:
    assert f.read(4) == b"\x28\xb5\x2f\xfd", "not a zstd frame"
assert "sha256:" + hashlib.sha256(open(path, "rb").read()).hexdigest() == m["layers"][0]["digest"]
p = subprocess.Popen(["zstd", "-dc", path], stdout=subprocess.PIPE)
h = hashlib.sha256()
head = p.stdout.read(512)
h.update(head)
for c in iter(lambda: p.stdout.read(1 << 20), b""): h.update(c)
assert p.wait() == 0, "zstd -d failed"
assert head[257:262] == b"ustar", "decompressed data is not a tar"
assert cfg["rootfs"]["diff_ids"] == ["sha256:" + h.hexdigest()], (cfg["rootfs"]["diff_ids"], h.hexdigest())
' "$LAYOUT"

# Independent unpacker for the zstd layer: zstd -d | GNU tar -x as root.
layer=$(python3 -c '
import json, sys
layout = sys.argv[1]
blob = lambda d: layout + "/blobs/sha256/" + d.split(":")[1]
idx = json.load(open(layout + "/index.json"))
print(blob(json.load(open(blob(idx["manifests"][0]["digest"]))) ["layers"][0]["digest"]))' "$LAYOUT" 2>/dev/null) || true
mkdir -p "$T/untarred"
if [[ -f $layer ]] && zstd -dc "$layer" | tar -C "$T/untarred" --numeric-owner -xpf - 2>"$T/untar.err"; then
  pass "the zstd layer decompresses (zstd) and extracts (GNU tar)"
  check_same_tree "the extracted layer has the same paths, types, modes, symlinks and contents as the source" \
    "$ROOTFS" "$T/untarred"
  check_eq "the extracted layer keeps owners" "$(tree_owners "$ROOTFS")" "$(tree_owners "$T/untarred")"
  check_eq "the extracted layer keeps hardlinks" "$(hardlink_groups "$ROOTFS")" "$(hardlink_groups "$T/untarred")"
else
  failed "the zstd layer decompresses (zstd) and extracts (GNU tar)" "layer blob: $layer" "$(tail -n 20 "$T/untar.err" 2>/dev/null)"
fi
rm -rf --one-file-system -- "$T/untarred"

section "skopeo"
run_capture "$T/skopeo" skopeo inspect "$REF"
if ((RC == 0)); then
  pass "skopeo inspect $REF"
  check_python "skopeo shows one layer and Os linux" "$T/skopeo.out" \
    'assert len(d["Layers"]) == 1 and d["Os"] == "linux", (d["Layers"], d["Os"])'
else
  failed "skopeo inspect $REF" "exit $RC" "$(cat "$T/skopeo.err")"
fi
check "skopeo copy $REF oci:$T/other:copied" skopeo copy "$REF" "oci:$T/other:copied"
if ((CHECK_OK)); then
  check_digests_equal "the copy has the same manifest digest (zstd blob reused as is)" \
    "$(layout_manifest_digest "$LAYOUT" z)" "$(layout_manifest_digest "$T/other" copied)"
  run_capture "$T/skopeo2" skopeo inspect --raw "oci:$T/other:copied"
  check_python "the copy's layer is still tar+zstd" "$T/skopeo2.out" \
    'assert d["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd", d["layers"][0]'
fi

section "podman"
out=$(podman_run "$REF" python3 -c 'print(42)' 2>"$T/podman.err") || true
check_eq "podman run $REF python3 -c 'print(42)' prints exactly 42" 42 "$out"
[[ $out == 42 ]] || tail -n 20 "$T/podman.err" | sed 's/^/        | /'
out=$(podman_run "$REF" python3 -c 'import os; print(os.stat("/usr/bin/passwd").st_mode & 0o7777 == 0o4755, os.path.realpath("/bin"))' 2>>"$T/podman.err") || true
check_eq "in the container /usr/bin/passwd is setuid 4755 and /bin -> /usr/bin" "True /usr/bin" "$out"
