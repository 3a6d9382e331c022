#!/usr/bin/env bash
# Proves the registry fixtures work, with curl, skopeo and python only (not
# dockless). Starts every kind of registry, the token server and the fault
# proxy on 127.0.0.1, and stops them all on exit.
# Ends with "selftest: N passed, M failed"; exits non-zero on any failure.
# DOCKLESS_KEEP_SCRATCH=1 keeps the scratch dir (logs, state) for a post-mortem.
set -uo pipefail
export LC_ALL=C

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/dockless-registry-selftest.XXXXXX")
export DOCKLESS_REGISTRY_STATE=$T/registries
# skopeo must not find credentials of its own anywhere (anonymous checks)
echo '{"auths": {}}' >"$T/no-auth.json"
export REGISTRY_AUTH_FILE=$T/no-auth.json
# shellcheck source=registry.sh
source "$HERE/registry.sh"

PASSED=0
FAILED=0
FAILED_CHECKS=()

on_exit() {
  trap - EXIT
  registry_stop_all >/dev/null 2>&1
  if [[ ${DOCKLESS_KEEP_SCRATCH:-0} == 1 ]]; then
    echo "scratch kept: $T"
  else
    rm -rf --one-file-system -- "$T"
  fi
  echo
  if ((FAILED)); then
    echo "failed checks:"
    printf '  - %s\n' "${FAILED_CHECKS[@]}"
  fi
  echo "selftest: $PASSED passed, $FAILED failed"
  ((FAILED == 0))
}
trap on_exit EXIT

