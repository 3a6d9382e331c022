#!/usr/bin/env bash
# dockless against tests/fixtures/hostile_registry.py: a 100 MiB manifest,
# endless chunked bodies (manifest, error, blob, token), Content-Length that
# lies both ways, a redirect loop, a token endpoint that never answers, a
# blob that does not match its digest, 1 byte/s trickles, malformed JSON
# (truncated, wrong types, 100,000 levels deep) and 27,000 or 100,000 layers.
#
# Every case must end in bounded time and memory (measured: wall seconds and
# peak RSS from /usr/bin/time), with exit 1 and one "dockless: error:" line
# that holds no secret, and nothing stored: no blob and no index.json entry
# in the OCI layout, every blob in the cache dir under the digest it hashes to.
# A table of case, seconds, peak RSS and the error line closes the run.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

MAX_SECS=${HOSTILE_MAX_SECS:-60}
MAX_RSS_KB=$((200 * 1024))
# A regression that hangs is killed here (and fails the time check).
KILL_SECS=$((MAX_SECS * 2))
# Credentials that must never show in an error (some cases pass them).
SECRET_USER=hostile-user
SECRET_PASS=s3cr3t-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
SECRET_B64=$(printf '%s:%s' "$SECRET_USER" "$SECRET_PASS" | base64 -w0)
[[ -x /usr/bin/time ]] || fail "/usr/bin/time is missing (scripts/setup.sh installs the time package)"

section "the hostile registry"
timeout --foreground 3600 python3 "$FIXTURES/hostile_registry.py" --port-file "$T/hostile.port" \
  --log "$T/hostile.log" --max-lifetime 3000 >/dev/null 2>"$T/hostile.err" &
HOSTILE_PID=$!
at_exit kill "$HOSTILE_PID"
for _ in $(seq 100); do [[ -s $T/hostile.port ]] && break; sleep 0.1; done
[[ -s $T/hostile.port ]] || fail "hostile_registry.py wrote no port file" "$(cat "$T/hostile.err")"
H=127.0.0.1:$(cat "$T/hostile.port")
echo "hostile registry: $H"
require "a well-behaved image pulls from it (the fixture works)" \
  "$DOCKLESS" pull -q "$H/good:1" --output "oci:$T/good:x" --cache-dir "$T/good-cache"

# blobs_ok DIR: prints what is wrong with DIR's content-addressed files:
# every file under a .../sha256/ directory (or named sha256:HEX / HEX) whose
# name is a sha256 digest must hash to it. Prints nothing when all do.
blobs_ok() {
  python3 - "$1" <<'PY'
import hashlib, os, re, sys
hexre = re.compile(r"(?:sha256[:_-])?([0-9a-f]{64})")
for dirpath, _, files in os.walk(sys.argv[1]):
    for name in files:
        m = hexre.fullmatch(name)
        if not m:
            continue
        h = hashlib.sha256()
        with open(os.path.join(dirpath, name), "rb") as f:
            for c in iter(lambda: f.read(1 << 20), b""):
                h.update(c)
        if h.hexdigest() != m.group(1):
            print("%s has sha256 %s" % (os.path.join(dirpath, name), h.hexdigest()))
PY
}

# layout_content DIR: what a failed command left in the OCI layout DIR,
# which did not exist before it: every blob file and every index.json entry
# (tagged or not). Prints nothing when DIR holds no image content.
layout_content() {
  python3 - "$1" <<'PY'
import json, os, sys
root = sys.argv[1]
for dirpath, _, files in os.walk(os.path.join(root, "blobs")):
    for name in files:
        print("blob " + os.path.relpath(os.path.join(dirpath, name), root))
try:
    with open(os.path.join(root, "index.json")) as f:
        for m in json.load(f).get("manifests", []):
            print("index.json entry " + str(m.get("digest")))
except FileNotFoundError:
    pass
except ValueError:
    print("index.json is not valid JSON")
PY
}

