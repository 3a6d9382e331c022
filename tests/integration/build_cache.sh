#!/usr/bin/env bash
# dockless build's layer cache and reproducibility, on the hermetic test
# project: a second build with nothing changed hits every layer, runs no uv
# and downloads no wheel; editing a source file misses only the source layer;
# editing an ignored file changes nothing; two clean builds (fresh cache
# dirs, same SOURCE_DATE_EPOCH) give the same manifest digest; a change of an
# extra (re-locked) misses that venv's layer and the new package is there.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

export SOURCE_DATE_EPOCH=1700000000
build_setup
CACHE=$T/cache

# b N DESC [CACHE_DIR]: builds $PROJ into oci:$T/oN:app with report $T/rN.json.
b() {
  local n=$1 desc=$2 cache=${3:-$CACHE}
  check_build "$desc" "$T/b$n" "$PROJ" --set "image.base=$BASE_REF" \
    --output "oci:$T/o$n:app" --report "$T/r$n.json" --cache-dir "$cache"
  report_layers "$T/r$n.json" | sed 's/^/    /'
}

# missed_layers REPORT: the names of the layers that were not cache hits, " | "-separated.
missed_layers() { report_get "$1" '" | ".join(l["name"] for l in d["layers"] if l["cache"] != "hit")'; }

section "cold build"
b 1 "cold build (empty cache dir)"
((CHECK_OK)) || fail "the cold build failed; nothing else can be judged"
D1=$DIGEST
COLD=$SECS
check_eq "cold: every layer is built (cache miss)" "" \
  "$(report_get "$T/r1.json" '" | ".join(l["name"] for l in d["layers"] if l["cache"] != "miss")')"
echo "  cold: ${COLD}s, uv_runs $(report_get "$T/r1.json" 'd["uv_runs"]'), $(index_wheel_gets_since 0 | wc -l) wheel downloads"

section "warm build, nothing changed"
M=$(index_mark)
b 2 "warm build (same inputs, same cache dir)"
D2=$DIGEST
WARM=$SECS
check_digests_equal "warm: same manifest digest" "$D1" "$D2"
check_eq "warm: every layer is a cache hit (layers that missed)" "" "$(missed_layers "$T/r2.json")"
check_eq "warm: uv_runs is 0" "0" "$(report_get "$T/r2.json" 'd["uv_runs"]')"
check_eq "warm: no wheel downloaded from the index" "" "$(index_wheel_gets_since "$M")"
check_eq "warm: no request to the index at all" "" "$(tail -n "+$((M + 1))" "$INDEX_LOG")"
echo "  cold ${COLD}s, warm ${WARM}s (no timing assertion)"

section "an ignored file changes: nothing changes"
printf 'more log\n' >>"$PROJ/app.log"
printf 'another draft\n' >"$PROJ/docs/draft.md"
M=$(index_mark)
b 3 "build after editing files the .dockerignore drops"
check_digests_equal "ignored edits: same manifest digest" "$D1" "$DIGEST"
check_eq "ignored edits: every layer is a cache hit" "" "$(missed_layers "$T/r3.json")"

section "one source file changes: only the source layer misses"
printf '\n# edited by build_cache.sh\n' >>"$PROJ/src/app/workers.py"
M=$(index_mark)
b 4 "build after editing src/app/workers.py"
D4=$DIGEST
check_digests_differ "source edit: a new manifest digest" "$D1" "$D4"
check_python "source edit: the only layer that missed is the source" "$T/r4.json" '
missed = [l["name"] for l in d["layers"] if l["cache"] != "hit"]
assert len(missed) == 1 and missed[0].startswith("source"), "missed: %r" % missed'

check_eq "source edit: uv_runs is 0" "0" "$(report_get "$T/r4.json" 'd["uv_runs"]')"
check_eq "source edit: no wheel downloaded" "" "$(index_wheel_gets_since "$M")"
check_python "source edit: every other layer has the digest of the warm build" "$T/r4.json" '
old = {l["name"]: l["digest"] for l in json.load(open("'"$T"'/r2.json"))["layers"]}
for l in d["layers"]:
    if not l["name"].startswith("source"):
        assert old.get(l["name"]) == l["digest"], (l["name"], old.get(l["name"]), l["digest"])'

section "two clean builds: the same layers, except uv's own index files"
# Every layer must be byte-identical between clean builds, except the small
# "uv cache index" layers: uv's pointer files embed HTTP cache times and a
# random revision id (docs/ARCHITECTURE.md). Those may differ; nothing else.
b 5 "clean build A (fresh cache dir)" "$T/cleanA"
DA=$DIGEST
b 6 "clean build B (fresh cache dir)" "$T/cleanB"
DB=$DIGEST
same_layers='
other = {l["name"]: l["digest"] for l in json.load(open(OTHER))["layers"]}
mine = {l["name"]: l["digest"] for l in d["layers"]}
assert set(other) == set(mine), ("different layer lists", sorted(set(other) ^ set(mine)))
differ = [n for n in mine if mine[n] != other[n]]
bad = [n for n in differ if not n.startswith("uv cache index")]
assert not bad, "layers that differ: %r" % bad
assert any(not n.startswith("uv cache index") for n in mine), "no layer compared"'
check_python "clean builds A and B (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH): every layer but uv's index files is identical" "$T/r5.json" "OTHER = '$T/r6.json'
$same_layers"
if [[ $DA != "$DB" && -s $T/r5.json && -s $T/r6.json ]]; then
  echo "  which layers differ between the clean builds (A = $T/o5, B = $T/o6):"
  explain_layer_diff "$T/r5.json" "$T/o5" "$T/r6.json" "$T/o6" 2>&1 | sed 's/^/    /'