section() { printf '\n== %s\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); printf '  ok    %s\n' "$1"; }
failed() {
  local desc=$1 line
  shift
  FAILED=$((FAILED + 1))
  FAILED_CHECKS+=("$desc")
  printf '  FAIL  %s\n' "$desc"
  for line in "$@"; do printf '%s\n' "$line" | sed 's/^/        | /'; done
}
# check DESC CMD...: CMD exits 0
check() {
  local desc=$1 out rc=0
  shift
  out=$("$@" 2>&1) || rc=$?
  if ((rc == 0)); then pass "$desc"; else failed "$desc" "exit $rc: $*" "$(tail -n 15 <<<"$out")"; fi
}
# check_fails DESC CMD...: CMD exits non-zero
check_fails() {
  local desc=$1 out rc=0
  shift
  out=$("$@" 2>&1) || rc=$?
  if ((rc != 0)); then pass "$desc"; else failed "$desc" "succeeded but should fail: $*" "$(tail -n 15 <<<"$out")"; fi
}
check_eq() {
  if [[ $2 == "$3" ]]; then pass "$1"; else failed "$1" "expected: $2" "actual:   $3"; fi
}
check_match() {  # DESC STRING REGEX
  if [[ $2 =~ $3 ]]; then pass "$1"; else failed "$1" "regex: $3" "in: $(head -c 1500 <<<"$2")"; fi
}
# check_log DESC FILE REGEX (grep -E)
check_log() {
  if grep -Eq -- "$3" "$2"; then pass "$1"; else failed "$1" "no line matching /$3/ in $2:" "$(tail -n 20 "$2")"; fi
}
# start KIND NAME [OPTS...]: starts a registry and evals its lines (stops the
# selftest if it cannot: nothing after would mean anything).
start() {
  local out
  if out=$(registry_start "$@"); then
    eval "$out"
    pass "start $1 registry '$2' at ${REGISTRY_HOST:-?}"
  else
    failed "start $1 registry '$2'"
    exit 1
  fi
}

SKOPEO=(skopeo --insecure-policy)
# layout_digest DIR TAG
layout_digest() {
  python3 - "$1/index.json" "$2" <<'PY'
import json, sys
for m in json.load(open(sys.argv[1]))["manifests"]:
    if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == sys.argv[2]:
        print(m["digest"])
PY
}
# header FILE NAME: the value of header NAME in a curl -D dump (last response)
header() {
  python3 - "$1" "$2" <<'PY'
import sys
val = ""
for line in open(sys.argv[1], encoding="latin-1"):
    if line.startswith("HTTP/"):
        val = ""
    k, sep, v = line.partition(":")
    if sep and k.strip().lower() == sys.argv[2].lower():
        val = v.strip()
print(val)
PY
}
OCI_ACCEPT='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json'

# ---------------------------------------------------------------- images
section "images (make_tiny_image.py)"
TINY_DIGEST=$(python3 "$HERE/make_tiny_image.py" "$T/img" v1 --print-digest)
check "tiny image is a valid OCI layout (skopeo inspect oci:)" "${SKOPEO[@]}" inspect "oci:$T/img:v1"
TINY_DIGEST2=$(python3 "$HERE/make_tiny_image.py" "$T/img2" v1 --print-digest)
check_eq "make_tiny_image.py is reproducible" "$TINY_DIGEST" "$TINY_DIGEST2"
BIG_DIGEST=$(python3 "$HERE/make_tiny_image.py" "$T/big" v1 --random-bytes 2000000 --print-digest)
BIG_LAYER=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' \
  "$T/big/blobs/sha256/${BIG_DIGEST#sha256:}")
BIG_LAYER_FILE=$T/big/blobs/sha256/${BIG_LAYER#sha256:}
BIG_LAYER_SIZE=$(stat -c %s "$BIG_LAYER_FILE")
check "a 2 MB-layer image for the fault proxy (layer $BIG_LAYER_SIZE bytes)" "${SKOPEO[@]}" inspect "oci:$T/big:v1"

# ---------------------------------------------------------------- plain
section "plain"
start plain plain
PLAIN_HOST=$REGISTRY_HOST
PLAIN_URL=$REGISTRY_URL
PLAIN_STORAGE=$REGISTRY_STORAGE
check "not Debian's packaged registry port (:5000)" test "${REGISTRY_HOST##*:}" != 5000
curl -s -D "$T/h" -o "$T/b" "$PLAIN_URL/v2/"
check_eq "GET /v2/ answers {} with the distribution API header" "{} registry/2.0" \
  "$(cat "$T/b") $(header "$T/h" Docker-Distribution-Api-Version)"
check "skopeo copy oci: -> plain registry" "${SKOPEO[@]}" copy --dest-tls-verify=false \
  "oci:$T/img:v1" "docker://$PLAIN_HOST/tiny:v1"
check "the push landed in this registry's own storage dir" \
  test -d "$PLAIN_STORAGE/docker/registry/v2/repositories/tiny/_manifests"
curl -s -I -H "Accept: $OCI_ACCEPT" -D "$T/h" -o /dev/null "$PLAIN_URL/v2/tiny/manifests/v1"
check_eq "manifest digest in the registry = the layout's" "$TINY_DIGEST" "$(header "$T/h" Docker-Content-Digest)"
check "skopeo copy plain registry -> oci: (pull back)" "${SKOPEO[@]}" copy --src-tls-verify=false \
  "docker://$PLAIN_HOST/tiny:v1" "oci:$T/back-plain:v1"
check_eq "pulled-back manifest digest" "$TINY_DIGEST" "$(layout_digest "$T/back-plain" v1)"
curl -s -X POST -D "$T/h" -o /dev/null "$PLAIN_URL/v2/tiny/blobs/uploads/"
check_match "plain: POST blobs/uploads/ gives an ABSOLUTE Location" "$(header "$T/h" Location)" \
  "^http://$PLAIN_HOST/v2/tiny/blobs/uploads/[0-9a-f-]+\?_state="
check_eq "delete is enabled (DELETE manifest by digest -> 202)" 202 \
  "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$PLAIN_URL/v2/tiny/manifests/$TINY_DIGEST")"
check_eq "deleted manifest is gone (404)" 404 \
  "$(curl -s -o /dev/null -w '%{http_code}' -H "Accept: $OCI_ACCEPT" "$PLAIN_URL/v2/tiny/manifests/$TINY_DIGEST")"
check "push the big image for the proxy section" "${SKOPEO[@]}" copy --dest-tls-verify=false \
  "oci:$T/big:v1" "docker://$PLAIN_HOST/big:v1"

check_fails "starting a second registry under a running NAME is refused" registry_start plain plain
out=$(REGISTRY_HTTP_ADDR=127.0.0.1:1 REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/nonexistent \
  registry_start plain envtest 2>&1)
check_match "REGISTRY_* variables in the caller's env do not reach the registry" "$out" \
  'REGISTRY_HOST=127\.0\.0\.1:[0-9]+'
check "registry.sh stop NAME" registry_stop envtest
check_fails "stop removed its state dir" test -e "$DOCKLESS_REGISTRY_STATE/envtest"

# ---------------------------------------------------------------- relative
section "relative"
start relative relative
check "skopeo copy oci: -> relative registry" "${SKOPEO[@]}" copy --dest-tls-verify=false \
  "oci:$T/img:v1" "docker://$REGISTRY_HOST/tiny:v1"
check "skopeo pull back from relative registry" "${SKOPEO[@]}" copy --src-tls-verify=false \
  "docker://$REGISTRY_HOST/tiny:v1" "oci:$T/back-relative:v1"
check_eq "pulled-back manifest digest" "$TINY_DIGEST" "$(layout_digest "$T/back-relative" v1)"
curl -s -X POST -D "$T/h" -o /dev/null "$REGISTRY_URL/v2/tiny/blobs/uploads/"
check_match "relative: POST blobs/uploads/ gives a RELATIVE Location" "$(header "$T/h" Location)" \
  '^/v2/tiny/blobs/uploads/[0-9a-f-]+\?_state='

# ---------------------------------------------------------------- tls-basic
section "tls-basic"
start tls-basic tls
TLS_PORT=${REGISTRY_HOST##*:}
check_eq "without the CA, TLS verification fails (curl exit 60)" 60 \
  "$(curl -s -o /dev/null "$REGISTRY_URL/v2/"; echo $?)"
curl -s --cacert "$REGISTRY_CA" -D "$T/h" -o /dev/null "$REGISTRY_URL/v2/"
check_match "with the CA, no credentials: 401 + Basic challenge" \
  "$(head -n1 "$T/h") $(header "$T/h" WWW-Authenticate)" '^HTTP/[0-9.]+ 401 .*Basic realm="dockless-test-registry"'
check_eq "with the CA and REGISTRY_USER/PASS: 200" 200 \
  "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$REGISTRY_CA" -u "$REGISTRY_USER:$REGISTRY_PASS" "$REGISTRY_URL/v2/")"
check_eq "the server certificate is valid for DNS:localhost too" 200 \
  "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$REGISTRY_CA" -u "$REGISTRY_USER:$REGISTRY_PASS" "https://localhost:$TLS_PORT/v2/")"
