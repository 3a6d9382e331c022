#!/usr/bin/env bash
# `dockless bundle` / `unbundle`: everything a build in an air gap needs
# carried as one tar of an OCI layout, and pushed into another registry
# under a prefix. Registry A (the internet side) gets a built image and its
# build cache (`build --push --cache-to`) and an image with referrers; the
# bundle holds the base, the built image, the signed image and its
# referrers, the cache and the project's wheels (from the local index). It
# is unbundled into registry B under a prefix and judged with skopeo
# (digests equal to A's), the wheelhouse against the wheelhouse format and
# uv.lock; a second unbundle uploads nothing; a build against B with
# --cache-from runs no uv. An unbundle killed midway finishes on rerun. Bad
# bundles and a --to that is not a registry fail with one line.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

export SOURCE_DATE_EPOCH=1700000000
build_setup
HA=$REGISTRY_HOST
CREF=$HA/team/app:buildcache
APP=$HA/team/app:1
sk() { skopeo "$@" --src-tls-verify=false --dest-tls-verify=false; }
raw_digest() { { skopeo inspect --tls-verify=false --raw "docker://$1" 2>/dev/null || echo missing; } | sha256sum | awk '{print "sha256:" $1}'; }
# layers_of REF: the layer digests of an image, one line.
layers_of() { skopeo inspect --tls-verify=false --raw "$1" | python3 -c 'import json,sys; print(" ".join(l["digest"] for l in json.load(sys.stdin)["layers"]))'; }

section "internet side: a build pushed with its cache, an image with referrers"
check_build "build --push --cache-to on registry A" "$T/b1" "$PROJ" --set "image.base=$BASE_REF" \
  --cache-dir "$T/pod1" --tag "$APP" --push --cache-to "$CREF" --report "$T/r1.json"
