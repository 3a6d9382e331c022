#!/usr/bin/env bash
# dockless pull / push through tests/registry/fault_proxy.py in front of a
# plain registry: connection resets mid-body (resume with Range), 503 and 429
# (retry, Retry-After), slow answers, corrupted bodies (digest mismatch: an
# error naming both digests, nothing stored), resets during uploads (upload
# restarted), truncated bodies.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"

ROOTFS=$(fixture_rootfs)
echo "rootfs: $ROOTFS"
echo "dockless: $DOCKLESS"
echo "scratch: $T"

L=$T/l
section "setup: the fixture image in a plain registry, a fault proxy in front"
require "dockless import rootfs -> oci:$L:py" \
  "$DOCKLESS" import "$ROOTFS" --output "oci:$L:py" --cmd '["python3"]'
python3 "$SOURCE_ROOT/tests/registry/make_tiny_image.py" "$L" tiny >/dev/null || fail "make_tiny_image.py"
PY_DIGEST=$(layout_manifest_digest "$L" py)
TINY_DIGEST=$(layout_manifest_digest "$L" tiny)
BIG=$(big_layer "$L" py)
BIG_HEX=${BIG#sha256:}
BIG_SIZE=$(stat -c %s "$(layout_blob_path "$L" "$BIG")")
echo "  image $PY_DIGEST, big layer $BIG ($BIG_SIZE bytes)"

start_registry plain reg
start_proxy px reg
H=$REGISTRY_HOST P=$PROXY_HOST
check_dl "push the image straight to the registry ($H/big/py:1)" "$T/setup" \
  push "oci:$L:py" "$H/big/py:1" --cache-dir "$(fresh_cache)"
((CHECK_OK)) || exit 1
check_digests_equal "the proxy passes requests through (skopeo via $P)" "$PY_DIGEST" "$(remote_digest "$P/big/py:1")"

# pull_ok NAME DESC [DOCKLESS ARGS...]: pull $P/big/py:1 through the proxy into
# oci:$T/NAME:py with a fresh cache; checks exit 0 + digest, the layout's tag
# and that every blob matches its name. Leaves the step's proxy log in
# $T/NAME.proxy.
pull_ok() {
  local name=$1 desc=$2 mark
  shift 2
  mark=$(proxy_mark)
  check_dl "$desc: dockless pull succeeds" "$T/$name" \
    pull "$P/big/py:1" --output "oci:$T/$name:py" --report "$T/$name.json" --cache-dir "$(fresh_cache)" "$@"
  sleep 0.2 # the proxy logs a response after sending it
  proxy_since "$mark" >"$T/$name.proxy"
  check_digests_equal "$desc: the pulled tag names the image" "$PY_DIGEST" "$(layout_manifest_digest "$T/$name" py)"
  check_blobs_intact "$desc: every pulled blob's sha256 equals its name" "$T/$name"
  check_same_file "$desc: the big layer is byte-identical" "$(layout_blob_path "$L" "$BIG")" "$(layout_blob_path "$T/$name" "$BIG")"
}

# ------------------------------------------------------------------ (a)
section "(a) reset in the middle of the big layer's body"
set_rules '[{"method": "GET", "path": "/blobs/'"$BIG"'", "action": "reset_mid_body", "fraction": 0.5}]'
pull_ok a "(a) reset_mid_body"
check "(a) the proxy log shows the reset fired on the big layer" \
  grep -Eq "GET /v2/big/py/blobs/$BIG -> 200 bytes=[0-9]+/$BIG_SIZE RESET rule=0:reset_mid_body" "$T/a.proxy"
check "(a) a later GET of the big layer carried a Range header (resumed, answered 206)" python3 -c '
import re, sys
lines = open(sys.argv[1]).read().splitlines()
big = sys.argv[2]
reset = [i for i, l in enumerate(lines) if big in l and " RESET " in l]
assert reset, "no RESET line"
after = [l for l in lines[reset[0] + 1:] if big in l and re.search(r"range=bytes=[1-9][0-9]*-", l) and "-> 206" in l]
assert after, "no GET with range=bytes=K- (K>0) answered 206 after the reset:\n" + "\n".join(l for l in lines if big in l)
' "$T/a.proxy" "$BIG_HEX"

# ------------------------------------------------------------------ (b)
section "(b) 503 twice, then the manifest GET passes"
set_rules '[{"method": "GET", "path": "/manifests/", "action": "status", "status": 503, "times": 2}]'
pull_ok b "(b) 503 x2 on the manifest"
n503=$(grep -Ec 'GET /v2/big/py/manifests/1 -> 503 .*rule=0:status' "$T/b.proxy" || true)
check_eq "(b) the proxy answered 503 twice on the manifest" 2 "$n503"
check "(b) then a manifest GET got 200" grep -Eq 'GET /v2/big/py/manifests/[^ ]+ -> 200' "$T/b.proxy"
if grep -Eiq 'retr(y|ying|ies)|503' "$T/b.err"; then
  pass "(b) stderr shows a retry notice: $(grep -Ei 'retr(y|ying|ies)|503' "$T/b.err" | head -n 1)"
else
  failed "(b) stderr shows a retry notice" "stderr was:" "$(head -n 20 "$T/b.err")"
fi

# ------------------------------------------------------------------ (c)
section "(c) 429 with Retry-After: 2 on a blob HEAD during a push"
set_rules '[{"method": "HEAD", "path": "/blobs/sha256:", "action": "status", "status": 429, "retry_after": "2"}]'
mark=$(proxy_mark)
check_dl "(c) push through the proxy succeeds" "$T/c" \
  push "oci:$L:tiny" "$P/c/tiny:1" --cache-dir "$(fresh_cache)"
sleep 0.2
proxy_since "$mark" >"$T/c.proxy"
check_digests_equal "(c) push prints the digest" "$TINY_DIGEST" "$DIGEST"
if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= 2 else 1)' "$SECS"; then
  pass "(c) the push took >= 2 s (${SECS}s)"
