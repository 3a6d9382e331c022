#!/usr/bin/env bash
# Crash safety: SIGKILL to dockless's whole process group at random moments,
# over one cache dir, during a cold build that pushes and writes --cache-to,
# a warm build after a source edit, `cache prune`, and pull, push and copy of
# a ~200 MiB image. After every kill the cache (and the command's output
# layout) must pass tests/fixtures/check_cache_invariants.py, and the next
# ordinary run of the command must succeed, its image pulling back with every
# digest verified; the last built image runs in podman.
#
# CRASH_KILLS: kills per command (default 2 here; scripts/crash-campaign.sh
# runs 40). CRASH_SEED: the random seed (printed, to replay a run).
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

KILLS=${CRASH_KILLS:-2}
SEED=${CRASH_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
RANDOM=$SEED
echo "kills per command: $KILLS, seed: $SEED (CRASH_SEED=$SEED replays the delays)"
CHECKER=$FIXTURES/check_cache_invariants.py

export SOURCE_DATE_EPOCH=1700000000
build_setup
REG1=$REGISTRY_HOST
start_registry plain reg2
REG2=$REGISTRY_HOST
REGISTRY_HOST=$REG1
CACHE=$T/cache-crash
APP=$REG1/app:crash
CREF=$REG1/app-cache:crash

declare -A N_KILLS N_EARLY N_RECOVERED N_VIOL DUR
COMMANDS=()

# ---------------------------------------------------------------- helpers

# run_killed NAME DELAY CMD...: runs CMD in its own session and process
# group, sends SIGKILL to the group after DELAY seconds (and to anything of
# the session that left the group), waits until nothing of it is left.
# Sets KILLED=1 when the command was still running, 0 when it had ended.
run_killed() {
  local name=$1 delay=$2 pid pgid left i
  shift 2
  setsid "$@" >"$T/killed.out" 2>"$T/killed.err" &
  pid=$!
  sleep "$delay"
  # Until setsid has run, the child is still in this script's own group: a
  # short delay (2% of a 1 s push) read that group and killed the script.
  # Only a group led by the command itself is killed.
  for ((i = 0; i < 200; i++)); do
    pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ') || true
    [[ -z $pgid || $pgid == "$pid" ]] && break
    sleep 0.01
  done
  KILLED=0
  if [[ $pgid == "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    KILLED=1
    kill -KILL -- "-$pgid" 2>/dev/null || true
    # The session id is the group id (setsid); anything that made its own
    # group (a sandbox child) is still in the session.
    for ((i = 0; i < 100; i++)); do
      left=$(ps -e -o sid=,pid= | awk -v s="$pgid" '$1 == s {print $2}')
      [[ -z $left ]] && break
      # shellcheck disable=SC2086
      kill -KILL $left 2>/dev/null || true
      sleep 0.1
    done
    [[ -z $left ]] || failed "$name: the killed session's processes are gone" "left: $left"
  fi
  wait "$pid" 2>/dev/null || true
}

# invariants LABEL [--layout DIR]...: the checker on the cache; counts violations.
invariants() {
  local name=$1 out rc=0
  shift
  out=$(python3 "$CHECKER" "$CACHE" "$@" 2>&1) || rc=$?
  if ((rc != 0)); then
    N_VIOL[$name]=$((N_VIOL[$name] + $(grep -vc '^invariants:' <<<"$out" || true)))
    failed "$name: the cache passes the invariants after a kill" "$(tail -n 15 <<<"$out")" \
      "killed command's stderr (tail):" "$(tail -n 5 "$T/killed.err")"
    [[ ${CRASH_KEEP_BROKEN:-0} == 1 ]] && cp -a "$CACHE" "$T/broken-cache-$name-$RANDOM"
  fi
}

# verify_registry_image LABEL REF [REGFLAGS]: skopeo copies REF into an OCI
# layout (verifying digests) and every blob there hashes to its name.
verify_registry_image() {
  local label=$1 ref=$2 dir=$T/verify-$1
  rm -rf -- "$dir"
  if ! skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$dir:img" >"$T/verify.err" 2>&1; then
    failed "$label: $ref pulls with skopeo" "$(tail -n 5 "$T/verify.err")"
    return 1
  fi
  local out
  if ! out=$(python3 "$CHECKER" --layout "$dir" 2>&1); then
    failed "$label: every blob of $ref has its digest" "$out"
    return 1
  fi
}

# delay_for NAME: a random delay in [2%, 85%] of the command's measured duration.
delay_for() {
  python3 -c 'import sys; d = float(sys.argv[1]); r = int(sys.argv[2]) / 32767; print("%.3f" % (d * (0.02 + 0.83 * r)))' \
    "${DUR[$1]}" "$RANDOM"
}

# campaign NAME SETUP RECOVER CMD...: KILLS times: SETUP, CMD killed at a
# random moment, the invariants, then RECOVER (the ordinary run, which checks
# its own result; returns non-zero on failure).
campaign() {
  local name=$1 setup=$2 recover=$3 i
  shift 3
  COMMANDS+=("$name")
  N_KILLS[$name]=0 N_EARLY[$name]=0 N_RECOVERED[$name]=0 N_VIOL[$name]=0
  # Until KILLS kills (a run that ended before its kill does not count).
  for ((i = 1; N_KILLS[$name] < KILLS && i <= 4 * KILLS + 4; i++)); do
    "$setup"
    local delay
    delay=$(delay_for "$name")
    run_killed "$name" "$delay" "$@"
    if ((KILLED)); then
      N_KILLS[$name]=$((N_KILLS[$name] + 1))
    else
      # It ran faster than measured (a warm page cache, a quieter machine,
      # blobs the registry mounts instead of taking): aim earlier.
      N_EARLY[$name]=$((N_EARLY[$name] + 1))
      DUR[$name]=$(python3 -c 'import sys; print("%.4f" % (float(sys.argv[1]) / 2))' "$delay")
    fi
    invariants "$name" "${LAYOUT_ARGS[@]}"
    if "$recover"; then
      N_RECOVERED[$name]=$((N_RECOVERED[$name] + 1))
    else
      failed "$name: the run after kill $i (at ${delay}s) succeeds" "$(tail -n 8 "$T/recover.err")"
    fi
  done
  printf '  %-12s %d kills (%d ended before the kill), %d recoveries, %d violations\n' "$name" \
    "${N_KILLS[$name]}" "${N_EARLY[$name]}" "${N_RECOVERED[$name]}" "${N_VIOL[$name]}"
}

# timed NAME CMD...: runs CMD once normally, remembers its duration; fails the script if it fails.
timed() {
  local name=$1 t0
  shift
  t0=$(date +%s.%N)
  "$@" >"$T/recover.out" 2>"$T/recover.err" || fail "$name: the first ordinary run succeeds" "$(tail -n 10 "$T/recover.err")"
  DUR[$name]=$(python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) - float(sys.argv[2])))" "$(date +%s.%N)" "$t0")
  echo "  $name takes ${DUR[$name]}s"
}

LAYOUT_ARGS=()

# ---------------------------------------------------------------- builds and prune

BUILD=("$DOCKLESS" build "$PROJ" --set "image.base=$BASE_REF" --cache-dir "$CACHE" --quiet
  --tag "$APP" --push --cache-to "$CREF")
PRUNE=("$DOCKLESS" cache prune --cache-dir "$CACHE")

recover_build() {
  "${BUILD[@]}" >"$T/recover.out" 2>"$T/recover.err" || return 1
  verify_registry_image build "$APP" && verify_registry_image cache "$CREF"
}
recover_prune() { "${PRUNE[@]}" >"$T/recover.out" 2>"$T/recover.err"; }
no_setup() { :; }
EDITS=0
edit_source() {
  EDITS=$((EDITS + 1))
  printf 'EDIT = %d\n' "$EDITS" >>"$PROJ/src/app/__init__.py"
}
section "measuring each command once"
timed build-cold "${BUILD[@]}"
timed prune "${PRUNE[@]}"
timed build-cold "${BUILD[@]}"
edit_source
timed build-warm "${BUILD[@]}"
"${BUILD[@]}" >/dev/null 2>&1 || fail "a build to fill the cache before the prune campaign"

section "kills during cache prune (a full cache each time)"
refill() { "${BUILD[@]}" >/dev/null 2>"$T/refill.err" || failed "a build refills the cache" "$(tail -n 5 "$T/refill.err")"; }
campaign prune refill recover_prune "${PRUNE[@]}"

section "kills during a cold build that pushes and writes --cache-to (after a full prune)"
empty_cache() { "${PRUNE[@]}" >/dev/null 2>&1 || failed "a prune empties the cache"; }
campaign build-cold empty_cache recover_build "${BUILD[@]}"

section "kills during a warm build after a source edit"
campaign build-warm edit_source recover_build "${BUILD[@]}"

# ---------------------------------------------------------------- a large image

section "a ~200 MiB image: pull, push, copy"
mkdir -p "$T/bigroot/data"
head -c $((200 << 20)) /dev/urandom >"$T/bigroot/data/random.bin"
echo big >"$T/bigroot/data/small.txt"
require "dockless import of a 200 MiB dir" "$DOCKLESS" import "$T/bigroot" --output "oci:$T/big:big" --quiet
BIG=$REG1/big:1
require "dockless push of the big image" "$DOCKLESS" push "oci:$T/big:big" "$BIG" --cache-dir "$CACHE" --quiet

PULLED=$T/pulled
PULL=("$DOCKLESS" pull "$BIG" --output "oci:$PULLED:big" --cache-dir "$CACHE" --quiet)
fresh_pull() { rm -rf -- "$PULLED"; }
recover_pull() {
  "${PULL[@]}" >"$T/recover.out" 2>"$T/recover.err" || return 1
  local out
  out=$(python3 "$CHECKER" --layout "$PULLED" 2>&1) || { echo "$out" >>"$T/recover.err"; return 1; }
  [[ $(layout_manifest_digest "$PULLED" big) == "$(layout_manifest_digest "$T/big" big)" ]] ||
    { echo "pulled manifest differs" >>"$T/recover.err"; return 1; }
}
timed pull "${PULL[@]}"
LAYOUT_ARGS=(--layout "$PULLED")
campaign pull fresh_pull recover_pull "${PULL[@]}"
LAYOUT_ARGS=()

PUSH_N=0
PUSH=("$DOCKLESS" push "oci:$T/big:big" "$REG1/bigpush:0" --cache-dir "$CACHE" --quiet)
next_push() {
  PUSH_N=$((PUSH_N + 1))
  PUSH[3]=$REG1/bigpush$PUSH_N:1  # a new repository: every blob uploads again
}
recover_push() {
  "${PUSH[@]}" >"$T/recover.out" 2>"$T/recover.err" || return 1
  verify_registry_image push "${PUSH[3]}"
}
next_push
timed push "${PUSH[@]}"
campaign push next_push recover_push "${PUSH[@]}"

# Registry to another registry: the bytes go through the cache's blob store.
COPY_N=0
COPY=("$DOCKLESS" copy "$BIG" "$REG2/bigcopy:0" --cache-dir "$CACHE" --quiet)
next_copy() {
  COPY_N=$((COPY_N + 1))
  COPY[3]=$REG2/bigcopy$COPY_N:1
  # The cache must not already hold the layer, or nothing is downloaded.
  "${PRUNE[@]}" >/dev/null 2>&1 || failed "a prune before a copy"
}
recover_copy() {
  "${COPY[@]}" >"$T/recover.out" 2>"$T/recover.err" || return 1
  verify_registry_image copy "${COPY[3]}"
}
next_copy
timed copy "${COPY[@]}"
campaign copy next_copy recover_copy "${COPY[@]}"

# ---------------------------------------------------------------- the end

section "the last build runs"
require "a last ordinary build" "${BUILD[@]}"
rm -rf -- "$T/final"
require "skopeo copy of $APP" skopeo copy -q --src-tls-verify=false "docker://$APP" "oci:$T/final:app"
incheck final "oci:$T/final:app"
check "the cache passes the invariants at the end" python3 "$CHECKER" "$CACHE"

section "summary"
total_k=0 total_v=0
printf '  %-12s %6s %8s %11s %11s %10s\n' command kills "ended" recoveries violations "dur (s)"
for c in "${COMMANDS[@]}"; do
  printf '  %-12s %6d %8d %11d %11d %10s\n' "$c" "${N_KILLS[$c]}" "${N_EARLY[$c]}" "${N_RECOVERED[$c]}" "${N_VIOL[$c]}" "${DUR[$c]}"
  total_k=$((total_k + N_KILLS[$c]))
  total_v=$((total_v + N_VIOL[$c]))
  check_eq "$c: $KILLS kills" "$KILLS" "${N_KILLS[$c]}"
  check_eq "$c: every kill was followed by a successful run" "$((N_KILLS[$c] + N_EARLY[$c]))" "${N_RECOVERED[$c]}"
done
printf '  %-12s %6d %8s %11s %11d\n' total "$total_k" "" "" "$total_v"
check_eq "no invariant violation after any kill" 0 "$total_v"
