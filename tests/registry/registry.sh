#!/usr/bin/env bash
# Real registries for dockless's tests, on 127.0.0.1 only (see README.md here).
#
# CLI:
#   registry.sh start KIND NAME [--expires-in N] [--strict-expiry]
#       KIND: plain | relative | tls-basic | token | token-tls
#       prints shell-eval-able lines (REGISTRY_HOST=127.0.0.1:PORT, ...)
#   registry.sh proxy NAME UPSTREAM_NAME [RULES.json]
#       a fault_proxy.py in front of the plain/relative registry UPSTREAM_NAME;
#       prints PROXY_HOST=..., PROXY_LOG=..., PROXY_RULES=...
#   registry.sh stop NAME
#   registry.sh stop-all
#   registry.sh env NAME          prints NAME's lines again
#   registry.sh logs NAME [N]     the last N (40) lines of each of NAME's logs
#
# Library: `source registry.sh` defines registry_start, registry_proxy,
# registry_stop, registry_stop_all, registry_env, registry_logs (each runs
# this script as a child, so the caller's shell options don't matter) and
# registry_cleanup_on_exit (stop-all on exit, chained before an existing trap):
#     registry_cleanup_on_exit
#     eval "$(registry_start plain reg1)"
#
# State: ${DOCKLESS_REGISTRY_STATE:-/tmp/dockless-registries}/NAME (config,
# storage, certificates, logs, pids). `stop` removes it unless
# DOCKLESS_REGISTRY_KEEP=1 or DOCKLESS_KEEP_SCRATCH=1. Give each test its own
# DOCKLESS_REGISTRY_STATE (e.g. "$T/registries"): stop-all stops every registry
# under the state root, including another test's.
#
# Env knobs: DOCKLESS_REGISTRY_WAIT (seconds to wait for /v2/, default 20),
# DOCKLESS_REGISTRY_MAX_LIFETIME (seconds after which every process started
# here exits on its own, default 3600), DOCKLESS_REGISTRY_LOG_LEVEL (info).

_REGISTRY_SH=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)/$(basename -- "${BASH_SOURCE[0]}")

registry_start() { bash "$_REGISTRY_SH" start "$@"; }
registry_proxy() { bash "$_REGISTRY_SH" proxy "$@"; }
registry_stop() { bash "$_REGISTRY_SH" stop "$@"; }
registry_stop_all() { bash "$_REGISTRY_SH" stop-all "$@"; }
registry_env() { bash "$_REGISTRY_SH" env "$@"; }
registry_logs() { bash "$_REGISTRY_SH" logs "$@"; }

# registry_cleanup_on_exit: runs registry_stop_all when the shell exits, before
# whatever EXIT trap is already set (e.g. tests/integration/lib.sh's), which
# still sees the original exit status in $?. Call it in the test's own shell.
registry_cleanup_on_exit() {
  local old
  old=$(trap -p EXIT)
  if [[ -n $old ]]; then
    eval "set -- $old"
    old=$3
  fi
  # shellcheck disable=SC2064
  trap "_registry_rc=\$?; registry_stop_all >/dev/null 2>&1; (exit \$_registry_rc) && :; $old" EXIT
}

# Sourced: only the functions above.
if [[ ${BASH_SOURCE[0]} != "$0" ]]; then
  return 0
fi

set -euo pipefail
export LC_ALL=C

HERE=$(dirname -- "$_REGISTRY_SH")
STATE_ROOT=${DOCKLESS_REGISTRY_STATE:-/tmp/dockless-registries}
WAIT=${DOCKLESS_REGISTRY_WAIT:-20}
MAX_LIFETIME=${DOCKLESS_REGISTRY_MAX_LIFETIME:-3600}
LOG_LEVEL=${DOCKLESS_REGISTRY_LOG_LEVEL:-info}
REGISTRY_BIN=${DOCKLESS_REGISTRY_BIN:-docker-registry}

