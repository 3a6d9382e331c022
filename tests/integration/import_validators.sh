#!/usr/bin/env bash
# `dockless import` of a real debootstrap rootfs, judged by independent tools:
# skopeo, oci-image-tool, umoci (tree compared file by file with the source
# rootfs) and podman (the image runs python3), plus `dockless inspect`'s view.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ROOTFS=$(fixture_rootfs) || fail "the debootstrap rootfs fixture is not available (scripts/fixtures/debian-rootfs.sh)"
LAYOUT=$T/layout
REF=oci:$LAYOUT:py
ARCH=$(host_arch)
echo "rootfs: $ROOTFS"
echo "dockless: $DOCKLESS"
echo "scratch: $T"

section "import"
start=$SECONDS
require "dockless import of the debootstrap rootfs into $REF" \
  "$DOCKLESS" import "$ROOTFS" --output "$REF" \
  --env APP=1 --workdir /root --cmd '["python3"]' --label org.opencontainers.image.title=demo
echo "        (import took $((SECONDS - start))s)"
check "the layout has an oci-layout file with imageLayoutVersion 1.0.0" \
  python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["imageLayoutVersion"] == "1.0.0"' "$LAYOUT/oci-layout"
check_eq "index.json names the tag py exactly once" "py" "$(layout_tags "$LAYOUT")"
check_blobs_intact "every blob's sha256 matches its file name" "$LAYOUT"

section "skopeo inspect"
run_capture "$T/skopeo" skopeo inspect "$REF"
if ((RC == 0)); then
  pass "skopeo inspect $REF"
  check_python "skopeo shows the label org.opencontainers.image.title=demo" "$T/skopeo.out" \
    'assert (d.get("Labels") or {}).get("org.opencontainers.image.title") == "demo", d.get("Labels")'
  check_python "skopeo shows Env APP=1" "$T/skopeo.out" 'assert "APP=1" in (d.get("Env") or []), d.get("Env")'
  check_python "skopeo shows Os linux, Architecture $ARCH, one layer" "$T/skopeo.out" \
    "assert d['Os'] == 'linux' and d['Architecture'] == '$ARCH' and len(d['Layers']) == 1, (d['Os'], d['Architecture'], d['Layers'])"
else
  failed "skopeo inspect $REF" "exit $RC" "$(cat "$T/skopeo.err")"
fi

section "oci-image-tool validate"
check "oci-image-tool validate --type image --ref name=py" \
  oci-image-tool validate --type image --ref name=py "$LAYOUT"

section "umoci unpack"
run_capture "$T/umoci" umoci unpack --image "$LAYOUT:py" "$T/bundle"
if ((RC == 0)); then
  pass "umoci unpack --image $LAYOUT:py"
  check_same_tree "unpacked rootfs has the same paths, types, modes, symlinks and contents as the source" \
    "$ROOTFS" "$T/bundle/rootfs"
  tree_owners "$ROOTFS" >"$T/owners.expected"
  tree_owners "$T/bundle/rootfs" >"$T/owners.actual"
  if cmp -s "$T/owners.expected" "$T/owners.actual"; then
    pass "unpacked rootfs keeps every file's numeric uid:gid (e.g. /etc/shadow root:shadow)"
  else
    failed "unpacked rootfs keeps every file's numeric uid:gid (e.g. /etc/shadow root:shadow)" \
      "$(diff -U0 --label expected --label actual "$T/owners.expected" "$T/owners.actual" | head -n 40 || true)"
  fi
  hardlink_groups "$ROOTFS" >"$T/links.expected"
  hardlink_groups "$T/bundle/rootfs" >"$T/links.actual"
  if [[ -s $T/links.expected ]] && cmp -s "$T/links.expected" "$T/links.actual"; then
    pass "hardlinks are preserved ($(wc -l <"$T/links.expected") groups, e.g. $(head -n1 "$T/links.expected"))"
  else
    failed "hardlinks are preserved" "expected groups:" "$(cat "$T/links.expected")" "actual groups:" "$(cat "$T/links.actual")"
  fi
else
  failed "umoci unpack --image $LAYOUT:py" "exit $RC" "$(tail -n 20 "$T/umoci.err")"
fi
rm -rf --one-file-system -- "$T/bundle"

