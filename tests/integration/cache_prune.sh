#!/usr/bin/env bash
# `dockless cache ls` and `dockless cache prune` on the cache of real builds
# of the hermetic test project: ls shows the layer entries, venvs, snapshot
# and uv cache a build made; prune --keep-days 30 and --dry-run keep the
# next build all cache hits with no uv run; after aging everything, a build
# marks what it uses so that prune --keep-days keeps it; a full prune
# empties the cache and the next build rebuilds a working image; a prune
# started while a build runs waits for it, and a build started while a prune
# runs waits for the prune; both builds give complete, working images.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

export SOURCE_DATE_EPOCH=1700000000
build_setup
CACHE=$T/dlcache
WAIT_LINE="waiting for running dockless commands to finish"

# build_args N: the arguments of build N (output oci:$T/oN:app, report $T/rN.json).
build_args() {
  printf '%s\n' "$PROJ" --set "image.base=$BASE_REF" --output "oci:$T/o$1:app" --report "$T/r$1.json" \
    --cache-dir "$CACHE"
}

# b N DESC: builds into oci:$T/oN:app with report $T/rN.json.
b() {
  local args
  mapfile -t args < <(build_args "$1")
  check_build "$2" "$T/b$1" "${args[@]}"
  report_layers "$T/r$1.json" | sed 's/^/    /'
}

# layers_not REPORT CACHE: the layers whose cache field is not CACHE, " | "-separated.
layers_not() { report_get "$1" '" | ".join(l["name"] for l in d["layers"] if l["cache"] != "'"$2"'") or "-" if d["layers"] else "no layers"'; }

# check_all_hits LABEL N: build N hit every layer and ran uv 0 times.
check_all_hits() {
  check_eq "$1: every layer is a cache hit (layers that missed)" "-" "$(layers_not "$T/r$2.json" hit)"
  check_eq "$1: uv_runs is 0" "0" "$(report_get "$T/r$2.json" 'd["uv_runs"]')"
}

# cache_ls PREFIX [ARGS...]: `dockless cache ls --cache-dir $CACHE ARGS` into PREFIX.out/.err; one check.
cache_ls() {
  local prefix=$1
  shift
  run_capture "$prefix" "$DOCKLESS" cache ls --cache-dir "$CACHE" "$@"
  check_eq "cache ls $* exits 0" "0" "$RC"
  sed 's/^/    /' "$prefix.out"
}

# cache_prune PREFIX [ARGS...]: `dockless cache prune --cache-dir $CACHE ARGS`; one check.
cache_prune() {
  local prefix=$1
  shift
  run_capture "$prefix" "$DOCKLESS" cache prune --cache-dir "$CACHE" "$@"
  check_eq "cache prune $* exits 0" "0" "$RC"
  # The per-category lines; the per-item ones (-v, --dry-run) stay in PREFIX.out.
  { grep -Ev '^(would remove|removed) [^ ]+/' "$prefix.out" || true; } | sed 's/^/    /'
  ((RC == 0)) || sed 's/^/    err: /' "$prefix.err"
}

# ls_row FILE CATEGORY: "COUNT SIZE" from the CATEGORY row of `cache ls` output.
ls_row() {
  awk -v c="$2" 'index($0, c " ") == 1 { n = split(c, w, " "); print $(n + 1), $(n + 2), $(n + 3); exit }' "$1"
}

# cache_files: every path in the cache with its size and mtime, sorted (a snapshot of the state).
cache_files() { (cd -- "$CACHE" && find . -printf '%p %s %T@\n' | sort); }

# prune_lock_holders MODE: pids holding a MODE (READ/WRITE) flock on $CACHE/lock.
lock_holders() {
  local ino
  ino=$(stat -c %i -- "$CACHE/lock" 2>/dev/null) || return 0
  awk -v mode="$1" -v ino="$ino" '$2 == "FLOCK" && $4 == mode { n = split($6, f, ":"); if (f[n] == ino) print $5 }' /proc/locks
}

# wait_for_lock PID MODE: waits (up to 120 s) until PID holds a MODE flock on
# $CACHE/lock; fails if PID exits first.
wait_for_lock() {
  local i
  for ((i = 0; i < 6000; i++)); do
    lock_holders "$2" | grep -qx "$1" && return 0
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.02
  done
  return 1
}

# check_image_complete LABEL N: the layout oci:$T/oN:app of build N is whole:
# skopeo reads it, every blob it refers to is there and matches its digest.
check_image_complete() {
  if image_meta "$T/img$2" "oci:$T/o$2:app"; then
    pass "$1: skopeo inspect reads oci:$T/o$2:app"
  else
    failed "$1: skopeo inspect reads oci:$T/o$2:app" "$(cat "$T/img$2.skopeo.err")"
  fi
  check_blobs_intact "$1: every blob in the layout matches its digest" "$T/o$2"
  check_python "$1: every blob the manifest names is in the layout" "$T/img$2.manifest.json" '
import os
root = "'"$T/o$2"'/blobs/sha256/"
need = [d["config"]] + d["layers"]
missing = [x["digest"] for x in need if not os.path.isfile(root + x["digest"].split(":")[1])]
assert not missing, "missing blobs: %r" % missing'
}