else
  failed "(c) the push took >= 2 s (Retry-After honoured)" "it took ${SECS}s"
fi
check "(c) the HEAD that got 429 was repeated >= 1.9 s later (proxy log)" python3 -c '
import datetime, re, sys
lines = open(sys.argv[1]).read().splitlines()
ts = lambda l: datetime.datetime.strptime(l.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")
hit = [l for l in lines if re.search(r"HEAD \S+ -> 429 .*rule=0:status", l)]
assert hit, "no 429 in the proxy log:\n" + "\n".join(lines)
path = hit[0].split()[3]
again = [l for l in lines if ts(l) > ts(hit[0]) and re.search(r" HEAD " + re.escape(path) + r" -> (200|404)", l)]
assert again, "the HEAD of %s was not repeated:\n%s" % (path, "\n".join(lines))
dt = (ts(again[0]) - ts(hit[0])).total_seconds()
assert dt >= 1.9, "repeated after %.2f s" % dt
print("repeated after %.2f s" % dt)
' "$T/c.proxy"
check_digests_equal "(c) skopeo sees the pushed image" "$TINY_DIGEST" "$(remote_digest "$H/c/tiny:1")"

# ------------------------------------------------------------------ (d)
section "(d) a blob GET delayed by 2 s"
set_rules '[{"method": "GET", "path": "/blobs/sha256:", "action": "delay", "ms": 2000}]'
pull_ok d "(d) delay 2000 ms"
check "(d) the delay fired" grep -q 'FIRED rule=0 action=delay GET /v2/big/py/blobs/' "$T/d.proxy"
if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= 2 else 1)' "$SECS"; then
  pass "(d) the pull waited for the slow blob (${SECS}s)"
else
  failed "(d) the pull waited for the slow blob (>= 2 s)" "it took ${SECS}s"
fi