section "podman run"
out=$(podman_run "$REF" python3 -c 'print(42)' 2>"$T/podman.err") || true
check_eq "podman run $REF python3 -c 'print(42)' prints exactly 42" "42" "$out"
[[ $out == 42 ]] || tail -n 20 "$T/podman.err" | sed 's/^/        | /'
out=$(podman_run "$REF" python3 -c 'import os; print(os.environ.get("APP"), os.getcwd())' 2>>"$T/podman.err") || true
check_eq "in the container APP=1 and the working directory is /root" "1 /root" "$out"
out=$(echo 'print(6 * 7)' | podman --runtime runc run --rm -i --network none "$REF" 2>>"$T/podman.err") || true
check_eq "the default command (Cmd [\"python3\"]) runs python3 on stdin" "42" "$out"

section "dockless inspect"
run_capture "$T/config" "$DOCKLESS" inspect "$REF" --format config
if ((RC == 0)); then
  pass "dockless inspect --format config"
  check_python "config Env contains APP=1" "$T/config.out" 'assert "APP=1" in d["config"]["Env"], d["config"].get("Env")'
  check_python "config WorkingDir is /root" "$T/config.out" 'assert d["config"]["WorkingDir"] == "/root", d["config"].get("WorkingDir")'
  check_python 'config Cmd is ["python3"]' "$T/config.out" 'assert d["config"]["Cmd"] == ["python3"], d["config"].get("Cmd")'
  check_python "config has no Entrypoint" "$T/config.out" 'assert not d["config"].get("Entrypoint"), d["config"].get("Entrypoint")'
  check_python "config label org.opencontainers.image.title=demo" "$T/config.out" \
    'assert d["config"]["Labels"] == {"org.opencontainers.image.title": "demo"}, d["config"].get("Labels")'
  check_python "config architecture $ARCH, os linux" "$T/config.out" \
    "assert (d['architecture'], d['os']) == ('$ARCH', 'linux'), (d.get('architecture'), d.get('os'))"
  check_python "config rootfs: type layers, one diff_id" "$T/config.out" \
    'r = d["rootfs"]; assert r["type"] == "layers" and len(r["diff_ids"]) == 1 and r["diff_ids"][0].startswith("sha256:"), r'
  check_python "config history has one entry" "$T/config.out" 'assert len(d["history"]) == 1, d.get("history")'
else
  failed "dockless inspect --format config" "exit $RC" "$(cat "$T/config.err")"
fi

run_capture "$T/manifest" "$DOCKLESS" inspect "$REF" --format manifest
if ((RC == 0)); then
  pass "dockless inspect --format manifest"
  check_python "manifest: schemaVersion 2, OCI manifest and config media types" "$T/manifest.out" '
