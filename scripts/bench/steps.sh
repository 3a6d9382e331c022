#!/usr/bin/env bash
# Benchmark (issue 10): a build with an apt step, dockless against buildah,
# in the same run on the same machine, with the same RUN line:
#
#   apt-get update && apt-get install -y --no-install-recommends jq-standin
#   (from a flat apt repository on 127.0.0.1: tests/fixtures/make_apt_repo.py)
#   then the project's source copied to /app.
#
#   1. cold: empty caches (a fresh --cache-dir; fresh buildah storage)   goal ratio <= 1.0
#   2. rebuild after editing one source file, the step cached            goal ratio <= 0.2
#
# Both write an OCI layout. dockless runs the step in its userns sandbox
# (kernel overlay); buildah bud uses --isolation chroot (what works as root
# on these machines) and its layer cache. Prints each time and the ratios.
#
# usage: bash scripts/bench/steps.sh     (from the repo root, as root)
# env:   DOCKLESS (default build/src/dockless), BENCH_REPEAT=N (default 3; medians)
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/../.."
root=$PWD
dockless=${DOCKLESS:-$root/build/src/dockless}
repeat=${BENCH_REPEAT:-3}
[[ $(id -u) -eq 0 ]] || { echo "steps.sh: run as root" >&2; exit 1; }
[[ -x $dockless ]] || { echo "steps.sh: no dockless at $dockless" >&2; exit 1; }
command -v buildah >/dev/null || { echo "steps.sh: buildah is missing (scripts/setup.sh)" >&2; exit 1; }
rootfs=$(bash scripts/fixtures/debian-rootfs.sh)

# Lowercase: buildah and podman name an oci:DIR image after DIR.
work=/var/tmp/dockless-steps-bench-$$
rm -rf "$work" && mkdir -p "$work"
server=""
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null
  buildah --root "$work/buildah" --runroot "$work/buildah-run" rm --all >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

python3 tests/fixtures/make_apt_repo.py "$work/repo" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 "$port" --directory "$work/repo" >/dev/null 2>&1 &
server=$!
sleep 0.5
"$dockless" import "$rootfs" --output "oci:$work/base:py" -q >/dev/null

run_line="echo 'deb [trusted=yes] http://127.0.0.1:$port/ ./' >/etc/apt/sources.list.d/local.list && apt-get -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/local.list -o Dir::Etc::sourceparts=- update && apt-get install -y --no-install-recommends jq-standin"
mkdir -p "$work/proj/src"
for i in $(seq 1 200); do printf 'VALUE = %d\n' "$i" >"$work/proj/src/mod$i.py"; done
cat >"$work/proj/dockless.toml" <<EOF
[image]
base = "oci:$work/base:py"
[uv]
uv-path = ""
[source]
dest = "/app"
[[step]]
name = "apt"
run = "$run_line"
EOF
cat >"$work/proj/Containerfile" <<EOF
FROM oci:$work/base:py
RUN $run_line
COPY . /app
EOF
printf 'Containerfile\n' >"$work/proj/.dockerignore"

now() { date +%s.%N; }
# Prints the seconds a command took; a failed command shows its output and
# leaves "failed" (which the table then refuses).
timed() {
  local t0
  t0=$(now)
  if ! "$@" >"$work/last.log" 2>&1; then
    cat "$work/last.log" >&2
    echo failed
    return
  fi
  python3 -c "print($(now) - $t0)"
}
dl() { timed "$dockless" build "$work/proj" --output "oci:$work/out-d:latest" --cache-dir "$work/dcache" -q; }
bh() {
  timed buildah --root "$work/buildah" --runroot "$work/buildah-run" bud --isolation chroot --layers \
    -f "$work/proj/Containerfile" -t "oci:$work/out-b:latest" "$work/proj"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: >"$work/times"
for r in $(seq 1 "$repeat"); do
  rm -rf "$work/dcache" "$work/buildah" "$work/buildah-run" "$work/out-d" "$work/out-b"
  printf 'VALUE = 0\n' >"$work/proj/src/mod1.py"
  echo "cold dockless $(dl)" >>"$work/times"
  echo "cold buildah $(bh)" >>"$work/times"
  printf 'VALUE = %d\n' "$r" >"$work/proj/src/mod1.py"
  echo "edit dockless $(dl)" >>"$work/times"
  echo "edit buildah $(bh)" >>"$work/times"
done
if grep -q failed "$work/times"; then echo "steps.sh: a build failed (above)" >&2; exit 1; fi
podman --runtime runc run --quiet --rm --network none "oci:$work/out-d:latest" jq-standin >/dev/null ||
  { echo "steps.sh: the dockless image does not run jq-standin" >&2; exit 1; }

printf '%-30s %10s %10s %8s %s\n' case dockless buildah ratio goal
for c in cold edit; do
  d=$(awk -v c=$c '$1==c && $2=="dockless" {print $3}' "$work/times" | median)
  b=$(awk -v c=$c '$1==c && $2=="buildah" {print $3}' "$work/times" | median)
  goal=$([[ $c == cold ]] && echo "<= 1.0" || echo "<= 0.2")
  printf '%-30s %9.3fs %9.3fs %8.3f %s\n' "$c (median of $repeat)" "$d" "$b" "$(python3 -c "print($d / $b)")" "$goal"
done
