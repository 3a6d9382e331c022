#!/usr/bin/env bash
# dockless push / pull / copy against a real plain-HTTP registry (Debian's
# docker-registry, distribution 2.8), judged by skopeo and podman: same
# digests, re-push skips every blob, registry->registry copy mounts, chunked
# upload, a registry with relative Location headers, zstd layers.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"

ROOTFS=$(fixture_rootfs)
echo "rootfs: $ROOTFS"
echo "dockless: $DOCKLESS"
echo "scratch: $T"

L=$T/l
section "import the fixture rootfs"
require "dockless import rootfs -> oci:$L:py" \
  "$DOCKLESS" import "$ROOTFS" --output "oci:$L:py" --cmd '["python3"]'
LOCAL_DIGEST=$(layout_manifest_digest "$L" py)
echo "  local manifest: $LOCAL_DIGEST"

start_registry plain reg
H=$REGISTRY_HOST

# ------------------------------------------------------------------ push
section "push to a plain registry"
check_dl "dockless push oci:$L:py $H/plain/py:1" "$T/push1" \
  push "oci:$L:py" "$H/plain/py:1" --report "$T/push1.json" --cache-dir "$(fresh_cache)"
check_digests_equal "push prints the layout's manifest digest" "$LOCAL_DIGEST" "$DIGEST"
check_python "the push report names the destination and transferred every blob" "$T/push1.json" '
assert d["digest"] == d["digest"].strip() and d["digest"].startswith("sha256:"), d["digest"]
blobs = [b for b in d["blobs"] if b["direction"] == "push"]
assert len(blobs) == 2, blobs           # config + the one layer
assert all(b["action"] == "transferred" for b in blobs), blobs
assert d["bytes_transferred"] == sum(b["size"] for b in blobs), (d["bytes_transferred"], blobs)'
check_digests_equal "skopeo inspect docker://$H/plain/py:1 shows the same digest" \
  "$LOCAL_DIGEST" "$(remote_digest "$H/plain/py:1")"

section "re-push: every blob is already there"
check_dl "dockless push again" "$T/push2" \
  push "oci:$L:py" "$H/plain/py:1" --report "$T/push2.json" --cache-dir "$(fresh_cache)"
check_digests_equal "re-push prints the same digest" "$LOCAL_DIGEST" "$DIGEST"
check_python "the re-push report: every blob skipped, bytes_transferred 0" "$T/push2.json" '
blobs = [b for b in d["blobs"] if b["direction"] == "push"]
assert len(blobs) == 2, blobs
assert all(b["action"] == "skipped" for b in blobs), [(b["digest"][:19], b["action"]) for b in blobs]
assert d["bytes_transferred"] == 0, d["bytes_transferred"]'

section "skopeo and podman read what dockless pushed"
check "skopeo copy docker://$H/plain/py:1 oci:$T/sk:py" \
  skopeo copy --src-tls-verify=false "docker://$H/plain/py:1" "oci:$T/sk:py"
check_digests_equal "skopeo's copy has the same manifest digest" "$LOCAL_DIGEST" "$(layout_manifest_digest "$T/sk" py)"
check_podman_42 "podman pull $H/plain/py:1 + run python3 -c 'print(42)' prints 42" "$H/plain/py:1"

section "pull back with dockless"
check_dl "dockless pull $H/plain/py:1 --output oci:$T/pulled:py" "$T/pull1" \
  pull "$H/plain/py:1" --output "oci:$T/pulled:py" --report "$T/pull1.json" --cache-dir "$(fresh_cache)"
check_digests_equal "pull prints the manifest digest" "$LOCAL_DIGEST" "$DIGEST"
check_digests_equal "the pulled layout's tag names the same manifest" "$LOCAL_DIGEST" "$(layout_manifest_digest "$T/pulled" py)"
check "skopeo inspect oci:$T/pulled:py" skopeo inspect "oci:$T/pulled:py"
check_blobs_intact "every blob in the pulled layout has the digest it is named by" "$T/pulled"
for b in $(manifest_layers "$L" py); do
  check_same_file "pulled layer ${b:7:12} is byte-identical to the imported one" \
    "$(layout_blob_path "$L" "$b")" "$(layout_blob_path "$T/pulled" "$b")"