check_eq "a wrong password: 401" 401 \
  "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$REGISTRY_CA" -u "$REGISTRY_USER:wrong" "$REGISTRY_URL/v2/")"
check_match "htpasswd entry is bcrypt" "$(cat "$REGISTRY_STATE/htpasswd")" "^$REGISTRY_USER:"'[$]2y[$]'
check "skopeo copy -> tls-basic (--dest-creds, --dest-cert-dir)" "${SKOPEO[@]}" copy \
  --dest-creds "$REGISTRY_USER:$REGISTRY_PASS" --dest-cert-dir "$REGISTRY_CERT_DIR" \
  "oci:$T/img:v1" "docker://$REGISTRY_HOST/tiny:v1"
check "skopeo pull back (--src-creds, --src-cert-dir)" "${SKOPEO[@]}" copy \
  --src-creds "$REGISTRY_USER:$REGISTRY_PASS" --src-cert-dir "$REGISTRY_CERT_DIR" \
  "docker://$REGISTRY_HOST/tiny:v1" "oci:$T/back-tls:v1"
check_eq "pulled-back manifest digest" "$TINY_DIGEST" "$(layout_digest "$T/back-tls" v1)"
check "REGISTRY_AUTH_JSON works as an auth file" "${SKOPEO[@]}" inspect --raw \
  --authfile "$REGISTRY_AUTH_JSON" --cert-dir "$REGISTRY_CERT_DIR" "docker://$REGISTRY_HOST/tiny:v1"
