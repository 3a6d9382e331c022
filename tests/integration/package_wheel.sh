#!/usr/bin/env bash
# scripts/package.sh's wheel and tarball, installed as a user would:
# - package.sh packs the dockless under test ($DOCKLESS) into a manylinux
#   wheel and a .tar.gz; the wheel holds the binary in .data/scripts, the
#   dockless/ package, the vendored libraries, completions and man page;
# - on a copy of the debootstrap rootfs (Debian 12 minbase + python3: no
#   libcurl, libarchive, libisal, toml++; the unpackaged binary cannot even
#   start there), under podman (runc, host network for 127.0.0.1, no root:
#   uid 1000 with a fresh HOME), `uv tool install ./dockless-*.whl` with no
#   index, then `dockless --version`, `python -m dockless --version`, and a
#   build + push + pull of the test project against the registry on
#   127.0.0.1; the pulled image is the pushed one;
#   (--insecure-registry: the registry speaks plain HTTP, and this rootfs
#   has no CA bundle, so the https probe fails before any fallback);
# - with the CA bundle only at Fedora/RHEL's path, a copy to a TLS registry
#   verifies its certificate without --ca-cert;
# - the tarball unpacked in the same rootfs runs bin/dockless --version.
# The build inside runs as it does for any user: --isolation userns (the
# default), with seccomp and AppArmor unconfined so the container lets it
# call unshare(2), as the uid-1000 Kubernetes Job does (examples/kubernetes).
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

command -v podman >/dev/null || fail "podman is not installed (scripts/setup.sh)"
build_setup
H=$REGISTRY_HOST

section "scripts/package.sh --binary \$DOCKLESS"
require "package.sh makes the wheel and the tarball" \
  bash -c 'bash "$1/scripts/package.sh" --out "$2" --binary "$3" >"$2.log" 2>&1 || { cat "$2.log"; exit 1; }' \
  _ "$SOURCE_ROOT" "$T/dist" "$DOCKLESS"
sed 's/^/    /' "$T/dist.log"
WHEEL=$(ls "$T"/dist/dockless-*-py3-none-manylinux_2_*_x86_64.whl)
TARBALL=$(ls "$T"/dist/dockless-*-linux-x86_64.tar.gz)
VERSION=$("$DOCKLESS" --version | awk '{print $2}')
unzip -Z1 "$WHEEL" >"$T/wheel.list"
for f in "dockless-$VERSION.data/scripts/dockless" dockless/__init__.py dockless/__main__.py \
  "dockless-$VERSION.data/data/share/bash-completion/completions/dockless" \
  "dockless-$VERSION.data/data/share/zsh/site-functions/_dockless" \
  "dockless-$VERSION.data/data/share/man/man1/dockless.1" "dockless-$VERSION.dist-info/RECORD"; do
  check_eq "the wheel holds $f" "$f" "$(grep -Fx -- "$f" "$T/wheel.list" || true)"
done
check_eq "the wheel vendors libcurl and libarchive" 2 \
  "$(grep -cE '^dockless-[^/]*\.data/data/lib/dockless/lib(curl|archive)-' "$T/wheel.list" || true)"
echo "    wheel: $(basename "$WHEEL"), $(stat -c %s "$WHEEL") bytes"

section "a rootfs without the build's libraries, a user with a fresh HOME"
ROOT=$T/rootfs
cp -a "$ROOTFS" "$ROOT"
check_eq "the rootfs has no libcurl, libarchive, libisal or toml++" "" \
  "$(ls "$ROOT"/usr/lib/x86_64-linux-gnu | grep -E '^lib(curl|archive|isal|tomlplusplus)' || true)"
echo 'dluser:x:1000:1000::/home/dluser:/bin/sh' >>"$ROOT/etc/passwd"
echo 'dluser:x:1000:' >>"$ROOT/etc/group"
install -d -o 1000 -g 1000 -m 0755 "$ROOT/home/dluser" "$ROOT/work"
install -m 0755 "$(readlink -f "$UV_BIN")" "$ROOT/usr/local/bin/uv"
cp "$WHEEL" "$TARBALL" "$ROOT/work/"
cp "$DOCKLESS" "$ROOT/work/dockless-unpackaged"
cp -a "$PROJ" "$ROOT/work/proj"
chown -R 1000:1000 "$ROOT/work"