die() {
  echo "registry.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^$/p' "$_REGISTRY_SH" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# distribution maps REGISTRY_* environment variables onto its configuration
# (REGISTRY_HTTP_ADDR=... would override our addr): start children without any.
CLEAN_ENV=(env)
for _v in $(compgen -e); do
  [[ $_v == REGISTRY_* ]] && CLEAN_ENV+=(-u "$_v")
done
unset _v

free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

rand_hex() { openssl rand -hex "${1:-12}"; }

check_name() {
  [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "bad NAME '$1' (letters, digits, . _ -)"
}

# emit VAR VALUE: one eval-able line, on stdout and into the env file.
emit() {
  printf '%s=%q\n' "$1" "$2" | tee -a "$D/env.tmp"
}

# ------------------------------------------------------------------ processes

# spawn LABEL LOGFILE CMD...: starts CMD in the background (stdin /dev/null,
# stdout+stderr to LOGFILE, no REGISTRY_* variables, ended after MAX_LIFETIME
# seconds) and records "LABEL PID" in $D/pids. Every command line started here
# holds $D, which stop uses to make sure a pid is still ours.
spawn() {
  local label=$1 log=$2
  shift 2
  "${CLEAN_ENV[@]}" timeout --foreground -k 5 "$MAX_LIFETIME" "$@" </dev/null >>"$log" 2>&1 &
  echo "$label $!" >>"$D/pids"
  LAST_PID=$!
}

pid_is_ours() {  # PID DIR
  local cmd
  [[ -r /proc/$1/cmdline ]] || return 1
  cmd=$(tr '\0' ' ' </proc/"$1"/cmdline 2>/dev/null) || return 1
  [[ $cmd == *"$2/"* ]] || return 1
  # a zombie is as good as gone
  [[ $(awk '{print $3}' /proc/"$1"/stat 2>/dev/null) != Z ]]
}

alive() { kill -0 "$1" 2>/dev/null && [[ $(awk '{print $3}' /proc/"$1"/stat 2>/dev/null) != Z ]]; }

log_tail() {  # FILE [N]
  [[ -f $1 ]] || return 0
  echo "---- last ${2:-40} lines of $1" >&2
  tail -n "${2:-40}" -- "$1" >&2
}

# wait_http URL PID LOG [CURL ARGS...]: until URL answers with any HTTP status
# (200 or 401 for a registry's /v2/).
wait_http() {
  local url=$1 pid=$2 log=$3 deadline code
  shift 3
  deadline=$((SECONDS + WAIT))
  while ((SECONDS < deadline)); do
    if ! alive "$pid"; then
      echo "registry.sh: the process behind $url (pid $pid) exited" >&2
      log_tail "$log"
      return 1
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" 2>/dev/null) || true
    if [[ $code == 200 || $code == 401 ]]; then
      return 0
    fi
    sleep 0.1
  done
  echo "registry.sh: $url did not answer 200/401 within ${WAIT}s (last status '${code:-none}')" >&2
  log_tail "$log"
  return 1
}

wait_port_file() {  # FILE PID LOG
  local deadline=$((SECONDS + WAIT))
  while ((SECONDS < deadline)); do
    [[ -s $1 ]] && return 0
    if ! alive "$2"; then
      echo "registry.sh: pid $2 exited before writing $1" >&2
      log_tail "$3"
      return 1
    fi
    sleep 0.05
  done
  echo "registry.sh: no port in $1 after ${WAIT}s" >&2
  log_tail "$3"
  return 1
}

# ------------------------------------------------------------------ certificates

# make_ca DIR NAME CN: DIR/NAME.pem + DIR/NAME-key.pem, a self-signed CA.
make_ca() {
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$1/$2-key.pem" -out "$1/$2.pem" -days 3650 -subj "/CN=$3" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# make_cert DIR NAME CA KEYTYPE EXT CN: DIR/NAME.pem + DIR/NAME-key.pem signed by
# DIR/CA.pem. KEYTYPE: ec or rsa.
make_cert() {
  local dir=$1 name=$2 ca=$3 keytype=$4 ext=$5 cn=$6
  local -a newkey
  if [[ $keytype == rsa ]]; then
    newkey=(-newkey rsa:2048)
  else
    newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
  fi
  openssl req -new -nodes "${newkey[@]}" -keyout "$dir/$name-key.pem" -out "$dir/$name.csr" \
    -subj "/CN=$cn" 2>/dev/null
  printf '%s\n' "$ext" >"$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.pem" -CAkey "$dir/$ca-key.pem" \
    -CAcreateserial -out "$dir/$name.pem" -days 825 -sha256 -extfile "$dir/$name.ext" 2>/dev/null
  rm -f -- "$dir/$name.csr" "$dir/$name.ext"
}

SERVER_EXT='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost'

make_tls() {  # -> $D/tls/{ca,server}.pem, $D/certs.d/ca.crt
  mkdir -p "$D/tls" "$D/certs.d"
  make_ca "$D/tls" ca "dockless test CA $NAME"
  make_cert "$D/tls" server ca ec "$SERVER_EXT" 127.0.0.1
  cp "$D/tls/ca.pem" "$D/certs.d/ca.crt"
}

# ------------------------------------------------------------------ start

write_config() {  # PORT SCHEME; uses AUTH_YAML, RELATIVE
  local tls_yaml=""
  if [[ $2 == https ]]; then
    tls_yaml="  tls:
    certificate: $D/tls/server.pem
    key: $D/tls/server-key.pem"
  fi
  cat >"$D/config.yml" <<EOF
# written by tests/registry/registry.sh for the test registry '$NAME' ($KIND)
version: 0.1
log:
  level: $LOG_LEVEL
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $D/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$1
  secret: $(rand_hex 16)
  relativeurls: $RELATIVE
  headers:
    X-Content-Type-Options: [nosniff]
$tls_yaml
$AUTH_YAML
EOF
}

start_token_server() {  # SCHEME -> TOKEN_PORT
  local scheme=$1 tlsargs=()
  mkdir -p "$D/token"
  # the chain: token-ca (self-signed, the registry's rootcertbundle) -> token
  # signing certificate (RSA, in the JWT's x5c header)
  make_ca "$D/token" token-ca "dockless test token CA $NAME"
  make_cert "$D/token" token-signer token-ca rsa \
    'basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature' "dockless test token signer $NAME"
  PUSHER_PASS=$(rand_hex 12)
  READER_PASS=$(rand_hex 12)
  ADMIN_PASS=$(rand_hex 12)
  IDENTITY_TOKEN=$(rand_hex 16)
  cat >"$D/token/acl.json" <<EOF
{
  "users": {
    "pusher": {
      "password": "$PUSHER_PASS",
      "refresh_token": "$IDENTITY_TOKEN",
      "access": [
        {"repo": "denied/*", "actions": ["pull"]},
        {"repo": "*", "actions": ["pull", "push"]}
      ]
    },
    "reader": {
      "password": "$READER_PASS",
      "access": [{"repo": "*", "actions": ["pull"]}]
    },
    "admin": {
      "password": "$ADMIN_PASS",
      "access": [{"repo": "*", "actions": ["*"]}]
    }
  },
  "anonymous": [{"repo": "public/*", "actions": ["pull"]}]
}
EOF
  if [[ $scheme == https ]]; then
    tlsargs=(--tls-cert "$D/tls/server.pem" --tls-key "$D/tls/server-key.pem")
  fi
  local leeway=()
  ((STRICT_EXPIRY)) && leeway=(--compensate-leeway)
  spawn token "$D/token/server.log" python3 "$HERE/token_server.py" \
    --listen 127.0.0.1:0 --port-file "$D/token/port" --log "$D/token/requests.log" \
    --acl "$D/token/acl.json" --key "$D/token/token-signer-key.pem" \
    --cert "$D/token/token-signer.pem" --issuer "dockless-test-token-issuer" \
    --service "dockless-test-registry" --expires-in "$EXPIRES_IN" "${leeway[@]}" \
    "${tlsargs[@]}" --max-lifetime "$MAX_LIFETIME"
  local pid=$LAST_PID
  : >"$D/token/requests.log"
  wait_port_file "$D/token/port" "$pid" "$D/token/server.log" || return 1
  TOKEN_PORT=$(cat "$D/token/port")
  local realm="$scheme://127.0.0.1:$TOKEN_PORT/token"
  local curlargs=()
  [[ $scheme == https ]] && curlargs=(--cacert "$D/tls/ca.pem")
  wait_http "$realm?service=dockless-test-registry" "$pid" "$D/token/server.log" "${curlargs[@]}" ||
    return 1
  TOKEN_REALM=$realm
  AUTH_YAML="auth:
  token:
    realm: $realm
    service: dockless-test-registry
    issuer: dockless-test-token-issuer
    rootcertbundle: $D/token/token-ca.pem"
}

cmd_start() {
  (($# >= 2)) || usage
  KIND=$1 NAME=$2
  shift 2
  EXPIRES_IN=300 STRICT_EXPIRY=0
  while (($#)); do
    case $1 in
      --expires-in) EXPIRES_IN=${2:?--expires-in N}; shift 2 ;;
      --strict-expiry) STRICT_EXPIRY=1; shift ;;
      *) die "unknown option '$1'" ;;
    esac
  done
  check_name "$NAME"
  case $KIND in plain | relative | tls-basic | token | token-tls) ;; *) die "unknown KIND '$KIND'" ;; esac
  command -v "$REGISTRY_BIN" >/dev/null || die "$REGISTRY_BIN not found (Debian package docker-registry)"
  D=$STATE_ROOT/$NAME
  mkdir -p -- "$STATE_ROOT"
  if [[ -e $D ]]; then
    local p running=0
    if [[ -f $D/pids ]]; then
      while read -r _ p; do pid_is_ours "$p" "$D" && running=1; done <"$D/pids"
    fi
    ((running)) && die "'$NAME' is already running (registry.sh stop $NAME first)"
    rm -rf --one-file-system -- "$D"
  fi
  mkdir -p -- "$D/storage"
  : >"$D/pids"
  echo "$KIND" >"$D/kind"

  local scheme=http
  RELATIVE=false
  AUTH_YAML=""
  case $KIND in
    relative) RELATIVE=true ;;
    tls-basic)
      scheme=https
      make_tls
      REG_USER=tester
      REG_PASS=$(rand_hex 12)
      htpasswd -Bbn "$REG_USER" "$REG_PASS" >"$D/htpasswd" 2>/dev/null || die "htpasswd failed (apache2-utils)"
      AUTH_YAML="auth:
  htpasswd:
    realm: dockless-test-registry
    path: $D/htpasswd"
      ;;
    token) start_token_server http || { stop_dir "$D"; exit 1; } ;;
    token-tls)
      scheme=https
      make_tls
      start_token_server https || { stop_dir "$D"; exit 1; }
      ;;
  esac

  # The port comes from a bind to port 0 that is closed again: another
  # process may take it in between, so try a few ports.
  local attempt port pid ok=0 curlargs=()
  [[ $scheme == https ]] && curlargs=(--cacert "$D/tls/ca.pem")
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    write_config "$port" "$scheme"
    : >"$D/registry.log"
    spawn registry "$D/registry.log" "$REGISTRY_BIN" serve "$D/config.yml"
    pid=$LAST_PID
    if wait_http "$scheme://127.0.0.1:$port/v2/" "$pid" "$D/registry.log" "${curlargs[@]}" 2>"$D/wait.err"; then
      ok=1
      break
    fi
    if grep -q 'address already in use' "$D/registry.log"; then
      sed -i "/^registry $pid\$/d" "$D/pids"
      kill "$pid" 2>/dev/null || true
      continue
    fi
    cat "$D/wait.err" >&2
    break
  done
  rm -f -- "$D/wait.err"
  if ((!ok)); then
    echo "registry.sh: registry '$NAME' ($KIND) did not start; config $D/config.yml" >&2
    stop_dir "$D" keep
    exit 1
  fi

  : >"$D/env.tmp"
  emit REGISTRY_NAME "$NAME"
  emit REGISTRY_KIND "$KIND"
  emit REGISTRY_HOST "127.0.0.1:$port"
  emit REGISTRY_URL "$scheme://127.0.0.1:$port"
  emit REGISTRY_STATE "$D"
  emit REGISTRY_STORAGE "$D/storage"
  emit REGISTRY_LOG "$D/registry.log"
  if [[ $scheme == https ]]; then
    emit REGISTRY_CA "$D/tls/ca.pem"
    emit REGISTRY_CERT_DIR "$D/certs.d"
  fi
  if [[ $KIND == tls-basic ]]; then
    emit REGISTRY_USER "$REG_USER"
    emit REGISTRY_PASS "$REG_PASS"
  fi
  if [[ $KIND == token* ]]; then
    REG_USER=pusher
    REG_PASS=$PUSHER_PASS
    emit REGISTRY_USER pusher
    emit REGISTRY_PASS "$PUSHER_PASS"
    emit REGISTRY_READER_USER reader
    emit REGISTRY_READER_PASS "$READER_PASS"
    emit REGISTRY_ADMIN_USER admin
    emit REGISTRY_ADMIN_PASS "$ADMIN_PASS"
    emit REGISTRY_IDENTITY_TOKEN "$IDENTITY_TOKEN"
    emit TOKEN_REALM "$TOKEN_REALM"
    emit TOKEN_SERVICE dockless-test-registry
    emit TOKEN_ISSUER dockless-test-token-issuer
    emit TOKEN_EXPIRES_IN "$EXPIRES_IN"
    emit TOKEN_ACL "$D/token/acl.json"
    emit TOKEN_LOG "$D/token/requests.log"
  fi
  if [[ -n ${REG_USER:-} ]]; then
    # a docker config.json / containers auth.json for this registry
    python3 - "$D/auth.json" "127.0.0.1:$port" "$REG_USER" "$REG_PASS" <<'PY'