check_fails "skopeo with a wrong password fails" "${SKOPEO[@]}" copy \
  --dest-creds "$REGISTRY_USER:wrong" --dest-cert-dir "$REGISTRY_CERT_DIR" \
  "oci:$T/img:v1" "docker://$REGISTRY_HOST/tiny:v2"

# ---------------------------------------------------------------- token
section "token"
start token token
TOKEN_HOST=$REGISTRY_HOST
curl -s -D "$T/h" -o /dev/null "$REGISTRY_URL/v2/"
check_eq "GET /v2/ anonymous: Bearer challenge naming the realm and service" \
  "Bearer realm=\"$TOKEN_REALM\",service=\"$TOKEN_SERVICE\"" "$(header "$T/h" WWW-Authenticate)"
check "pusher: skopeo copy -> token registry foo/tiny" "${SKOPEO[@]}" copy --dest-tls-verify=false \
  --dest-creds "$REGISTRY_USER:$REGISTRY_PASS" "oci:$T/img:v1" "docker://$REGISTRY_HOST/foo/tiny:v1"
check_log "token log: pusher asked for repository:foo/tiny:pull,push and got it" "$TOKEN_LOG" \
  '"granted": \[[^]]*"repository:foo/tiny:pull,push".*"user": "pusher"'
check "pusher: pull back" "${SKOPEO[@]}" copy --src-tls-verify=false \
  --src-creds "$REGISTRY_USER:$REGISTRY_PASS" "docker://$REGISTRY_HOST/foo/tiny:v1" "oci:$T/back-token:v1"
check_eq "pulled-back manifest digest" "$TINY_DIGEST" "$(layout_digest "$T/back-token" v1)"
check "reader: pull works" "${SKOPEO[@]}" inspect --raw --tls-verify=false \
  --creds "$REGISTRY_READER_USER:$REGISTRY_READER_PASS" "docker://$REGISTRY_HOST/foo/tiny:v1"
check_fails "reader: push is denied" "${SKOPEO[@]}" copy --dest-tls-verify=false \
  --dest-creds "$REGISTRY_READER_USER:$REGISTRY_READER_PASS" "oci:$T/img:v1" "docker://$REGISTRY_HOST/foo/reader:v1"
check_fails "pusher: push to denied/x is denied" "${SKOPEO[@]}" copy --dest-tls-verify=false \
  --dest-creds "$REGISTRY_USER:$REGISTRY_PASS" "oci:$T/img:v1" "docker://$REGISTRY_HOST/denied/x:v1"
check_log "token log: push on denied/x was asked for, only pull granted" "$TOKEN_LOG" \
  '"granted": \["repository:denied/x:pull"\].*"scopes": \["repository:denied/x:pull,push"'
