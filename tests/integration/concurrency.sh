#!/usr/bin/env bash
# Concurrency on one cache dir: two builds of the same project and two of
# other projects (one with another uv.lock, one with another source tree)
# start together on an empty cache, and a `dockless cache prune` starts in
# the middle. Every command succeeds (the prune waits for the builds), the
# cache passes tests/fixtures/check_cache_invariants.py, every pushed image
# pulls back with its digests verified, and the images run. A second round
# of the same four builds on a warm cache, then four parallel pushes of
# images that share layers to one repository of another registry: all
# succeed and each pulls back verified.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

CHECKER=$FIXTURES/check_cache_invariants.py
export SOURCE_DATE_EPOCH=1700000000
build_setup
REG1=$REGISTRY_HOST
CACHE=$T/cache-shared

section "three projects"
# proj2: another uv.lock (late_add in the mcore extra): other environments.
make_test_project "$T/proj2"
add_late_add_to_mcore "$T/proj2"
# proj3: the same lock as proj, another source tree: same environments.
cp -a -- "$PROJ" "$T/proj3"
echo 'VARIANT = 3' >>"$T/proj3/src/app/__init__.py"
declare -A SRC=([1]=$PROJ [2]=$PROJ [3]=$T/proj2 [4]=$T/proj3)

# verify LABEL REF: skopeo pulls REF (digests verified) into oci:$T/v-LABEL,
# and every blob there hashes to its name.
verify() {
  local dir=$T/v-$1 out
  rm -rf -- "$dir"
  if ! out=$(skopeo copy -q --src-tls-verify=false "docker://$2" "oci:$dir:img" 2>&1); then
    failed "$1: $2 pulls with skopeo" "$out"
    return
  fi
  check "$1: every blob of $2 has its digest" python3 "$CHECKER" --layout "$dir"
}

# round R: the four builds at once (build N of round R pushes $REG1/app-N:R).
round() {
  local r=$1 n pids=() prune_pid=
  for n in 1 2 3 4; do
    "$DOCKLESS" build "${SRC[$n]}" --set "image.base=$BASE_REF" --cache-dir "$CACHE" \
      --tag "$REG1/app-$n:$r" --push --output "oci:$T/o$n-$r:app" \
      >"$T/b$n-$r.out" 2>"$T/b$n-$r.err" &
    pids[n]=$!
  done
  if [[ $r == 1 ]]; then
    # In the middle: once a build's uv runs (its "[env] ..." lines), not
    # after a fixed delay, which a fast machine's builds may outlast.
    local waited=0
    until cat "$T"/b?-1.err 2>/dev/null | grep -q '^\['; do
      ((waited++ < 600)) || break
      sleep 0.1
    done
    "$DOCKLESS" cache prune --cache-dir "$CACHE" >"$T/prune.out" 2>"$T/prune.err" &
    prune_pid=$!
  fi
  for n in 1 2 3 4; do
    local rc=0
    wait "${pids[n]}" || rc=$?
    check_eq "round $r: build $n (${SRC[$n]##*/}) succeeds" 0 "$rc"
    ((rc == 0)) || sed 's/^/    /' "$T/b$n-$r.err" | tail -n 8
  done
  if [[ -n $prune_pid ]]; then
    local rc=0
    wait "$prune_pid" || rc=$?
    check_eq "round $r: the prune started in the middle succeeds" 0 "$rc"
    check_contains "round $r: the prune waited for the builds" "$(cat "$T/prune.err")" \
      "waiting for running dockless commands to finish"
  fi
  check "round $r: the cache passes the invariants" python3 "$CHECKER" "$CACHE" --layout "$T/o1-$r" \
    --layout "$T/o2-$r" --layout "$T/o3-$r" --layout "$T/o4-$r"
  for n in 1 2 3 4; do verify "r$r-b$n" "$REG1/app-$n:$r"; done
  # Both may run uv: only the uv cache index layers (HTTP times, documented
  # as not reproducible) may differ.
  check_eq "round $r: both builds of the same project give the same layers (but uv cache index)" "" \
    "$(same_layers "$T/o1-$r" "$T/o2-$r")"
}

# same_layers LAYOUT_A LAYOUT_B: the layers (by history) that differ, but
# the "uv cache index" ones.
same_layers() {
  python3 - "$1" "$2" <<'PY'
import json, sys
def layers(d):
    blob = lambda dg: json.load(open(d + "/blobs/sha256/" + dg[7:]))
    m = blob(json.load(open(d + "/index.json"))["manifests"][0]["digest"])
    h = [x.get("created_by", "") for x in blob(m["config"]["digest"])["history"] if not x.get("empty_layer")]
    return list(zip(h, [l["digest"] for l in m["layers"]]))
a, b = layers(sys.argv[1]), layers(sys.argv[2])
if len(a) != len(b):
    print("%d layers vs %d" % (len(a), len(b)))
for (ha, da), (hb, db) in zip(a, b):
    if (ha, da) != (hb, db) and "uv cache index" not in ha:
        print(ha, da[:19], "vs", hb, db[:19])
PY
}

section "round 1: four builds on an empty cache, a prune in the middle"
round 1
section "round 2: the same four builds on the cache left by round 1"
round 2

section "the images run"
incheck r2-proj "oci:$T/v-r2-b1:img"
check_eq "proj3's image has its own source" "3" \
  "$(podman_run "oci:$T/v-r2-b4:img" /opt/app_venv/bin/python -c 'import sys; sys.path.insert(0, "/opt/app/src"); import app; print(app.VARIANT)' 2>/dev/null | tail -n 1)"
check_eq "proj2's mcore venv has late_add" "late_add" \
  "$(podman_run "oci:$T/v-r2-b3:img" /opt/ray_venvs/app.workers.McoreWorker/bin/python -c 'import late_add; print(late_add.VALUE)' 2>/dev/null | tail -n 1)"

section "four parallel pushes of images that share layers, to one repository"
start_registry plain reg2
REG2=$REGISTRY_HOST
pids=()
for n in 1 2 3 4; do
  "$DOCKLESS" push "oci:$T/o$n-2:app" "$REG2/shared:$n" --cache-dir "$CACHE" >"$T/push$n.out" 2>"$T/push$n.err" &
  pids[n]=$!
done
for n in 1 2 3 4; do
  rc=0
  wait "${pids[n]}" || rc=$?
  check_eq "push $n succeeds" 0 "$rc"
  ((rc == 0)) || tail -n 5 "$T/push$n.err" | sed 's/^/    /'
  check_digests_equal "push $n: the pushed digest is the layout's" \
    "$(layout_manifest_digest "$T/o$n-2" app)" "$(tr -d '\n' <"$T/push$n.out")"
  verify "push$n" "$REG2/shared:$n"
done
check "the cache passes the invariants at the end" python3 "$CHECKER" "$CACHE"
