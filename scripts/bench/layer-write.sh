#!/usr/bin/env bash
# Benchmark: write one layer of a ~1 GiB tree (many small files, some large)
# with dockless and with the usual pipelines, in the same run, and print the
# ratios. Goal (issue 2): dockless gzip <= 0.5 x `tar | gzip -6` and
# <= 1.0 x `tar | pigz -6`; zstd is compared with `tar | zstd -3 -T0`.
# Every tool writes its output to a file on the same disk.
#
# usage: scripts/bench/layer-write.sh [TREE_MIB]   (default 1024)
set -euo pipefail
cd "$(dirname "$0")/../.."

size_mib=${1:-1024}
bench=${DOCKLESS_BENCH_DIR:-/var/tmp/dockless-bench}
tree=$bench/tree-$size_mib
mkdir -p "$bench"
bash scripts/build.sh build
dockless=$PWD/build/src/dockless
command -v pigz >/dev/null && command -v zstd >/dev/null || bash scripts/setup.sh

python3 scripts/bench/make-tree.py "$tree" "$size_mib"
echo "tree: $tree ($(du -sm "$tree" | cut -f1) MiB, $(find "$tree" -type f | wc -l) files), $(nproc) cores"
tar -C "$tree" -cf - . >/dev/null  # warm the page cache

out=$bench/out
declare -A secs bytes
measure() {  # name, command (string, run by bash; writes $out)
  rm -rf "$out"
  local start end
  start=$EPOCHREALTIME
  bash -c "$2"
  end=$EPOCHREALTIME
  secs[$1]=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }')
  bytes[$1]=$(du -sb "$out" | cut -f1)
  printf '%-22s %8s s %12s bytes\n' "$1" "${secs[$1]}" "${bytes[$1]}"
}

measure "tar | gzip -6" "tar -C '$tree' -cf - . | gzip -6 > '$out'"
measure "tar | pigz -6" "tar -C '$tree' -cf - . | pigz -6 -p $(nproc) > '$out'"
measure "tar | zstd -3 -T0" "tar -C '$tree' -cf - . | zstd -q -3 -T0 > '$out'"
measure "dockless gzip" "'$dockless' import '$tree' --output 'oci:$out:bench' >/dev/null"
measure "dockless zstd" "'$dockless' import '$tree' --output 'oci:$out:bench' --compression zstd >/dev/null"
rm -rf "$out"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "dockless gzip / tar|gzip -6   = $(ratio "${secs[dockless gzip]}" "${secs[tar | gzip -6]}")   (goal <= 0.50)"
echo "dockless gzip / tar|pigz -6   = $(ratio "${secs[dockless gzip]}" "${secs[tar | pigz -6]}")   (goal <= 1.00)"
echo "dockless zstd / tar|zstd -3   = $(ratio "${secs[dockless zstd]}" "${secs[tar | zstd -3 -T0]}")"
echo "size: dockless gzip / gzip -6 = $(ratio "${bytes[dockless gzip]}" "${bytes[tar | gzip -6]}")"
