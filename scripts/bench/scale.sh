#!/usr/bin/env bash
# Scale benchmark (issue 12): `scripts/bench/build.sh --scale N` builds a
# NeMo-RL-shaped project with N GiB of wheels (make-scale-index.py: torch and
# CUDA-like wheels of large incompressible .so files and many small .py
# files, per-family and per-worker packages) with dockless and with
# `buildah bud` + push, in the same run, and prints:
#   - cold build + push (empty caches), and dockless's split: when uv ran
#     (the report's environments), when layers were written and when blobs
#     were pushed (the --progress json events, time-stamped on arrival);
#   - the peak RSS of dockless (/usr/bin/time %M) and of buildah;
#   - the number and size of the layers (and how many are under 4 KiB);
#   - a one-file edit, and the variant without worker w00 (--skip vllm /
#     SKIP_VLLM_BUILD=1) with the bytes the registry gained from it.
#
# usage: bash scripts/bench/build.sh --scale N     (as root; N in GiB: 0.25, 1, 4)
# env:   SCALE_WORKERS  worker venvs (default 15, as NeMo RL has)
#        SCALE_PEER=0   dockless only (no buildah)
#        DOCKLESS_BENCH_DIR, DOCKLESS, UV, BENCH_KEEP as build.sh
# The generated index is cached in $DOCKLESS_BENCH_DIR/scale-index-<N>g-w<W>.
set -euo pipefail
export LC_ALL=C
source "$(dirname "$0")/lib.sh"
gib=${1:?usage: build.sh --scale N}
[[ $gib =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "build.sh: --scale wants GiB (e.g. 0.25, 1, 4), not '$gib'" >&2; exit 2; }
workers=${SCALE_WORKERS:-15}
peer=${SCALE_PEER:-1}
((peer == 0)) || command -v buildah >/dev/null || { echo "build.sh --scale: buildah is missing (run scripts/setup.sh)" >&2; exit 1; }
bench_init scale-run
index=$bench/scale-index-${gib}g-w$workers

log "package index: $gib GiB, $workers workers (generated once, cached in $index)"
python3 scripts/bench/make-scale-index.py "$index" "$gib" "$workers"
start_index "$index"

log "project (locked against $index_url)"
project=$run/project
python3 scripts/bench/make-scale-project.py "$project" "$index_url" "$index/layout.json" "$run/scale.Containerfile"
(cd "$project" && UV_CACHE_DIR=$run/lock-cache XDG_CONFIG_HOME=$run/lock-cfg UV_PYTHON_DOWNLOADS=never \
  "$uv_bin" lock --quiet)
retire "$run/lock-cache"
mkdir -p "$run/tools"
cp "$uv_bin" "$run/tools/uv"
rootfs=$(bash scripts/fixtures/debian-rootfs.sh)
"$dockless" import "$rootfs" --output "oci:$run/base:py" >/dev/null
eval "$(bash tests/registry/registry.sh start plain scale)"
"$dockless" push "oci:$run/base:py" "$REGISTRY_HOST/debian-py:12" --cache-dir "$run/base-push-cache" -q >/dev/null
reg_blob_bytes() { du -sb "$REGISTRY_STORAGE/docker/registry/v2/blobs" | cut -f1; }

dl() {  # dl PHASE TAG [args]
  local phase=$1 tag=$2
  shift 2
  timed dockless "$phase" "$run/dl-$phase.log" "$dockless" build "$project" \
    --set "image.base=$REGISTRY_HOST/debian-py:12" --cache-dir "$run/dockless-cache" --uv "$uv_bin" \
    --report "$run/dl-$phase.json" --progress json --tag "$REGISTRY_HOST/scale-dockless:$tag" --push "$@"
}
bh() {  # bh PHASE TAG [bud args]: bud, then push (the push's RSS is taken too; the larger is kept)
  local phase=$1 tag=$2 b r
  shift 2
  timed buildah "$phase" "$run/bh-$phase.log" "${BH[@]}" bud --isolation chroot --layers --tls-verify=false \
    --build-context "tools=$run/tools" -f "$run/scale.Containerfile" \
    --build-arg "BASE_IMAGE=$REGISTRY_HOST/debian-py:12" -t "$REGISTRY_HOST/scale-buildah:$tag" "$@" "$project"
  b=${T[$phase,buildah]} r=${RSS[$phase,buildah]}
  timed buildah "$phase" "$run/bh-$phase-push.log" "${BH[@]}" push --tls-verify=false "$REGISTRY_HOST/scale-buildah:$tag"
  T[$phase,buildah-push]=${T[$phase,buildah]}
  T[$phase,buildah]=$(awk -v a="$b" -v c="${T[$phase,buildah]}" 'BEGIN { printf "%.2f", a + c }')
  ((r > RSS[$phase,buildah])) && RSS[$phase,buildah]=$r
  return 0
}

log "1. cold build + push: dockless"
dl cold full
if ((peer)); then log "1. cold build + push: buildah"; reset_buildah; bh cold full; fi
edit=nemo_bench/utils/mod00.py
printf '\n\ndef scale_edit():\n    return 1\n' >>"$project/$edit"
log "2. one source file edited"
dl edit full
((peer)) && bh edit full
log "3. the variant without worker w00 (--skip vllm), after the full image"
b0=$(reg_blob_bytes)
dl skip novllm --skip vllm
b1=$(reg_blob_bytes)
if ((peer)); then bh skip novllm --build-arg SKIP_VLLM_BUILD=1; fi
b2=$(reg_blob_bytes)

# ---------------------------------------------------------------- the table
python3 scripts/bench/scale-report.py "$run" "$gib" "$workers" "$index/packages.json" "$load_before" \
  "$(buildah --version 2>/dev/null | awk '{print $3}')" "$("$uv_bin" --version)" "$REGISTRY_HOST" \
  "$((b1 - b0))" "$((b2 - b1))" <<EOF
$(for k in "${!T[@]}"; do printf 'T %s %s\n' "$k" "${T[$k]}"; done)
$(for k in "${!RSS[@]}"; do printf 'RSS %s %s\n' "$k" "${RSS[$k]}"; done)
EOF
[[ ${BENCH_KEEP:-0} == 1 ]] && echo "logs and reports: $run/"
exit 0
