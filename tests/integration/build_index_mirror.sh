#!/usr/bin/env bash
# Installing a locked project from a package mirror without re-locking
# (--index-mirror ORIGINAL=MIRROR, uv.index-mirrors). The test project is
# locked against the index at 127.0.0.1:A; then that index stops and a
# second server on another port serves the same wheels under other URLs, in
# two layouts: a simple mirror whose files live under its own path
# (/pypi/simple/..., /pypi/packages/<wheel>) and a path-preserving proxy
# (/proxy/simple/..., /proxy/files/<wheel>).
#
# Without a mirror the build fails with one line naming the package and the
# URL uv.lock gives. With one it builds (uv.check-lock on too), the image
# runs in podman with every package importable (and the shipped uv cache
# still serves the image's own uv.lock offline), the project's uv.lock is
# byte-identical, the mirror's log shows every wheel downloaded from the
# mirror's URLs. The other layout with the same cache: 0 uv runs, the same
# image. The other layout with an empty cache: the same image again (a
# mirror is a route, not an input); the command line wins over the spec's
# uv.index-mirrors. An index URL as ORIGINAL warns. A wheel deleted from
# the mirror: one line naming the package and the mirror URL tried.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

# A connection refused is final: no retries with back-off (a route setting,
# not a cache-key input).
export UV_HTTP_RETRIES=0

build_setup
LOCK_SHA=$(sha256sum <"$PROJ/uv.lock")
A=$INDEX_PORT
# The wheel file names uv.lock records (every venv and the cache extra use them all).
WHEELS=$(python3 - "$PROJ/uv.lock" <<'PY'
import sys, tomllib
lock = tomllib.load(open(sys.argv[1], "rb"))
print(" ".join(sorted(w["url"].rsplit("/", 1)[1] for p in lock["package"] for w in p.get("wheels", []))))
PY
)
require "uv.lock names wheels at the index (127.0.0.1:$A/files/)" grep -q "url = \"http://127.0.0.1:$A/files/" "$PROJ/uv.lock"
echo "wheels: $WHEELS"