check_eq "no manifest was stored under denied/x" 404 "$(
  tok=$(curl -s -u "$REGISTRY_ADMIN_USER:$REGISTRY_ADMIN_PASS" \
    "$TOKEN_REALM?service=$TOKEN_SERVICE&scope=repository:denied/x:pull" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" -H "Accept: $OCI_ACCEPT" \
    "$REGISTRY_URL/v2/denied/x/manifests/v1")"
check "pusher: push to public/tiny" "${SKOPEO[@]}" copy --dest-tls-verify=false \
  --dest-creds "$REGISTRY_USER:$REGISTRY_PASS" "oci:$T/img:v1" "docker://$REGISTRY_HOST/public/tiny:v1"
check "anonymous: pull public/tiny" "${SKOPEO[@]}" copy --src-tls-verify=false --src-no-creds \
  "docker://$REGISTRY_HOST/public/tiny:v1" "oci:$T/back-anon:v1"
check_eq "anonymous pull: manifest digest" "$TINY_DIGEST" "$(layout_digest "$T/back-anon" v1)"
check_fails "anonymous: push to public/anon is denied" "${SKOPEO[@]}" copy --dest-tls-verify=false \
  --dest-no-creds "oci:$T/img:v1" "docker://$REGISTRY_HOST/public/anon:v1"
check_fails "anonymous: pull of foo/tiny (not public/*) is denied" "${SKOPEO[@]}" inspect --raw \
  --tls-verify=false --no-creds "docker://$REGISTRY_HOST/foo/tiny:v1"
check_eq "token server: a wrong password gets 401" 401 \
  "$(curl -s -o /dev/null -w '%{http_code}' -u pusher:wrong "$TOKEN_REALM?service=$TOKEN_SERVICE&scope=repository:foo/tiny:pull")"

# the token flow by hand, and the JWT's shape
curl -s -u "$REGISTRY_USER:$REGISTRY_PASS" -o "$T/token.json" \
  "$TOKEN_REALM?service=$TOKEN_SERVICE&scope=repository:foo/tiny:pull&scope=repository:denied/y:pull,push"
check "token answer + JWT: RS256, x5c, iss/sub/aud/exp/nbf/iat/jti/access" python3 - "$T/token.json" "$T/leaf.pem" <<'PY'
import base64, json, sys, textwrap
ans = json.load(open(sys.argv[1]))
for k in ("token", "access_token", "expires_in", "issued_at"):
    assert k in ans, k
assert ans["token"] == ans["access_token"] and ans["expires_in"] == 300
h, c, s = ans["token"].split(".")
dec = lambda x: json.loads(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))
h, c = dec(h), dec(c)
assert h["alg"] == "RS256" and h["typ"] == "JWT" and len(h["x5c"]) >= 1, h
for k in ("iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"):
    assert k in c, k
assert c["iss"] == "dockless-test-token-issuer" and c["aud"] == "dockless-test-registry" and c["sub"] == "pusher"
assert c["access"] == [{"type": "repository", "name": "foo/tiny", "actions": ["pull"]},
                       {"type": "repository", "name": "denied/y", "actions": ["pull"]}], c["access"]
open(sys.argv[2], "w").write("-----BEGIN CERTIFICATE-----\n" + "\n".join(textwrap.wrap(h["x5c"][0], 64))
                             + "\n-----END CERTIFICATE-----\n")
PY
check "x5c leaf chains to the registry's rootcertbundle (openssl verify)" \
  openssl verify -CAfile "$REGISTRY_STATE/token/token-ca.pem" "$T/leaf.pem"
TOK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$T/token.json")
curl -s -D "$T/h" -o /dev/null -H "Authorization: Bearer $TOK" -H "Accept: $OCI_ACCEPT" \
  "$REGISTRY_URL/v2/foo/tiny/manifests/v1"
check_eq "GET manifest with the Bearer token: the right digest" "$TINY_DIGEST" "$(header "$T/h" Docker-Content-Digest)"
curl -s -D "$T/h" -o /dev/null -X POST -H "Authorization: Bearer $TOK" "$REGISTRY_URL/v2/foo/tiny/blobs/uploads/"
check_match "POST upload with a pull-only token: 401 insufficient_scope challenge" \
  "$(head -n1 "$T/h") $(header "$T/h" WWW-Authenticate)" \
  '401 .*scope="repository:foo/tiny:(pull,push|push,pull)".*error="insufficient_scope"'
curl -s -o "$T/oauth.json" -X POST --data-urlencode grant_type=refresh_token \
  --data-urlencode "refresh_token=$REGISTRY_IDENTITY_TOKEN" --data-urlencode "service=$TOKEN_SERVICE" \
  --data-urlencode client_id=selftest --data-urlencode "scope=repository:foo/tiny:pull" "$TOKEN_REALM"
OTOK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("access_token", ""))' "$T/oauth.json")
check_eq "OAuth2 POST grant_type=refresh_token with REGISTRY_IDENTITY_TOKEN: a usable access_token" 200 \
  "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $OTOK" -H "Accept: $OCI_ACCEPT" \
    "$REGISTRY_URL/v2/foo/tiny/manifests/v1")"
