#!/usr/bin/env bash
# uv.check-lock = true on the hermetic test project: `uv lock --check
# --offline` runs in the base image before anything is planned or made.
# An up-to-date lock builds (first with an empty uv cache, then fully
# cached: the check still runs, "0 uv runs"). A dependency added to
# pyproject.toml without relocking fails the build with exit 1 and one line
# naming uv.lock and the fix, both when uv can resolve the new requirement
# from its cache ("needs to be updated") and when it would need the network;
# no image is written, no layer or environment is made, work/ is left empty.
# An interpreter missing from the base image is named as such.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

build_setup
CACHE=$T/cache

# cl NAME ARGS...: the build arguments of $PROJ with check-lock on, into oci:$T/NAME:app.
cl() {
  local name=$1
  shift
  CL=("$PROJ" --set "image.base=$BASE_REF" --set uv.check-lock=true --output "oci:$T/$name:app"
    --cache-dir "$CACHE" "$@")
}
no_work_left() { check "$1: no work directory left in the cache dir" bash -c '! compgen -G "$1/work/*" >/dev/null' _ "$CACHE"; }
# The cache dir's layers, blobs and environments (not the uv cache, which uv may touch).
cache_listing() { (cd "$CACHE" && find . -path ./uv -prune -o -path ./work -prune -o -print | sort); }

section "an up-to-date lock builds"
cl up1
check_build "check-lock, empty caches" "$T/b-up1" "${CL[@]}"
check_contains "the lock check has its own line" "$(cat "$T/b-up1.err")" "uv.lock checked in "
check "the environments were made (uv runs counted)" grep -Eq '\([1-9][0-9]* uv runs?' "$T/b-up1.err"
# One uv run per environment made: the check is not one.
check_eq "the lock check is not counted as a uv run" \
  "($(grep -c '^environment .* made in ' "$T/b-up1.err") uv runs)" "$(grep -o '([0-9]* uv runs)' "$T/b-up1.err")"
FIRST=$DIGEST

cl up2
check_build "check-lock, every layer cached" "$T/b-up2" "${CL[@]}"
check_contains "a fully cached build still checks the lock" "$(cat "$T/b-up2.err")" "uv.lock checked in "
check "the cached build makes no environment" grep -q '(0 uv runs' "$T/b-up2.err"
check_eq "the cached build gives the same image" "$FIRST" "$DIGEST"
no_work_left "after two builds"
BEFORE=$(cache_listing)

section "a dependency added to pyproject.toml without relocking"
# late_add is in no cache: uv cannot resolve it offline.
sed -i 's/^dependencies = \["common_a>=1.0"\]$/dependencies = ["common_a>=1.0", "late_add"]/' "$PROJ/pyproject.toml"
require "pyproject.toml gained late_add" grep -q '"late_add"\]$' "$PROJ/pyproject.toml"
MARK=$(index_mark)
cl stale1
check_build_fails "stale lock (resolving the new requirement needs the network)" "$T/e-stale1" 1 \
  'uv\.lock' 'stale or cannot be checked offline' 'network' 'run `uv lock` and commit uv\.lock' -- "${CL[@]}"
check_eq "one error line" 1 "$(grep -c '^dockless: error: ' "$T/e-stale1.err")"
check_eq "the check asked the index for nothing" "" "$(tail -n "+$((MARK + 1))" -- "$INDEX_LOG")"
check "no image written" test ! -e "$T/stale1/index.json"
check "no environment made, no layer listed" bash -c '! grep -Eq "^(environment .* made|layer )" "$1"' _ "$T/e-stale1.err"
no_work_left "after the stale build"
check_eq "the cache dir gained nothing (layers, blobs, environments)" "$BEFORE" "$(cache_listing)"

section "relocked, the build passes again"
# Locked with dockless's own uv cache, which then holds the index pages: the
# next stale lock resolves offline and uv names it as needing an update.
UVCACHE=$(compgen -G "$CACHE/uv/*-uv*" | grep -v '\.lock$' | head -n 1)
require "dockless's persistent uv cache exists" test -d "$UVCACHE"
require "uv lock" env -C "$PROJ" XDG_CONFIG_HOME="$T/no-uv-config" UV_CACHE_DIR="$UVCACHE" \
  UV_PYTHON_DOWNLOADS=never "$UV_BIN" lock -q
cl relocked
check_build "check-lock after uv lock" "$T/b-relocked" "${CL[@]}"
check_ne "a new image (the lock changed)" "$FIRST" "$DIGEST"
check_contains "the lock check has its own line" "$(cat "$T/b-relocked.err")" "uv.lock checked in "
BEFORE=$(cache_listing)

section "a dependency uv can resolve from its cache, without relocking"
sed -i 's/"late_add"\]$/"late_add", "dev_tool"]/' "$PROJ/pyproject.toml"
require "pyproject.toml gained dev_tool" grep -q '"dev_tool"\]$' "$PROJ/pyproject.toml"
cl stale2
check_build_fails "stale lock (uv resolves offline)" "$T/e-stale2" 1 \
  'uv\.lock is stale: ' 'needs to be updated' 'run `uv lock` and commit uv\.lock' -- "${CL[@]}"
check_eq "one error line" 1 "$(grep -c '^dockless: error: ' "$T/e-stale2.err")"
check "no image written" test ! -e "$T/stale2/index.json"
check "no environment made, no layer listed" bash -c '! grep -Eq "^(environment .* made|layer )" "$1"' _ "$T/e-stale2.err"
no_work_left "after the second stale build"
check_eq "the cache dir gained nothing (layers, blobs, environments)" "$BEFORE" "$(cache_listing)"

section "the interpreter is not in the base image"
cl nopython --set uv.python=/usr/bin/python9
check_build_fails "uv.python names no file of the base" "$T/e-nopython" 1 \
  'uv\.check-lock' 'No interpreter found' '/usr/bin/python9' 'base image' -- "${CL[@]}"
no_work_left "after the build without an interpreter"
