#!/usr/bin/env bash
# Builds the NeMo-RL-shaped example with dockless, pushes it to a local
# registry, and runs it with podman:
#
#   1. a plain docker-registry on 127.0.0.1 (tests/registry/registry.sh)
#   2. the base: the debootstrap Debian 12 + python3 rootfs
#      (scripts/fixtures/debian-rootfs.sh), imported and pushed as REG/debian-py:12
#   3. dockless build examples/nemo-like --set image.base=REG/debian-py:12
#        --tag REG/nemo-like:latest --push            (cold, then warm)
#      dockless build ... --skip vllm --tag REG/nemo-like:no-vllm --push
#   4. podman pull + run `python3 -m nemo_like.check` in both images
#   5. the layer table (name, size, digest prefix, cache) from the reports
#
# Needs: a built dockless (DOCKLESS, default build/src/dockless), uv on PATH
# (or UV), podman with runc, and network to PyPI (uv downloads the wheels
# named in uv.lock; the second build downloads nothing). Root, for the
# debootstrap fixture on its first run.
#
# Env: DOCKLESS, DEMO_DIR (default /tmp/dockless-nemo-like), KEEP=1 keeps
# the registry running at the end (it prints how to stop it).
set -euo pipefail
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
root=$(cd -- "$here/../.." && pwd)
dockless=${DOCKLESS:-$root/build/src/dockless}
work=${DEMO_DIR:-/tmp/dockless-nemo-like}
[[ -x $dockless ]] || { echo "no dockless at $dockless (run scripts/build.sh build)" >&2; exit 1; }

rm -rf -- "$work"
mkdir -p -- "$work"
export DOCKLESS_REGISTRY_STATE=$work/registries
# shellcheck source=../../tests/registry/registry.sh
source "$root/tests/registry/registry.sh"
if [[ ${KEEP:-0} != 1 ]]; then registry_cleanup_on_exit; fi

echo "== registry"
eval "$(registry_start plain demo)"
reg=$REGISTRY_HOST
echo "$REGISTRY_URL"

echo "== base image: debootstrap Debian 12 + python3 -> $reg/debian-py:12"
rootfs=$(bash "$root/scripts/fixtures/debian-rootfs.sh")
"$dockless" import "$rootfs" --output "oci:$work/base:12" --cmd '["python3"]'
"$dockless" push "oci:$work/base:12" "$reg/debian-py:12" --cache-dir "$work/cache" -q >/dev/null

build() {
  local start end
  start=$EPOCHREALTIME
  "$dockless" build "$here" --set "image.base=$reg/debian-py:12" --cache-dir "$work/cache" "$@"
  end=$EPOCHREALTIME
  awk -v s="$start" -v e="$end" 'BEGIN { printf "   (%.2f s)\n", e - s }'
}

echo "== dockless build (cold) -> $reg/nemo-like:latest"
build --tag "$reg/nemo-like:latest" --push --report "$work/cold.json"
echo "== dockless build (warm: nothing changed)"
build --tag "$reg/nemo-like:latest" --push --report "$work/warm.json"
echo "== dockless build --skip vllm -> $reg/nemo-like:no-vllm"
build --skip vllm --tag "$reg/nemo-like:no-vllm" --push --report "$work/no-vllm.json"

table() {
  python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
short = lambda n: n if len(n) <= 72 else n[:69] + "..."
print("   %-72s %10s  %-12s  %s" % ("layer", "size", "digest", "cache"))
for l in d["layers"]:
    print("   %-72s %10d  %-12s  %s" % (short(l["name"]), l["size"], l["digest"][7:19], l["cache"]))
print("   digest %s, %.2f s, %d uv runs, skipped: %s" % (d["digest"], d["seconds"], d["uv_runs"], d.get("skipped") or "-"))
PY
}
echo "== layers (cold build)"
table "$work/cold.json"
echo "== layers (warm build)"
table "$work/warm.json"
echo "== layers (--skip vllm)"
table "$work/no-vllm.json"

for tag in latest no-vllm; do
  echo "== podman run $reg/nemo-like:$tag python3 -m nemo_like.check"
  podman pull -q --tls-verify=false "$reg/nemo-like:$tag" >/dev/null
  podman --runtime runc run --rm --network none "$reg/nemo-like:$tag" python3 -m nemo_like.check
  podman rmi -f "$reg/nemo-like:$tag" >/dev/null
done

if [[ ${KEEP:-0} == 1 ]]; then
  echo "registry left running at $REGISTRY_URL; stop it with:"
  echo "  DOCKLESS_REGISTRY_STATE=$DOCKLESS_REGISTRY_STATE bash $root/tests/registry/registry.sh stop demo"
fi