section "a build fills the cache"
b 1 "cold build"
((CHECK_OK)) || fail "the cold build failed; nothing else can be judged"
D1=$DIGEST

section "cache ls"
cache_ls "$T/ls1"
for cat in "layer entries" "blobs" "venvs" "snapshots" "uv caches"; do
  read -r n size unit <<<"$(ls_row "$T/ls1.out" "$cat")"
  if [[ ${n:-0} =~ ^[0-9]+$ && $n -gt 0 && "$size $unit" != "0 B" ]]; then
    pass "cache ls: $cat: $n, $size $unit"
  else
    failed "cache ls: $cat has items of a non-zero size" "row: $(grep "^$cat" "$T/ls1.out" || echo none)"
  fi
done
check_eq "cache ls: no leftovers after a finished build" "0" "$(ls_row "$T/ls1.out" leftovers | cut -d' ' -f1)"
check_eq "cache ls: one snapshot (the base)" "1" "$(ls_row "$T/ls1.out" snapshots | cut -d' ' -f1)"
n=$(ls_row "$T/ls1.out" venvs | cut -d' ' -f1)
check "cache ls: a venv for each of the ${#VENV_NAMES[@]} venvs of the spec (and the cache extra's): $n" \
  test "${n:-0}" -ge "${#VENV_NAMES[@]}"
cache_ls "$T/ls1v" -v
check_contains "cache ls -v: the layer entries name their layers" "$(cat "$T/ls1v.out")" "venv main"
check_contains "cache ls -v: lists the uv cache" "$(cat "$T/ls1v.out")" "uv/linux-"

section "prune --keep-days 30 right after a build: nothing goes"
cache_files >"$T/files-before-keep"
cache_prune "$T/p-keep" --keep-days 30
check_contains "prune --keep-days 30: freed 0 B" "$(cat "$T/p-keep.out")" "freed 0 B"
cache_files >"$T/files-after-keep"
check_same_file "prune --keep-days 30: the cache is as it was" "$T/files-before-keep" "$T/files-after-keep"
b 2 "build after prune --keep-days 30"
check_digests_equal "after prune --keep-days 30: same image" "$D1" "$DIGEST"
check_all_hits "after prune --keep-days 30" 2

section "prune --dry-run: says what would go, removes nothing"
cache_files >"$T/files-before-dry"
cache_prune "$T/p-dry" --dry-run
check_contains "prune --dry-run: lists venvs that would go" "$(cat "$T/p-dry.out")" "would remove envs/"
check_contains "prune --dry-run: says how much would be freed" "$(cat "$T/p-dry.out")" "would free "
cache_files >"$T/files-after-dry"
check_same_file "prune --dry-run: the cache is as it was" "$T/files-before-dry" "$T/files-after-dry"
b 3 "build after prune --dry-run"
check_all_hits "after prune --dry-run" 3

section "last use: a build marks what it uses, prune --keep-days keeps it"
# Everything looks 40 days unused; a warm build uses it again.
find "$CACHE" -mindepth 1 -exec touch -h -d "@$(($(date +%s) - 40 * 86400))" -- {} +
cache_prune "$T/p-aged-dry" --keep-days 30 --dry-run
check "aged 40 days: prune --keep-days 30 --dry-run would remove the venvs" grep -Eq "^would remove [0-9]+ venvs? \(" "$T/p-aged-dry.out"
b 4 "warm build of the aged cache"
check_all_hits "warm build of the aged cache" 4
cache_prune "$T/p-aged" --keep-days 30 -v
b 5 "build after the warm build and prune --keep-days 30"
check_all_hits "what the warm build used was kept" 5
check_digests_equal "what the warm build used was kept: same image" "$D1" "$DIGEST"

section "prune everything"
cache_prune "$T/p-all"
check "prune: says what it freed" grep -Eq '^freed [0-9.]+ (KiB|MiB|GiB)$' "$T/p-all.out"
cache_ls "$T/ls2"
for cat in "layer entries" "blobs" "venvs" "snapshots" "uv caches" "git mirrors" "leftovers"; do
  check_eq "after prune: cache ls shows no $cat" "0 0 B" "$(ls_row "$T/ls2.out" "$cat")"
