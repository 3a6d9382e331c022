#!/usr/bin/env bash
# Benchmark (issue 12): push, pull and registry-to-registry copy of an image
# with one large incompressible layer, dockless against skopeo, in the same
# run on the same machine. Goal: push ratio dockless/skopeo <= 1.0.
#
#   push   oci:DIR -> registry      dockless copy / skopeo copy
#   pull   registry -> oci:DIR      (a fresh, empty layout each time)
#   copy   registry A -> registry B (both real docker-registry on 127.0.0.1)
#
# Every repetition starts fresh registries (fresh storage), so no blob is
# ever skipped, and dockless gets a fresh --cache-dir. The image (a tar of
# one random file, gzip-wrapped in stored deflate blocks: a real tar+gzip
# layer that neither tool recompresses; skopeo would gzip a plain .tar
# layer on push) is generated once and cached under $DOCKLESS_BENCH_DIR.
#
# usage: bash scripts/bench/push.sh [--size MiB] [--repeat N]   (repo root)
#        defaults: --size 1536 --repeat 3
# env:   DOCKLESS_BENCH_DIR  cache + scratch root (default /var/tmp/dockless-bench-push)
#        DOCKLESS            the dockless binary (default build/src/dockless)
#        BENCH_KEEP=1        keep the scratch directory
set -euo pipefail
export LC_ALL=C

SIZE_MIB=1536
REPEAT=3
while (($#)); do
  case $1 in
    --size) SIZE_MIB=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "push.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $SIZE_MIB =~ ^[0-9]+$ && $SIZE_MIB -gt 0 ]] || { echo "push.sh: --size wants MiB > 0" >&2; exit 2; }
[[ $REPEAT =~ ^[0-9]+$ && $REPEAT -gt 0 ]] || { echo "push.sh: --repeat wants N > 0" >&2; exit 2; }

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
DOCKLESS=${DOCKLESS:-$ROOT/build/src/dockless}
BENCH=${DOCKLESS_BENCH_DIR:-/var/tmp/dockless-bench-push}
[[ -x $DOCKLESS ]] || { echo "push.sh: no dockless at $DOCKLESS (ninja -C build)" >&2; exit 1; }
command -v skopeo >/dev/null || { echo "push.sh: skopeo is missing" >&2; exit 1; }

# ---- the image, made once -------------------------------------------------
IMAGE=$BENCH/image-${SIZE_MIB}m
if [[ ! -f $IMAGE/index.json ]]; then
  echo "making a ${SIZE_MIB} MiB single-layer image in $IMAGE (once)" >&2
  rm -rf -- "$IMAGE.tmp"
  mkdir -p -- "$IMAGE.tmp/src"
  # Keystream of AES-CTR: incompressible, and fast to make. openssl dies of
  # SIGPIPE when head has enough, so the size is checked instead.
  (set +o pipefail
   openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass pass:dockless-bench -in /dev/zero 2>/dev/null |
     head -c $((SIZE_MIB * 1024 * 1024)) >"$IMAGE.tmp/src/payload.bin")
  [[ $(stat -c %s "$IMAGE.tmp/src/payload.bin") == $((SIZE_MIB * 1024 * 1024)) ]] ||
    { echo "push.sh: could not make the payload" >&2; exit 1; }
  tar -C "$IMAGE.tmp/src" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -cf "$IMAGE.tmp/layer.tar" payload.bin
  rm -rf -- "$IMAGE.tmp/src"
  python3 - "$IMAGE.tmp" <<'EOF'
import hashlib, json, os, sys
d = sys.argv[1]
blobs = os.path.join(d, "blobs", "sha256")
os.makedirs(blobs)
def put(data: bytes) -> str:
    h = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, h), "wb") as f:
        f.write(data)
    return h
import zlib
diff, h = hashlib.sha256(), hashlib.sha256()
gz = os.path.join(d, "layer.tar.gz")
z = zlib.compressobj(0, zlib.DEFLATED, 31)  # level 0: stored blocks, gzip header
with open(os.path.join(d, "layer.tar"), "rb") as f, open(gz, "wb") as out:
    while chunk := f.read(1 << 20):
        diff.update(chunk)
        c = z.compress(chunk)
        h.update(c)
        out.write(c)
    c = z.flush()
    h.update(c)
    out.write(c)
