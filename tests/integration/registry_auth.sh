#!/usr/bin/env bash
# dockless against registries that need TLS and credentials: a self-signed
# https registry with htpasswd basic auth (CA trust, --insecure-registry,
# every way to give credentials, wrong password), and registries with a token
# server (scopes requested, denied repository, anonymous pull/push, identity
# token, cross-repository mount, tokens that expire during a push). Secrets
# (passwords, tokens) must never show up in dockless's output.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"

echo "dockless: $DOCKLESS"
echo "scratch: $T"

# A tiny image (reproducible) and a 5-layer image for the token-expiry push.
IMG=$T/img
python3 "$SOURCE_ROOT/tests/registry/make_tiny_image.py" "$IMG" v1 --random-bytes 200000 >/dev/null ||
  fail "make_tiny_image.py"
IMG_DIGEST=$(layout_manifest_digest "$IMG" v1)
ML_DIGEST=$(make_multilayer_image "$IMG" ml 5 1000000 7) || fail "make_multilayer_image"
echo "tiny image: $IMG_DIGEST, 5-layer image: $ML_DIGEST"

# tokens are JWTs: base64url of '{"' starts with eyJ
check_no_secrets() {  # DESC FILE SECRETS...
  local desc=$1 file=$2 s found=()
  shift 2
  for s in "$@"; do
    [[ -n $s ]] && grep -qF -- "$s" "$file" && found+=("$(grep -F -- "$s" "$file" | head -n 3)")
  done
  if grep -Eq 'eyJ[A-Za-z0-9_-]{10,}|Bearer [A-Za-z0-9]|Basic [A-Za-z0-9+/=]{8,}' "$file"; then
    found+=("a token/Authorization value: $(grep -E 'eyJ|Bearer|Basic ' "$file" | head -n 3)")
  fi
  if ((${#found[@]} == 0)); then
    pass "$desc"
  else
    failed "$desc" "${found[@]}"
  fi
}

# ================================================================== tls-basic
section "tls-basic: self-signed https registry with htpasswd"
start_registry tls-basic tb
TB=$REGISTRY_HOST TB_CA=$REGISTRY_CA TB_CERT_DIR=$REGISTRY_CERT_DIR
TB_USER=$REGISTRY_USER TB_PASS=$REGISTRY_PASS TB_AUTH_JSON=$REGISTRY_AUTH_JSON

check_dl_error "push without --ca-cert (the CA is not trusted)" "$T/tb-noca" \
  '\bTLS\b|\bSSL\b|certificate|x509' "$TB" -- \
  push -q "oci:$IMG:v1" "$TB/basic/img:1" --creds "$TB_USER:$TB_PASS" --cache-dir "$(fresh_cache)"
check_dl_error "pull without --ca-cert (the CA is not trusted)" "$T/tb-noca-pull" \
  '\bTLS\b|\bSSL\b|certificate|x509' "$TB" -- \
  pull -q "$TB/basic/img:1" --output "oci:$T/never:1" --creds "$TB_USER:$TB_PASS" --cache-dir "$(fresh_cache)"
if ! grep -q '"PUT /v2/basic/img/manifests/' "$REGISTRY_LOG"; then
  pass "nothing was pushed without a trusted certificate"
else
  failed "nothing was pushed without a trusted certificate" "$(grep '/v2/basic/img/' "$REGISTRY_LOG" | tail -n 3)"
fi

check_dl "push with --ca-cert and --creds" "$T/tb-ok" \
  push "oci:$IMG:v1" "$TB/basic/img:1" --ca-cert "$TB_CA" --creds "$TB_USER:$TB_PASS" --cache-dir "$(fresh_cache)"
check_digests_equal "push prints the image's digest" "$IMG_DIGEST" "$DIGEST"
check_digests_equal "skopeo (CA + creds) sees the pushed digest" "$IMG_DIGEST" \
  "$(skopeo inspect --cert-dir "$TB_CERT_DIR" --creds "$TB_USER:$TB_PASS" "docker://$TB/basic/img:1" 2>"$T/sk.err" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])' 2>/dev/null || true)"

check_dl "push with --insecure-registry $TB and --creds (no CA)" "$T/tb-insecure" \
  push "oci:$IMG:v1" "$TB/basic/insecure:1" --insecure-registry "$TB" --creds "$TB_USER:$TB_PASS" --cache-dir "$(fresh_cache)"
check_digests_equal "insecure push prints the image's digest" "$IMG_DIGEST" "$DIGEST"
check_dl "pull with --insecure-registry $TB and --creds" "$T/tb-insecure-pull" \
  pull "$TB/basic/insecure:1" --output "oci:$T/tb-pulled:1" --insecure-registry "$TB" --creds "$TB_USER:$TB_PASS" --cache-dir "$(fresh_cache)"
check_digests_equal "the pulled layout has the digest" "$IMG_DIGEST" "$(layout_manifest_digest "$T/tb-pulled" 1)"

section "tls-basic: bad or missing credentials"
WRONG=wrong-$(openssl rand -hex 6)
check_dl_error "push with a wrong password" "$T/tb-wrong" \
  "$TB" 'unauthori[sz]ed|authenticat' -- \
  push -q "oci:$IMG:v1" "$TB/basic/wrong:1" --ca-cert "$TB_CA" --creds "$TB_USER:$WRONG" --cache-dir "$(fresh_cache)"
check_not_in "the wrong password is not in stderr" "$T/tb-wrong.err" "$WRONG"
check_dl_error "pull with a wrong password" "$T/tb-wrong-pull" \
  "$TB" 'unauthori[sz]ed|authenticat' -- \
  pull -q "$TB/basic/img:1" --output "oci:$T/never2:1" --ca-cert "$TB_CA" --creds "$TB_USER:$WRONG" --cache-dir "$(fresh_cache)"
check_not_in "the wrong password is not in stderr (pull)" "$T/tb-wrong-pull.err" "$WRONG"
check_dl_error "push without any credentials" "$T/tb-anon" \
  "$TB" 'unauthori[sz]ed|authenticat' -- \
  push -q "oci:$IMG:v1" "$TB/basic/anon:1" --ca-cert "$TB_CA" --cache-dir "$(fresh_cache)"

section "tls-basic: credentials from files, env and a credential helper"
check_dl "--authfile (containers auth.json, base64 auth)" "$T/tb-authfile" \
  push "oci:$IMG:v1" "$TB/basic/authfile:1" --ca-cert "$TB_CA" --authfile "$TB_AUTH_JSON" --cache-dir "$(fresh_cache)"
check_digests_equal "--authfile push prints the digest" "$IMG_DIGEST" "$DIGEST"
run_capture "$T/tb-regauthfile" env REGISTRY_AUTH_FILE="$TB_AUTH_JSON" "$DOCKLESS" \
  push "oci:$IMG:v1" "$TB/basic/regauthfile:1" --ca-cert "$TB_CA" --cache-dir "$(fresh_cache)"
check_eq "REGISTRY_AUTH_FILE=auth.json (no flag): push exits 0, prints the digest" "0 $IMG_DIGEST" "$RC $(cat "$T/tb-regauthfile.out")"
((CHECK_OK)) || tail -n 5 "$T/tb-regauthfile.err" | sed 's/^/        | /'

run_capture "$T/tb-env" env DOCKLESS_USERNAME="$TB_USER" DOCKLESS_PASSWORD="$TB_PASS" "$DOCKLESS" \
  push "oci:$IMG:v1" "$TB/basic/env:1" --ca-cert "$TB_CA" --cache-dir "$(fresh_cache)"
check_eq "DOCKLESS_USERNAME/DOCKLESS_PASSWORD: push exits 0, prints the digest" "0 $IMG_DIGEST" "$RC $(cat "$T/tb-env.out")"
((CHECK_OK)) || tail -n 5 "$T/tb-env.err" | sed 's/^/        | /'

# docker config.json with credHelpers -> docker-credential-test on PATH
mkdir -p "$T/helper/bin" "$T/helper/docker"
cat >"$T/helper/bin/docker-credential-test" <<EOF
#!/bin/sh
# test credential helper: logs the action and server URL it was asked for
read -r url
printf '%s %s\n' "\$1" "\$url" >>"$T/helper/calls.log"
[ "\$1" = get ] || exit 1
printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\n' "\$url" "$TB_USER" "$TB_PASS"
EOF
chmod +x "$T/helper/bin/docker-credential-test"
printf '{"auths": {}, "credHelpers": {"%s": "test"}}\n' "$TB" >"$T/helper/docker/config.json"
: >"$T/helper/calls.log"
run_capture "$T/tb-helper" env PATH="$T/helper/bin:$PATH" DOCKER_CONFIG="$T/helper/docker" "$DOCKLESS" \
  push "oci:$IMG:v1" "$TB/basic/helper:1" --ca-cert "$TB_CA" --cache-dir "$(fresh_cache)"
check_eq "credHelpers in \$DOCKER_CONFIG/config.json: push exits 0, prints the digest" "0 $IMG_DIGEST" "$RC $(cat "$T/tb-helper.out")"
((CHECK_OK)) || tail -n 5 "$T/tb-helper.err" | sed 's/^/        | /'
check "the credential helper was asked 'get' for $TB" grep -qxF "get $TB" "$T/helper/calls.log"
: >"$T/helper/calls.log"
run_capture "$T/tb-helper2" env PATH="$T/helper/bin:$PATH" "$DOCKLESS" \
  push "oci:$IMG:v1" "$TB/basic/helper2:1" --ca-cert "$TB_CA" --authfile "$T/helper/docker/config.json" --cache-dir "$(fresh_cache)"
check_eq "credHelpers via --authfile config.json: push exits 0, prints the digest" "0 $IMG_DIGEST" "$RC $(cat "$T/tb-helper2.out")"
((CHECK_OK)) || tail -n 5 "$T/tb-helper2.err" | sed 's/^/        | /'
check "the credential helper was asked 'get' for $TB (--authfile)" grep -qxF "get $TB" "$T/helper/calls.log"

for f in "$T"/tb-*.err; do
  check_no_secrets "no password or Authorization value in $(basename "$f")" "$f" "$TB_PASS"
done

# ================================================================== token
section "token: bearer tokens from a token server with an ACL"
start_registry token tok
TK=$REGISTRY_HOST TK_PASS=$REGISTRY_PASS TK_LOG=$TOKEN_LOG TK_REGLOG=$REGISTRY_LOG
TK_READER_PASS=$REGISTRY_READER_PASS TK_ADMIN_PASS=$REGISTRY_ADMIN_PASS TK_IDTOKEN=$REGISTRY_IDENTITY_TOKEN

# token_log_since N: the token requests after line N as "user|scopes|granted|grant_type"
token_lines() {
  tail -n "+$(($2 + 1))" -- "$1" | python3 -c '
import json, sys
for l in sys.stdin:
    d = json.loads(l)
    print("%s|%s|%s|%s|%s" % (d.get("user"), " ".join(d.get("scopes") or []), " ".join(d.get("granted") or []),
                              d.get("grant_type"), d.get("status")))'
}
mark=$(wc -l <"$TK_LOG")
check_dl "push as pusher to $TK/team/app:1" "$T/tk-push" \
  push "oci:$IMG:v1" "$TK/team/app:1" --creds "pusher:$TK_PASS" --report "$T/tk-push.json" --cache-dir "$(fresh_cache)"
check_digests_equal "token push prints the digest" "$IMG_DIGEST" "$DIGEST"
token_lines "$TK_LOG" "$mark" >"$T/tk-push.tokens"
check "TOKEN_LOG: pusher requested (and got) repository:team/app:pull,push" \
  grep -Eq '^pusher\|[^|]*repository:team/app:(pull,push|push,pull)[^|]*\|[^|]*repository:team/app:pull,push' "$T/tk-push.tokens"

mark=$(wc -l <"$TK_LOG")
check_dl_error "push as pusher to denied/x (pull-only for pusher)" "$T/tk-denied" \
  "$TK" 'denied/x' 'denied|unauthori[sz]ed|insufficient.scope' -- \
  push -q "oci:$IMG:v1" "$TK/denied/x:1" --creds "pusher:$TK_PASS" --cache-dir "$(fresh_cache)"
token_lines "$TK_LOG" "$mark" >"$T/tk-denied.tokens"
check "TOKEN_LOG: pusher asked for repository:denied/x with push" \
  grep -Eq '^pusher\|[^|]*repository:denied/x:[a-z,]*push' "$T/tk-denied.tokens"
if ! grep -q '"PUT /v2/denied/x/manifests/' "$TK_REGLOG"; then
  pass "no manifest PUT reached denied/x"
else
  failed "no manifest PUT reached denied/x" "$(grep '/v2/denied/x/manifests' "$TK_REGLOG" | tail -n 3)"
fi

section "token: anonymous access"
check_dl "pusher pushes $TK/public/img:1 (to pull anonymously)" "$T/tk-pubpush" \
  push "oci:$IMG:v1" "$TK/public/img:1" --creds "pusher:$TK_PASS" --cache-dir "$(fresh_cache)"
mark=$(wc -l <"$TK_LOG")
check_dl "anonymous pull of $TK/public/img:1" "$T/tk-anon-pull" \
  pull "$TK/public/img:1" --output "oci:$T/anon:1" --cache-dir "$(fresh_cache)"
check_digests_equal "the anonymous pull has the digest" "$IMG_DIGEST" "$(layout_manifest_digest "$T/anon" 1)"
check_blobs_intact "the anonymous pull's blobs are intact" "$T/anon"
token_lines "$TK_LOG" "$mark" >"$T/tk-anon.tokens"
check "TOKEN_LOG: an anonymous request was granted repository:public/img:pull" \
  grep -Eq '^None\|[^|]*\|[^|]*repository:public/img:pull' "$T/tk-anon.tokens"
check_dl_error "anonymous push to public/anon" "$T/tk-anon-push" \
  "$TK" 'public/anon' 'denied|unauthori[sz]ed|insufficient.scope|authenticat' -- \
  push -q "oci:$IMG:v1" "$TK/public/anon:1" --cache-dir "$(fresh_cache)"
check_dl_error "anonymous pull of a non-public repository (team/app)" "$T/tk-anon-priv" \
  "$TK" 'team/app' 'denied|unauthori[sz]ed|insufficient.scope|authenticat' -- \
  pull -q "$TK/team/app:1" --output "oci:$T/never3:1" --cache-dir "$(fresh_cache)"
check_dl_error "push as reader (pull-only everywhere)" "$T/tk-reader" \
  "$TK" 'team/reader' 'denied|unauthori[sz]ed|insufficient.scope' -- \
  push -q "oci:$IMG:v1" "$TK/team/reader:1" --creds "reader:$TK_READER_PASS" --cache-dir "$(fresh_cache)"
check_dl_error "push as pusher with a wrong password" "$T/tk-wrong" \
  "$TK" 'unauthori[sz]ed|authenticat' -- \
  push -q "oci:$IMG:v1" "$TK/team/wrong:1" --creds "pusher:$WRONG" --cache-dir "$(fresh_cache)"
check_not_in "the wrong password is not in stderr (token)" "$T/tk-wrong.err" "$WRONG"

section "token: identity token (OAuth2 refresh token) in the auth file"
printf '{"auths": {"%s": {"identitytoken": "%s"}}}\n' "$TK" "$TK_IDTOKEN" >"$T/idtoken.json"
mark=$(wc -l <"$TK_LOG")
check_dl "push with an identitytoken from --authfile" "$T/tk-idtoken" \
  push "oci:$IMG:v1" "$TK/team/idtoken:1" --authfile "$T/idtoken.json" --cache-dir "$(fresh_cache)"
token_lines "$TK_LOG" "$mark" >"$T/tk-idtoken.tokens"
check "TOKEN_LOG: a refresh_token grant for pusher got team/idtoken:pull,push" \
  grep -Eq '^pusher\|[^|]*\|[^|]*repository:team/idtoken:pull,push[^|]*\|refresh_token\|' "$T/tk-idtoken.tokens"

section "token: copy between two repositories mounts"
mark=$(wc -l <"$TK_LOG")
check_dl "dockless copy $TK/team/app:1 $TK/team/copy:1" "$T/tk-copy" \
  copy "$TK/team/app:1" "$TK/team/copy:1" --creds "pusher:$TK_PASS" --report "$T/tk-copy.json" --cache-dir "$(fresh_cache)"
check_digests_equal "copy prints the digest" "$IMG_DIGEST" "$DIGEST"
check_python "the copy report: every pushed blob mounted" "$T/tk-copy.json" '
blobs = [b for b in d["blobs"] if b["direction"] == "push"]
assert len(blobs) == 2, d["blobs"]
assert all(b["action"] == "mounted" for b in blobs), [(b["digest"][:19], b["action"]) for b in blobs]'
token_lines "$TK_LOG" "$mark" >"$T/tk-copy.tokens"
check "TOKEN_LOG: a token for the copy asked for repository:team/copy push and repository:team/app:pull together" \
  grep -Eq '^pusher\|([^|]*repository:team/copy:[a-z,]*push[^|]*repository:team/app:pull|[^|]*repository:team/app:pull[^|]*repository:team/copy:[a-z,]*push)' "$T/tk-copy.tokens"
check "TOKEN_LOG: pull scope for the source repository team/app was granted" \
  grep -Eq '^pusher\|[^|]*\|[^|]*repository:team/app:pull' "$T/tk-copy.tokens"

section "token: a blob GET redirected to another host gets no Authorization header"
# A fault proxy in front of the token registry answers the layer's GET with a
# 307 to a tiny blob server on another host name (localhost:PORT2), which logs
# whether an Authorization header came with the request.
check_dl "pusher pushes $TK/team/redir:1" "$T/tk-redir-push" \
  push "oci:$IMG:v1" "$TK/team/redir:1" --creds "pusher:$TK_PASS" --cache-dir "$(fresh_cache)"
LAYER=$(manifest_layers "$IMG" v1 | head -n 1)
cat >"$T/blobserver.py" <<'PY'
import http.server, sys
blob, port_file, log = sys.argv[1:]
data = open(blob, "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        with open(log, "a") as f:
            f.write("%s %s host=%s authorization=%s\n" % (self.command, self.path, self.headers.get("Host"),
                    "present" if self.headers.get("Authorization") else "absent"))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(port_file, "w").write(str(s.server_address[1]))
s.serve_forever()
PY
: >"$T/blobserver.log"
timeout --foreground -k 5 600 python3 "$T/blobserver.py" "$(layout_blob_path "$IMG" "$LAYER")" "$T/blobserver.port" \
  "$T/blobserver.log" </dev/null >"$T/blobserver.err" 2>&1 &
BSPID=$!
at_exit kill "$BSPID"
for _ in $(seq 100); do [[ -s $T/blobserver.port ]] && break; sleep 0.05; done
[[ -s $T/blobserver.port ]] || fail "the blob server did not start" "$(cat "$T/blobserver.err")"
BS=localhost:$(cat "$T/blobserver.port")
printf '[{"method": "GET", "path": "/v2/team/redir/blobs/%s", "action": "status", "status": 307, "times": -1, "body": "", "headers": {"Location": "http://%s/blob/%s"}}]\n' \
  "$LAYER" "$BS" "${LAYER#sha256:}" >"$T/redir-rules.json"
timeout --foreground -k 5 600 python3 "$SOURCE_ROOT/tests/registry/fault_proxy.py" --listen 127.0.0.1:0 \
  --upstream "$TK" --rules "$T/redir-rules.json" --port-file "$T/redir-proxy.port" --log "$T/redir-proxy.log" \
  --max-lifetime 600 </dev/null >"$T/redir-proxy.err" 2>&1 &
RPID=$!
at_exit kill "$RPID"
for _ in $(seq 100); do [[ -s $T/redir-proxy.port ]] && break; sleep 0.05; done
[[ -s $T/redir-proxy.port ]] || fail "fault proxy in front of the token registry did not start" "$(cat "$T/redir-proxy.err")"
RP=127.0.0.1:$(cat "$T/redir-proxy.port")
check_dl "pull $RP/team/redir:1 (layer redirected to $BS) with --creds" "$T/tk-redir" \
  pull "$RP/team/redir:1" --output "oci:$T/redir:1" --creds "pusher:$TK_PASS" --cache-dir "$(fresh_cache)"
check "the redirect fired" grep -q "GET /v2/team/redir/blobs/$LAYER -> 307" "$T/redir-proxy.log"
check "the blob server got the GET" grep -q "^GET /blob/${LAYER#sha256:} " "$T/blobserver.log"
if grep -q "authorization=present" "$T/blobserver.log"; then
  failed "no Authorization header was sent to the other host" "$(cat "$T/blobserver.log")"
else
  pass "no Authorization header was sent to the other host"
fi
check_blobs_intact "the redirected pull's blobs are intact" "$T/redir"
check_digests_equal "the redirected pull has the digest" "$IMG_DIGEST" "$(layout_manifest_digest "$T/redir" 1)"

for f in "$T"/tk-*.err; do
  check_no_secrets "no password or token in $(basename "$f")" "$f" "$TK_PASS" "$TK_READER_PASS" "$TK_IDTOKEN"
done

# ================================================================== token-tls
section "token-tls: https registry and https token server"
start_registry token-tls tt
check_dl "push with --ca-cert and --creds to token-tls" "$T/tt-push" \
  push "oci:$IMG:v1" "$REGISTRY_HOST/team/tls:1" --ca-cert "$REGISTRY_CA" --creds "pusher:$REGISTRY_PASS" --cache-dir "$(fresh_cache)"
check_dl "pull it back" "$T/tt-pull" \
  pull "$REGISTRY_HOST/team/tls:1" --output "oci:$T/tt:1" --ca-cert "$REGISTRY_CA" --creds "reader:$REGISTRY_READER_PASS" --cache-dir "$(fresh_cache)"
check_digests_equal "token-tls: the pulled layout has the digest" "$IMG_DIGEST" "$(layout_manifest_digest "$T/tt" 1)"

# ================================================================== expiry
section "token expiry: tokens live 2 s (strict), a push that takes longer"
start_registry token tokx --expires-in 2 --strict-expiry
TX=$REGISTRY_HOST
# a fault proxy in front of the token registry (registry.sh proxy only takes
# plain/relative registries, so run fault_proxy.py directly): every blob HEAD
# is delayed 0.7 s, so the 6 blobs of the 5-layer image take > 4 s.
echo '[{"method": "HEAD", "path": "/blobs/", "times": -1, "action": "delay", "ms": 700}]' >"$T/expiry-rules.json"
timeout --foreground -k 5 600 python3 "$SOURCE_ROOT/tests/registry/fault_proxy.py" --listen 127.0.0.1:0 \
  --upstream "$TX" --rules "$T/expiry-rules.json" --port-file "$T/expiry-proxy.port" --log "$T/expiry-proxy.log" \
  --max-lifetime 600 </dev/null >"$T/expiry-proxy.err" 2>&1 &
XPID=$!
at_exit kill "$XPID"
for _ in $(seq 100); do [[ -s $T/expiry-proxy.port ]] && break; sleep 0.05; done
[[ -s $T/expiry-proxy.port ]] || fail "fault proxy in front of the token registry did not start" "$(cat "$T/expiry-proxy.err")"
XP=127.0.0.1:$(cat "$T/expiry-proxy.port")
mark=$(wc -l <"$TOKEN_LOG")
check_dl "push --jobs 1 of a 5-layer image through the slow proxy" "$T/tx-push" \
  push --jobs 1 "oci:$IMG:ml" "$XP/exp/ml:1" --creds "pusher:$REGISTRY_PASS" --cache-dir "$(fresh_cache)"
check_digests_equal "the push printed the 5-layer image's digest" "$ML_DIGEST" "$DIGEST"
if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 3 else 1)" "$SECS"; then
  pass "the push outlived the token (${SECS}s > 3 s)"
else
  failed "the push outlived the token (> 3 s)" "it took ${SECS}s: the test did not test expiry"
fi
n=$(token_lines "$TOKEN_LOG" "$mark" | grep -Ec '^pusher\|[^|]*repository:exp/ml:[a-z,]*push' || true)
if ((n >= 2)); then
  pass "dockless fetched a new push token when the old one expired ($n token requests)"
else
  failed "dockless fetched a new push token when the old one expired" "push-scope token requests: $n"
fi
check_digests_equal "skopeo (reader) sees the pushed digest" "$ML_DIGEST" \
  "$(skopeo inspect --tls-verify=false --creds "reader:$REGISTRY_READER_PASS" "docker://$TX/exp/ml:1" 2>"$T/sk.err" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])' 2>/dev/null || true)"
check_dl "push the tiny image to the short-token registry" "$T/tx-a" \
  push "oci:$IMG:v1" "$TX/exp/tiny:1" --creds "pusher:$REGISTRY_PASS" --cache-dir "$(fresh_cache)"
sleep 3
check_dl "3 s later (the first token expired), pull it" "$T/tx-b" \
  pull "$TX/exp/tiny:1" --output "oci:$T/tx:1" --creds "pusher:$REGISTRY_PASS" --cache-dir "$(fresh_cache)"
check_digests_equal "the pull after expiry has the digest" "$IMG_DIGEST" "$(layout_manifest_digest "$T/tx" 1)"
for f in "$T"/tx-*.err; do
  check_no_secrets "no password or token in $(basename "$f")" "$f" "$REGISTRY_PASS"
done