check_match "OAuth2 POST grant_type=password&access_type=offline returns a refresh_token" "$(
  curl -s -X POST --data-urlencode grant_type=password --data-urlencode username=pusher \
    --data-urlencode "password=$REGISTRY_PASS" --data-urlencode access_type=offline \
    --data-urlencode "service=$TOKEN_SERVICE" --data-urlencode client_id=selftest "$TOKEN_REALM")" \
  '"refresh_token": "[0-9a-f]+"'
if grep -qF -e "$REGISTRY_PASS" -e "$REGISTRY_IDENTITY_TOKEN" "$TOKEN_LOG"; then
  failed "token log holds no password or refresh token"
else
  pass "token log holds no password or refresh token"
fi

section "token expiry (--expires-in 2 --strict-expiry)"
start token token-exp --expires-in 2 --strict-expiry
check_eq "TOKEN_EXPIRES_IN line" 2 "$TOKEN_EXPIRES_IN"
ETOK=$(curl -s -u "$REGISTRY_USER:$REGISTRY_PASS" "$TOKEN_REALM?service=$TOKEN_SERVICE&scope=repository:foo:pull" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["expires_in"] == 2; print(d["token"])')
check_eq "a fresh token is accepted" 200 \
  "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ETOK" "$REGISTRY_URL/v2/")"
sleep 3
check_eq "3 s later it is rejected (401: the client must fetch a new one)" 401 \
  "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ETOK" "$REGISTRY_URL/v2/")"
registry_stop token-exp

section "token-tls (HTTPS registry and HTTPS token realm, one CA)"
start token-tls token-tls
check_match "realm is https" "$TOKEN_REALM" '^https://127\.0\.0\.1:[0-9]+/token$'
check "pusher: skopeo copy -> token-tls registry (--dest-cert-dir)" "${SKOPEO[@]}" copy \
  --dest-cert-dir "$REGISTRY_CERT_DIR" --dest-creds "$REGISTRY_USER:$REGISTRY_PASS" \
  "oci:$T/img:v1" "docker://$REGISTRY_HOST/public/tiny:v1"
check "anonymous: pull back public/tiny" "${SKOPEO[@]}" copy --src-cert-dir "$REGISTRY_CERT_DIR" \
  --src-no-creds "docker://$REGISTRY_HOST/public/tiny:v1" "oci:$T/back-token-tls:v1"
check_eq "pulled-back manifest digest" "$TINY_DIGEST" "$(layout_digest "$T/back-token-tls" v1)"

# ---------------------------------------------------------------- fault proxy
section "fault proxy (in front of the plain registry)"
RULES=$T/rules.json
echo '[]' >"$RULES"
if out=$(registry_proxy proxy plain "$RULES"); then
  eval "$out"
  pass "start fault proxy at $PROXY_HOST -> $PROXY_UPSTREAM"
else
  failed "start fault proxy"
  exit 1
fi
check_eq "PROXY_UPSTREAM is the plain registry" "$PLAIN_HOST" "$PROXY_UPSTREAM"
# set_rules JSON: a new rules file (a new mtime: counters restart)
set_rules() {
  printf '%s\n' "$1" >"$RULES.tmp"
  touch -d "@$(($(date +%s) + ${RULE_GEN:=0}))" "$RULES.tmp"
  RULE_GEN=$((RULE_GEN + 1))
  mv -f "$RULES.tmp" "$RULES"
}
BLOB_URL=$PROXY_URL/v2/big/blobs/$BIG_LAYER

check "pass-through: skopeo pull through the proxy" "${SKOPEO[@]}" copy --src-tls-verify=false \
  "docker://$PROXY_HOST/big:v1" "oci:$T/back-proxy1:v1"