import base64, json, sys
path, host, user, pw = sys.argv[1:]
auth = base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()
json.dump({"auths": {host: {"auth": auth}}}, open(path, "w"), indent=2)
PY
    emit REGISTRY_AUTH_JSON "$D/auth.json"
  fi
  mv -f -- "$D/env.tmp" "$D/env"
}

cmd_proxy() {
  (($# >= 2)) || usage
  NAME=$1
  local up=$2 rules=${3:-}
  check_name "$NAME"
  local U=$STATE_ROOT/$up
  [[ -f $U/env ]] || die "no running registry '$up' under $STATE_ROOT"
  local ukind uhost
  ukind=$(cat "$U/kind")
  [[ $ukind == plain || $ukind == relative ]] || die "the fault proxy speaks HTTP: '$up' is '$ukind'"
  uhost=$(sed -n 's/^REGISTRY_HOST=//p' "$U/env")
  D=$STATE_ROOT/$NAME
  [[ -e $D ]] && die "'$NAME' exists already under $STATE_ROOT (stop it first)"
  mkdir -p -- "$D"
  : >"$D/pids"
  echo proxy >"$D/kind"
  if [[ -z $rules ]]; then
    rules=$D/rules.json
    echo '[]' >"$rules"
  fi
  rules=$(cd -- "$(dirname -- "$rules")" && pwd)/$(basename -- "$rules")
  : >"$D/proxy.log"
  spawn proxy "$D/proxy.err" python3 "$HERE/fault_proxy.py" --listen 127.0.0.1:0 \
    --upstream "$uhost" --rules "$rules" --port-file "$D/port" --log "$D/proxy.log" \
    --max-lifetime "$MAX_LIFETIME"
  local pid=$LAST_PID
  if ! wait_port_file "$D/port" "$pid" "$D/proxy.err"; then
    stop_dir "$D" keep
    exit 1
  fi
  local port
  port=$(cat "$D/port")
  if ! wait_http "http://127.0.0.1:$port/v2/" "$pid" "$D/proxy.err"; then
    stop_dir "$D" keep
    exit 1
  fi
  : >"$D/env.tmp"
  emit PROXY_NAME "$NAME"
  emit PROXY_HOST "127.0.0.1:$port"
  emit PROXY_URL "http://127.0.0.1:$port"
  emit PROXY_UPSTREAM "$uhost"
  emit PROXY_RULES "$rules"
  emit PROXY_LOG "$D/proxy.log"
  mv -f -- "$D/env.tmp" "$D/env"
}

# ------------------------------------------------------------------ stop

# stop_dir DIR [keep]: ends every process DIR/pids lists that is still ours
# (TERM, then KILL after 5 s), then removes DIR unless asked to keep it.
stop_dir() {
  local dir=$1 keep=${2:-} label pid deadline
  local -a pids=()
  if [[ -f $dir/pids ]]; then
    while read -r label pid; do
      [[ -n ${pid:-} ]] || continue
      if pid_is_ours "$pid" "$dir"; then
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid")
      fi
    done <"$dir/pids"
  fi
  deadline=$((SECONDS + 5))
  for pid in "${pids[@]}"; do
    while pid_is_ours "$pid" "$dir" && ((SECONDS < deadline)); do sleep 0.05; done
    if pid_is_ours "$pid" "$dir"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [[ -z $keep && ${DOCKLESS_REGISTRY_KEEP:-0} != 1 && ${DOCKLESS_KEEP_SCRATCH:-0} != 1 ]]; then
    rm -rf --one-file-system -- "$dir"
  else
    : >"$dir/pids"
  fi
}

cmd_stop() {
  (($# == 1)) || usage
  check_name "$1"
  local dir=$STATE_ROOT/$1
  [[ -d $dir ]] || return 0
  stop_dir "$dir"
}

cmd_stop_all() {
  [[ -d $STATE_ROOT ]] || return 0
  local dir
  for dir in "$STATE_ROOT"/*/; do
    [[ -f $dir/pids ]] || continue
    stop_dir "${dir%/}"
  done
}

cmd_env() {
  (($# == 1)) || usage
  [[ -f $STATE_ROOT/$1/env ]] || die "no registry '$1' under $STATE_ROOT"
  cat -- "$STATE_ROOT/$1/env"
}

cmd_logs() {
  (($# >= 1)) || usage
  local dir=$STATE_ROOT/$1 f
  [[ -d $dir ]] || die "no registry '$1' under $STATE_ROOT"
  for f in "$dir"/registry.log "$dir"/token/server.log "$dir"/token/requests.log \
    "$dir"/proxy.err "$dir"/proxy.log; do
    [[ -f $f ]] && { echo "---- $f"; tail -n "${2:-40}" -- "$f"; }
  done
  return 0
}

case ${1:-} in
  start) shift; cmd_start "$@" ;;
  proxy) shift; cmd_proxy "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  stop-all) shift; cmd_stop_all "$@" ;;
  env) shift; cmd_env "$@" ;;
  logs) shift; cmd_logs "$@" ;;
  *) usage ;;
esac