assert d["schemaVersion"] == 2, d["schemaVersion"]
assert d.get("mediaType", "application/vnd.oci.image.manifest.v1+json") == "application/vnd.oci.image.manifest.v1+json", d.get("mediaType")
assert d["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json", d["config"]'
  check_python "manifest has one layer of mediaType application/vnd.oci.image.layer.v1.tar+gzip" "$T/manifest.out" '
ls = d["layers"]
assert len(ls) == 1, ls
assert ls[0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip", ls[0]["mediaType"]'
  # Independent views of the same blobs: read the layout by hand.
  mdigest=$(layout_manifest_digest "$LAYOUT" py)
  mblob=$LAYOUT/blobs/sha256/${mdigest#sha256:}
  check "inspect's manifest is the manifest blob index.json points at" python3 -c '
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert a == b, (a, b)' "$T/manifest.out" "$mblob"
  if ((RC == 0)) && [[ -s $T/config.out ]]; then
    check "inspect's config is the config blob the manifest points at" python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
blob = sys.argv[3] + "/blobs/sha256/" + m["config"]["digest"].split(":")[1]
a, b = json.load(open(sys.argv[2])), json.load(open(blob))
assert a == b, "inspect printed a different config than " + blob' "$mblob" "$T/config.out" "$LAYOUT"
  fi
  check "the layer's size and digest match its blob, diff_id is the sha256 of the gunzipped blob" python3 -c '
import gzip, hashlib, json, os, sys
m = json.load(open(sys.argv[1]))
layout = sys.argv[2]
cfg = json.load(open(layout + "/blobs/sha256/" + m["config"]["digest"].split(":")[1]))
l = m["layers"][0]
path = layout + "/blobs/sha256/" + l["digest"].split(":")[1]
assert os.path.getsize(path) == l["size"], ("size", os.path.getsize(path), l["size"])
h, u = hashlib.sha256(), hashlib.sha256()
with open(path, "rb") as f:
    for c in iter(lambda: f.read(1 << 20), b""): h.update(c)
with gzip.open(path, "rb") as f:
    for c in iter(lambda: f.read(1 << 20), b""): u.update(c)
assert "sha256:" + h.hexdigest() == l["digest"], ("digest", h.hexdigest(), l["digest"])
assert cfg["rootfs"]["diff_ids"] == ["sha256:" + u.hexdigest()], ("diff_id", cfg["rootfs"]["diff_ids"], u.hexdigest())
' "$mblob" "$LAYOUT"
else
  failed "dockless inspect --format manifest" "exit $RC" "$(cat "$T/manifest.err")"
fi

run_capture "$T/both" "$DOCKLESS" inspect "$REF" --format both
if ((RC == 0)); then
  pass "dockless inspect --format both"
  check_python "--format both: digest is index.json's, manifest and config match the other formats" "$T/both.out" "
m = json.load(open('$T/manifest.out')) if open('$T/manifest.out').read().strip() else None
c = json.load(open('$T/config.out')) if open('$T/config.out').read().strip() else None
assert sorted(d) == ['config', 'digest', 'manifest'], sorted(d)
assert d['digest'] == '$(layout_manifest_digest "$LAYOUT" py)', d['digest']
assert d['manifest'] == m, 'manifest differs from --format manifest'
assert d['config'] == c, 'config differs from --format config'"
else
  failed "dockless inspect --format both" "exit $RC" "$(cat "$T/both.err")"
fi

section "a second tag in the same layout"
check "dockless import into oci:$LAYOUT:py2 (APP=2)" \
  "$DOCKLESS" import "$ROOTFS" --output "oci:$LAYOUT:py2" \
  --env APP=2 --workdir /root --cmd '["python3"]' --label org.opencontainers.image.title=demo
check_eq "index.json names py and py2, once each" "$(printf 'py\npy2')" "$(layout_tags "$LAYOUT" | sort)"
run_capture "$T/skopeo-py" skopeo inspect "oci:$LAYOUT:py"
check_eq "skopeo inspect oci:$LAYOUT:py still resolves" 0 "$RC"
((RC == 0)) && check_python "py still has APP=1" "$T/skopeo-py.out" 'assert "APP=1" in d["Env"], d["Env"]'
run_capture "$T/skopeo-py2" skopeo inspect "oci:$LAYOUT:py2"
check_eq "skopeo inspect oci:$LAYOUT:py2 resolves" 0 "$RC"
((RC == 0)) && check_python "py2 has APP=2" "$T/skopeo-py2.out" 'assert "APP=2" in d["Env"] and "APP=1" not in d["Env"], d["Env"]'
if [[ -s $T/skopeo-py.out && -s $T/skopeo-py2.out ]]; then
  check_eq "py and py2 share the one layer blob (same rootfs, same bytes)" \
    "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Layers"])' "$T/skopeo-py.out")" \
    "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Layers"])' "$T/skopeo-py2.out")"
fi
check "oci-image-tool validate --ref name=py2" oci-image-tool validate --type image --ref name=py2 "$LAYOUT"
check "oci-image-tool validate --ref name=py (after the second import)" oci-image-tool validate --type image --ref name=py "$LAYOUT"
old=$(layout_manifest_digest "$LAYOUT" py2)
check "importing py2 again (APP=3) replaces the tag" \
  "$DOCKLESS" import "$ROOTFS" --output "oci:$LAYOUT:py2" --env APP=3
check_eq "index.json still names py and py2, once each" "$(printf 'py\npy2')" "$(layout_tags "$LAYOUT" | sort)"
check_digests_differ "py2 now points at a new manifest" "$old" "$(layout_manifest_digest "$LAYOUT" py2)"
run_capture "$T/config3" "$DOCKLESS" inspect "oci:$LAYOUT:py2" --format config
((RC == 0)) && check_python "inspect py2 shows APP=3" "$T/config3.out" 'assert "APP=3" in d["config"]["Env"], d["config"]["Env"]'
((RC == 0)) || failed "inspect py2 shows APP=3" "exit $RC" "$(cat "$T/config3.err")"