ROWS=()
# hostile NAME SECRETS? -- DOCKLESS ARGS...: runs dockless under /usr/bin/time
# in $T/NAME.*, checks time, memory, the error line, no secret, nothing
# stored in $T/NAME.out (the OCI layout) and $T/NAME.cache, and adds a row.
hostile() {
  local name=$1 with_creds=$2 problems=() err lines rss leaks
  shift 3
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  if [[ $with_creds == creds ]]; then
    DOCKLESS_USERNAME=$SECRET_USER DOCKLESS_PASSWORD=$SECRET_PASS \
      /usr/bin/time -f %M -o "$T/$name.rss" timeout -k 5 "$KILL_SECS" "$DOCKLESS" "$@" >"$T/$name.stdout" 2>"$T/$name.err" || rc=$?
  else
    /usr/bin/time -f %M -o "$T/$name.rss" timeout -k 5 "$KILL_SECS" "$DOCKLESS" "$@" >"$T/$name.stdout" 2>"$T/$name.err" || rc=$?
  fi
  t1=$(date +%s.%N)
  SECS=$(python3 -c "print('%.1f' % ($t1 - $t0))")
  rss=$(tail -n 1 "$T/$name.rss")
  err=$(grep -v '^[[:space:]]*$' "$T/$name.err" || true)
  lines=$(printf '%s' "$err" | awk 'END { print NR }')
  ((rc == 1)) || problems+=("exit status $rc, expected 1")
  [[ $lines -eq 1 && $err == "dockless: error: "* ]] ||
    problems+=("stderr is not one 'dockless: error:' line ($lines lines)")
  grep -Eiq 'terminate called|what\(\)|Aborted|Segmentation|core dumped|out of memory' <<<"$err" &&
    problems+=("stderr shows a crash")
  python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$SECS" "$MAX_SECS" ||
    problems+=("took ${SECS}s, more than ${MAX_SECS}s")
  [[ $rss =~ ^[0-9]+$ && $rss -lt $MAX_RSS_KB ]] || problems+=("peak RSS ${rss} KiB, more than $MAX_RSS_KB KiB")
  if grep -Fq -e "$SECRET_PASS" -e "$SECRET_B64" "$T/$name.err" "$T/$name.stdout"; then
    problems+=("the output holds the password")
  fi
  [[ -z $(layout_tags "$T/$name.out") ]] || problems+=("the layout got a tag: $(layout_tags "$T/$name.out")")
  leaks=$(layout_content "$T/$name.out" | head -5)
  [[ -z $leaks ]] || problems+=("the layout holds what the failed command fetched: $leaks")
  leaks=$(blobs_ok "$T/$name.out"; blobs_ok "$T/$name.cache")
  [[ -z $leaks ]] || problems+=("a blob under a digest it does not hash to: $leaks")
  if ((${#problems[@]} == 0)); then
    pass "$name: exit 1 in ${SECS}s, ${rss} KiB, one error line, nothing stored"
  else
    failed "$name" "command: dockless $(_quote "$@")" "${problems[@]}" "stderr:" "$(head -c 2000 "$T/$name.err")"
  fi
  ROWS+=("$(printf '%-22s %6s %7s  %s' "$name" "$SECS" "$((rss / 1024))M" "${err:0:150}")")
}

# expect NAME REGEX: the error line of case NAME matches REGEX (extended, -i).
expect() {
  if grep -Eiq -- "$2" "$T/$1.err"; then
    pass "$1: the error says /$2/"
  else
    failed "$1: the error says /$2/" "error: $(head -c 500 "$T/$1.err")"
  fi
}

pull() {  # pull NAME CASE [ARGS...]
  local name=$1 case=$2
  shift 2
  hostile "$name" "${CREDS:-none}" -- pull -q "$H/$case:1" --output "oci:$T/$name.out:x" \
    --cache-dir "$T/$name.cache" "$@"
}

section "manifests"
pull big-manifest big-manifest
expect big-manifest 'larger than 4194304 bytes'
pull endless-manifest endless-manifest
expect endless-manifest 'larger than 4194304 bytes'
pull endless-error endless-error
expect endless-error '404'
pull long-length-manifest long-length-manifest --retries 1 --stall-timeout 5
expect long-length-manifest 'bytes remaining|closed'
pull short-length-manifest short-length-manifest
expect short-length-manifest 'invalid JSON|digest'
pull redirect-loop redirect-loop
expect redirect-loop 'redirects'
pull truncated-json truncated-json
expect truncated-json 'invalid JSON'
pull wrong-types wrong-types
expect wrong-types 'must be an integer|expected'
pull deep-nesting deep-nesting
expect deep-nesting 'nested deeper than'
pull many-layers many-layers
expect many-layers 'larger than 4194304 bytes'
pull many-layers-4mib many-layers-4mib
expect many-layers-4mib 'layers, more than the 10000'

section "trickles and timeouts (--stall-timeout 5: 4 tries of 5 s plus back-off)"
pull slow-manifest slow-manifest --stall-timeout 5
expect slow-manifest 'timed out'
pull slow-manifest-default slow-manifest --retries 0
expect slow-manifest-default 'timed out.*30 seconds'
pull slow-blob slow-blob --stall-timeout 5
expect slow-blob 'timed out'
CREDS=creds pull token-hang token-hang --stall-timeout 5
expect token-hang 'token server.*timed out'
CREDS=creds pull token-hang-default token-hang
expect token-hang-default 'token server.*timed out'
CREDS=creds pull token-endless token-endless
expect token-endless 'token server.*larger than'

section "blobs"
pull endless-blob endless-blob
expect endless-blob 'more bytes than'
pull long-length-blob long-length-blob --retries 1
expect long-length-blob 'bytes remaining|closed'
pull short-length-blob short-length-blob --retries 1
expect short-length-blob 'got [0-9]+ of [0-9]+ bytes'
pull bad-digest-blob bad-digest-blob
expect bad-digest-blob 'digest mismatch'

section "copy and build from a hostile registry"
hostile copy-bad-digest-blob none -- copy -q "$H/bad-digest-blob:1" "oci:$T/copy-bad-digest-blob.out:x" \
  --cache-dir "$T/copy-bad-digest-blob.cache"
expect copy-bad-digest-blob 'digest mismatch'
hostile copy-endless-manifest none -- copy -q "$H/endless-manifest:1" "oci:$T/copy-endless-manifest.out:x" \
  --cache-dir "$T/copy-endless-manifest.cache"
expect copy-endless-manifest 'larger than'
start_index
make_test_project "$T/proj"
for c in bad-digest-blob big-manifest; do
  hostile "build-$c" none -- build "$T/proj" -q --set "image.base=$H/$c:1" \
    --output "oci:$T/build-$c.out:app" --cache-dir "$T/build-$c.cache"
done
expect build-bad-digest-blob 'digest mismatch'
expect build-big-manifest 'larger than'

section "the table"
printf '%-22s %6s %7s  %s\n' case seconds peakRSS "error line"
printf '%s\n' "${ROWS[@]}"