done
check_python "the pull report lists config + layer as pulled" "$T/pull1.json" '
blobs = [b for b in d["blobs"] if b["direction"] == "pull"]
assert len(blobs) == 2 and all(b["action"] == "transferred" for b in blobs), blobs'

section "pull by digest, docker:// prefix, into an existing layout"
check_dl "dockless pull $H/plain/py@$LOCAL_DIGEST --output oci:$T/sk:bydigest" "$T/pull-digest" \
  pull "$H/plain/py@$LOCAL_DIGEST" --output "oci:$T/sk:bydigest" --cache-dir "$(fresh_cache)"
check_digests_equal "pull by digest prints the digest" "$LOCAL_DIGEST" "$DIGEST"
check_digests_equal "the new tag names the manifest" "$LOCAL_DIGEST" "$(layout_manifest_digest "$T/sk" bydigest)"
check_eq "the layout (written by skopeo) keeps its own tag beside the new one" "bydigest py" "$(layout_tags "$T/sk" | sort | tr '\n' ' ' | sed 's/ $//')"
check "skopeo inspect oci:$T/sk:py still works" skopeo inspect "oci:$T/sk:py"
check "skopeo inspect oci:$T/sk:bydigest" skopeo inspect "oci:$T/sk:bydigest"
check_dl "dockless copy docker://$H/plain/py:1 oci:$T/viacopy:c" "$T/copy-oci" \
  copy "docker://$H/plain/py:1" "oci:$T/viacopy:c" --cache-dir "$(fresh_cache)"
check_digests_equal "copy docker:// -> oci: keeps the digest" "$LOCAL_DIGEST" "$(layout_manifest_digest "$T/viacopy" c)"
check_dl "dockless copy oci:$T/viacopy:c docker://$H/viacopy/py:1" "$T/copy-back" \
  copy "oci:$T/viacopy:c" "docker://$H/viacopy/py:1" --report "$T/copy-back.json" --cache-dir "$(fresh_cache)"
check_digests_equal "skopeo sees $H/viacopy/py:1 with the same digest" "$LOCAL_DIGEST" "$(remote_digest "$H/viacopy/py:1")"

# ------------------------------------------------------------------ copy
section "copy registry -> registry (another repository, same registry)"
check_dl "dockless copy $H/plain/py:1 $H/other/py:2" "$T/copy1" \
  copy "$H/plain/py:1" "$H/other/py:2" --report "$T/copy1.json" --cache-dir "$(fresh_cache)"
check_digests_equal "copy prints the same digest" "$LOCAL_DIGEST" "$DIGEST"
check_python "the copy report: every pushed blob is mounted from plain/py" "$T/copy1.json" '
blobs = [b for b in d["blobs"] if b["direction"] == "push"]
assert len(blobs) == 2, d["blobs"]
assert all(b["action"] == "mounted" for b in blobs), [(b["digest"][:19], b["action"]) for b in blobs]'
check "the registry log shows a mount POST (mount=...&from=plain/py)" \
  grep -Eq 'POST /v2/other/py/blobs/uploads/\?.*(mount=sha256.*from=plain%2Fpy|from=plain%2Fpy.*mount=sha256|from=plain/py)' "$REGISTRY_LOG"
check_digests_equal "skopeo sees $H/other/py:2 with the same digest" "$LOCAL_DIGEST" "$(remote_digest "$H/other/py:2")"

# ------------------------------------------------------------------ chunked
section "chunked upload (--chunk-size 1M) to a fresh repository"
mark=$(registry_log_mark)
check_dl "dockless push --chunk-size 1M oci:$L:py $H/chunked/py:1" "$T/push-chunk" \
  push --chunk-size 1M "oci:$L:py" "$H/chunked/py:1" --report "$T/push-chunk.json" --cache-dir "$(fresh_cache)"
check_digests_equal "chunked push prints the same digest" "$LOCAL_DIGEST" "$DIGEST"
registry_log_since "$mark" >"$T/chunk-reglog"
npatch=$(grep -c '"PATCH /v2/chunked/py/blobs/uploads/' "$T/chunk-reglog" || true)
layer_size=$(python3 -c 'import json,sys; print(max(b["size"] for b in json.load(open(sys.argv[1]))["blobs"]))' "$T/push-chunk.json" 2>/dev/null || echo 0)
min_patch=$((layer_size / 1048576))
if ((npatch >= min_patch && npatch >= 2)); then
  pass "the registry saw $npatch PATCH requests for a ${layer_size}-byte layer (>= $min_patch)"