# ------------------------------------------------------------------ (e)
section "(e) corrupted body on every GET of the big layer"
set_rules '[{"method": "GET", "path": "/blobs/'"$BIG"'", "action": "corrupt_body", "times": 100}]'
BAD_HEX=$(python3 -c '
import hashlib, sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0xFF
print(hashlib.sha256(b).hexdigest())' "$(layout_blob_path "$L" "$BIG")")
echo "  expected sha256:$BIG_HEX, the corrupted body has sha256:$BAD_HEX"
ECACHE=$(fresh_cache)
mark=$(proxy_mark)
check_dl_error "(e) pull of a corrupted layer" "$T/e" \
  "${BIG_HEX:0:12}" "${BAD_HEX:0:12}" 'digest|mismatch|sha256' -- \
  pull -q "$P/big/py:1" --output "oci:$T/e:py" --cache-dir "$ECACHE"
proxy_since "$mark" >"$T/e.proxy"
check "(e) the corruption fired" grep -q 'CORRUPTED@' "$T/e.proxy"
if [[ $ERRLINE == *"$BIG_HEX"* && $ERRLINE == *"$BAD_HEX"* ]]; then
  pass "(e) the error names both full digests"
else
  failed "(e) the error names both full digests (sha256:$BIG_HEX expected, sha256:$BAD_HEX actual)" "error: $ERRLINE"
fi
if [[ ! -e $T/e/blobs/sha256/$BIG_HEX ]]; then
  pass "(e) the destination layout has no blob file for $BIG"
else
  failed "(e) the destination layout has no blob file for $BIG" "$(ls -l "$T/e/blobs/sha256/$BIG_HEX")"
fi
tags=$(layout_tags "$T/e")
if [[ -z $tags ]]; then
  pass "(e) the destination layout's index.json has no entry for the tag"
else
  failed "(e) the destination layout's index.json has no entry for the tag" "tags: $tags"
fi
found=$(find "$ECACHE" "$T/e" -name "*$BIG_HEX*" 2>/dev/null | head -n 5 || true)  # no $T/e: the failed pull made no layout
if [[ -z $found ]]; then
  pass "(e) nothing named by the big layer's digest is left in the cache or layout"
else
  failed "(e) nothing named by the big layer's digest is left in the cache or layout" "$found"
fi
check_blobs_intact "(e) whatever the layout holds is intact" "$T/e"
check_blobs_intact "(e) whatever the cache's blob store holds is intact" "$ECACHE"

# ------------------------------------------------------------------ (f)
section "(f) connection reset on an upload's PUT/PATCH"
# f1: monolithic upload, the PUT of the big layer's upload is reset
set_rules '[{"method": ["PUT", "PATCH"], "path": "/blobs/uploads/.*digest=sha256(:|%3A)'"$BIG_HEX"'", "action": "reset"}]'
mark=$(proxy_mark)
check_dl "(f1) push (monolithic) through the proxy succeeds" "$T/f1" \
  push "oci:$L:py" "$P/f1/py:1" --cache-dir "$(fresh_cache)"
sleep 0.2
proxy_since "$mark" >"$T/f1.proxy"
check_digests_equal "(f1) push prints the digest" "$PY_DIGEST" "$DIGEST"
check "(f1) the reset fired on the big layer's PUT" grep -Eq "PUT /v2/f1/py/blobs/uploads/.*$BIG_HEX -> RESET before response rule=0:reset" "$T/f1.proxy"
check "(f1) a later PUT of the big layer succeeded (201)" grep -Eq "PUT /v2/f1/py/blobs/uploads/.*$BIG_HEX -> 201" "$T/f1.proxy"
# f2: chunked upload, the third PATCH of an upload is reset
set_rules '[{"method": ["PUT", "PATCH"], "path": "/blobs/uploads/", "skip": 2, "action": "reset"}]'
mark=$(proxy_mark)
check_dl "(f2) push --chunk-size 1M through the proxy succeeds" "$T/f2" \
  push --chunk-size 1M "oci:$L:py" "$P/f2/py:1" --cache-dir "$(fresh_cache)"
sleep 0.2
proxy_since "$mark" >"$T/f2.proxy"
check_digests_equal "(f2) push prints the digest" "$PY_DIGEST" "$DIGEST"
check "(f2) the reset fired on a chunk" grep -Eq '(PUT|PATCH) /v2/f2/py/blobs/uploads/.* -> RESET before response rule=0:reset' "$T/f2.proxy"
for f in f1 f2; do
  check_dl "($f) pull the pushed image back (straight from the registry)" "$T/$f-pull" \
    pull "$H/$f/py:1" --output "oci:$T/$f-back:py" --cache-dir "$(fresh_cache)"
  check_blobs_intact "($f) the pulled blobs are intact" "$T/$f-back"
  for b in $(manifest_layers "$L" py); do
    check_same_file "($f) layer ${b:7:12} pulls back byte-identical" \
      "$(layout_blob_path "$L" "$b")" "$(layout_blob_path "$T/$f-back" "$b")"
  done
done

# ------------------------------------------------------------------ (g)
section "(g) truncated body (clean close) on the big layer's GET"
set_rules '[{"method": "GET", "path": "/blobs/'"$BIG"'", "action": "truncate", "fraction": 0.3}]'
pull_ok g "(g) truncate"
check "(g) the truncation fired" grep -Eq "GET /v2/big/py/blobs/$BIG -> 200 bytes=[0-9]+/$BIG_SIZE TRUNCATED" "$T/g.proxy"
check "(g) the big layer was fetched again after the truncation (resumed or restarted)" python3 -c '
import sys
lines = open(sys.argv[1]).read().splitlines()
big = sys.argv[2]
i = [k for k, l in enumerate(lines) if big in l and "TRUNCATED" in l][0]
assert [l for l in lines[i + 1:] if big in l and ("-> 200" in l or "-> 206" in l)], "\n".join(lines)
' "$T/g.proxy" "$BIG_HEX"

# ------------------------------------------------------------------ (h)
section "(h) more: three resets in a row on the big layer, a reset on the manifest PUT"
set_rules '[{"method": "GET", "path": "/blobs/'"$BIG"'", "action": "reset_mid_body", "fraction": 0.3, "times": 3}]'
pull_ok h1 "(h1) reset_mid_body x3"
n=$(grep -c "$BIG_HEX .*RESET rule=0" "$T/h1.proxy" || true)
check_eq "(h1) the reset fired 3 times" 3 "$n"
nr=$(grep -Ec "$BIG_HEX range=bytes=[1-9][0-9]*- -> 20[06]" "$T/h1.proxy" || true)
if ((nr >= 3)); then
  pass "(h1) each reset was followed by a ranged GET ($nr)"
else
  failed "(h1) each reset was followed by a ranged GET" "ranged GETs: $nr" "$(grep "$BIG_HEX" "$T/h1.proxy")"
fi
set_rules '[{"method": "PUT", "path": "/manifests/", "action": "reset"}]'
mark=$(proxy_mark)
check_dl "(h2) push with the manifest PUT reset once succeeds" "$T/h2" \
  push "oci:$L:tiny" "$P/h2/tiny:1" --cache-dir "$(fresh_cache)"
sleep 0.2
proxy_since "$mark" >"$T/h2.proxy"
check "(h2) the manifest PUT was reset, then answered 201" python3 -c '
import sys
lines = open(sys.argv[1]).read().splitlines()
i = [k for k, l in enumerate(lines) if "PUT /v2/h2/tiny/manifests/1 -> RESET" in l]
assert i, "\n".join(lines)
assert [l for l in lines[i[0] + 1:] if "PUT /v2/h2/tiny/manifests/1 -> 201" in l], "\n".join(lines)
' "$T/h2.proxy"
check_digests_equal "(h2) skopeo sees the pushed image" "$TINY_DIGEST" "$(remote_digest "$H/h2/tiny:1")"

# ------------------------------------------------------------------ (i)
section "(i) a registry that keeps failing: the retries are bounded"
set_rules '[{"method": "GET", "path": "/manifests/", "action": "status", "status": 500, "times": -1}]'
mark=$(proxy_mark)
check_dl_error "(i1) pull while every manifest GET answers 500" "$T/i1" \
  "$P" 'big/py' '500' -- \
  pull -q "$P/big/py:1" --output "oci:$T/i1:py" --cache-dir "$(fresh_cache)"
sleep 0.2
n=$(proxy_since "$mark" | grep -c 'GET /v2/big/py/manifests/1 -> 500' || true)
check_eq "(i1) default --retries 3: 4 manifest GETs in all" 4 "$n"
check_eq "(i1) the failed pull left no tag" "" "$(layout_tags "$T/i1")"
mark=$(proxy_mark)
check_dl_error "(i2) the same with --retries 1" "$T/i2" \
  "$P" -- \
  pull -q --retries 1 "$P/big/py:1" --output "oci:$T/i2:py" --cache-dir "$(fresh_cache)"
sleep 0.2
n=$(proxy_since "$mark" | grep -c 'GET /v2/big/py/manifests/1 -> 500' || true)
check_eq "(i2) --retries 1: 2 manifest GETs in all" 2 "$n"
set_rules '[{"method": "GET", "path": "/manifests/", "action": "status", "status": 404, "times": -1,
  "body": "{\"errors\": [{\"code\": \"MANIFEST_UNKNOWN\", \"message\": \"manifest unknown\"}]}"}]'
mark=$(proxy_mark)
check_dl_error "(i3) a 404 is not retried" "$T/i3" \
  "$P" 'big/py' -- \
  pull -q "$P/big/py:1" --output "oci:$T/i3:py" --cache-dir "$(fresh_cache)"
sleep 0.2
n=$(proxy_since "$mark" | grep -c 'GET /v2/big/py/manifests/1 -> 404' || true)
check_eq "(i3) exactly one manifest GET" 1 "$n"

set_rules '[]'