section "the original index stops; a mirror on another port serves the same wheels under other URLs"
kill "$INDEX_PID"
wait "$INDEX_PID" 2>/dev/null || true
check "the original index no longer answers" bash -c '! curl -fsS -m 5 "$1/common-a/" >/dev/null 2>&1' _ "$INDEX_URL"
MIRROR_DIR=$T/mirror
mkdir -p "$MIRROR_DIR/pypi/packages" "$MIRROR_DIR/proxy"
cp -r "$INDEX_DIR/simple" "$MIRROR_DIR/pypi/simple"
cp "$INDEX_DIR"/files/* "$MIRROR_DIR/pypi/packages/"
cp -r "$INDEX_DIR/simple" "$INDEX_DIR/files" "$MIRROR_DIR/proxy/"
MIRROR_LOG=$T/mirror.log
: >"$MIRROR_LOG"
timeout --foreground 3600 python3 "$FIXTURES/index_server.py" "$MIRROR_DIR" \
  --port 0 --port-file "$T/mirror.port" --log "$MIRROR_LOG" >"$T/mirror.out" 2>"$T/mirror.err" &
MIRROR_PID=$!
at_exit kill "$MIRROR_PID"
for ((i = 0; i < 100; i++)); do [[ -s $T/mirror.port ]] && break; sleep 0.1; done
B=$(tr -d '\n' <"$T/mirror.port")
require "the mirror answers on 127.0.0.1:$B" curl -fsS "http://127.0.0.1:$B/proxy/simple/common-a/" -o /dev/null
SIMPLE=(--index-mirror "http://127.0.0.1:$A/files=http://127.0.0.1:$B/pypi/packages")
PROXY=(--index-mirror "http://127.0.0.1:$A=http://127.0.0.1:$B/proxy")
mirror_mark() { wc -l <"$MIRROR_LOG" | tr -d ' '; }
# mirror_wheels_since N: the wheel paths downloaded after line N, sorted, one line.
mirror_wheels_since() {
  tail -n "+$(($1 + 1))" -- "$MIRROR_LOG" | awk '$2 == "GET" && $3 ~ /\.whl$/ {print $3}' | sort -u | tr '\n' ' ' | sed 's/ $//'
}
# layers_but_http_records LAYOUT: "DIGEST HISTORY" of each layer of tag app
# but the "uv cache index" ones.
layers_but_http_records() {
  python3 - "$1" <<'PY'
import json, sys
d = sys.argv[1]
blob = lambda dg: json.load(open(d + "/blobs/sha256/" + dg.split(":")[1]))
m = blob(json.load(open(d + "/index.json"))["manifests"][0]["digest"])
hist = [h for h in blob(m["config"]["digest"])["history"] if not h.get("empty_layer")]
for l, h in zip(m["layers"], hist):
    if not h.get("created_by", "").startswith("dockless: uv cache index"):
        print(l["digest"], h.get("created_by"))
PY
}
expected_paths() { local w out=""; for w in $WHEELS; do out+="$1/$w "; done; echo "${out% }"; }
# b NAME CACHE ARGS...: the build arguments of $PROJ into oci:$T/NAME:app.
b() {
  local name=$1 cache=$2
  shift 2
  B_ARGS=("$PROJ" --set "image.base=$BASE_REF" --output "oci:$T/$name:app" --cache-dir "$cache" "$@")
}

section "without --index-mirror: one line naming the package and the locked URL"
b nomirror "$T/cache-a"
check_build_fails "no mirror, the index down" "$T/e-nomirror" 1 \
  'venv [^ ]+: cannot download `[a-z_-]+==1\.0\.0` from ' "http://127\.0\.0\.1:$A/files/[a-z_]+-1\.0\.0-py3-none-any\.whl" \
  'Connection refused' '--index-mirror ORIGINAL=MIRROR' -- "${B_ARGS[@]}"
check "it fails within 60 s (${SECS}s)" python3 -c "import sys; sys.exit(float('$SECS') >= 60)"
check "no image written" test ! -e "$T/nomirror/index.json"

section "a simple mirror with its files under its own path"
MARK=$(mirror_mark)
b simple "$T/cache-a" "${SIMPLE[@]}" --set uv.check-lock=true
check_build "simple mirror, index down" "$T/b-simple" "${B_ARGS[@]}"
SIMPLE_DIGEST=$DIGEST
check_contains "the build says where the URLs go" "$(cat "$T/b-simple.err")" "URL(s) routed to 1 index mirror(s)"
check_contains "uv.check-lock passes on the project's own uv.lock" "$(cat "$T/b-simple.err")" "uv.lock checked in "
check_eq "no warning" "" "$(grep -i 'warning' "$T/b-simple.err" || true)"
check_eq "every wheel came from the mirror's own file path" "$(expected_paths /pypi/packages)" "$(mirror_wheels_since "$MARK")"
check_eq "the project's uv.lock is byte-identical" "$LOCK_SHA" "$(sha256sum <"$PROJ/uv.lock")"
incheck simple "oci:$T/simple:app"

section "a path-preserving proxy, same cache: a route, not an input"
MARK=$(mirror_mark)
b proxy1 "$T/cache-a" --set "uv.index-mirrors={\"http://127.0.0.1:$A\"=\"http://127.0.0.1:$B/proxy\"}" \
  --index-mirror "$INDEX_URL=http://127.0.0.1:$B/proxy/simple"
check_build "another mirror URL (from the spec), same cache" "$T/b-proxy1" "${B_ARGS[@]}"
check "0 uv runs" grep -q '(0 uv runs' "$T/b-proxy1.err"
check_eq "the same image" "$SIMPLE_DIGEST" "$DIGEST"
check_eq "nothing downloaded" "" "$(mirror_wheels_since "$MARK")"
check_contains "an index URL as ORIGINAL warns and says what to map" "$(cat "$T/b-proxy1.err")" \
  "--index-mirror $INDEX_URL: no URL in uv.lock starts with it (it is an index; uv downloads the files from their own URLs, such as http://127.0.0.1:$A/files/"

section "the proxy with an empty cache; the command line wins over the spec"
MARK=$(mirror_mark)
b proxy2 "$T/cache-b" --set "uv.index-mirrors={\"http://127.0.0.1:$A\"=\"http://127.0.0.1:9/dead\"}" "${PROXY[@]}"
check_build "proxy mirror, empty cache" "$T/b-proxy2" "${B_ARGS[@]}"
check_eq "every wheel came from the proxy's path-preserving URLs" "$(expected_paths /proxy/files)" "$(mirror_wheels_since "$MARK")"
# uv's HTTP cache records ("uv cache index" layers) hold download times and
# URLs, different in any two clean builds; every other layer is the same.
check_eq "the same layers as through the simple mirror (but uv's HTTP cache records)" \
  "$(layers_but_http_records "$T/simple")" "$(layers_but_http_records "$T/proxy2")"
check_eq "the project's uv.lock is still byte-identical" "$LOCK_SHA" "$(sha256sum <"$PROJ/uv.lock")"

section "a wheel missing from the mirror"
rm -f "$MIRROR_DIR"/proxy/files/only_mcore-1.0.0-py3-none-any.whl
b missing "$T/cache-c" "${PROXY[@]}"
check_build_fails "a wheel the mirror lacks" "$T/e-missing" 1 \
  'venv app\.workers\.McoreWorker: cannot download `only-mcore==1\.0\.0` from ' \
  "http://127\.0\.0\.1:$B/proxy/files/only_mcore-1\.0\.0-py3-none-any\.whl: 404" -- "${B_ARGS[@]}"
check_eq "one error line" 1 "$(grep -c '^dockless: error: ' "$T/e-missing.err")"
check "it fails within 60 s (${SECS}s)" python3 -c "import sys; sys.exit(float('$SECS') >= 60)"
check_eq "the project's uv.lock is still byte-identical" "$LOCK_SHA" "$(sha256sum <"$PROJ/uv.lock")"