else
  failed "the registry saw >= $min_patch PATCH requests (1 MiB chunks of ${layer_size} bytes)" "PATCH lines: $npatch" \
    "$(grep -E '"(POST|PUT|PATCH) /v2/chunked' "$T/chunk-reglog" | head -n 10)"
fi
check_python "the chunked push report: every blob transferred, none mounted" "$T/push-chunk.json" '
blobs = [b for b in d["blobs"] if b["direction"] == "push"]
assert len(blobs) == 2 and all(b["action"] == "transferred" for b in blobs), blobs'
check_dl "dockless pull the chunked image back" "$T/pull-chunk" \
  pull "$H/chunked/py:1" --output "oci:$T/pulled-chunk:py" --cache-dir "$(fresh_cache)"
check_blobs_intact "the chunked image's blobs pull back intact" "$T/pulled-chunk"
check_podman_42 "podman pull + run of the chunked image prints 42" "$H/chunked/py:1"

# ------------------------------------------------------------------ relative
section "a registry that sends relative Location headers"
start_registry relative rel
R=$REGISTRY_HOST
loc=$(curl -s -o /dev/null -D - -X POST "http://$R/v2/probe/x/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
if [[ $loc == /v2/* ]]; then
  pass "fixture: the relative registry answers POST with Location $loc"
else
  failed "fixture: the relative registry answers POST with a relative Location" "Location: $(_show "$loc")"
fi
check_dl "dockless push oci:$L:py $R/rel/py:1 (monolithic)" "$T/push-rel" \
  push "oci:$L:py" "$R/rel/py:1" --cache-dir "$(fresh_cache)"
check_digests_equal "relative: push prints the same digest" "$LOCAL_DIGEST" "$DIGEST"
check_dl "dockless push --chunk-size 1M oci:$L:py $R/relchunk/py:1" "$T/push-relc" \
  push --chunk-size 1M "oci:$L:py" "$R/relchunk/py:1" --cache-dir "$(fresh_cache)"
check_digests_equal "relative: chunked push prints the same digest" "$LOCAL_DIGEST" "$DIGEST"
check_digests_equal "relative: skopeo sees the chunked push's digest" "$LOCAL_DIGEST" "$(remote_digest "$R/relchunk/py:1")"
check_dl "dockless pull $R/rel/py:1" "$T/pull-rel" \
  pull "$R/rel/py:1" --output "oci:$T/pulled-rel:py" --cache-dir "$(fresh_cache)"
check_digests_equal "relative: the pulled layout has the same digest" "$LOCAL_DIGEST" "$(layout_manifest_digest "$T/pulled-rel" py)"
check_blobs_intact "relative: the pulled blobs are intact" "$T/pulled-rel"
check "relative: skopeo inspect oci:$T/pulled-rel:py" skopeo inspect "oci:$T/pulled-rel:py"

# ------------------------------------------------------------------ zstd
section "zstd layers"
require "dockless import --compression zstd -> oci:$T/z:py" \
  "$DOCKLESS" import "$ROOTFS" --output "oci:$T/z:py" --compression zstd --cmd '["python3"]'
ZDIGEST=$(layout_manifest_digest "$T/z" py)
check_dl "dockless push oci:$T/z:py $H/zstd/py:1" "$T/push-z" \
  push "oci:$T/z:py" "$H/zstd/py:1" --cache-dir "$(fresh_cache)"
check_digests_equal "zstd: push prints the layout's digest" "$ZDIGEST" "$DIGEST"
check_dl "dockless pull $H/zstd/py:1 --output oci:$T/pulled-z:py" "$T/pull-z" \
  pull "$H/zstd/py:1" --output "oci:$T/pulled-z:py" --cache-dir "$(fresh_cache)"
check_digests_equal "zstd: the pulled layout has the same digest" "$ZDIGEST" "$(layout_manifest_digest "$T/pulled-z" py)"
check_blobs_intact "zstd: the pulled blobs are intact" "$T/pulled-z"
run_capture "$T/zman" skopeo inspect --raw --tls-verify=false "docker://$H/zstd/py:1"
check_python "zstd: the registry's manifest has a tar+zstd layer" "$T/zman.out" '
assert d["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd", d["layers"]'
check_podman_42 "zstd: podman pull + run prints 42" "$H/zstd/py:1"
