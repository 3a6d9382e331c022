#!/usr/bin/env bash
# Benchmark (issue 5): build the same NeMo-RL-shaped project with dockless and
# with `buildah bud` (scripts/bench/build.Containerfile: the same base from
# the same local registry, the same host uv, the same uv commands), in the
# same run on the same machine, and print every figure and the ratios
# dockless/buildah. Each build ends with the image in a local registry:
# dockless `build --tag --push`; buildah `bud` + `push` (both timed).
#
#   1. cold build: empty caches (a fresh --cache-dir; fresh buildah storage)
#   2. warm rebuild after editing one source file       goal ratio <= 0.05
#   3. warm rebuild with nothing changed                 goal dockless < 1 s
#   4. the vllm-less variant after the full build: dockless --skip vllm,
#      buildah --build-arg SKIP_VLLM_BUILD=1             goal dockless < 1 s, 0 uv runs
#   5. bytes the registry gained from pushing that variant, with the full
#      image already there (registry storage before/after, and the blobs,
#      layers and config, of the variant that the full image lacks)
#   2b. the one-file edit again, against buildah building the project in
#      NeMo RL's own order (scripts/bench/build-nemo-order.Containerfile:
#      venvs made after COPY of the source, as NeMo RL's Dockerfile does)
#   6. a fresh machine (empty local caches) whose registry holds the
#      previous build's cache, nothing changed: dockless --cache-from,
#      buildah bud --cache-from (caches written beforehand, untimed)
# Then (untimed) podman runs each image: every venv imports its packages.
# Runs in ~3 min a repetition on 2 cores.
#
# Hermetic: the packages (~260 MB of generated wheels, scripts/bench/
# make-bench-index.py, cached) come from a PEP 503 index on 127.0.0.1
# (tests/fixtures/index_server.py); the base is the debootstrap Debian 12 +
# python3 rootfs (scripts/fixtures/debian-rootfs.sh, cached); the registry
# is tests/registry/registry.sh's plain one. Nothing leaves the machine.
#
# usage: bash scripts/bench/build.sh        (from the repo root, as root)
#        bash scripts/bench/build.sh --scale N  N GiB of CUDA-shaped wheels, 15 workers instead
#             (scripts/bench/scale.sh: cold/edit/skip, time split, peak RSS, layer count)
#        bash scripts/bench/build.sh --steps  the apt-step case instead
#             (scripts/bench/steps.sh: a RUN apt-get line, cold and after a source edit)
# env:   BENCH_REPEAT=N     repetitions (default 1; the table shows each and the median)
#        DOCKLESS_BENCH_DIR scratch root (default /var/tmp/dockless-bench)
#        DOCKLESS           the dockless binary (default build/src/dockless)
#        UV                 the uv binary both tools use (default /usr/local/bin/uv)
#        BENCH_KEEP=1       keep the run's scratch directory (logs, dockless's reports)
#        BENCH_VERIFY=0     skip the (untimed) podman check that the four images work
#        BENCH_FS=ext4      each tool works on a fresh ext4 of its own each repetition
#                           (scripts/bench/lib.sh fresh_fs: a journal, as users have)
set -euo pipefail
export LC_ALL=C
if [[ ${1:-} == --steps ]]; then exec bash "$(dirname "$0")/steps.sh"; fi
if [[ ${1:-} == --scale ]]; then exec bash "$(dirname "$0")/scale.sh" "${@:2}"; fi
cd "$(dirname "$0")/../.."
root=$PWD

repeat=${BENCH_REPEAT:-1}
bench=${DOCKLESS_BENCH_DIR:-/var/tmp/dockless-bench}
dockless=${DOCKLESS:-$root/build/src/dockless}
uv_bin=$(readlink -f "${UV:-/usr/local/bin/uv}")
run=$bench/run
bh_root=$bench/buildah
# Our registries live under $run only: registry.sh stop-all must never see another test's.
export DOCKLESS_REGISTRY_STATE=$run/registries

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (buildah --isolation chroot and the debootstrap base need it)"
[[ -x $dockless ]] || die "no dockless at $dockless (run scripts/build.sh build)"
[[ -x $uv_bin ]] || die "no uv at ${UV:-/usr/local/bin/uv}"
command -v docker-registry >/dev/null || die "docker-registry is missing (run scripts/setup.sh)"
if ! command -v buildah >/dev/null; then
  log "installing buildah (scripts/setup.sh should install it)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q buildah >/dev/null
fi