fi
check_python "a clean build has the layers of the incremental build of the same inputs (but uv's index files)" "$T/r4.json" "OTHER = '$T/r5.json'
$same_layers"

section "an extra changes (late_add added to mcore, re-locked): that venv misses"
cp "$PROJ/uv.lock" "$T/uv.lock.before"
add_late_add_to_mcore
check "uv.lock changed and names late-add" grep -q 'name = "late-add"' "$PROJ/uv.lock"
M=$(index_mark)
b 7 "build after the lock change"
D7=$DIGEST
check_digests_differ "lock change: a new manifest digest" "$D4" "$D7"
check_contains "lock change: the McoreWorker venv layer missed" "$(missed_layers "$T/r7.json")" "venv app.workers.McoreWorker"
check_contains "lock change: the source layer missed (pyproject.toml and uv.lock changed)" "$(missed_layers "$T/r7.json")" "source"
echo "  layers that missed: $(missed_layers "$T/r7.json")"
echo "  uv_runs: $(report_get "$T/r7.json" 'd["uv_runs"]'); wheel downloads: $(index_wheel_gets_since "$M" | awk '{print $3}' | sed 's#.*/##' | tr '\n' ' ')"
check_eq "lock change: the only wheel downloaded is late_add's" "/files/late_add-1.0.0-py3-none-any.whl" \
  "$(index_wheel_paths_since "$M")"

# The image has late_add in the McoreWorker venv and in the cache (mcore syncs offline with it).
expect_late_add_in_mcore
incheck lockchange "oci:$T/o7:app"
check_eq "lock change: fixture packages in the shipped cache" \
  "$(sorted_words "${EXTRA_PACKAGES[@]}")" "$(cache_packages "$T/lockchange.cache")"

section "a large source tree edited late: the layer starts from the last one's bytes before the edit"
# ~1 MiB of generated modules (several gzip blocks): an edit to the last
# one takes the last build's layer up from a point before it. The layer must
# be the one a build without the cache makes, and its blob must hash and
# unpack to the diff_id its config names (what a runtime checks on pull).
python3 - "$PROJ/src/gen" <<'PY'
import os, random, sys
random.seed(7)
os.makedirs(sys.argv[1], exist_ok=True)
for i in range(48):
    with open(os.path.join(sys.argv[1], "m%03d.py" % i), "w") as f:
        while f.tell() < 22000:
            name = "".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(random.randint(3, 14)))
            f.write("def %s(a, b):\n    return a * %d + b\n" % (name, random.randint(0, 999)))
PY
sleep 1.2  # older than the racy margin: the next build's points can be trusted
b 10 "build after adding 1 MiB of modules"
printf '\n# edited late by build_cache.sh\n' >>"$PROJ/src/gen/m047.py"
b 11 "build after editing the last module"
check "late edit: the layer was taken up from the last build's (its first bytes not read again)" \
  grep -q "tar bytes not read again" "$T/b11.err"
check_build "the same tree without the cache (--no-cache)" "$T/b12" "$PROJ" --set "image.base=$BASE_REF" \
  --output "oci:$T/o12:app" --report "$T/r12.json" --cache-dir "$T/cache-nc" --no-cache
source_digest='[l["digest"] for l in d["layers"] if l["name"].startswith("source")][0]'
check_eq "late edit: the source layer is the one a build without the cache makes" \
  "$(report_get "$T/r12.json" "$source_digest")" "$(report_get "$T/r11.json" "$source_digest")"
check_python "late edit: the layer's blob hashes to its digest and unpacks to its config's diff_id" "$T/r11.json" '
import gzip, hashlib
blobs = "'"$T"'/o11/blobs/sha256/"
read = lambda digest: open(blobs + digest.split(":")[1], "rb").read()
index = json.load(open("'"$T"'/o11/index.json"))
manifest = json.loads(read(index["manifests"][0]["digest"]))
config = json.loads(read(manifest["config"]["digest"]))
digest = [l for l in d["layers"] if l["name"].startswith("source")][0]["digest"]
i = [l["digest"] for l in manifest["layers"]].index(digest)
blob = read(digest)
assert "sha256:" + hashlib.sha256(blob).hexdigest() == digest, "blob digest"
assert "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest() == config["rootfs"]["diff_ids"][i], "diff_id"'
rm -rf "$PROJ/src/gen"

section "times"
echo "  cold build ${COLD}s; warm build ${WARM}s"
