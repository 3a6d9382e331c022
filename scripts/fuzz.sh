#!/usr/bin/env bash
# Fuzzes every parser: builds the -Dfuzz=true configuration (clang, libFuzzer,
# ASan + UBSan) in build-fuzz/ when needed, then runs each target in turn for
# SECONDS (default 60), one job, starting from its corpus in
# tests/fuzz/corpus/<target>/. New coverage goes to build-fuzz/corpus/<target>/
# (the seed corpus stays small); crashes to build-fuzz/crashes/<target>/.
# Prints per target the executions and any crash file; exits 1 on a crash.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# FUZZ_RUNS=N also stops each target after N executions (whichever comes first).
set -euo pipefail

seconds=${1:-60}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz
targets=("$@")
((${#targets[@]})) || targets=(reference auth_challenge image_json ignore_rules build_spec docker_archive unpacker uv_pointer)

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ missing (scripts/setup.sh installs it)" >&2; exit 1; }
if [[ ! -f $build/build.ninja ]]; then
  CXX=clang++ meson setup "$build" "$root" -Dfuzz=true -Dtests=false >"$build.setup.log" 2>&1 ||
    { cat "$build.setup.log" >&2; exit 1; }
fi
ninja -C "$build" -j"${FUZZ_BUILD_JOBS:-2}" $(printf 'tests/fuzz/fuzz_%s ' "${targets[@]}") >/dev/null

# A leak is reported at exit of the process only; libFuzzer's -detect_leaks
# stays on. Crash inputs keep their libFuzzer names (crash-<sha1>).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# ignore_rules: inputs of at most 512 bytes (some 30 lines, or one line
# of 500). Longer ones only repeat "*/" segments: each costs tokens x path
# length matches, so the fuzzer's speed fell from ~1,500 to ~70 exec/s as
# they grew to 1,200 bytes, finding nothing new (coverage had stopped).
max_len_of() { [[ $1 == ignore_rules ]] && echo "-max_len=512"; true; }
crashed=0
printf '%-16s %12s  %s\n' target executions result
for t in "${targets[@]}"; do
  work=$build/corpus/$t
  crashes=$build/crashes/$t
  mkdir -p "$work" "$crashes"
  log=$build/fuzz-$t.log
  before=$(ls -1 "$crashes")
  set +e
  "$build/tests/fuzz/fuzz_$t" "$work" "$root/tests/fuzz/corpus/$t" -max_total_time="$seconds" \
    -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 $(max_len_of "$t") ${FUZZ_RUNS:+-runs=$FUZZ_RUNS} \
    -artifact_prefix="$crashes/" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(awk '/^stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
  # Only this run's crash files (earlier ones stay until moved to the corpus).
  found=$(comm -13 <(echo "$before") <(ls -1 "$crashes") | grep . | head -5 | sed "s|^|$crashes/|" | tr '\n' ' ' || true)
  if ((rc != 0)) || [[ -n $found ]]; then
    crashed=1
    printf '%-16s %12s  CRASH (exit %d) %s log %s\n' "$t" "${execs:-?}" "$rc" "$found" "$log"
  else
    printf '%-16s %12s  ok\n' "$t" "${execs:-?}"
  fi
done
exit "$crashed"