# ---------------------------------------------------------------- scratch and cleanup
# lib.sh: unmount_under, reset_buildah, retire/purge_retired/settle_inodes
# (why nothing is deleted between timed phases).
source scripts/bench/lib.sh
index_pid=
cleanup() {
  local rc=$?
  [[ -n $index_pid ]] && kill "$index_pid" 2>/dev/null || true
  bash "$root/tests/registry/registry.sh" stop-all >/dev/null 2>&1 || true
  reset_buildah || true
  drop_fs "$bh_root" || true
  drop_fs "$run/dockless-cache" || true
  unmount_under "$run" || true
  [[ ${BENCH_KEEP:-0} == 1 ]] || retire "$run"
  purge_retired || true
  exit "$rc"
}
BH=(buildah --root "$bh_root/root" --runroot "$bh_root/runroot" --storage-driver overlay)
trap cleanup EXIT
trap 'exit 130' INT TERM

load_before=$(cut -d' ' -f1-3 /proc/loadavg)  # printed: other work on the machine skews every figure
unmount_under "$run"
reset_buildah
purge_retired "$run"
settle_inodes
mkdir -p "$run" "$bench"

# ---------------------------------------------------------------- inputs
log "package index (generated once, cached in $bench/index)"
python3 scripts/bench/make-bench-index.py "$bench/index"
cat "$bench"/index/files/*.whl >/dev/null  # page cache: neither tool pays for the first read

if [[ -x tests/fixtures/index_server.py ]]; then
  python3 tests/fixtures/index_server.py "$bench/index" --port-file "$run/index.port" \
    --log "$run/index.log" --max-lifetime 3600 >/dev/null 2>&1 &
  index_pid=$!
  for _ in $(seq 100); do [[ -s $run/index.port ]] && break; sleep 0.1; done
  index_port=$(cat "$run/index.port")
else
  index_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  timeout 3600 python3 -m http.server --bind 127.0.0.1 --directory "$bench/index" "$index_port" \
    >"$run/index.log" 2>&1 &
  index_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$index_port/simple/" >/dev/null && break; sleep 0.1; done
fi
index_url=http://127.0.0.1:$index_port/simple
curl -sf "$index_url/" >/dev/null || die "the index server did not start (see $run/index.log)"

log "project (locked against $index_url)"
UV=$uv_bin bash scripts/bench/make-bench-project.sh "$run/project" "$index_url"
project=$run/project
mkdir -p "$run/tools"
cp "$uv_bin" "$run/tools/uv"  # buildah's build context "tools": the same uv binary dockless ships

rootfs=$(bash scripts/fixtures/debian-rootfs.sh)
"$dockless" import "$rootfs" --output "oci:$run/base:py" >/dev/null

# ---------------------------------------------------------------- helpers
declare -A T  # T[phase,tool,rep] = seconds
declare -A BYTES SIZE NOTE
now() { printf '%s' "$EPOCHREALTIME"; }
elapsed() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.3f", e - s }'; }

# run_logged LOGFILE CMD...: runs CMD, output to LOGFILE; on failure shows its tail and stops.
run_logged() {
  local logf=$1
  shift
  if ! "$@" >"$logf" 2>&1; then
    echo "build.sh: failed: $*" >&2
    tail -n 40 "$logf" >&2
    exit 1
  fi
}

reg_blob_bytes() { du -sb "$REGISTRY_STORAGE/docker/registry/v2/blobs" | cut -f1; }

# manifest REPO:TAG -> the manifest JSON (OCI or Docker schema2) from the registry.
manifest() {
  curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY_HOST/v2/${1%%:*}/manifests/${1#*:}"
}
# image_size REPO:TAG -> "compressed bytes, layer count" of the pushed image.
image_size() {
  manifest "$1" | python3 -c 'import json,sys
m = json.load(sys.stdin)
print(sum(l["size"] for l in m["layers"]) + m["config"]["size"], len(m["layers"]))'
}
# new_layer_bytes NEW OLD -> bytes of NEW's layers and config whose digests OLD lacks.
new_layer_bytes() {
  python3 - "$(manifest "$1")" "$(manifest "$2")" <<'PY'
import json, sys
new, old = json.loads(sys.argv[1]), json.loads(sys.argv[2])
have = {d["digest"] for d in old["layers"] + [old["config"]]}
print(sum(d["size"] for d in new["layers"] + [new["config"]] if d["digest"] not in have))
PY
}

reset_dockless_cache() {  # an empty --cache-dir (on a fresh file system of its own with BENCH_FS=ext4)
  if [[ ${BENCH_FS:-} == ext4 ]]; then fresh_fs "$run/dockless-cache"; else retire "$run/dockless-cache"; fi
}

dl() {  # dl PHASE REP LOG [dockless build args...]: timed dockless build + push
  local phase=$1 rep=$2 logf=$3 s e
  shift 3
  s=$(now)
  run_logged "$logf" "$dockless" build "$project" --set "image.base=$REGISTRY_HOST/debian-py:12" \
    --cache-dir "$run/dockless-cache" --uv "$uv_bin" --report "${logf%.log}.json" "$@"
  e=$(now)
  T[$phase,dockless,$rep]=$(elapsed "$s" "$e")
}

bh() {  # bh PHASE REP LOG TAG [bud args...]: timed buildah bud + push
  local phase=$1 rep=$2 logf=$3 tag=$4 s m e
  shift 4
  s=$(now)
  run_logged "$logf" "${BH[@]}" bud --isolation chroot --layers --tls-verify=false \
    --build-context "tools=$run/tools" -f "$root/scripts/bench/${BH_FILE:-build.Containerfile}" \
    --build-arg "BASE_IMAGE=$REGISTRY_HOST/debian-py:12" -t "$REGISTRY_HOST/$tag" "$@" "$project"
  m=$(now)
  run_logged "${logf%.log}.push.log" "${BH[@]}" push --tls-verify=false "$REGISTRY_HOST/$tag"
  e=$(now)
  T[$phase,buildah,$rep]=$(elapsed "$s" "$e")
  T[$phase,buildah-bud,$rep]=$(elapsed "$s" "$m")
  T[$phase,buildah-push,$rep]=$(elapsed "$m" "$e")
}

report_field() {  # report_field FILE.json EXPR (python, d = the report)
  python3 -c 'import json,sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# ---------------------------------------------------------------- the runs
edit_file=nemo_bench/utils/mod00.py
for rep in $(seq 1 "$repeat"); do
  out=$run/rep$rep
  mkdir -p "$out"
  log "run $rep/$repeat: fresh registry, base pushed as debian-py:12"
  bash tests/registry/registry.sh stop-all >/dev/null 2>&1 || true
  eval "$(bash tests/registry/registry.sh start plain "bench$rep")"
  "$dockless" push "oci:$run/base:py" "$REGISTRY_HOST/debian-py:12" --cache-dir "$run/base-push-cache" -q >/dev/null

  log "1. cold build (empty caches): dockless"
  reset_dockless_cache
  dl cold "$rep" "$out/dl-cold.log" --tag "$REGISTRY_HOST/bench-dockless:full" --push
  log "1. cold build (empty caches): buildah"
  reset_buildah
  bh cold "$rep" "$out/bh-cold.log" bench-buildah:full

  log "2. warm rebuild after editing $edit_file"
  printf '\n\ndef bench_edit_%s():\n    return %s\n' "$rep" "$rep" >>"$project/$edit_file"
  dl edit "$rep" "$out/dl-edit.log" --tag "$REGISTRY_HOST/bench-dockless:full" --push
  bh edit "$rep" "$out/bh-edit.log" bench-buildah:full

  log "3. warm rebuild, nothing changed"
  dl noop "$rep" "$out/dl-noop.log" --tag "$REGISTRY_HOST/bench-dockless:full" --push
  bh noop "$rep" "$out/bh-noop.log" bench-buildah:full

  log "4. the variant without vllm, after the full image"
  b0=$(reg_blob_bytes)
  dl skip "$rep" "$out/dl-skip.log" --skip vllm --tag "$REGISTRY_HOST/bench-dockless:novllm" --push
  b1=$(reg_blob_bytes)
  bh skip "$rep" "$out/bh-skip.log" bench-buildah:novllm --build-arg SKIP_VLLM_BUILD=1
  b2=$(reg_blob_bytes)
  BYTES[dockless,$rep]=$((b1 - b0))
  BYTES[buildah,$rep]=$((b2 - b1))
  BYTES[dockless-new,$rep]=$(new_layer_bytes bench-dockless:novllm bench-dockless:full)
  BYTES[buildah-new,$rep]=$(new_layer_bytes bench-buildah:novllm bench-buildah:full)

  for img in bench-dockless:full bench-dockless:novllm bench-buildah:full bench-buildah:novllm; do
    SIZE[$img,$rep]=$(image_size "$img")
  done

  log "2b. one source file edited, buildah in NeMo RL's order (venvs after COPY)"
  run_logged "$out/bh-nemo-prep.log" "${BH[@]}" bud --isolation chroot --layers --tls-verify=false \
    --build-context "tools=$run/tools" -f "$root/scripts/bench/build-nemo-order.Containerfile" \
    --build-arg "BASE_IMAGE=$REGISTRY_HOST/debian-py:12" -t "$REGISTRY_HOST/bench-buildah:nemo-order" "$project"
  printf '\n\ndef bench_edit_b_%s():\n    return %s\n' "$rep" "$rep" >>"$project/$edit_file"
  dl edit2 "$rep" "$out/dl-edit2.log" --tag "$REGISTRY_HOST/bench-dockless:full" --push
  BH_FILE=build-nemo-order.Containerfile bh edit2 "$rep" "$out/bh-edit2.log" bench-buildah:nemo-order

  log "6. a fresh machine with the registry's build cache (caches written first, untimed)"
  run_logged "$out/dl-cache-to.log" "$dockless" build "$project" --set "image.base=$REGISTRY_HOST/debian-py:12" \
    --cache-dir "$run/dockless-cache" --uv "$uv_bin" --tag "$REGISTRY_HOST/bench-dockless:full" --push \
    --cache-to "$REGISTRY_HOST/bench-dockless-cache:latest"
  reset_buildah
  run_logged "$out/bh-cache-to.log" "${BH[@]}" bud --isolation chroot --layers --tls-verify=false \
    --build-context "tools=$run/tools" -f "$root/scripts/bench/build.Containerfile" \
    --build-arg "BASE_IMAGE=$REGISTRY_HOST/debian-py:12" -t "$REGISTRY_HOST/bench-buildah:full" \
    --cache-to "$REGISTRY_HOST/bench-buildah-cache" "$project"
  reset_dockless_cache
  dl fresh "$rep" "$out/dl-fresh.log" --tag "$REGISTRY_HOST/bench-dockless:full" --push \
    --cache-from "$REGISTRY_HOST/bench-dockless-cache:latest"
  reset_buildah
  bh fresh "$rep" "$out/bh-fresh.log" bench-buildah:full --cache-from "$REGISTRY_HOST/bench-buildah-cache"
  NOTE[fresh,$rep]=$(report_field "$out/dl-fresh.json" '"%d uv runs, layers by origin: %s" % (d["uv_runs"], ", ".join("%s %d" % (o, sum(1 for l in d["layers"] if l["cache"] == o)) for o in ("hit", "remote", "miss")))')
  NOTE[bh-fresh,$rep]="$(grep -c 'Using cache\|cache from' "$out/bh-fresh.log" || true) steps from a cache, $(grep -c '^Installed ' "$out/bh-fresh.log" || true) uv installs ran"

  # What dockless's reports say (checked, not just printed).
  NOTE[cold,$rep]=$(report_field "$out/dl-cold.json" '"%d uv runs, %d layers" % (d["uv_runs"], len(d["layers"]))')
  NOTE[edit,$rep]=$(report_field "$out/dl-edit.json" '"%d uv runs, misses: %s" % (d["uv_runs"], ", ".join(l["name"] for l in d["layers"] if l["cache"] != "hit") or "none")')
  NOTE[noop,$rep]=$(report_field "$out/dl-noop.json" '"%d uv runs, misses: %s" % (d["uv_runs"], ", ".join(l["name"] for l in d["layers"] if l["cache"] != "hit") or "none")')
  NOTE[skip,$rep]=$(report_field "$out/dl-skip.json" '"%d uv runs, misses: %s, skipped: %s" % (d["uv_runs"], ", ".join(l["name"] for l in d["layers"] if l["cache"] != "hit") or "none", ",".join(d["skipped"]))')
  NOTE[skip-uv,$rep]=$(report_field "$out/dl-skip.json" 'd["uv_runs"]')
  NOTE[bh-skip-cache,$rep]="$(grep -c 'Using cache' "$out/bh-skip.log" || true) steps from cache, $(grep -c '^Installed ' "$out/bh-skip.log" || true) uv installs ran"
done

# ---------------------------------------------------------------- are the images equivalent?
# Untimed: podman (runc, its own scratch storage) runs each image of the last
# run without network: every enabled venv imports its packages, the skipped
# variants lack the vllm venv, and the shipped uv cache installs the
# cache-only extra offline.
declare -A VERIFY
if [[ ${BENCH_VERIFY:-1} == 1 ]] && command -v podman >/dev/null; then
  log "checking the four images with podman"
  PM=(podman --root "$run/podman/root" --runroot "$run/podman/runroot" --runtime runc)
  check_full='set -e; w=/opt/ray_venvs/nemo_bench.models
    $w.generation.vllm.VllmGenerationWorker/bin/python -c "import bench_vllm, bench_xformers, bench_infer_common, bench_torch"'
  check_novllm='set -e; w=/opt/ray_venvs/nemo_bench.models
    test ! -e $w.generation.vllm.VllmGenerationWorker'
  check_common='
    $w.generation.sglang.SglangGenerationWorker/bin/python -c "import bench_sglang, bench_infer_common, bench_torch"
    $w.policy.megatron.MegatronPolicyWorker/bin/python -c "import bench_megatron, bench_transformer_engine"
    ! $w.policy.megatron.MegatronPolicyWorker/bin/python -c "import bench_vllm" 2>/dev/null
    /opt/nemo_bench_venv/bin/python -c "import bench_transformers, bench_pytest"
    cd /opt/nemo-bench && UV_PROJECT_ENVIRONMENT=/tmp/v UV_CACHE_DIR=/root/.cache/uv UV_LINK_MODE=symlink \
      uv sync -q --frozen --offline --no-install-project --no-default-groups --python /usr/bin/python3 --extra automodel
    /tmp/v/bin/python -c "import bench_automodel"'
  for img in bench-dockless:full bench-buildah:full bench-dockless:novllm bench-buildah:novllm; do
    if [[ $img == *:full ]]; then script="$check_full$check_common"; else script="$check_novllm$check_common"; fi
    if "${PM[@]}" run --rm --network none --tls-verify=false "$REGISTRY_HOST/$img" bash -c "$script" \
      >"$run/verify-${img/:/-}.log" 2>&1; then
      VERIFY[$img]=ok
    else
      VERIFY[$img]="FAILED (see $run/verify-${img/:/-}.log)"
      tail -n 20 "$run/verify-${img/:/-}.log" >&2
    fi
  done
  "${PM[@]}" rmi --all --force >/dev/null 2>&1 || true
  unmount_under "$run/podman"
fi

# ---------------------------------------------------------------- the table
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.3f", a / b }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
col() {  # col PHASE TOOL -> the median of the repetitions
  local vals=() r
  for r in $(seq 1 "$repeat"); do vals+=("${T[$1,$2,$r]}"); done
  median "${vals[@]}"
}
bcol() {  # bcol KIND -> the median bytes, as an integer
  local vals=() r
  for r in $(seq 1 "$repeat"); do vals+=("${BYTES[$1,$r]}"); done
  median "${vals[@]}" | awk '{ printf "%d\n", $1 + 0.5 }'
}
goal() {  # goal VALUE OP LIMIT -> "met" / "MISSED"
  awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN { ok = (op == "<=") ? (v <= l) : (v < l); print ok ? "met" : "MISSED" }'
}

pkgs=$(python3 -c 'import json,sys; p = json.load(open(sys.argv[1])); print("%d wheels, %.1f MiB (%.1f MiB, %d files unpacked)" % (len(p), sum(x["size"] for x in p) / 1048576, sum(x["unpacked"] for x in p) / 1048576, sum(x["files"] for x in p)))' "$bench/index/packages.json")

echo
echo "dockless build benchmark: dockless vs buildah bud ($(buildah --version | awk '{print $3}'), --isolation chroot --layers, overlay)"
echo "storage: $([[ ${BENCH_FS:-} == ext4 ]] && echo "each tool on a fresh ext4 (journal) per repetition" || echo "$(findmnt -n -o FSTYPE --target "$bench") at $bench")"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r); load average before: $load_before"
echo "uv: $("$uv_bin" --version); dockless: $("$dockless" --version 2>/dev/null || echo '?')"
echo "project: main venv + 3 worker venvs (vllm, sglang share bench-infer-common; mcore) + cache-only extra automodel"
echo "packages: $pkgs, from a local index"
echo "repetitions: $repeat (seconds and bytes: medians; ratio: the median of the runs' ratios)"
echo "every build ends with its image pushed to a local registry (dockless build --push; buildah bud + push)"
echo
printf '%-44s %12s %12s %10s   %s\n' "phase" "dockless s" "buildah s" "ratio" "goal"
pratio() {  # pratio PHASE -> the median of the per-run ratios dockless/buildah (paired)
  local vals=() r
  for r in $(seq 1 "$repeat"); do vals+=("$(ratio "${T[$1,dockless,$r]}" "${T[$1,buildah,$r]}")"); done
  median "${vals[@]}" | awk '{ printf "%.3f\n", $1 }'
}
row() {  # row LABEL PHASE GOALTEXT
  printf '%-44s %12s %12s %10s   %s\n' "$1" "$(col "$2" dockless)" "$(col "$2" buildah)" "$(pratio "$2")" "$3"
}
row "1. cold build + push" cold "ratio <= 0.5: $(goal "$(pratio cold)" "<=" 0.5)"
row "2. one source file edited" edit "ratio <= 0.05: $(goal "$(pratio edit)" "<=" 0.05)"
row "2b. edited; peer in NeMo RL's order" edit2 "ratio <= 0.05: $(goal "$(pratio edit2)" "<=" 0.05)"
d=$(col noop dockless)
row "3. nothing changed" noop "dockless < 1 s: $(goal "$d" "<" 1)"
d=$(col skip dockless)
skip_uv=0  # the most uv runs any repetition's skip build made
for r in $(seq 1 "$repeat"); do ((NOTE[skip-uv,$r] > skip_uv)) && skip_uv=${NOTE[skip-uv,$r]}; done
row "4. --skip vllm / SKIP_VLLM_BUILD=1" skip "dockless < 1 s: $(goal "$d" "<" 1); uv runs ${skip_uv} (goal 0): $( [[ $skip_uv == 0 ]] && echo met || echo MISSED)"
row "6. fresh machine, registry cache" fresh "(no goal set)"
bd=$(bcol dockless); bb=$(bcol buildah)
printf '%-44s %12s %12s %10s   %s\n' "5. registry growth, skip variant (bytes)" "$bd" "$bb" "$(ratio "$bd" "$bb")" "$(mib "$bd") vs $(mib "$bb")"
bd=$(bcol dockless-new); bb=$(bcol buildah-new)
printf '%-44s %12s %12s %10s   %s\n' "   of which blobs not in the full image" "$bd" "$bb" "$(ratio "$bd" "$bb")" "$(mib "$bd") vs $(mib "$bb")"
echo
echo "buildah's time split (bud + push), median:"
for p in cold edit edit2 noop skip fresh; do
  printf '   %-6s bud %8s s   push %8s s\n' "$p" "$(col "$p" buildah-bud)" "$(col "$p" buildah-push)"
done
echo
echo "images in the registry (compressed bytes incl. config, layers), run 1:"
for img in bench-dockless:full bench-dockless:novllm bench-buildah:full bench-buildah:novllm; do
  read -r sz nl <<<"${SIZE[$img,1]}"
  printf '   %-24s %12s  %-12s %2s layers\n' "$img" "$sz" "$(mib "$sz")" "$nl"
done
echo
echo "dockless's reports, run 1:"
for p in cold edit noop skip fresh; do printf '   %-5s %s\n' "$p" "${NOTE[$p,1]}"; done
echo "buildah's reports, run 1:"
echo "   skip  ${NOTE[bh-skip-cache,1]} (--build-arg SKIP_VLLM_BUILD=1 invalidates the RUN of every uv sync)"
echo "   fresh ${NOTE[bh-fresh,1]}"
if ((repeat > 1)); then
  echo
  echo "every run (seconds; bytes):"
  for r in $(seq 1 "$repeat"); do
    printf '   run %d: cold %s/%s  edit %s/%s  noop %s/%s  skip %s/%s  bytes %s/%s\n' "$r" \
      "${T[cold,dockless,$r]}" "${T[cold,buildah,$r]}" "${T[edit,dockless,$r]}" "${T[edit,buildah,$r]}" \
      "${T[noop,dockless,$r]}" "${T[noop,buildah,$r]}" "${T[skip,dockless,$r]}" "${T[skip,buildah,$r]}" \
      "${BYTES[dockless,$r]}" "${BYTES[buildah,$r]}"
  done
fi
if ((${#VERIFY[@]})); then
  echo
  echo "podman run of each image (every venv imports its packages; uv sync --offline of the cache-only extra):"
  for img in bench-dockless:full bench-buildah:full bench-dockless:novllm bench-buildah:novllm; do
    printf '   %-24s %s\n' "$img" "${VERIFY[$img]}"
  done
fi
[[ ${BENCH_KEEP:-0} == 1 ]] && echo "logs and reports: $run/rep*/"
for v in "${VERIFY[@]}"; do [[ $v == ok ]] || exit 1; done
exit 0
