#!/usr/bin/env bash
# Multi-platform benchmark (issue 14): the arm64 image of the benchmark
# project (scripts/bench/make-bench-project.sh, ~260 MB of wheels, five venvs)
# built on this amd64 machine, in the same run:
#   - dockless build --platform linux/arm64: uv runs natively in the base's
#     amd64 twin with --python-platform, no emulator (the qemu-aarch64
#     handler is unregistered while it runs, so none could);
#   - buildah bud --platform linux/arm64 of scripts/bench/build.Containerfile
#     (the same uv commands), its RUN under qemu-user-static (registered with
#     the F flag for buildah only), with the arm64 uv in its build context;
#   - for reference, dockless building linux/amd64,linux/arm64 in one command.
# Each ends with its image pushed to a local registry. Prints the times and
# the ratio dockless/buildah (goal <= 0.1), then (untimed) checks that the
# arm64 images run under emulation: every venv imports its packages.
#
# usage: bash scripts/bench/multiplatform.sh     (from the repo root, as root)
# env:   DOCKLESS_BENCH_DIR, DOCKLESS, UV, BENCH_KEEP as build.sh
#        BENCH_VERIFY=0  skip the podman check
set -euo pipefail
export LC_ALL=C
source "$(dirname "$0")/lib.sh"
bench_init multiplatform-run
command -v buildah >/dev/null || die "buildah is missing (run scripts/setup.sh)"
[[ -x /usr/bin/qemu-aarch64-static ]] || die "qemu-user-static is missing (run scripts/setup.sh)"
binfmt=$root/tests/fixtures/binfmt.sh
binfmt_before=$(bash "$binfmt" status)
[[ $binfmt_before != unavailable ]] || die "binfmt_misc is not available here: buildah cannot emulate arm64"
restore_binfmt() {
  if [[ $binfmt_before == registered ]]; then bash "$binfmt" register; else bash "$binfmt" unregister; fi
}
BENCH_AT_EXIT+=(restore_binfmt)

log "package index (generated once, cached in $bench/index)"
python3 scripts/bench/make-bench-index.py "$bench/index"
start_index "$bench/index"
log "project (locked against $index_url)"
UV=$uv_bin bash scripts/bench/make-bench-project.sh "$run/project" "$index_url" >/dev/null
project=$run/project

log "arm64 uv from the pinned uv's wheel (scripts/setup.sh downloads it)"
wheel=$(ls /var/cache/dockless/fixtures/uv-wheels/uv-*aarch64*.whl 2>/dev/null | head -n 1)
[[ -n $wheel ]] || die "no aarch64 uv wheel in /var/cache/dockless/fixtures/uv-wheels (run scripts/setup.sh)"
mkdir -p "$run/tools-arm64"
python3 - "$wheel" "$run/tools-arm64/uv" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith(".data/scripts/uv"))
    open(sys.argv[2], "wb").write(z.read(name))
PY
chmod 0755 "$run/tools-arm64/uv"

log "two-platform base (amd64 + arm64 Debian 12) in a local registry"
eval "$(bash tests/registry/registry.sh start plain multiplatform)"
DOCKLESS=$dockless WORK=$run/base-work bash tests/fixtures/make_base_index.sh \
  "$REGISTRY_HOST/debian-py:12" --insecure-registry "$REGISTRY_HOST" >/dev/null
base=$REGISTRY_HOST/debian-py:12

dl() {  # dl PHASE TAG PLATFORMS
  timed dockless "$1" "$run/dl-$1.log" "$dockless" build "$project" --set "image.base=$base" \
    --platform "$3" --uv "$uv_bin" --uv "linux/arm64=$run/tools-arm64/uv" \
    --cache-dir "$run/dockless-cache-$1" --insecure-registry "$REGISTRY_HOST" \
    --report "$run/dl-$1.json" --tag "$REGISTRY_HOST/mp-dockless:$2" --push
}

log "1. dockless, linux/arm64, cold, no emulator registered"
bash "$binfmt" unregister
dl arm64 arm64 linux/arm64
log "2. dockless, linux/amd64,linux/arm64 in one command, cold"
dl both both linux/amd64,linux/arm64

log "3. buildah bud --platform linux/arm64 under qemu-user-static, cold"
bash "$binfmt" register
reset_buildah
timed buildah arm64 "$run/bh-arm64.log" "${BH[@]}" bud --isolation chroot --layers --tls-verify=false \
  --platform linux/arm64 --build-context "tools=$run/tools-arm64" -f "$root/scripts/bench/build.Containerfile" \
  --build-arg "BASE_IMAGE=$base" -t "$REGISTRY_HOST/mp-buildah:arm64" "$project"
bud=${T[arm64,buildah]}
timed buildah arm64 "$run/bh-arm64-push.log" "${BH[@]}" push --tls-verify=false "$REGISTRY_HOST/mp-buildah:arm64"
T[arm64,buildah-push]=${T[arm64,buildah]}
T[arm64,buildah]=$(awk -v a="$bud" -v b="${T[arm64,buildah-push]}" 'BEGIN { printf "%.2f", a + b }')

if [[ ${BENCH_VERIFY:-1} == 1 ]]; then
  log "check (untimed): the arm64 images import their packages under emulation"
  for image in mp-dockless:arm64 mp-buildah:arm64; do
    podman run --rm --runtime runc --tls-verify=false --platform linux/arm64 "$REGISTRY_HOST/$image" \
      sh -c 'uname -m; for p in /opt/ray_venvs/*/bin/python /opt/nemo_bench_venv/bin/python; do
               "$p" -c "import sys; assert sys.prefix != sys.base_prefix" || exit 1; done' >"$run/verify-${image//[:\/]/-}.log" 2>&1 ||
      die "$image does not run (see $run/verify-${image//[:\/]/-}.log)"
    grep -qx aarch64 "$run/verify-${image//[:\/]/-}.log" || die "$image did not run as aarch64"
  done
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
cat <<EOF

Multi-platform benchmark: the benchmark project's arm64 image, cold, built and pushed
machine: $(nproc) cores, load before the run: $load_before; buildah $(buildah --version | awk '{print $3}'); $("$uv_bin" --version)

| build (cold, + push)                                  | seconds | peak RSS |
|-------------------------------------------------------|---------|----------|
| dockless --platform linux/arm64 (no emulator)         | ${T[arm64,dockless]} | $((RSS[arm64,dockless] / 1024)) MiB |
| dockless --platform linux/amd64,linux/arm64           | ${T[both,dockless]} | $((RSS[both,dockless] / 1024)) MiB |
| buildah bud --platform linux/arm64 (qemu) + push      | ${T[arm64,buildah]} (push ${T[arm64,buildah-push]}) | $((RSS[arm64,buildah] / 1024)) MiB |

ratio dockless/buildah, arm64: $(ratio "${T[arm64,dockless]}" "${T[arm64,buildah]}")   (goal <= 0.1)
ratio dockless both platforms / buildah arm64 alone: $(ratio "${T[both,dockless]}" "${T[arm64,buildah]}")
EOF
[[ ${BENCH_KEEP:-0} == 1 ]] && echo "logs and reports: $run/"
exit 0
