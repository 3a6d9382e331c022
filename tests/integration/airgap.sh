#!/usr/bin/env bash
# The air-gapped cluster, whole story (root: `unshare -n`).
#
# Outside (the internet side): registry A, the package index, the test
# project built with --push --cache-to. The project's next lock (late_add
# added to the mcore extra). `dockless bundle` writes airgap.tar: the base
# image, the build cache and the next lock's wheels; and old-wheels.tar,
# the current lock's wheels (no late_add).
#
# Inside (`unshare -n`: a network namespace with only loopback, up; A and
# the index are unreachable): a fresh registry B on 127.0.0.1, an empty
# cache dir; `dockless unbundle` pushes both to B/mirror. Then, every build
# with --offline:
#   - nothing changed: 0 uv runs; - a source edit: 0 uv runs; - --skip: 0 uv runs;
#   - the next lock with --wheels-from B's wheelhouse: uv installs late_add
#     from the registry (the image's McoreWorker venv imports it);
#   - the next lock with the old lock's wheelhouse: one error line naming
#     late-add (within 30 s with the base to unpack, 10 s without);
#   - a remote --git: refused.
# Nothing changed gives the outside image's config and layers (only the
# base.name annotation names registry B).
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

# ---------------------------------------------------------------- inside the gap
if [[ ${1:-} == --inside ]]; then
  CARRY=$AIRGAP_CARRY  # the outside scratch dir, with the two bundles
  section "inside: only loopback"
  require "bring lo up" ip link set lo up
  check "the outside index does not answer" bash -c '! curl -fsS -m 3 "$1" >/dev/null 2>&1' _ "$AIRGAP_INDEX_URL/common-a/"
  check "the outside registry does not answer" bash -c '! curl -fsS -m 3 "http://$1/v2/" >/dev/null 2>&1' _ "$AIRGAP_REGISTRY_A"
  start_registry plain regb
  B=$REGISTRY_HOST
  for tar in airgap.tar old-wheels.tar; do
    dl "$T/unbundle-$tar" unbundle "$CARRY/$tar" --to "$B/mirror" -q --cache-dir "$T/unbundle-cache"
    check "unbundle $tar into registry B (${SECS}s)" test "$RC" = 0
  done
  B=$B/mirror
  CACHE=$T/cache-in
  OFF=(--set "image.base=$B/debian-py:12" --cache-from "$B/app-cache:main" --offline)
  uv_runs() { report_get "$1" 'd["uv_runs"]'; }

  section "inside: nothing changed"
  check_build "a build with an empty cache dir" "$T/in1" "$AIRGAP_PROJ" "${OFF[@]}" --cache-dir "$CACHE" \
    --output "oci:$T/i1:app" --report "$T/in1.json"
  check_eq "nothing changed: 0 uv runs" 0 "$(uv_runs "$T/in1.json")"
  # The same config and layers; only the base.name annotation names registry B.
  check_python "nothing changed: the config and layers built outside" "$T/i1/index.json" '
def manifest(layout):
    index = json.load(open(layout + "/index.json"))
    return json.load(open(layout + "/blobs/sha256/" + index["manifests"][0]["digest"][7:]))
inside, outside = manifest("'"$T"'/i1"), manifest("'"$AIRGAP_OUTSIDE_LAYOUT"'")
assert inside["config"] == outside["config"], "another config"
assert inside["layers"] == outside["layers"], "other layers"
ann = {k: v for k, v in inside.get("annotations", {}).items() if k != "org.opencontainers.image.base.name"}
assert ann == {k: v for k, v in outside.get("annotations", {}).items() if k != "org.opencontainers.image.base.name"}'

  section "inside: a source edit"
  cp -a "$AIRGAP_PROJ" "$T/proj"
  echo "# edited inside the gap" >>"$T/proj/src/app/workers.py"
  check_build "a source edit" "$T/in2" "$T/proj" "${OFF[@]}" --cache-dir "$CACHE" --output "oci:$T/i2:app" \
    --report "$T/in2.json"
  check_eq "a source edit: 0 uv runs" 0 "$(uv_runs "$T/in2.json")"

  section "inside: --skip"
  check_build "--skip vllm" "$T/in3" "$T/proj" "${OFF[@]}" --cache-dir "$CACHE" --skip vllm \
    --output "oci:$T/i3:app" --report "$T/in3.json"
  check_eq "--skip: 0 uv runs" 0 "$(uv_runs "$T/in3.json")"

  section "inside: the next lock, its wheels from the registry"
  check_build "the next lock with --wheels-from" "$T/in4" "$AIRGAP_NEXT" "${OFF[@]}" --cache-dir "$CACHE" \
    --wheels-from "$B/app/wheels:next" --output "oci:$T/i4:app" --report "$T/in4.json"
  check_ne "the next lock: uv ran" 0 "$(uv_runs "$T/in4.json")"
  check_contains "the build took uv.lock's files from the wheelhouse" "$(cat "$T/in4.err")" \
    "file(s) of uv.lock from --wheels-from"
  check "uv.lock of the project is unchanged" cmp -s "$AIRGAP_NEXT/uv.lock" "$AIRGAP_NEXT.lock-copy"
  check_python "the McoreWorker venv of the image has late_add's files" "$T/i4/index.json" '
