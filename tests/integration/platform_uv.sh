#!/usr/bin/env bash
# A target platform's uv (issue 14): the real uv wheels of the pinned version
# (scripts/setup.sh puts them in the fixtures cache) on a PEP 503 index on
# 127.0.0.1; fetch_platform_uv (through tests/platform_uv_probe, the real
# libcurl client) takes the arm64 one, checks its sha256, and unpacks a uv
# that is an aarch64 ELF, byte for byte the wheel's; amd64 gets the x86-64
# one; a tampered wheel leaves nothing; --offline uses only the cache.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/build_lib.sh"

PROBE=${PLATFORM_UV_PROBE:-$(dirname "$DOCKLESS")/../tests/platform_uv_probe}
[[ -x $PROBE ]] || fail "no platform_uv_probe at $PROBE (meson builds it)"
UV_WHEELS=${DOCKLESS_FIXTURES:-/var/cache/dockless/fixtures}/uv-wheels
arm_whl=$(ls "$UV_WHEELS"/uv-*aarch64*.whl 2>/dev/null | head -n1 || true)
x86_whl=$(ls "$UV_WHEELS"/uv-*x86_64*.whl 2>/dev/null | head -n1 || true)
[[ -n $arm_whl && -n $x86_whl ]] || fail "no uv wheels in $UV_WHEELS (run scripts/setup.sh)"
VERSION=$(basename "$arm_whl" | cut -d- -f2)

INDEX_ARGS=(--uv-wheels "$UV_WHEELS")
start_index

# e_machine of an ELF file (62 x86-64, 183 aarch64), "none" otherwise.
elf_machine() {
  [[ "$(head -c 4 -- "$1" | od -An -c | tr -d ' ')" == '177ELF' ]] || { echo none; return; }
  od -An -tu2 -j18 -N2 -- "$1" | tr -d ' '
}
# The uv binary inside a wheel, extracted by python's zipfile (an independent reader).
wheel_uv() { python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); n = [x for x in z.namelist() if x.endswith(".data/scripts/uv")][0]; sys.stdout.buffer.write(z.read(n))' "$1"; }

CACHE=$T/cache
mark=$(index_mark)
out=$("$PROBE" linux/arm64 "$VERSION" "$CACHE" "$INDEX_URL" 2>&1) || fail "fetch linux/arm64" "$out"
bin=$(sed -n 's/^binary=//p' <<<"$out")
check_eq "arm64 uv at its cache path" "$CACHE/uv-platforms/$VERSION-linux-arm64/uv" "$bin"
check_eq "arm64 uv is an aarch64 ELF" 183 "$(elf_machine "$bin")"
check_eq "arm64 uv is the wheel's, byte for byte" "$(wheel_uv "$arm_whl" | sha256sum | cut -d' ' -f1)" \
  "$(sha256sum <"$bin" | cut -d' ' -f1)"
check_eq "its sha is the binary's" "sha=sha256:$(sha256sum <"$bin" | cut -d' ' -f1)" "$(grep '^sha=' <<<"$out")"
check_eq "arm64 uv is executable (0755)" 755 "$(stat -c %a "$bin")"
check_eq "the aarch64 wheel was downloaded once, nothing else" "/files/$(basename "$arm_whl")" \
  "$(index_wheel_paths_since "$mark")"

out=$("$PROBE" linux/amd64 "$VERSION" "$CACHE" "$INDEX_URL" 2>&1) || fail "fetch linux/amd64" "$out"
bin=$(sed -n 's/^binary=//p' <<<"$out")
check_eq "amd64 uv is an x86-64 ELF" 62 "$(elf_machine "$bin")"
check "amd64 uv runs here and says its version" bash -c "'$bin' --version | grep -qx 'uv $VERSION.*'"

# Cached: a second fetch, even offline, downloads nothing.
mark=$(index_mark)
check "offline: the cached arm64 uv" "$PROBE" linux/arm64 "$VERSION" "$CACHE" --offline "$INDEX_URL"
check "online again: the cached arm64 uv" "$PROBE" linux/arm64 "$VERSION" "$CACHE" "$INDEX_URL"
check_eq "no request for a cached uv" "" "$(tail -n "+$((mark + 1))" "$INDEX_LOG")"
rc=0
out=$("$PROBE" linux/arm64 "$VERSION" "$T/empty-cache" --offline "$INDEX_URL" 2>&1) || rc=$?
check_eq "offline with nothing cached fails" 1 "$rc"
check_contains "... with one clear line" "$out" "--offline and uv $VERSION for it is not in"

# A tampered wheel (other bytes, the index's hash unchanged): refused, nothing left.
cp -- "$x86_whl" "$INDEX_DIR/files/$(basename "$arm_whl")"
rc=0
out=$("$PROBE" linux/arm64 "$VERSION" "$T/cache2" "$INDEX_URL" 2>&1) || rc=$?
check_eq "a wheel whose sha256 differs from the index's is refused" 1 "$rc"
check_contains "... naming the mismatch" "$out" \
  "has sha256 $(sha256sum <"$x86_whl" | cut -d' ' -f1), $INDEX_URL says $(sha256sum <"$arm_whl" | cut -d' ' -f1)"
check_eq "... and nothing is left in the cache" "" "$(find "$T/cache2" -type f 2>/dev/null)"

# No wheel for the architecture.
rc=0
out=$("$PROBE" linux/arm64 0.0.1 "$T/cache3" "$INDEX_URL" 2>&1) || rc=$?
check_contains "no wheel of that version: one line naming the index" "$out" "no uv 0.0.1 wheel for aarch64"