os.unlink(os.path.join(d, "layer.tar"))
layer = h.hexdigest()
size = os.path.getsize(gz)
os.rename(gz, os.path.join(blobs, layer))
config = json.dumps({
    "architecture": "amd64", "os": "linux", "config": {},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff.hexdigest()]},
}, sort_keys=True).encode()
cfg = put(config)
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": "sha256:" + cfg, "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:" + layer, "size": size}],
}, sort_keys=True).encode()
man = put(manifest)
with open(os.path.join(d, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
with open(os.path.join(d, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + man, "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)
EOF
  mv -- "$IMAGE.tmp" "$IMAGE"
fi

# ---- scratch, registries ----------------------------------------------------
RUN=$(mktemp -d "$BENCH/run.XXXXXX")
export DOCKLESS_REGISTRY_STATE=$RUN/registries
# shellcheck source=../../tests/registry/registry.sh
source "$ROOT/tests/registry/registry.sh"
cleanup() {
  registry_stop_all >/dev/null 2>&1 || true
  [[ ${BENCH_KEEP:-0} == 1 ]] && { echo "kept $RUN" >&2; return; }
  rm -rf -- "$RUN"
}
trap cleanup EXIT
mkdir -p "$RUN/no-creds/docker"
echo '{"auths": {}}' >"$RUN/no-creds/auth.json"
echo '{"auths": {}}' >"$RUN/no-creds/docker/config.json"
export REGISTRY_AUTH_FILE=$RUN/no-creds/auth.json DOCKER_CONFIG=$RUN/no-creds/docker
unset DOCKLESS_USERNAME DOCKLESS_PASSWORD

N=0
fresh_registry() {  # NAME: starts it, sets HOST_<NAME>
  local out
  registry_stop "$1" >/dev/null 2>&1 || true
  out=$(registry_start plain "$1" 2>"$RUN/start-$1.err") || { cat "$RUN/start-$1.err" >&2; exit 1; }
  eval "$out"
  printf -v "HOST_$1" '%s' "$REGISTRY_HOST"
}

# timed LABEL CMD...: runs CMD (output to a log), appends the seconds to
# $RUN/LABEL.times; a failure stops the benchmark.
timed() {
  local label=$1 t0 t1
  shift
  N=$((N + 1))
  t0=$(date +%s.%N)
  if ! "$@" >"$RUN/$N.$label.log" 2>&1; then
    echo "push.sh: $label failed: $*" >&2
    tail -n 20 "$RUN/$N.$label.log" >&2
    exit 1
  fi
  t1=$(date +%s.%N)
  python3 -c "print('%.3f' % ($t1 - $t0))" >>"$RUN/$label.times"
  echo "  $label $(tail -n 1 "$RUN/$label.times") s" >&2
}

SK=(skopeo --insecure-policy copy -q)
DL() { "$DOCKLESS" copy --cache-dir "$RUN/cache.$N" "$@"; }

sync
for ((i = 1; i <= REPEAT; i++)); do
  echo "repetition $i of $REPEAT" >&2
  # push: fresh registry storage for each tool
  fresh_registry a
  timed push.dockless DL "oci:$IMAGE:latest" "$HOST_a/bench/img:latest"
  fresh_registry a
  timed push.skopeo "${SK[@]}" --dest-tls-verify=false "oci:$IMAGE:latest" "docker://$HOST_a/bench/img:latest"
  # pull: from that registry into an empty layout
  rm -rf -- "$RUN/pull"
  timed pull.dockless DL "$HOST_a/bench/img:latest" "oci:$RUN/pull:latest"
  rm -rf -- "$RUN/pull"
  timed pull.skopeo "${SK[@]}" --src-tls-verify=false "docker://$HOST_a/bench/img:latest" "oci:$RUN/pull:latest"
  rm -rf -- "$RUN/pull"
  # registry a -> a fresh registry b
  fresh_registry b
  timed copy.dockless DL "$HOST_a/bench/img:latest" "$HOST_b/bench/img:latest"
  fresh_registry b
  timed copy.skopeo "${SK[@]}" --src-tls-verify=false --dest-tls-verify=false \
    "docker://$HOST_a/bench/img:latest" "docker://$HOST_b/bench/img:latest"
  rm -rf -- "$RUN"/cache.*
done

median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf '\n%s MiB single layer, %s repetitions (median; each run in brackets)\n' "$SIZE_MIB" "$REPEAT"
printf '| %-6s | %-26s | %-26s | %-5s |\n' "" "dockless s" "skopeo s" "ratio"
printf '|--------|----------------------------|----------------------------|-------|\n'
for op in push pull copy; do
  d=$(median "$RUN/$op.dockless.times")
  s=$(median "$RUN/$op.skopeo.times")
  printf '| %-6s | %-26s | %-26s | %-5s |\n' "$op" \
    "$d [$(paste -sd' ' "$RUN/$op.dockless.times")]" \
    "$s [$(paste -sd' ' "$RUN/$op.skopeo.times")]" \
    "$(python3 -c "print('%.2f' % ($d / $s))")"
done