check_eq "pulled-back manifest digest" "$BIG_DIGEST" "$(layout_digest "$T/back-proxy1" v1)"
python3 "$HERE/make_tiny_image.py" "$T/big" v2 --random-bytes 1500000 --seed other >/dev/null
check "pass-through: skopeo push through the proxy (POST/PATCH/PUT streamed)" "${SKOPEO[@]}" copy \
  --dest-tls-verify=false "oci:$T/big:v2" "docker://$PROXY_HOST/big:v2"
check "…and the pushed image reads back straight from the registry" "${SKOPEO[@]}" copy \
  --src-tls-verify=false "docker://$PLAIN_HOST/big:v2" "oci:$T/back-proxy2:v2"
check_eq "its manifest digest" "$(layout_digest "$T/big" v2)" "$(layout_digest "$T/back-proxy2" v2)"
curl -s -X POST -D "$T/h" -o /dev/null "$PROXY_URL/v2/big/blobs/uploads/"
UPLOAD_LOC=$(header "$T/h" Location)
check_match "absolute Location rewritten to the proxy" "$UPLOAD_LOC" "^http://$PROXY_HOST/v2/big/blobs/uploads/"
head -c 300000 /dev/urandom >"$T/chunked.bin"
CHUNKED_DIGEST=sha256:$(sha256sum "$T/chunked.bin" | cut -d' ' -f1)
curl -s -X PATCH -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/octet-stream' \
  --data-binary @"$T/chunked.bin" -D "$T/h" -o /dev/null "$UPLOAD_LOC"
PUT_LOC=$(header "$T/h" Location)
[[ $PUT_LOC == *\?* ]] && PUT_LOC="$PUT_LOC&digest=$CHUNKED_DIGEST" || PUT_LOC="$PUT_LOC?digest=$CHUNKED_DIGEST"
check_eq "a chunked PATCH + PUT upload through the proxy: 201" 201 \
  "$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$PUT_LOC")"
check_eq "…the blob reads back with that digest" "$CHUNKED_DIGEST" \
  "sha256:$(curl -s "$PROXY_URL/v2/big/blobs/$CHUNKED_DIGEST" | sha256sum | cut -d' ' -f1)"
curl -s -r 100000-100999 -D "$T/h" -o "$T/range.bin" "$BLOB_URL"
check_eq "Range passes through: 206 + Content-Range" "206 bytes 100000-100999/$BIG_LAYER_SIZE" \
  "$(head -n1 "$T/h" | awk '{print $2}') $(header "$T/h" Content-Range)"
check "…with the right bytes" cmp "$T/range.bin" <(tail -c +100001 "$BIG_LAYER_FILE" | head -c 1000)

# skopeo 1.9.3 retries 429 (after Retry-After) and network errors (with
# --retry-times, restarting the blob); it retries no 503: that one is shown with curl.
set_rules '[{"method": "GET", "path": "/blobs/sha256:", "action": "status", "status": 429, "retry_after": "1"},
            {"method": "GET", "path": "/blobs/sha256:", "action": "reset_mid_body"}]'
: >"$PROXY_LOG"
check "skopeo copy through one 429 (Retry-After) and one reset_mid_body on blob GETs succeeds" \
  "${SKOPEO[@]}" copy --retry-times 3 --src-tls-verify=false "docker://$PROXY_HOST/big:v1" "oci:$T/back-proxy3:v1"
check_eq "…with the right manifest digest" "$BIG_DIGEST" "$(layout_digest "$T/back-proxy3" v1)"
check_log "…the 429 was injected" "$PROXY_LOG" "FIRED rule=0 action=status GET /v2/big/blobs/"
check_log "…the reset came mid-body" "$PROXY_LOG" "-> 200 bytes=[0-9]+/$BIG_LAYER_SIZE RESET rule=1:reset_mid_body"
check_log "…and the client then got the whole layer" "$PROXY_LOG" "GET /v2/big/blobs/$BIG_LAYER -> 200 bytes=$BIG_LAYER_SIZE\$"