# in_rootfs SCRIPT: sh -c SCRIPT as uid 1000 in the rootfs; output in $T/in.out.
in_rootfs() {
  podman run --rm --runtime runc --network host --user 1000:1000 \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --env HOME=/home/dluser --env PATH=/home/dluser/.local/bin:/usr/local/bin:/usr/bin:/bin \
    --env UV_PYTHON_DOWNLOADS=never --env LC_ALL=C.UTF-8 --workdir /work \
    --rootfs "$ROOT" /bin/sh -c "$1" >"$T/in.out" 2>&1
}
check "the unpackaged binary does not start there (its libraries are missing)" \
  bash -c '! podman run --rm --runtime runc --user 1000:1000 --rootfs "$1" /work/dockless-unpackaged --version' _ "$ROOT"

section "uv tool install ./$(basename "$WHEEL") (offline, no index)"
check "uv tool install, dockless --version, python -m dockless --version" in_rootfs "
  set -e
  uv tool install --offline --no-index ./$(basename "$WHEEL")
  test \"\$(id -u)\" = 1000
  echo \"version: \$(dockless --version)\"
  echo \"module: \$(~/.local/share/uv/tools/dockless/bin/python -m dockless --version)\"
  echo \"bin: \$(~/.local/share/uv/tools/dockless/bin/python -c 'import dockless; print(dockless.find_dockless_bin())')\"
  ls ~/.local/share/uv/tools/dockless/share/bash-completion/completions/dockless ~/.local/share/uv/tools/dockless/share/man/man1/dockless.1
"
sed 's/^/    | /' "$T/in.out"
check_contains "dockless --version" "$(cat "$T/in.out")" "version: dockless $VERSION"
check_contains "python -m dockless --version" "$(cat "$T/in.out")" "module: dockless $VERSION"

section "as that user: build + push + pull the test project against $H"
check "dockless build --push, then dockless pull" in_rootfs "
  set -e
  dockless build /work/proj --set image.base=$BASE_REF --tag $H/pkg/app:1 --push --insecure-registry $H \
    --uv /usr/local/bin/uv --progress plain >/work/build.out 2>/work/build.err || { tail -20 /work/build.err; exit 1; }
  dockless pull $H/pkg/app:1 --output oci:/work/pulled:app --insecure-registry $H --progress plain 2>/work/pull.err || { cat /work/pull.err; exit 1; }
  cat /work/build.out
"
sed 's/^/    | /' "$T/in.out"
BUILT=$(tail -n 1 "$ROOT/work/build.out" 2>/dev/null || true)
BUILT=${BUILT:-no digest}
check_contains "the build printed a manifest digest" "$BUILT" "sha256:"
check_eq "the registry serves that digest (skopeo)" "$BUILT" \
  "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$H/pkg/app:1" 2>&1 || true)"
check_eq "the pulled layout holds the same manifest" "$BUILT" \
  "$(layout_manifest_digest "$ROOT/work/pulled" app 2>&1 || true)"

section "TLS with the CA bundle where Fedora/RHEL keep it (no Debian bundle)"
# The vendored libcurl only knows its build host's (Debian's) bundle path.
start_registry tls-basic tls
TLSH=$REGISTRY_HOST
install -D -m 0644 "$REGISTRY_CA" "$ROOT/etc/pki/tls/certs/ca-bundle.crt"
check_eq "the rootfs has no /etc/ssl/certs/ca-certificates.crt" "absent" \
  "$([[ -e $ROOT/etc/ssl/certs/ca-certificates.crt ]] && echo present || echo absent)"
check "dockless copy oci:/work/pulled:app to https://$TLSH without --ca-cert" in_rootfs "
  dockless copy oci:/work/pulled:app $TLSH/pkg/app:1 --creds $REGISTRY_USER:$REGISTRY_PASS --progress plain
"
sed 's/^/    | /' "$T/in.out" | tail -n 5
check_eq "the TLS registry serves the same digest (skopeo)" "$BUILT" \
  "$(skopeo inspect --cert-dir "$REGISTRY_CERT_DIR" --creds "$REGISTRY_USER:$REGISTRY_PASS" \
      --format '{{.Digest}}' "docker://$TLSH/pkg/app:1" 2>&1 || true)"

section "the tarball, unpacked in the same rootfs"
check "tar xzf, bin/dockless --version" in_rootfs "
  set -e
  mkdir /work/tar && tar -xzf ./$(basename "$TARBALL") -C /work/tar --strip-components=1
  /work/tar/bin/dockless --version
  ls /work/tar/share/man/man1/dockless.1 /work/tar/share/zsh/site-functions/_dockless
"
sed 's/^/    | /' "$T/in.out"
check_contains "the tarball's dockless runs" "$(cat "$T/in.out")" "dockless $VERSION"
