#!/usr/bin/env bash
# The build cache shared through a registry (--cache-from / --cache-to), as
# build pods on different machines use it: each "pod" is a build with an
# empty cache dir of its own. Pod 1 writes the cache; pod 2 (nothing changed)
# takes every layer from the registry, runs no uv, asks the package index
# nothing and gives pod 1's manifest digest; a source edit costs one layer; a
# --skip variant runs no uv and adds only a config and a manifest to the
# registry; a uv.lock change runs uv on a uv cache seeded from the registry,
# so only the new wheel is downloaded. Bad cache refs are warnings, never a
# failed build; --no-cache rebuilds everything.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

export SOURCE_DATE_EPOCH=1700000000
build_setup
CREF=$REGISTRY_HOST/app:buildcache

# pod N DESC ARGS...: a build of $PROJ on "a fresh machine" (cache dir
# $T/podN, or $POD_CACHE), pushed as $REGISTRY_HOST/app:N, OCI layout $T/oN, report $T/rN.json.
pod() {
  local n=$1 desc=$2
  shift 2
  check_build "$desc" "$T/p$n" "$PROJ" --set "image.base=$BASE_REF" --cache-dir "${POD_CACHE:-$T/pod$n}" \
    --tag "$REGISTRY_HOST/app:$n" --push --output "oci:$T/o$n:app" --report "$T/r$n.json" "$@"
  report_layers "$T/r$n.json" | sed 's/^/    /'
}
# origins REPORT: the distinct "cache" values of its layers.
origins() { report_get "$1" '" ".join(sorted(set(l["cache"] for l in d["layers"])))'; }
# origin_of REPORT ORIGIN: names of the layers with that origin, " | "-separated.
origin_of() { report_get "$1" '" | ".join(l["name"] for l in d["layers"] if l["cache"] == "'"$2"'")'; }
# registry_blobs: "DIGEST SIZE" of every blob the registry stores.
registry_blobs() {
  find "$REGISTRY_STORAGE/docker/registry/v2/blobs" -name data -type f -printf '%h %s\n' 2>/dev/null |
    sed -E 's#.*/([0-9a-f]{64}) #sha256:\1 #' | sort
}

section "pod 1: no cache in the registry yet"
pod 1 "pod 1 builds and writes the cache" --cache-from "$CREF" --cache-to "$CREF"
((CHECK_OK)) || fail "pod 1 failed; nothing else can be judged"
D1=$DIGEST
check_contains "pod 1: says there is no cache at $CREF yet" "$(cat "$T/p1.err")" "no build cache at"
check_eq "pod 1: every layer is built" "miss" "$(origins "$T/r1.json")"
check "skopeo reads the cache artifact" skopeo inspect --tls-verify=false --raw "docker://$CREF"
skopeo inspect --tls-verify=false --raw "docker://$CREF" >"$T/cache1.json" 2>/dev/null || true
check_python "the cache is an OCI artifact listing every layer of pod 1's image" "$T/cache1.json" '
r = json.load(open("'"$T"'/r1.json"))
assert d["mediaType"] == "application/vnd.oci.image.manifest.v1+json", d.get("mediaType")
assert d["artifactType"] == "application/vnd.dockless.build-cache.v1+json", d.get("artifactType")
assert d["config"]["mediaType"] == "application/vnd.dockless.build-cache.v1+json", d["config"]
cached = {l["digest"] for l in d["layers"]}
missing = [l["name"] for l in r["layers"] if l["digest"] not in cached]
assert not missing, "layers of the image not in the cache: %r" % missing'
check "skopeo copies the cache like any OCI artifact" \
  skopeo copy --src-tls-verify=false "docker://$CREF" "oci:$T/cache-copy:c"

section "pod 2: another machine, nothing changed"
M=$(index_mark)
pod 2 "pod 2 builds from the registry cache" --cache-from "$CREF" --cache-to "$CREF"
D2=$DIGEST
check_eq "pod 2: every layer comes from the registry cache" "remote" "$(origins "$T/r2.json")"
check_eq "pod 2: uv_runs is 0" "0" "$(report_get "$T/r2.json" 'd["uv_runs"]')"
check_eq "pod 2: no request to the package index" "" "$(tail -n "+$((M + 1))" "$INDEX_LOG")"
check_digests_equal "pod 2: the manifest digest of pod 1" "$D1" "$D2"
check "pod 2: the base was never unpacked (no sandbox ran)" test ! -e "$T/pod2/snapshots"
incheck pod2 "oci:$T/o2:app"

section "pod 2b: push only: cached layers stay in the registry"
check_build "pod 2b builds from the registry cache and only pushes" "$T/p2b" "$PROJ" --set "image.base=$BASE_REF" \
  --cache-dir "$T/pod2b" --tag "$REGISTRY_HOST/other:2b" --push --report "$T/r2b.json" --cache-from "$CREF"
check_eq "pod 2b: every layer comes from the registry cache" "remote" "$(origins "$T/r2b.json")"
check_digests_equal "pod 2b: the manifest digest of pod 1" "$D1" "$DIGEST"
skopeo inspect --tls-verify=false --raw "docker://$BASE_REF" >"$T/base.manifest.json" 2>/dev/null || true
check_python "pod 2b: no layer was downloaded, its own or the base's (the push mounted them)" "$T/r2b.json" '
import os
base = json.load(open("'"$T"'/base.manifest.json"))
layers = [(l["name"], l["digest"]) for l in d["layers"]] + [("base", l["digest"]) for l in base["layers"]]
here = [n for n, dg in layers if os.path.exists("'"$T"'/pod2b/blobs/sha256/" + dg[7:])]
assert not here, "downloaded: %r" % here'
check "pod 2b: skopeo reads the pushed image" skopeo inspect --tls-verify=false "docker://$REGISTRY_HOST/other:2b"