set_rules '[{"method": "GET", "path": "/blobs/sha256:", "action": "status", "status": 503, "retry_after": "2"}]'
curl -s -D "$T/h" -o "$T/b" "$BLOB_URL"
check_eq "status: 503 with Retry-After, not forwarded" "503 2 UNAVAILABLE" \
  "$(head -n1 "$T/h" | awk '{print $2}') $(header "$T/h" Retry-After) $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["errors"][0]["code"])' "$T/b")"
check_eq "times=1: the retry passes through (200)" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$BLOB_URL")"
check_log "the log shows which rule fired" "$PROXY_LOG" "GET /v2/big/blobs/$BIG_LAYER -> 503 bytes=[0-9]+ rule=0:status"

set_rules '[{"method": "GET", "path": "/blobs/sha256:", "action": "corrupt_body"}]'
check_fails "corrupt_body: skopeo notices the digest mismatch" "${SKOPEO[@]}" copy --src-tls-verify=false \
  "docker://$PROXY_HOST/big:v1" "oci:$T/back-proxy4:v1"
set_rules '[{"method": "GET", "path": "/blobs/sha256:", "action": "corrupt_body"}]'
curl -s -o "$T/corrupt.bin" "$BLOB_URL"
check_eq "corrupt_body: same length, other digest" "$BIG_LAYER_SIZE different" \
  "$(stat -c %s "$T/corrupt.bin") $(cmp -s "$T/corrupt.bin" "$BIG_LAYER_FILE" && echo same || echo different)"

set_rules '[{"method": "GET", "path": "/blobs/sha256:", "action": "truncate", "bytes": 4096}]'
rc=0
curl -s -o "$T/trunc.bin" "$BLOB_URL" || rc=$?
check_eq "truncate: curl sees a short body (exit 18), 4096 bytes" "18 4096" "$rc $(stat -c %s "$T/trunc.bin")"

set_rules '[{"method": "GET", "path": "/blobs/sha256:", "action": "reset_mid_body", "fraction": 0.25}]'
rc=0
curl -s -o "$T/reset.bin" "$BLOB_URL" || rc=$?
check_match "reset_mid_body: curl sees a reset (exit 56) after part of the body" \
  "$rc $(stat -c %s "$T/reset.bin")" "^56 [1-9][0-9]*$"

set_rules '[{"method": "PUT", "path": "/blobs/uploads/", "action": "reset"}]'
rc=0
curl -s -o /dev/null -X PUT "$PROXY_URL/v2/big/blobs/uploads/x?digest=$CHUNKED_DIGEST" || rc=$?
check_match "reset: the connection dies before any answer (curl 52/56)" "$rc" '^(52|56)$'
check_log "…logged" "$PROXY_LOG" "PUT /v2/big/blobs/uploads/x.* -> RESET before response rule=0:reset"

set_rules '[{"method": "GET", "path": "^/v2/$", "action": "delay", "ms": 700}]'
t=$(curl -s -o /dev/null -w '%{time_total}' "$PROXY_URL/v2/")
check_match "delay: 700 ms before a normal answer (took ${t}s)" "$t" '^(0\.[7-9]|[1-9])'

set_rules '[{"method": "GET", "path": "^/v2/$", "action": "status", "status": 500, "skip": 1, "times": 2}]'
codes=""
for _ in 1 2 3 4; do codes+="$(curl -s -o /dev/null -w '%{http_code}' "$PROXY_URL/v2/") "; done
check_eq "skip=1 times=2: pass, fire, fire, pass" "200 500 500 200 " "$codes"

# ---------------------------------------------------------------- stop
section "stop"
pids=$(cat "$DOCKLESS_REGISTRY_STATE"/*/pids | awk '{print $2}')
check_match "processes recorded" "$(wc -w <<<"$pids")" '^[1-9]'
registry_stop_all
sleep 0.2
alive=""
for p in $pids; do  # a zombie waiting for init to reap it counts as ended
  [[ -e /proc/$p/stat && $(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) != Z ]] && alive+="$p "
done
check_eq "stop-all ended every process it started" "" "$alive"
check_eq "stop-all removed the state dirs" "" "$(ls -A "$DOCKLESS_REGISTRY_STATE")"
