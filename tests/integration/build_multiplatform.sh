#!/usr/bin/env bash
# dockless build for linux/amd64 and linux/arm64 in one command (issue 14),
# on an amd64 host, without emulation for the Python environments: the
# hermetic project plus plat_native (manylinux_2_28 x86_64/aarch64 wheels,
# each naming its machine) in every venv, two worker venvs and main, over a
# two-platform base index (the debootstrapped Debian 12 and its arm64 twin).
#
# Checks, with skopeo and the unpacked layers as judges: the pushed tag and
# the oci: output are an index of both platforms (skopeo --override-arch
# arm64 finds the arm64 image); per platform the right plat_native wheel in
# every venv, a uv binary and a python of its own ELF machine; the source
# layer is one blob shared by both; the build ran with binfmt_misc's aarch64
# handler unregistered (so no emulator can have run); a rebuild and a --skip
# variant run no uv for either platform; docker-archive with two platforms
# is refused; a [[step]] for arm64 without emulation fails with one line;
# with qemu-user-static registered, podman runs the arm64 image and every
# venv imports its packages, and an arm64 build with a [[step]] at "base"
# runs the step and its venvs emulated in the arm64 base.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

[[ $(host_arch) == amd64 ]] || { echo "SKIP: this test builds arm64 from an amd64 host"; exit 77; }
[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root (binfmt_misc, the arm64 fixture)"; exit 77; }
UV_WHEELS=${DOCKLESS_FIXTURES:-/var/cache/dockless/fixtures}/uv-wheels
BINFMT=$FIXTURES/binfmt.sh

echo "dockless: $DOCKLESS"
section "fixtures: registry, two-platform base index, index with platform wheels, project"
start_registry plain reg
H=$REGISTRY_HOST
BASE_REF=$H/debian-py:12
require "make_base_index.sh $BASE_REF (linux/amd64 + linux/arm64)" \
  env DOCKLESS="$DOCKLESS" WORK="$T/base-index" bash "$FIXTURES/make_base_index.sh" "$BASE_REF"
INDEX_ARGS=(--platform-wheels --uv-wheels "$UV_WHEELS")
start_index
PROJ=$T/proj
make_test_project "$PROJ"
# plat_native in every environment; re-locked against the index (both wheels in uv.lock).
python3 - "$PROJ/pyproject.toml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
old = 'dependencies = ["common_a>=1.0"]'
assert old in s
open(p, "w").write(s.replace(old, 'dependencies = ["common_a>=1.0", "plat_native"]'))
PY
require "uv lock with plat_native" \
  env -C "$PROJ" XDG_CONFIG_HOME="$T/no-uv-config" UV_CACHE_DIR="$T/host-uv-cache" UV_PYTHON_DOWNLOADS=never \
  "$UV_BIN" lock -q
check "uv.lock has plat_native's x86_64 and aarch64 wheels" \
  bash -c "grep -q 'manylinux_2_28_x86_64' '$PROJ/uv.lock' && grep -q 'manylinux_2_28_aarch64' '$PROJ/uv.lock'"

CACHE=$T/cache
WORKERS=(app.workers.VllmWorker app.workers.SglangWorker)
declare -A VPATH=([app.workers.VllmWorker]=/opt/ray_venvs/app.workers.VllmWorker
  [app.workers.SglangWorker]=/opt/ray_venvs/app.workers.SglangWorker [main]=/opt/app_venv)
# mb NAME DESC ARGS...: the two-platform build of $PROJ (the mcore worker left
# out: two workers and main), report $T/NAME.json.
mb() {
  local name=$1 desc=$2
  shift 2
  check_build "$desc" "$T/b-$name" "$PROJ" --set "image.base=$BASE_REF" --platform linux/amd64,linux/arm64 \
    --skip mcore --report "$T/$name.json" --cache-dir "$CACHE" "$@"
}
# per_platform FILE EXPR: EXPR over each platform's report (p), "ARCH=VALUE ...".
per_platform() {
  report_get "$1" '" ".join(q["platform"].split("/")[1] + "=" + str('"$2"') for q in d["platforms"] for p in [q["image"]])'
}

ORIG_BINFMT=$(bash "$BINFMT" status)
echo "binfmt_misc aarch64 handler at start: $ORIG_BINFMT"
restore_binfmt() { [[ $ORIG_BINFMT == registered ]] && bash "$BINFMT" register || bash "$BINFMT" unregister; }
at_exit restore_binfmt

section "two platforms in one build, no emulator registered"
require "binfmt.sh unregister (no aarch64 handler during the wheel-only build)" bash "$BINFMT" unregister
mb full "build linux/amd64,linux/arm64 (push + oci output)" --tag "$H/app:multi" --push --output "oci:$T/out:app"
INDEX_DIGEST=$DIGEST
check "no aarch64 handler was registered during the build" bash -c "[[ \$(bash '$BINFMT' status) != registered ]]"
echo "  uv runs per platform: $(per_platform "$T/full.json" 'p["uv_runs"]')"
echo "  arm64: environments made on $(report_get "$T/full.json" '[q["image"].get("environments_made_on") for q in d["platforms"]][1]'), python-platform $(report_get "$T/full.json" '[q["image"].get("python_platform") for q in d["platforms"]][1]')"
check "the arm64 venvs were made on linux/amd64 with --python-platform aarch64-manylinux_2_36" \
  test "$(report_get "$T/full.json" '[q["image"].get("python_platform") for q in d["platforms"]][1]')" = "aarch64-manylinux_2_36"

section "the index (skopeo)"
skopeo inspect --tls-verify=false --raw "docker://$H/app:multi" >"$T/index.raw" 2>"$T/index.raw.err" || true
check "the printed digest is the pushed index's" \
  test "sha256:$(sha256sum <"$T/index.raw" | cut -d' ' -f1)" = "$INDEX_DIGEST"
check "the tag names an OCI index of linux/amd64 and linux/arm64" python3 - "$T/index.raw" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["mediaType"] == "application/vnd.oci.image.index.v1+json", d.get("mediaType")
plats = [(m["platform"]["os"], m["platform"]["architecture"]) for m in d["manifests"]]
assert plats == [("linux", "amd64"), ("linux", "arm64")], plats
PY
for arch in amd64 arm64; do
  check "skopeo inspect --override-arch $arch docker://$H/app:multi: Architecture $arch" bash -c \
    "skopeo inspect --tls-verify=false --override-arch $arch docker://$H/app:multi | python3 -c 'import json,sys; a=json.load(sys.stdin)[\"Architecture\"]; sys.exit(a != \"$arch\")'"
  check "skopeo inspect --override-arch $arch oci:$T/out:app: Architecture $arch" bash -c \
    "skopeo inspect --override-arch $arch oci:$T/out:app | python3 -c 'import json,sys; a=json.load(sys.stdin)[\"Architecture\"]; sys.exit(a != \"$arch\")'"
done
check "the source layer is one blob shared by both platforms" python3 - "$T/full.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
src = [[l["digest"] for l in q["image"]["layers"] if l["name"].startswith("source ")] for q in d["platforms"]]
assert len(src) == 2 and len(src[0]) == 1 and src[0] == src[1], src
venv = [[l["digest"] for l in q["image"]["layers"] if l["name"] == "venv main"] for q in d["platforms"]]
assert venv[0] != venv[1], "the main venv should differ between platforms"
PY

section "each platform's files (layers unpacked from oci:$T/out:app)"
# unpack ARCH: every layer of the ARCH image of the layout, in order, into $T/root-ARCH.
cat >"$T/unpack.py" <<'PY'
import json, os, subprocess, sys
lay, tag, arch, dest = sys.argv[1:5]
blob = lambda d: os.path.join(lay, "blobs", "sha256", d.split(":", 1)[1])
top = [m for m in json.load(open(os.path.join(lay, "index.json")))["manifests"]
       if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag][0]
doc = json.load(open(blob(top["digest"])))
if "manifests" in doc:  # an index: that platform's manifest
    doc = json.load(open(blob([m for m in doc["manifests"] if m["platform"]["architecture"] == arch][0]["digest"])))
manifest = doc
os.makedirs(dest, exist_ok=True)
for l in manifest["layers"]:
    subprocess.run(["tar", "-xf", blob(l["digest"]), "-C", dest, "--no-same-owner", "--exclude=dev/*"], check=True)
PY
# A file's ELF machine, its symlinks resolved inside ROOT; "x86_64 file.so" lists plat_native's ARCH files.
cat >"$T/files.py" <<'PY'
import glob, os, sys
root, what = sys.argv[1], sys.argv[2]
def resolve(path, hops=0):
    parts = [p for p in path.split("/") if p]
    cur = ""
    for i, part in enumerate(parts):
        nxt = cur + "/" + part
        full = root + nxt
        if os.path.islink(full):
            t = os.readlink(full)
            base = "" if t.startswith("/") else cur
            return resolve(base + "/" + t + "/" + "/".join(parts[i + 1:]), hops + 1) if hops < 40 else None
        cur = nxt
    return root + cur
if what == "elf":
    f = resolve(sys.argv[3])
    data = open(f, "rb").read(20)
    print({62: "x86_64", 183: "aarch64"}.get(int.from_bytes(data[18:20], "little"), "?") if data[:4] == b"\x7fELF" else "not-elf")
else:  # arch VENV: plat_native/ARCH of the venv
    # site-packages is a real dir; plat_native in it may link into the uv cache (absolute, in the image).
    hits = glob.glob(root + sys.argv[3] + "/lib/python3*/site-packages")
    f = resolve(hits[0][len(root):] + "/plat_native/ARCH") if hits else None
    print(open(f).read().strip() if f and os.path.exists(f) else "missing")
PY
declare -A MACHINE=([amd64]=x86_64 [arm64]=aarch64)
for arch in amd64 arm64; do
  require "unpack the $arch image" python3 "$T/unpack.py" "$T/out" app "$arch" "$T/root-$arch"
  want=${MACHINE[$arch]}
  for v in "${WORKERS[@]}" main; do
    got=$(python3 "$T/files.py" "$T/root-$arch" arch "${VPATH[$v]}")
    check "$arch: venv $v has plat_native for $want (got $got)" test "$got" = "$want"
  done
  got=$(python3 "$T/files.py" "$T/root-$arch" elf /usr/local/bin/uv)
  check "$arch: /usr/local/bin/uv is an ELF for $want (got $got)" test "$got" = "$want"
  got=$(python3 "$T/files.py" "$T/root-$arch" elf /usr/bin/python3)
  check "$arch: /usr/bin/python3 is an ELF for $want (got $got)" test "$got" = "$want"
  got=$(python3 "$T/files.py" "$T/root-$arch" elf "${VPATH[main]}/bin/python")
  check "$arch: the main venv's python resolves to an ELF for $want (got $got)" test "$got" = "$want"
done

section "rebuild and --skip: no uv for either platform"
mb again "rebuild, nothing changed" --tag "$H/app:multi" --push --output "oci:$T/out:app"
check "the rebuild gives the same index digest" test "$DIGEST" = "$INDEX_DIGEST"
check "the rebuild ran uv 0 times for each platform ($(per_platform "$T/again.json" 'p["uv_runs"]'))" \
  test "$(per_platform "$T/again.json" 'p["uv_runs"]')" = "amd64=0 arm64=0"
mb skip "--skip sglang (after the full build)" --skip sglang --tag "$H/app:nosglang" --push
check "--skip ran uv 0 times for each platform ($(per_platform "$T/skip.json" 'p["uv_runs"]'))" \
  test "$(per_platform "$T/skip.json" 'p["uv_runs"]')" = "amd64=0 arm64=0"
check "--skip left the SglangWorker venv out of both platforms" \
  test "$(per_platform "$T/skip.json" 'any(l["name"] == "venv app.workers.SglangWorker" for l in p["layers"])')" = "amd64=False arm64=False"

section "registry cache: every platform's entries"
mb cacheto "--cache-to $H/cache:multi, --sbom (both platforms)" --cache-to "$H/cache:multi" --sbom \
  --output "oci:$T/out-c:app"
for arch in amd64 arm64; do
  "$DOCKLESS" sbom --platform "linux/$arch" "oci:$T/out-c:app" >"$T/sbom-$arch.json" 2>"$T/sbom-$arch.err" || true
  check "linux/$arch's manifest has its own SBOM (plat_native, the base's debs for $arch)" \
    bash -c "grep -q 'pkg:pypi/plat-native@1.0.0' '$T/sbom-$arch.json' && grep -q 'arch=$arch' '$T/sbom-$arch.json'"
done
for arch in amd64 arm64; do
  check "the registry holds linux/$arch's cache ($H/cache:multi-linux-$arch)" \
    skopeo inspect --tls-verify=false --raw "docker://$H/cache:multi-linux-$arch"
done
check_build "a fresh machine: --cache-from $H/cache:multi, another cache dir" "$T/b-fresh" "$PROJ" \
  --set "image.base=$BASE_REF" --platform linux/amd64,linux/arm64 --skip mcore --report "$T/fresh.json" \
  --cache-dir "$T/cache-fresh" --cache-from "$H/cache:multi" --output "oci:$T/out-fresh:app"
check "the fresh build ran uv 0 times for each platform ($(per_platform "$T/fresh.json" 'p["uv_runs"]'))" \
  test "$(per_platform "$T/fresh.json" 'p["uv_runs"]')" = "amd64=0 arm64=0"
check "the fresh build gives the same index digest" test "$DIGEST" = "$INDEX_DIGEST"

section "what is refused"
check_build_fails "docker-archive with two platforms" "$T/b-archive" 2 "docker-archive holds one platform" -- \
  "$PROJ" --set "image.base=$BASE_REF" --platform linux/amd64,linux/arm64 --output "docker-archive:$T/x.tar" \
  --cache-dir "$CACHE"
cp "$PROJ/dockless.toml" "$PROJ/step.toml"
cat >>"$PROJ/step.toml" <<'EOF'

[[step]]
name = "machine"
at = "source"
run = "uname -m > /machine"
EOF
check_build_fails "a step for linux/arm64 without emulation" "$T/b-step" 1 'step "machine"' 'linux/arm64' \
  'qemu-user-static' 'F flag' -- \
  "$PROJ" -f "$PROJ/step.toml" --set "image.base=$BASE_REF" --platform linux/arm64 --skip mcore \
  --output "oci:$T/step:app" --cache-dir "$CACHE"

section "the arm64 image under qemu-user-static"
if bash "$BINFMT" register >"$T/binfmt.out" 2>&1; then
  for v in "${WORKERS[@]}" main; do
    out=$(podman --runtime runc run --rm --network none --tls-verify=false --platform linux/arm64 \
      "$H/app:multi" "${VPATH[$v]}/bin/python" -c \
      'import platform, plat_native, common_a; print(platform.machine(), open(plat_native.__path__[0] + "/ARCH").read().strip())' \
      2>"$T/podman-$v.err")
    echo "$H/app:multi" >>"$T/.podman-images"
    check "podman --platform linux/arm64: venv $v imports its packages (got '$out')" test "$out" = "aarch64 aarch64"
  done
  # A step at "base" on arm64: the step and the venvs over it run in the arm64 base, emulated.
  cp "$PROJ/dockless.toml" "$PROJ/emul.toml"
  printf '\n[[step]]\nname = "machine"\nat = "base"\nrun = "uname -m > /etc/build-machine"\n' >>"$PROJ/emul.toml"
  check_build "linux/arm64 with a [[step]] at base, under qemu-user-static" "$T/b-emul" "$PROJ" -f "$PROJ/emul.toml" \
    --set "image.base=$BASE_REF" --platform linux/arm64 --skip mcore --skip sglang --report "$T/emul.json" \
    --cache-dir "$CACHE" --output "oci:$T/emul:app"
  check "its environments were made emulated ($(report_get "$T/emul.json" 'd.get("environments_made_on")'))" \
    test "$(report_get "$T/emul.json" 'd.get("environments_made_on")')" = "linux/arm64 (emulated)"
  require "unpack the emulated arm64 image" python3 "$T/unpack.py" "$T/emul" app arm64 "$T/root-emul"
  check "the step ran on aarch64 ($(cat "$T/root-emul/etc/build-machine" 2>/dev/null))" \
    test "$(cat "$T/root-emul/etc/build-machine" 2>/dev/null)" = aarch64
  got=$(python3 "$T/files.py" "$T/root-emul" arch "${VPATH[main]}")
  check "the emulated main venv has plat_native for aarch64 (got $got)" test "$got" = aarch64
  got=$(python3 "$T/files.py" "$T/root-emul" elf /usr/local/bin/uv)
  check "the emulated image's uv is an ELF for aarch64 (got $got)" test "$got" = aarch64
else
  echo "NOTE: qemu-user-static cannot be registered here ($(tail -n 1 "$T/binfmt.out")): the arm64 run is not checked"
fi
