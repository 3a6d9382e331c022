#!/usr/bin/env bash
# Runs every test of dockless on this machine: installs dependencies, builds,
# runs the unit and integration suites (meson test), then the unit suite again
# under AddressSanitizer + UndefinedBehaviorSanitizer. Ends with one line
# "tests: N passed, N failed, N skipped" summing every test run.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh || { echo "tests: 0 passed, 1 failed (setup.sh failed)"; exit 1; }

# The real base root filesystem the sandbox and integration tests use
# (debootstrap Debian 12 + python3, made once and cached).
echo "== base root filesystem fixture"
if ! DOCKLESS_TEST_ROOTFS=$(bash scripts/fixtures/debian-rootfs.sh); then
  echo "tests: 0 passed, 1 failed (the debootstrap fixture could not be made)"
  exit 1
fi
export DOCKLESS_TEST_ROOTFS

status=0
run_suite() {  # build-dir, meson test args...
  local dir=$1
  shift
  meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" || status=1
}

echo "== build (debugoptimized, warnings as errors)"
if ! bash scripts/build.sh build -Dwerror=true; then
  echo "tests: 0 passed, 1 failed (build failed)"
  exit 1
fi
echo "== unit and integration tests"
run_suite build

echo "== unit tests under address and undefined-behaviour sanitizers"
if bash scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug; then
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 run_suite build-asan --suite unit
else
  echo "sanitizer build failed"
  status=1
fi

python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        if not line.strip():
            continue
        r = json.loads(line).get("result", "")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