done
check_eq "after prune: only the lock file is left" "./lock" "$(cd "$CACHE" && find . -type f)"
b 6 "build after a full prune"
check_eq "after a full prune: every layer is built again (layers that hit)" "-" "$(layers_not "$T/r6.json" miss)"
check "after a full prune: uv ran" test "$(report_get "$T/r6.json" 'd["uv_runs"]')" -gt 0
check_image_complete "after a full prune" 6
incheck after-prune "oci:$T/o6:app"

section "prune started while a build runs: it waits for the build"
cache_prune "$T/p-empty"
mapfile -t args < <(build_args 7)
"$DOCKLESS" build "${args[@]}" >"$T/b7.out" 2>"$T/b7.err" &
B7=$!
if wait_for_lock "$B7" READ; then
  pass "the build holds the cache lock (shared)"
  cache_prune "$T/p-during"
  check_contains "prune said why it waits" "$(cat "$T/p-during.err")" "$WAIT_LINE"
  # The build prints "built sha256:..." just before it lets go of the lock.
  check "prune began only after the build had finished" grep -q '^built sha256:' "$T/b7.err"
else
  failed "the build holds the cache lock (shared)" "$(tail -n 20 "$T/b7.err")"
fi
RC=0
wait "$B7" || RC=$?
check_eq "the build during prune exits 0" "0" "$RC"
((RC == 0)) || tail -n 20 "$T/b7.err" | sed 's/^/        | /'
report_layers "$T/r7.json" | sed 's/^/    /'
check_image_complete "the build the prune waited for" 7
incheck build-before-prune "oci:$T/o7:app"
cache_ls "$T/ls3"
check_eq "the prune that waited then emptied the cache" "0" "$(awk '$1 == "total" { print $2 }' "$T/ls3.out")"

section "build started while a prune runs: it waits for the prune"
b 8 "a build to fill the cache again"
# Scratch of a killed build, large enough that prune takes a while.
python3 - "$CACHE/work/build-999999" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(200):
    os.makedirs("%s/sandbox/d%d" % (root, d))
    for f in range(150):
        with open("%s/sandbox/d%d/f%d" % (root, d, f), "w") as fh:
            fh.write("x")
PY
mapfile -t args < <(build_args 9)
"$DOCKLESS" cache prune --cache-dir "$CACHE" >"$T/p-first.out" 2>"$T/p-first.err" &
P=$!
wait_for_lock "$P" WRITE && pass "prune holds the cache lock (exclusive)" ||
  failed "prune holds the cache lock (exclusive)" "$(cat "$T/p-first.err")"
"$DOCKLESS" build "${args[@]}" >"$T/b9.out" 2>"$T/b9.err" &
B9=$!
sleep 0.3
b9_err_size=$(stat -c %s -- "$T/b9.err")
if lock_holders WRITE | grep -qx "$P"; then
  # prune held the lock from before the build started until after its stderr was read.
  check_eq "the build did nothing while prune held the lock (bytes on its stderr)" "0" "$b9_err_size"
else
  echo "  (prune finished within 0.3 s of the build's start: the build's wait was not observed)"
fi
RC=0
wait "$P" || RC=$?
check_eq "the prune exits 0" "0" "$RC"
sed 's/^/    /' "$T/p-first.out"
RC=0
wait "$B9" || RC=$?
check_eq "the build started during the prune exits 0" "0" "$RC"
((RC == 0)) || tail -n 20 "$T/b9.err" | sed 's/^/        | /'
report_layers "$T/r9.json" | sed 's/^/    /'
check_eq "the build after the prune found nothing cached (layers that hit)" "-" "$(layers_not "$T/r9.json" miss)"
check "prune removed the killed build's scratch" test ! -e "$CACHE/work/build-999999"
check_image_complete "the build that waited for the prune" 9
incheck build-after-prune "oci:$T/o9:app"

section "usage errors and an empty cache"
for bad in -1 abc 1.5 ""; do
  run_capture "$T/p-bad" "$DOCKLESS" cache prune --cache-dir "$CACHE" "--keep-days=$bad"
  check_eq "prune --keep-days=$bad: exit 2 and one error line about --keep-days" "2 1 1" \
    "$RC $(wc -l <"$T/p-bad.err") $(grep -c '^dockless: error: --keep-days' "$T/p-bad.err")"
done
run_capture "$T/ls-none" "$DOCKLESS" cache ls --cache-dir "$T/no-such-cache"
check_eq "cache ls of a missing cache dir: exit 0, total 0" "0 0" \
  "$RC $(awk '$1 == "total" { print $2 }' "$T/ls-none.out")"
run_capture "$T/p-none" "$DOCKLESS" cache prune --cache-dir "$T/no-such-cache"
check_eq "cache prune of a missing cache dir: exit 0, nothing made" "0 no" "$RC $([[ -e $T/no-such-cache ]] && echo yes || echo no)"
