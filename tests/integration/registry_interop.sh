#!/usr/bin/env bash
# Images pushed by skopeo, pulled by dockless: OCI manifests with gzip and
# zstd layers, a Docker schema2 manifest, and a multi-platform OCI index
# (platform selection, --all-platforms, an unknown platform). What dockless
# writes is judged by skopeo and podman, as an OCI layout and as a
# docker-archive for `podman load`.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"

ROOTFS=$(fixture_rootfs)
ARCH=$(host_arch)
echo "rootfs: $ROOTFS"
echo "dockless: $DOCKLESS"
echo "scratch: $T"
echo "host platform: linux/$ARCH"

S=$T/src
section "source layouts (dockless import) and a hand-made index"
require "import gzip -> oci:$S:gz" \
  "$DOCKLESS" import "$ROOTFS" --output "oci:$S:gz" --cmd '["python3"]'
require "import zstd -> oci:$S:zst" \
  "$DOCKLESS" import "$ROOTFS" --output "oci:$S:zst" --compression zstd --cmd '["python3"]'
require "import --platform linux/amd64 -> oci:$S:amd64" \
  "$DOCKLESS" import "$ROOTFS" --output "oci:$S:amd64" --platform linux/amd64 --cmd '["python3"]'
require "import --platform linux/arm64 -> oci:$S:arm64" \
  "$DOCKLESS" import "$ROOTFS" --output "oci:$S:arm64" --platform linux/arm64 --cmd '["python3"]'
AMD64_DIGEST=$(layout_manifest_digest "$S" amd64)
ARM64_DIGEST=$(layout_manifest_digest "$S" arm64)
check_digests_differ "the amd64 and arm64 manifests differ" "$AMD64_DIGEST" "$ARM64_DIGEST"
# The index: a blob in the layout plus an index.json entry tagged "multi".
INDEX_DIGEST=$(python3 - "$S" <<'PY'
import hashlib, json, sys
L = sys.argv[1]
idx = json.load(open(L + "/index.json"))
ms = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in idx["manifests"]}
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [{"mediaType": ms[a]["mediaType"], "digest": ms[a]["digest"], "size": ms[a]["size"],
                        "platform": {"architecture": a, "os": "linux"}} for a in ("amd64", "arm64")]}
data = json.dumps(index, indent=2).encode()
d = hashlib.sha256(data).hexdigest()
open(L + "/blobs/sha256/" + d, "wb").write(data)
idx["manifests"].append({"mediaType": index["mediaType"], "digest": "sha256:" + d, "size": len(data),
                         "annotations": {"org.opencontainers.image.ref.name": "multi"}})
json.dump(idx, open(L + "/index.json", "w"))
print("sha256:" + d)
PY
) || fail "writing the index into $S"
check "skopeo inspect --raw oci:$S:multi reads the hand-made index" skopeo inspect --raw "oci:$S:multi"

# The zstd image goes to a registry of its own: skopeo 1.9's blob info cache
# substitutes a blob with the same diffID that it knows the destination
# registry holds (the gzip layer for the zstd one and the other way round),
# even with --dest-compress-format zstd.
start_registry plain regz
HZ=$REGISTRY_HOST
start_registry plain reg
H=$REGISTRY_HOST

section "skopeo pushes"
check "skopeo copy oci:$S:zst -> $HZ/sk/zst:1 (OCI, zstd)" \
  skopeo copy -q --dest-tls-verify=false "oci:$S:zst" "docker://$HZ/sk/zst:1"
check "skopeo copy oci:$S:gz -> $H/sk/gz:1 (OCI)" \
  skopeo copy -q --dest-tls-verify=false "oci:$S:gz" "docker://$H/sk/gz:1"
check "skopeo copy --format v2s2 oci:$S:gz -> $H/sk/v2s2:1 (Docker schema2)" \
  skopeo copy -q --format v2s2 --dest-tls-verify=false "oci:$S:gz" "docker://$H/sk/v2s2:1"