import tarfile
d0 = "'"$T"'/i4"
blob = lambda dg: open(d0 + "/blobs/sha256/" + dg.split(":")[1], "rb")
m = json.load(blob(d["manifests"][0]["digest"]))
hist = [h for h in json.load(blob(m["config"]["digest"]))["history"] if not h.get("empty_layer")]
names = []
for l, h in zip(m["layers"], hist):
    if h.get("created_by") == "dockless: venv app.workers.McoreWorker":
        names = tarfile.open(fileobj=blob(l["digest"]), mode="r:*").getnames()
assert names, "no McoreWorker venv layer"
assert any(n.endswith("site-packages/late_add/__init__.py") for n in names), "no late_add in the venv"'
  if podman --runtime runc run --rm --network none "oci:$T/i1:app" true >/dev/null 2>&1; then
    expect_late_add_in_mcore
    PROJ=$AIRGAP_NEXT incheck in4 "oci:$T/i4:app"
  else
    echo "note: podman does not run in this network namespace; the layout's files were checked instead"
  fi

  section "inside: a lock change whose package is not in the wheelhouse"
  # The first attempt in a fresh cache dir also pulls and unpacks the base;
  # the second, as a user retrying, only runs uv up to the missing wheel.
  for attempt in 1 2; do
    check_build_fails "the next lock with the old lock's wheelhouse (attempt $attempt)" "$T/in5-$attempt" 1 \
      'late-add' 'cannot download' 'offline' -- "$AIRGAP_NEXT" "${OFF[@]}" --cache-dir "$T/cache-in5" \
      --wheels-from "$B/app/wheels:old" --output "oci:$T/i5:app"
    limit=$((attempt == 1 ? 30 : 10))
    check "attempt $attempt fails within $limit s (${SECS}s)" \
      python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$SECS" "$limit"
  done
  check "no layout was written" test ! -e "$T/i5/index.json"

  section "inside: --offline refuses a remote --git"
  check_build_fails "--offline --git https://..." "$T/in6" 2 'offline' 'git' -- \
    --git https://example.invalid/app.git "${OFF[@]}" --cache-dir "$CACHE" --output "oci:$T/i6:app"
  exit 0
fi

# ---------------------------------------------------------------- outside
[[ $(id -u) == 0 ]] || fail "airgap.sh needs root (unshare -n)"
build_setup
A=$REGISTRY_HOST
section "outside: build, push, --cache-to"
check_build "the build outside" "$T/out1" "$PROJ" --set "image.base=$BASE_REF" --cache-dir "$T/cache-out" \
  --tag "$A/app:1" --push --cache-to "$A/app-cache:main" --output "oci:$T/o1:app"

section "outside: the next lock; bundles"
cp -a "$PROJ" "$T/proj-next"
add_late_add_to_mcore "$T/proj-next"
cp "$T/proj-next/uv.lock" "$T/proj-next.lock-copy"
require "the next lock names late_add" grep -q late_add-1.0.0 "$T/proj-next/uv.lock"
# The bundle to carry: the base, the build cache and the next lock's wheels;
# and an older one with only the current lock's wheels (no late_add).
check_dl_ok() { dl "$2" "${@:3}"; check "$1 (${SECS}s)" test "$RC" = 0; }
check_dl_ok "bundle the base, the cache and the next lock's wheels" "$T/bundle" bundle -q --cache-dir "$T/bundle-cache" \
  --image "$BASE_REF" --cache "$A/app-cache:main" --wheels "$T/proj-next" --wheels-ref app/wheels:next -o "$T/airgap.tar"
check_dl_ok "bundle the current lock's wheels" "$T/bundle-old" bundle -q --cache-dir "$T/bundle-cache" \
  --wheels "$PROJ" --wheels-ref app/wheels:old -o "$T/old-wheels.tar"
check "the bundle is one file" test -f "$T/airgap.tar"

section "into the gap (unshare -n)"
AIRGAP_CARRY=$T AIRGAP_PROJ=$PROJ AIRGAP_NEXT=$T/proj-next AIRGAP_INDEX_URL=$INDEX_URL \
  AIRGAP_REGISTRY_A=$A AIRGAP_OUTSIDE_LAYOUT=$T/o1 DOCKLESS_KEEP_SCRATCH=${DOCKLESS_KEEP_SCRATCH:-0} \
  unshare -n -- bash "${BASH_SOURCE[0]}" --inside 2>&1 | tee "$T/inside.log" | sed 's/^/  | /' || true
summary=$(grep -E "^airgap: [0-9]+ passed, [0-9]+ failed$" "$T/inside.log" | tail -n 1 || true)
if [[ $summary =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
  PASSED=$((PASSED + BASH_REMATCH[1]))
  ((BASH_REMATCH[2] == 0)) || failed "inside the gap: ${BASH_REMATCH[2]} check(s) failed (above)"
else
  failed "inside the gap: the script gave no summary" "$(tail -n 20 "$T/inside.log")"
fi
