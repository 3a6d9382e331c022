#!/usr/bin/env bash
# The main job on its embedded default: install dependencies, build dockless,
# make (or reuse) a debootstrapped Debian 12 + python3 root filesystem, import
# it as an OCI image, inspect it, and run python3 inside it with podman.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/build.sh build
dockless=$PWD/build/src/dockless

work=${DOCKLESS_DEMO_DIR:-/tmp/dockless-demo}
rm -rf "$work"
mkdir -p "$work"

echo "== base root filesystem (debootstrap, cached)"
rootfs=$(bash scripts/fixtures/debian-rootfs.sh)
echo "$rootfs"

echo "== dockless import -> oci:$work/layout:demo"
start=$EPOCHREALTIME
"$dockless" import "$rootfs" --output "oci:$work/layout:demo" \
  --env APP_IN_CONTAINER=1 --workdir /root --cmd '["python3"]' \
  --label org.opencontainers.image.title=dockless-demo
end=$EPOCHREALTIME
awk -v s="$start" -v e="$end" 'BEGIN { printf "imported in %.2f s\n", e - s }'

echo "== dockless inspect (manifest)"
"$dockless" inspect "oci:$work/layout:demo" --format manifest

echo "== skopeo inspect"
skopeo inspect "oci:$work/layout:demo" | head -n 12

echo "== podman run"
podman --runtime runc run --rm "oci:$work/layout:demo" \
  python3 -c 'import platform, os; print("hello from", platform.python_version(), "APP_IN_CONTAINER=" + os.environ["APP_IN_CONTAINER"])'