section "pod 3: one source file edited"
printf '\n# edited by build_remote_cache.sh\n' >>"$PROJ/src/app/workers.py"
registry_blobs >"$T/blobs-before3"
pod 3 "pod 3 builds after a source edit" --cache-from "$CREF" --cache-to "$CREF"
D3=$DIGEST
check_digests_differ "pod 3: a new manifest digest" "$D2" "$D3"
check_eq "pod 3: the only layer built is the source" "source /opt/app" "$(origin_of "$T/r3.json" miss)"
check_eq "pod 3: uv_runs is 0" "0" "$(report_get "$T/r3.json" 'd["uv_runs"]')"
registry_blobs >"$T/blobs-after3"
NEW3=$(comm -13 <(cut -d' ' -f1 "$T/blobs-before3") <(cut -d' ' -f1 "$T/blobs-after3") | wc -l)
# The source layer, the image config and manifest, the cache index and manifest.
check_eq "pod 3: the registry gained 5 blobs (source layer, config, manifest, cache index, cache manifest)" "5" "$NEW3"

section "pod 4: --skip vllm on a fresh machine"
registry_blobs >"$T/blobs-before4"
pod 4 "pod 4 builds the variant without vllm" --skip vllm --cache-from "$CREF"
check_eq "pod 4: uv_runs is 0" "0" "$(report_get "$T/r4.json" 'd["uv_runs"]')"
check_eq "pod 4: every layer comes from the registry cache" "remote" "$(origins "$T/r4.json")"
check_python "pod 4: its layers are pod 3's minus the vllm ones" "$T/r4.json" '
full = {l["digest"]: l["name"] for l in json.load(open("'"$T"'/r3.json"))["layers"]}
mine = {l["digest"]: l["name"] for l in d["layers"]}
assert set(mine) <= set(full), "layers not in the full image: %r" % [mine[x] for x in set(mine) - set(full)]
gone = sorted(full[x] for x in set(full) - set(mine))
assert "venv app.workers.VllmWorker" in gone, gone
assert all("Vllm" in g or "vllm" in g for g in gone), "dropped more than vllm: %r" % gone'
registry_blobs >"$T/blobs-after4"
check_python "pod 4: the registry gained only a config and a manifest (under 64 KiB)" "$T/r4.json" '
before = dict(l.split() for l in open("'"$T"'/blobs-before4"))
after = dict(l.split() for l in open("'"$T"'/blobs-after4"))
new = {k: int(v) for k, v in after.items() if k not in before}
assert len(new) <= 2 and sum(new.values()) < 65536, new'
incheck pod4 "oci:$T/o4:app" app.workers.VllmWorker

section "pod 5: uv.lock changed: uv runs on a uv cache seeded from the registry"
add_late_add_to_mcore
M=$(index_mark)
pod 5 "pod 5 builds after the lock change" --cache-from "$CREF" --cache-to "$CREF"
check_contains "pod 5: the uv cache was seeded from the registry" "$(cat "$T/p5.err")" "uv cache seeded from $CREF"
check_ne "pod 5: uv ran" "0" "$(report_get "$T/r5.json" 'd["uv_runs"]')"
check_eq "pod 5: the only wheel downloaded is late_add's" "/files/late_add-1.0.0-py3-none-any.whl" \
  "$(index_wheel_paths_since "$M")"
expect_late_add_in_mcore
incheck pod5 "oci:$T/o5:app"

section "pod 6: the same lock on another machine: all from the cache pod 5 wrote"
pod 6 "pod 6 builds after pod 5" --cache-from "$CREF"
check_eq "pod 6: every layer comes from the registry cache" "remote" "$(origins "$T/r6.json")"
check_digests_equal "pod 6: the manifest digest of pod 5" "$(tr -d '\n' <"$T/p5.out")" "$DIGEST"

section "refs that hold no usable cache are warnings"
pod 7 "a --cache-from that is an image, not a cache" --cache-from "$REGISTRY_HOST/app:1" -q
check_contains "it says why the cache is not used" "$(cat "$T/p7.err")" "is not a dockless build cache"
check_build_fails "a --cache-to that is not a reference" "$T/bad" 2 "cache-to" -- \
  "$PROJ" --set "image.base=$BASE_REF" --cache-dir "$T/pod8" --output "oci:$T/o8:app" --cache-to 'Not A Ref'

section "--no-cache rebuilds every layer"
POD_CACHE=$T/pod6 pod 9 "--no-cache after pod 6 in pod 6's cache dir" --cache-from "$CREF" --no-cache
check_eq "--no-cache: every layer is built" "miss" "$(origins "$T/r9.json")"
check_ne "--no-cache: uv ran" "0" "$(report_get "$T/r9.json" 'd["uv_runs"]')"
check_python "--no-cache: the same layers as pod 6, but uv's index files" "$T/r9.json" '
other = {l["name"]: l["digest"] for l in json.load(open("'"$T"'/r6.json"))["layers"]}
mine = {l["name"]: l["digest"] for l in d["layers"]}
assert set(other) == set(mine), sorted(set(other) ^ set(mine))
bad = [n for n in mine if mine[n] != other[n] and not n.startswith("uv cache index")]
assert not bad, bad'