((CHECK_OK)) || fail "the build failed; nothing else can be judged"
APP_DIGEST=$DIGEST
FX=$T/fx
python3 "$SOURCE_ROOT/tests/fixtures/make_oci_artifacts.py" "$FX" >"$T/fx.digests" || fail "make_oci_artifacts.py failed"
digest_of() { awk -v n="$1" '$1 == n { print $2 }' "$T/fx.digests"; }
SIGNED=$(digest_of signed) SBOM=$(digest_of sbom) SIG=$(digest_of sig)
REFTAG=sha256-${SIGNED#sha256:}
require "skopeo copy oci:fx:signed -> $HA/fx/signed:1" sk copy --preserve-digests "oci:$FX:signed" "docker://$HA/fx/signed:1"
for r in sbom sig; do
  require "skopeo copy oci:fx:$r" sk copy --preserve-digests "oci:$FX:$r" "docker://$HA/fx/signed:$r"
done
require "skopeo copy the referrers tag index" sk copy --all "oci:$FX:refs" "docker://$HA/fx/signed:$REFTAG"
declare -A A_DIGEST
for r in debian-py:12 team/app:1 team/app:buildcache fx/signed:1; do A_DIGEST[$r]=$(raw_digest "$HA/$r"); done

section "bundle into one tar"
BUNDLE=$T/carry/airgap.tar
mkdir -p "$T/carry"
PYARCH=$T/cpython-3.12.8+20241219-x86_64-unknown-linux-gnu-install_only.tar.gz
PYTAG=cpython-3.12.8_20241219-x86_64-unknown-linux-gnu-install_only.tar.gz
tar -czf "$PYARCH" -C "$FIXTURES" make_wheels.py
dl "$T/bundle" bundle --image "$BASE_REF" --image "$APP" --image "$HA/fx/signed:1" --referrers \
  --cache "$CREF" --wheels "$PROJ" --wheels-ref wheels/proj:1 --python-archive "$PYARCH" \
  -o "$BUNDLE" --cache-dir "$(fresh_cache)"
check_eq "bundle exits 0" "0" "$RC"
cat "$T/bundle.out"
check_contains "bundle prints a summary" "$(cat "$T/bundle.out")" "manifests"
check "the tar is there, no work dir is left" bash -c "[[ -s '$BUNDLE' && ! -e '$BUNDLE.partial' ]]"
mkdir -p "$T/bx"
require "the bundle is a tar" tar -xf "$BUNDLE" -C "$T/bx"
check "skopeo reads the built image from the bundle" skopeo inspect --raw "oci:$T/bx:team/app:1"
check_eq "the bundled built image has A's digest" "${A_DIGEST[team/app:1]}" \
  "$(skopeo inspect --raw "oci:$T/bx:team/app:1" | sha256sum | awk '{print "sha256:" $1}')"
check_python "every entry of index.json says where it came from and where it goes" "$T/bx/index.json" '
ha = "'"$HA"'"
want = {"debian-py:12": "image", "team/app:1": "image", "fx/signed:1": "image",
        "team/app:buildcache": "cache", "wheels/proj:1": "wheelhouse",
        "python:'"$PYTAG"'": "python-archive"}
got = {}
for m in d["manifests"]:
    a = m.get("annotations", {})
    assert a.get("dev.dockless.bundle.source"), m
    name = a.get("org.opencontainers.image.ref.name")
    if name is None:
        assert a["dev.dockless.bundle.kind"] == "referrer", m
        continue
    got[name] = a["dev.dockless.bundle.kind"]
    if got[name] not in ("wheelhouse", "python-archive"):
        assert a["io.containerd.image.name"] == ha + "/" + name, a
assert got == want, got
assert sum(1 for m in d["manifests"] if "org.opencontainers.image.ref.name" not in m.get("annotations", {})) == 2'

section "the wheelhouse follows the wheelhouse format"
check_python "wheelhouse manifest: artifactType, empty config, one layer per locked file, sorted, lock hashes" "$T/bx/index.json" '
import hashlib, os, tomllib, urllib.parse
bx = "'"$T/bx"'"
lock_bytes = open("'"$PROJ"'/uv.lock", "rb").read()
lock = tomllib.loads(lock_bytes.decode())
files = {}
for p in lock["package"]:
    for f in ([p["sdist"]] if "sdist" in p else []) + p.get("wheels", []):
        if "url" in f:
            files[f["hash"]] = f
assert files, "the lock names no files"
e = [m for m in d["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "wheels/proj:1"][0]
raw = open(os.path.join(bx, "blobs/sha256", e["digest"][7:]), "rb").read()
m = json.loads(raw)
assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json" and m["schemaVersion"] == 2
assert m["artifactType"] == "application/vnd.dockless.wheelhouse.v1", m.get("artifactType")
assert m["config"] == {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2}, m["config"]
assert open(os.path.join(bx, "blobs/sha256/44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"), "rb").read() == b"{}"
assert m["annotations"] == {"dev.dockless.lock.sha256": hashlib.sha256(lock_bytes).hexdigest()}, m["annotations"]
titles = [l["annotations"]["org.opencontainers.image.title"] for l in m["layers"]]
assert titles == sorted(titles), titles
assert {l["digest"] for l in m["layers"]} == set(files), "layers differ from the lock"
for l in m["layers"]:
    f = files[l["digest"]]
    assert l["annotations"]["dev.dockless.url"] == f["url"]
    assert l["annotations"]["org.opencontainers.image.title"] == urllib.parse.unquote(f["url"].rsplit("/", 1)[1])
    want_mt = "application/vnd.dockless.python." + ("wheel" if f["url"].endswith(".whl") else "sdist")
    assert l["mediaType"] == want_mt, (l["mediaType"], f["url"])
    blob = open(os.path.join(bx, "blobs/sha256", l["digest"][7:]), "rb").read()
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == l["digest"] and len(blob) == l["size"]
    assert "size" not in f or f["size"] == l["size"]
assert "created" not in raw.decode()'
check "bundling again gives the same wheelhouse digest (no timestamps)" bash -c "
  '$DOCKLESS' bundle -q --wheels '$PROJ' --wheels-ref wheels/proj:1 -o '$T/again' --cache-dir '$T/again-cache' >/dev/null &&
  diff <(python3 -c 'import json,sys; print([m[\"digest\"] for m in json.load(open(sys.argv[1]))[\"manifests\"]])' '$T/again/index.json') \
       <(python3 -c 'import json,sys; print([m[\"digest\"] for m in json.load(open(sys.argv[1]))[\"manifests\"] if m[\"annotations\"].get(\"dev.dockless.bundle.kind\") == \"wheelhouse\"])' '$T/bx/index.json')"

section "unbundle into registry B under a prefix"
start_registry plain regb
HB=$REGISTRY_HOST
M=$(registry_log_mark)
dl "$T/un1" unbundle "$BUNDLE" --to "$HB/mirror" --cache-dir "$T/un-cache"
check_eq "unbundle exits 0" "0" "$RC"
cat "$T/un1.out"
check_ne "unbundle uploaded blobs" "0" "$(uploaded_blobs_since "$M" | wc -l)"
for r in debian-py:12 team/app:1 team/app:buildcache fx/signed:1; do
  check_eq "B's mirror/$r has A's digest" "${A_DIGEST[$r]}" "$(raw_digest "$HB/mirror/$r")"
done
check "skopeo inspect the built image in B" skopeo inspect --tls-verify=false "docker://$HB/mirror/team/app:1"
check "skopeo copies the built image out of B (every blob verified)" \
  skopeo copy --src-tls-verify=false "docker://$HB/mirror/team/app:1" "oci:$T/fromb:app"
check_eq "the wheelhouse is in B with the bundle's digest" \
  "$(python3 -c 'import json,sys; print([m["digest"] for m in json.load(open(sys.argv[1]))["manifests"] if m["annotations"].get("org.opencontainers.image.ref.name") == "wheels/proj:1"][0])' "$T/bx/index.json")" \
  "$(raw_digest "$HB/mirror/wheels/proj:1")"
check_python "the referrers tag index in B lists the SBOM and the signature" <(skopeo inspect --tls-verify=false --raw "docker://$HB/mirror/fx/signed:$REFTAG") '
got = sorted(m["digest"] for m in d["manifests"])
assert got == sorted(["'"$SBOM"'", "'"$SIG"'"]), got'

check_python "the Python archive is in B: its file as the one layer, titled" <(skopeo inspect --tls-verify=false --raw "docker://$HB/mirror/python:$PYTAG") '
assert d["artifactType"] == "application/vnd.dockless.python-archive.v1", d
[l] = d["layers"]
assert l["digest"] == "sha256:'"$(sha256sum "$PYARCH" | cut -d' ' -f1)"'", l
assert l["annotations"]["org.opencontainers.image.title"] == "'"$(basename "$PYARCH")"'", l'

section "a second unbundle uploads nothing"
M=$(registry_log_mark)
dl "$T/un2" unbundle "$BUNDLE" --to "$HB/mirror" --cache-dir "$T/un-cache"
check_eq "unbundle again exits 0" "0" "$RC"
check_contains "its summary says 0 blobs uploaded" "$(cat "$T/un2.out")" "uploaded 0 blobs"
check_eq "registry B's log shows no upload" "" "$(uploaded_blobs_since "$M")"
dl "$T/dry" unbundle --dry-run "$BUNDLE" --to "$HB/other" --cache-dir "$T/dry-cache"
check_contains "--dry-run lists where the built image would go" "$(cat "$T/dry.out")" "$APP -> $HB/other/team/app:1"
check_contains "... and where the wheelhouse would go" "$(cat "$T/dry.out")" "uv.lock -> $HB/other/wheels/proj:1"
check "--dry-run pushed nothing" bash -c "! skopeo inspect --tls-verify=false --raw docker://$HB/other/team/app:1 >/dev/null 2>&1"

section "inside: a build against registry B alone"
check_build "build with base and --cache-from from B" "$T/b2" "$PROJ" --set "image.base=$HB/mirror/debian-py:12" \
  --cache-dir "$T/pod2" --cache-from "$HB/mirror/team/app:buildcache" --output "oci:$T/o2:app" --report "$T/r2.json"
check_eq "no uv run" "0" "$(report_get "$T/r2.json" 'd["uv_runs"]')"
# The manifests differ only in org.opencontainers.image.base.name (the base's new name).
check_eq "the same layers as the image built on the internet side" "$(layers_of "docker://$APP")" "$(layers_of "oci:$T/o2:app")"

section "an unbundle killed midway finishes on rerun"
start_registry plain regc
HC=$REGISTRY_HOST
"$DOCKLESS" unbundle -q "$BUNDLE" --to "$HC/k" --cache-dir "$T/kill-cache" -j 1 --chunk-size 64K >"$T/k1.out" 2>"$T/k1.err" &
KPID=$!
sleep 1.5
if kill -0 "$KPID" 2>/dev/null; then
  kill -KILL "$KPID"
  pass "the unbundle was still running after 1.5 s and was killed"
else
  failed "the unbundle was still running after 1.5 s and was killed" "it had finished: the test proves nothing"
fi
wait "$KPID" 2>/dev/null || true
check_ne "the killed run left registry C incomplete" "${A_DIGEST[fx/signed:1]}" "$(raw_digest "$HC/k/fx/signed:1")"
dl "$T/k2" unbundle "$BUNDLE" --to "$HC/k" --cache-dir "$T/kill-cache"
check_eq "the rerun exits 0" "0" "$RC"
cat "$T/k2.out"
for r in debian-py:12 team/app:1 team/app:buildcache fx/signed:1; do
  check_eq "C's k/$r has A's digest" "${A_DIGEST[$r]}" "$(raw_digest "$HC/k/$r")"
done
for r in debian-py:12 team/app:1 team/app:buildcache wheels/proj:1; do
  check "skopeo copies k/$r out of C (content verifies)" \
    skopeo copy --src-tls-verify=false "docker://$HC/k/$r" "oci:$T/fromc-${r//[:\/]/-}:x"
done

section "bad input: one line, exit 1"
mkdir -p "$T/notalayout"
check_dl_error "a directory that is not an OCI layout" "$T/e1" "not an OCI layout" -- \
  unbundle -q "$T/notalayout" --to "$HB/x" --cache-dir "$T/e-cache"
echo "just text" >"$T/notatar.tar"
check_dl_error "a file that is not a tar" "$T/e2" "not an OCI layout" -- \
  unbundle -q "$T/notatar.tar" --to "$HB/x" --cache-dir "$T/e-cache"
cp -a "$T/bx" "$T/missing"
WHL=$(python3 -c 'import json,sys
for m in json.load(open(sys.argv[1]))["manifests"]:
    if m["annotations"].get("dev.dockless.bundle.kind") == "wheelhouse": wh = m
print(json.load(open(sys.argv[2] + "/blobs/sha256/" + wh["digest"][7:]))["layers"][0]["digest"])' "$T/bx/index.json" "$T/bx")
rm -f "$T/missing/blobs/sha256/${WHL#sha256:}"
check_dl_error "a bundle with a missing blob" "$T/e3" "missing" "${WHL#sha256:}" -- \
  unbundle -q "$T/missing" --to "$HB/x" --cache-dir "$T/e-cache"
cp -a "$T/bx" "$T/corrupt"
printf 'X' | dd of="$T/corrupt/blobs/sha256/${WHL#sha256:}" bs=1 seek=10 conv=notrunc status=none
check_dl_error "a bundle with a blob that fails its digest" "$T/e4" "${WHL#sha256:}" "corrupt|match" -- \
  unbundle -q "$T/corrupt" --to "$HB/x" --cache-dir "$T/e-cache"
check "nothing was pushed from the bad bundles" bash -c "! skopeo inspect --tls-verify=false --raw docker://$HB/x/team/app:1 >/dev/null 2>&1"
check_dl_error "--to a server that is not a registry" "$T/e5" "127.0.0.1:$INDEX_PORT" "not a registry" -- \
  unbundle -q "$T/bx" --to "127.0.0.1:$INDEX_PORT/x" --cache-dir "$T/e-cache"
dl "$T/e6" unbundle -q "$T/bx" --to "/tmp/somewhere" --cache-dir "$T/e-cache"
check_eq "--to that is no registry name is a usage error (exit 2)" "2" "$RC"
check_contains "... naming the expected form" "$(cat "$T/e6.err")" "REGISTRY[/PREFIX]"
echo "not a lock = [" >"$T/badlock.toml"
mkdir -p "$T/badproj" && cp "$T/badlock.toml" "$T/badproj/uv.lock"
check_dl_error "bundle --wheels of a broken uv.lock" "$T/e7" "uv.lock" -- \
  bundle -q --wheels "$T/badproj" -o "$T/e7.tar" --cache-dir "$T/e-cache"
check "the bad lock left nothing behind" bash -c "[[ ! -e '$T/e7.tar' && ! -e '$T/e7.tar.partial' ]]"
python3 - "$PROJ/uv.lock" "$T/badhash/uv.lock" <<'PY'
import re, sys, os
s = open(sys.argv[1]).read()
# The first wheel hash changed: the download must not be stored.
s = re.sub(r'(\.whl", hash = "sha256:)[0-9a-f]{64}', lambda m: m.group(1) + "0" * 64, s, count=1)
os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True)
open(sys.argv[2], "w").write(s)
PY
check_dl_error "a wheel whose sha256 differs from the lock" "$T/e8" "does not match uv.lock" -- \
  bundle -q --wheels "$T/badhash" -o "$T/e8" --cache-dir "$T/e-cache"
check "the mismatching wheel was not stored" bash -c "[[ ! -e '$T/e8/blobs/sha256/$(printf 0%.0s {1..64})' ]]"

