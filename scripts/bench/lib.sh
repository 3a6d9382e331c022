# Shared by the benchmarks that run dockless against buildah in the same run
# (scale.sh, multiplatform.sh): scratch dir and cleanup, buildah's private
# storage, the loopback package index, and a timer that records peak RSS.
# Source it, then call bench_init RUN-NAME.
#
# Sets: root (the checkout), bench, run (this run's scratch dir), dockless,
# uv_bin, bh_root, BH (buildah with private storage); T[phase,tool] (seconds)
# and RSS[phase,tool] (KiB) are filled by `timed`.

log() { printf '== %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

unmount_under() {  # DIR: lazily unmounts whatever a tool left mounted below DIR
  local m
  { findmnt -rn -o TARGET | grep -F "$1/" | sort -r || true; } | while read -r m; do umount -l "$m" || true; done
}

# Nothing is deleted between timed phases. ext4 without a journal (this
# VM's root) passes over inodes freed in the last 60 s (360 s while their
# inode table block is dirty) when it allocates one, so a tool that writes
# 100k files right after an rm -rf of as many spends minutes in the kernel
# (find_inode_bit, recently_deleted): a 4 GiB cold build's uv took 21 s
# after a quiet minute and 115 s right after the previous run's cache was
# deleted. Trees are retired instead (a rename); they are deleted at exit,
# and a run that starts within a minute of such a deletion waits it out.
retire() {  # PATH...: moves each aside, to be deleted at exit
  local p
  mkdir -p "$bench/.retired"
  for p; do [[ -e $p ]] && mv -- "$p" "$(mktemp -d "$bench/.retired/XXXXXX")/"; done
  return 0
}
purge_retired() {  # deletes the retired trees (and PATH...), noting when if that freed many inodes
  local before after
  mkdir -p "$bench"
  before=$(df --output=iused "$bench" | tail -n 1)
  rm -rf -- "$bench/.retired" "$@"
  after=$(df --output=iused "$bench" | tail -n 1)
  if ((before - after > 20000)); then sync; date +%s >"$bench/.inodes-freed-at"; fi
}
settle_inodes() {  # waits until inodes freed by an earlier purge are handed out freely again
  local at wait
  at=$(cat "$bench/.inodes-freed-at" 2>/dev/null || echo 0)
  wait=$((at + 65 - $(date +%s)))
  if ((wait > 0)); then
    log "waiting ${wait} s: ext4 hands out freshly freed inodes slowly (scripts/bench/lib.sh)"
    sleep "$wait"
  fi
}

# BENCH_FS=ext4: each tool's working storage (dockless's --cache-dir,
# buildah's --root/--runroot) is a fresh ext4 file system of its own, with
# mkfs.ext4's defaults (a journal, as on a user's machine), on a sparse file
# under the scratch dir, made again for each repetition. ext4's slow path
# for freshly freed inodes (above) applies only without a journal, and a
# file system per tool keeps one tool's deletions from the other's creates.
fresh_fs() {  # DIR: a new, empty, mounted ext4 at DIR (BENCH_FS=ext4), else just DIR
  local dir=$1 img
  if [[ ${BENCH_FS:-} != ext4 ]]; then mkdir -p "$dir"; return 0; fi
  drop_fs "$dir"
  img=$bench/.fs/$(basename "$dir").img
  mkdir -p "$bench/.fs" "$dir"
  rm -f "$img"
  truncate -s 64G "$img"
  mkfs.ext4 -q -F "$img" >/dev/null
  mount -o loop,noinit_itable "$img" "$dir"  # no zeroing of inode tables behind the runs
}
drop_fs() {  # DIR: unmounts DIR's file system (fresh_fs) and deletes its image
  local dir=$1
  [[ ${BENCH_FS:-} == ext4 ]] || return 0
  unmount_under "$dir"
  if mountpoint -q "$dir"; then umount "$dir" 2>/dev/null || umount -l "$dir"; fi
  rm -f "$bench/.fs/$(basename "$dir").img"
}

reset_buildah() {  # an empty buildah storage, nothing of it left mounted
  if [[ -d $bh_root ]]; then
    "${BH[@]}" rm --all >/dev/null 2>&1 || true
    unmount_under "$bh_root"
  fi
  if [[ ${BENCH_FS:-} == ext4 ]]; then fresh_fs "$bh_root"; elif [[ -d $bh_root ]]; then retire "$bh_root"; fi
}

# Functions a benchmark adds to run at exit, before the scratch dir goes.
BENCH_AT_EXIT=()
bench_cleanup() {
  local rc=$? f
  for f in "${BENCH_AT_EXIT[@]}"; do "$f" || true; done
  [[ -n ${index_pid:-} ]] && kill "$index_pid" 2>/dev/null || true
  bash "$root/tests/registry/registry.sh" stop-all >/dev/null 2>&1 || true
  reset_buildah || true
  unmount_under "$run" || true
  [[ ${BENCH_KEEP:-0} == 1 ]] || retire "$run"
  purge_retired || true
  exit "$rc"
}

bench_init() {  # RUN-NAME: checks, a fresh scratch dir, the exit trap
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  cd "$root"
  bench=${DOCKLESS_BENCH_DIR:-/var/tmp/dockless-bench}
  dockless=${DOCKLESS:-$root/build/src/dockless}
  uv_bin=$(readlink -f "${UV:-/usr/local/bin/uv}")
  run=$bench/$1
  bh_root=$run/buildah
  BH=(buildah --root "$bh_root/root" --runroot "$bh_root/runroot" --storage-driver overlay)
  # Our registries live under $run only: registry.sh stop-all must never see another test's.
  export DOCKLESS_REGISTRY_STATE=$run/registries
  [[ $(id -u) -eq 0 ]] || die "run as root (buildah --isolation chroot and the debootstrap base need it)"
  [[ -x $dockless ]] || die "no dockless at $dockless (run scripts/build.sh build)"
  [[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (run scripts/setup.sh: package time)"
  [[ -z ${BENCH_FS:-} ]] || die "BENCH_FS is for scripts/bench/build.sh only"
  index_pid=
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)  # printed: other work on the machine skews every figure
  unmount_under "$run"
  purge_retired "$run"
  settle_inodes
  mkdir -p "$run"
  declare -gA T RSS
}

start_index() {  # DIR: serves a PEP 503 index on 127.0.0.1; sets index_url
  cat "$1"/files/*.whl >/dev/null  # page cache: neither tool pays for the first read
  python3 tests/fixtures/index_server.py "$1" --port-file "$run/index.port" \
    --log "$run/index.log" --max-lifetime 7200 >/dev/null 2>&1 &
  index_pid=$!
  for _ in $(seq 100); do [[ -s $run/index.port ]] && break; sleep 0.1; done
  index_url=http://127.0.0.1:$(cat "$run/index.port")/simple
  curl -sf "$index_url/" >/dev/null || die "the index server did not start (see $run/index.log)"
}

# timed TOOL PHASE LOG CMD...: runs CMD under /usr/bin/time (peak RSS in KiB),
# its output time-stamped line by line (seconds since the start). The
# stamping filter starts before the clock and its exit is not timed: a
# pipeline's time would include a Python start-up, ~40 ms, which was three
# times a 40 ms rebuild.
timed() {
  local tool=$1 phase=$2 logf=$3 s e rc w filter
  shift 3
  exec {w}> >(python3 -u -c 'import sys, time
t0 = float(sys.stdin.readline())
for line in sys.stdin: sys.stdout.write("%.3f %s" % (time.time() - t0, line))' >"$logf")
  filter=$!
  sleep 0.3
  s=$EPOCHREALTIME
  printf '%s\n' "$s" >&"$w"
  set +e
  /usr/bin/time -f %M -o "${logf%.log}.rss" "$@" >&"$w" 2>&1
  rc=$?
  set -e
  e=$EPOCHREALTIME
  exec {w}>&-
  wait "$filter" 2>/dev/null || true
  if ((rc != 0)); then tail -n 30 "$logf" >&2; die "failed: $*"; fi
  T[$phase,$tool]=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }')
  RSS[$phase,$tool]=$(tail -n 1 "${logf%.log}.rss")
}
