#!/usr/bin/env bash
# Installs every build, test and validation dependency of dockless on Debian 12.
# Idempotent: safe to run again; it only installs what is missing.
set -euo pipefail

UV_VERSION="${DOCKLESS_UV_VERSION:-0.13.9}"

if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

packages=(
  build-essential meson ninja-build pkg-config git
  libarchive-dev libssl-dev libcurl4-openssl-dev libzstd-dev zlib1g-dev libisal-dev
  rapidjson-dev libtomlplusplus-dev libcli11-dev catch2
  skopeo umoci oci-image-tool podman runc docker-registry debootstrap apache2-utils python3-yaml
  uidmap fuse-overlayfs pigz zstd python3 python3-pip python3-venv curl ca-certificates buildah
  openssl jq time e2fsprogs
  # multi-platform tests: arm64 emulation when a test registers it (tests/fixtures/binfmt.sh);
  # setup registers no binfmt_misc handler
  qemu-user-static
  # scripts/fuzz.sh: clang 14 and its compiler-rt (libFuzzer, ASan, UBSan runtimes)
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's docker-registry package starts a registry on :5000 as a service;
# the tests start their own registries on loopback, so keep the packaged one off.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
  systemctl disable docker-registry >/dev/null 2>&1 || true
fi
# Only the packaged one (its config): registries the tests started stay up.
pkill -f '^/usr/bin/docker-registry serve /etc/docker/registry/config.yml' 2>/dev/null || true

# uv from PyPI, pinned, in its own venv so it never touches the system python.
uv_venv=/opt/dockless-tools/uv
if [[ ! -x $uv_venv/bin/uv ]] || [[ "$($uv_venv/bin/uv --version 2>/dev/null | awk '{print $2}')" != "$UV_VERSION" ]]; then
  python3 -m venv "$uv_venv"
  "$uv_venv/bin/pip" install -q "uv==$UV_VERSION"
fi
ln -sf "$uv_venv/bin/uv" /usr/local/bin/uv

# The uv wheels of the same version for aarch64 and x86_64: the multi-platform
# tests serve them on a loopback index (an image's uv comes from its
# platform's wheel). Idempotent: downloaded once per version.
uv_wheels=${DOCKLESS_FIXTURES:-/var/cache/dockless/fixtures}/uv-wheels
mkdir -p "$uv_wheels"
for arch in aarch64 x86_64; do
  if ! compgen -G "$uv_wheels/uv-$UV_VERSION-py3-none-*${arch}*.whl" >/dev/null; then
    "$uv_venv/bin/pip" download -q --no-deps --only-binary=:all: --platform "manylinux2014_$arch" \
      "uv==$UV_VERSION" -d "$uv_wheels"
  fi
done

# cyclonedx-python-lib: the build_sbom test validates SBOMs with its JSON schema.
cdx_venv=/opt/dockless-tools/cyclonedx
if ! "$cdx_venv/bin/python" -c 'import cyclonedx.validation.json' 2>/dev/null; then
  python3 -m venv "$cdx_venv"
  "$cdx_venv/bin/pip" install -q 'cyclonedx-python-lib[json-validation]==11.12.0'
fi

# podman on these machines: runc, and no default ulimits (the sandbox refuses them).
conf=/etc/containers/containers.conf
mkdir -p /etc/containers
if ! grep -q '^default_ulimits = \[\]' "$conf" 2>/dev/null; then
  if grep -q '^\[containers\]' "$conf" 2>/dev/null; then
    sed -i '/^\[containers\]/a default_ulimits = []' "$conf"
  else
    printf '[containers]\ndefault_ulimits = []\n' >>"$conf"
  fi
fi

echo "setup.sh: dependencies ready (uv $UV_VERSION)"