check "skopeo copy --all oci:$S:multi -> $H/sk/multi:1 (OCI index)" \
  skopeo copy -q --all --dest-tls-verify=false "oci:$S:multi" "docker://$H/sk/multi:1"

# remote_raw NAME REPO: the registry's manifest for REPO (skopeo) -> $T/NAME.raw.json
remote_raw() {
  skopeo inspect --raw --tls-verify=false "docker://$2" >"$T/$1.raw.json" 2>"$T/$1.raw.err" || true
}
remote_raw gz "$H/sk/gz:1"
remote_raw zst "$HZ/sk/zst:1"
remote_raw v2s2 "$H/sk/v2s2:1"
remote_raw multi "$H/sk/multi:1"
check_python "fixture: $H/sk/gz:1 is an OCI manifest with a tar+gzip layer" "$T/gz.raw.json" '
assert d["mediaType"] == "application/vnd.oci.image.manifest.v1+json", d.get("mediaType")
assert d["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip", d["layers"]'
check_python "fixture: $HZ/sk/zst:1 is an OCI manifest with a tar+zstd layer" "$T/zst.raw.json" '
assert d["mediaType"] == "application/vnd.oci.image.manifest.v1+json", d.get("mediaType")
assert d["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd", d["layers"]'
check_python "fixture: $H/sk/v2s2:1 is a Docker schema2 manifest" "$T/v2s2.raw.json" '
assert d["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json", d.get("mediaType")'
check_python "fixture: $H/sk/multi:1 is an OCI index of amd64 + arm64" "$T/multi.raw.json" '
assert d["mediaType"] == "application/vnd.oci.image.index.v1+json", d.get("mediaType")
assert sorted(m["platform"]["architecture"] for m in d["manifests"]) == ["amd64", "arm64"], d["manifests"]'

# pull_and_judge NAME REF [RUN] [SAME]: dockless pull REF into
# oci:$T/p-NAME:1: skopeo inspect oci: passes, blobs intact, and with RUN=run
# podman run of the layout prints 42. SAME=digest (default): dockless printed
# the registry's manifest digest and the layout's tag names it. SAME=blobs
# (a Docker schema2 manifest, which an OCI layout may hold as it is or
# converted to OCI): the tagged manifest has the registry's config and layers.
pull_and_judge() {
  local name=$1 ref=$2 run=${3:-} same=${4:-digest} want
  want=$(remote_digest "$ref")
  skopeo inspect --raw --tls-verify=false "docker://$ref" >"$T/$name.remote.json" 2>/dev/null || true
  check_dl "dockless pull $ref --output oci:$T/p-$name:1" "$T/pull-$name" \
    pull "$ref" --output "oci:$T/p-$name:1" --cache-dir "$(fresh_cache)"
  if [[ $same == digest ]]; then
    check_digests_equal "$name: dockless printed the registry's manifest digest" "$want" "$DIGEST"
    check_digests_equal "$name: the layout's tag names that manifest" "$want" "$(layout_manifest_digest "$T/p-$name" 1)"
  else
    check "$name: the layout's tagged manifest has the registry manifest's config and layers" python3 -c '
import json, sys
remote = json.load(open(sys.argv[1]))
layout, dg = sys.argv[2], sys.argv[3]
assert dg.startswith("sha256:"), "no tag 1 in the layout"
m = json.load(open(layout + "/blobs/sha256/" + dg[7:]))
assert m["config"]["digest"] == remote["config"]["digest"], (m["config"], remote["config"])
assert [l["digest"] for l in m["layers"]] == [l["digest"] for l in remote["layers"]], (m["layers"], remote["layers"])
' "$T/$name.remote.json" "$T/p-$name" "$(layout_manifest_digest "$T/p-$name" 1)"
  fi
  check "$name: skopeo inspect oci:$T/p-$name:1" skopeo inspect "oci:$T/p-$name:1"
  check_blobs_intact "$name: every pulled blob matches its name" "$T/p-$name"
  if [[ $run == run ]]; then
    check_podman_oci_42 "$name: podman run oci:$T/p-$name:1 python3 -c 'print(42)' prints 42" "oci:$T/p-$name:1"
  fi
}

section "dockless pulls what skopeo pushed"
pull_and_judge gz "$H/sk/gz:1" run
pull_and_judge zst "$HZ/sk/zst:1" run
pull_and_judge v2s2 "$H/sk/v2s2:1" run blobs
run_capture "$T/v2s2-inspect" "$DOCKLESS" inspect "oci:$T/p-v2s2:1" --format config
check_python "v2s2: dockless inspect --format config of the pulled layout shows the config" "$T/v2s2-inspect.out" '
assert d["architecture"] == "amd64" and d["os"] == "linux", (d.get("architecture"), d.get("os"))'

section "the multi-platform index"
# Without --platform an index is pulled whole (as crane does; digests stay).
check_dl "dockless pull $H/sk/multi:1 (default: the whole index)" "$T/pull-mwhole" \
  pull "$H/sk/multi:1" --output "oci:$T/p-mwhole:1" --cache-dir "$(fresh_cache)"
check_digests_equal "default: the layout's tag names the index" "$INDEX_DIGEST" "$(layout_manifest_digest "$T/p-mwhole" 1)"
check_dl "dockless pull $H/sk/multi:1 --platform linux/$ARCH" "$T/pull-mdef" \
  pull "$H/sk/multi:1" --platform "linux/$ARCH" --output "oci:$T/p-mdef:1" --cache-dir "$(fresh_cache)"
check_digests_equal "host platform: the layout's tag names the linux/$ARCH manifest" \
  "$(layout_manifest_digest "$S" "$ARCH")" "$(layout_manifest_digest "$T/p-mdef" 1)"
run_capture "$T/mdef-config" "$DOCKLESS" inspect "oci:$T/p-mdef:1" --format config
check_python "host platform: the config's architecture is $ARCH" "$T/mdef-config.out" \
  "assert d['architecture'] == '$ARCH' and d['os'] == 'linux', (d.get('architecture'), d.get('os'))"
check "host platform: skopeo inspect oci:$T/p-mdef:1" skopeo inspect "oci:$T/p-mdef:1"
check_blobs_intact "host platform: blobs intact" "$T/p-mdef"
check_podman_oci_42 "host platform: podman run prints 42" "oci:$T/p-mdef:1"

check_dl "dockless pull $H/sk/multi:1 --platform linux/arm64" "$T/pull-marm" \
  pull "$H/sk/multi:1" --platform linux/arm64 --output "oci:$T/p-marm:1" --cache-dir "$(fresh_cache)"
check_digests_equal "arm64: the layout's tag names the arm64 manifest" "$ARM64_DIGEST" "$(layout_manifest_digest "$T/p-marm" 1)"
run_capture "$T/marm-config" "$DOCKLESS" inspect "oci:$T/p-marm:1" --format config
check_python "arm64: the config's architecture is arm64" "$T/marm-config.out" \
  "assert d['architecture'] == 'arm64' and d['os'] == 'linux', (d.get('architecture'), d.get('os'))"
check "arm64: skopeo inspect --override-arch arm64 oci:$T/p-marm:1" skopeo inspect --override-arch arm64 "oci:$T/p-marm:1"

check_dl "dockless pull $H/sk/multi:1 --all-platforms" "$T/pull-mall" \
  pull "$H/sk/multi:1" --all-platforms --output "oci:$T/p-mall:1" --cache-dir "$(fresh_cache)"
check_digests_equal "all-platforms: dockless printed the index digest" "$INDEX_DIGEST" "$DIGEST"
check_digests_equal "all-platforms: the layout's tag names the index" "$INDEX_DIGEST" "$(layout_manifest_digest "$T/p-mall" 1)"
run_capture "$T/mall-raw" skopeo inspect --raw "oci:$T/p-mall:1"
check_python "all-platforms: skopeo inspect --raw shows the OCI index with both platforms" "$T/mall-raw.out" '
assert d["mediaType"] == "application/vnd.oci.image.index.v1+json", d.get("mediaType")
assert sorted(m["platform"]["architecture"] for m in d["manifests"]) == ["amd64", "arm64"], d["manifests"]'
check_blobs_intact "all-platforms: blobs intact" "$T/p-mall"
for a in amd64 arm64; do
  dg=$(layout_manifest_digest "$S" "$a")
  if [[ -f $(layout_blob_path "$T/p-mall" "$dg") ]]; then
    pass "all-platforms: the $a manifest is in the layout"
  else
    failed "all-platforms: the $a manifest is in the layout" "missing $(layout_blob_path "$T/p-mall" "$dg")"
  fi
done
for a in amd64 arm64; do
  check "all-platforms: skopeo inspect --override-arch $a oci:$T/p-mall:1" \
    skopeo inspect --override-arch "$a" "oci:$T/p-mall:1"
done
run_capture "$T/mall-config" "$DOCKLESS" inspect "oci:$T/p-mall:1" --format config --platform linux/arm64
check_python "all-platforms: dockless inspect --platform linux/arm64 picks the arm64 config" "$T/mall-config.out" \
  "assert d['architecture'] == 'arm64', d.get('architecture')"
check_podman_oci_42 "all-platforms: podman run of the index prints 42" "oci:$T/p-mall:1"

check_dl_error "pull --platform linux/s390x (not in the index)" "$T/pull-ms390x" \
  's390x' 'linux/amd64' 'linux/arm64' "sk/multi" -- \
  pull -q "$H/sk/multi:1" --platform linux/s390x --output "oci:$T/p-ms390x:1" --cache-dir "$(fresh_cache)"
tags=$(layout_tags "$T/p-ms390x")
check_eq "s390x: the failed pull left no tag" "" "$tags"

section "dockless pushes and copies the index (--all-platforms)"
check_dl "dockless push --all-platforms oci:$S:multi $H/dl/multi:1" "$T/push-multi" \
  push --all-platforms "oci:$S:multi" "$H/dl/multi:1" --cache-dir "$(fresh_cache)"
check_digests_equal "push --all-platforms printed the index digest" "$INDEX_DIGEST" "$DIGEST"
check_eq "skopeo sees $H/dl/multi:1 as the same index (sha256 of the raw manifest)" "$INDEX_DIGEST" \
  "sha256:$(skopeo inspect --raw --tls-verify=false "docker://$H/dl/multi:1" 2>/dev/null | sha256sum | cut -d' ' -f1)"
for a in amd64 arm64; do
  check "skopeo inspect --override-arch $a docker://$H/dl/multi:1" \
    skopeo inspect --tls-verify=false --override-arch "$a" "docker://$H/dl/multi:1"
done
check_dl "dockless copy --all-platforms $H/sk/multi:1 $H/dlcopy/multi:1" "$T/copy-multi" \
  copy --all-platforms "$H/sk/multi:1" "$H/dlcopy/multi:1" --report "$T/copy-multi.json" --cache-dir "$(fresh_cache)"
check_eq "skopeo sees $H/dlcopy/multi:1 as the same index" "$INDEX_DIGEST" \
  "sha256:$(skopeo inspect --raw --tls-verify=false "docker://$H/dlcopy/multi:1" 2>/dev/null | sha256sum | cut -d' ' -f1)"
check_python "the index copy mounted every blob it pushed" "$T/copy-multi.json" '
blobs = [b for b in d["blobs"] if b["direction"] == "push"]
assert blobs and all(b["action"] == "mounted" for b in blobs), [(b["digest"][:19], b["action"]) for b in blobs]'

section "copy to another registry streams the layers across (none stored on the way)"
XC=$(fresh_cache)
check_dl "dockless copy --all-platforms $H/sk/multi:1 $HZ/dlx/multi:1" "$T/copy-x" \
  copy --all-platforms "$H/sk/multi:1" "$HZ/dlx/multi:1" --report "$T/copy-x.json" --cache-dir "$XC"
check_eq "skopeo sees $HZ/dlx/multi:1 as the same index" "$INDEX_DIGEST" \
  "sha256:$(skopeo inspect --raw --tls-verify=false "docker://$HZ/dlx/multi:1" 2>/dev/null | sha256sum | cut -d' ' -f1)"
check "skopeo copy --all docker://$HZ/dlx/multi:1 (verifies every blob it reads)" \
  skopeo copy -q --all --src-tls-verify=false "docker://$HZ/dlx/multi:1" "oci:$T/sk-x:1"
check_python "the layers were uploaded without landing in the cache" "$T/copy-x.json" '
import os
pulled = {b["digest"] for b in d["blobs"] if b["direction"] == "pull"}
streamed = [b for b in d["blobs"] if b["direction"] == "push" and b["digest"] not in pulled]
assert streamed and all(b["action"] == "transferred" for b in streamed), streamed
here = [b["digest"] for b in streamed if os.path.exists("'"$XC"'/blobs/sha256/" + b["digest"][7:])]
assert not here, here'

section "docker-archive for podman load"
ARCHIVE_REF=localhost/dockless-it-interop-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n'):1
check_dl "dockless pull $H/sk/gz:1 --output docker-archive:$T/a.tar:$ARCHIVE_REF" "$T/pull-da" \
  pull "$H/sk/gz:1" --output "docker-archive:$T/a.tar:$ARCHIVE_REF" --cache-dir "$(fresh_cache)"
check "the archive has a manifest.json naming $ARCHIVE_REF" python3 -c '
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
m = json.load(t.extractfile("manifest.json"))
assert len(m) == 1 and m[0]["RepoTags"] == [sys.argv[2]], m
for p in [m[0]["Config"]] + m[0]["Layers"]:
    t.getmember(p)
' "$T/a.tar" "$ARCHIVE_REF"
printf '%s\n' "$ARCHIVE_REF" >>"$T/.podman-images"
check "podman load -i $T/a.tar" podman load -q -i "$T/a.tar"
out=$(podman --runtime runc run --rm --network none "$ARCHIVE_REF" python3 -c 'print(42)' 2>"$T/podman.err") || true
check_eq "podman run $ARCHIVE_REF python3 -c 'print(42)' prints 42" 42 "$out"
[[ $out == 42 ]] || tail -n 10 "$T/podman.err" | sed 's/^/        | /'
check "podman rmi $ARCHIVE_REF" podman rmi "$ARCHIVE_REF"

ARCHIVE_REF2=localhost/dockless-it-interop-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n'):2
check_dl "dockless pull $H/sk/v2s2:1 --output docker-archive:$T/b.tar:$ARCHIVE_REF2 (from Docker schema2)" "$T/pull-db" \
  pull "$H/sk/v2s2:1" --output "docker-archive:$T/b.tar:$ARCHIVE_REF2" --cache-dir "$(fresh_cache)"
printf '%s\n' "$ARCHIVE_REF2" >>"$T/.podman-images"
check "podman load -i $T/b.tar" podman load -q -i "$T/b.tar"
out=$(podman --runtime runc run --rm --network none "$ARCHIVE_REF2" python3 -c 'print(42)' 2>"$T/podman.err") || true
check_eq "podman run $ARCHIVE_REF2 prints 42" 42 "$out"
check "podman rmi $ARCHIVE_REF2" podman rmi "$ARCHIVE_REF2"
