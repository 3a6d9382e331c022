#!/usr/bin/env bash
# examples/nemo-rl (NeMo RL's Dockerfile, stage by stage) built as a user
# would, with everything served on 127.0.0.1: the debootstrap Debian 12 base
# in a local registry, the stand-in wheels in a local index, a flat apt
# repository (jq-standin for jq & co., through the example's APT_SOURCES and
# APT_PACKAGES args), and a python-build-standalone-shaped CPython 3.11.2
# with its downloads JSON (tests/fixtures/make_python_dist.py, reached through
# UV_PYTHON_DOWNLOADS_JSON_URL). The example is copied, given the index and
# locked; the CMake step is left out (--arg CMAKE_VERSION=: it downloads from
# github.com). Pushed, pulled and run in podman:
#   - the apt step's package runs; no .deb or package list in the image;
#   - every venv's python is 3.11 from /opt/python (uv-managed), not
#     /usr/bin/python3, and imports its backend;
#   - labels and env carry the --arg values; the aws-efa ld.so.conf file;
#   - the custom setup from --context custom-setup=DIR ran (apptainer
#     stand-in), and with --arg CUSTOM_SETUP_FNAME= it did not;
#   - the fingerprint step at "source" ran with the managed python;
#   - a rebuild runs no uv and no step; --skip vllm runs no uv, drops the
#     vllm venv and keeps the others working.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

EXAMPLE=$SOURCE_ROOT/examples/nemo-rl
CACHE=$T/cache
PKG=nemo_rl_example.models
declare -A WORKER_PATH=(
  [vllm]=/opt/ray_venvs/$PKG.generation.vllm.VllmGenerationWorker
  [sglang]=/opt/ray_venvs/$PKG.generation.sglang.SglangGenerationWorker
  [mcore]=/opt/ray_venvs/$PKG.policy.megatron.MegatronPolicyWorker
)
declare -A WORKER_MODULE=([vllm]=only_vllm [sglang]=only_sglang [mcore]=only_mcore)
MAIN_VENV=/opt/nemo_rl_venv
BUILD_ID=build-4242
COMMIT=abc1234def

# ---------------------------------------------------------------- fixtures
echo "dockless: $DOCKLESS"
echo "uv: $("$UV_BIN" --version)"
echo "scratch: $T"
section "fixtures: registry, base, index, apt repository, python-build-standalone stand-in"
start_registry plain reg
push_base
start_index
H=$REGISTRY_HOST

# One static server for the apt repository (WWW/repo) and the Python archive (WWW/python).
WWW=$T/www
mkdir -p "$WWW"
for attempt in 1 2 3 4 5; do
  WWW_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 -m http.server --bind 127.0.0.1 --directory "$WWW" "$WWW_PORT" >"$T/www.out" 2>"$T/www.log" &
  WWW_PID=$!
  for ((i = 0; i < 50; i++)); do
    curl -fsS -o /dev/null "http://127.0.0.1:$WWW_PORT/" 2>/dev/null && break
    kill -0 "$WWW_PID" 2>/dev/null || break
    sleep 0.1
  done
  if curl -fsS -o /dev/null "http://127.0.0.1:$WWW_PORT/" 2>/dev/null; then
    at_exit kill "$WWW_PID"
    break
  fi
  kill "$WWW_PID" 2>/dev/null || true
  WWW_PID=
done
[[ -n $WWW_PID ]] || fail "python3 -m http.server did not start" "$(tail -n 5 "$T/www.log")"
WWW_URL=http://127.0.0.1:$WWW_PORT
JQ_LINE=$(python3 "$FIXTURES/make_apt_repo.py" "$WWW/repo") || fail "make_apt_repo.py $WWW/repo failed"
python3 "$FIXTURES/make_python_dist.py" "$ROOTFS" "$WWW/python" --url-base "$WWW_URL/python/" >"$T/pydist.out" ||
  fail "make_python_dist.py $ROOTFS $WWW/python failed"
PY_ARCHIVE=$(head -n 1 "$T/pydist.out")
require "make_python_dist.py wrote the archive and downloads.json" test -s "$WWW/python/$PY_ARCHIVE" -a -s "$WWW/python/downloads.json"
echo "www: $WWW_URL (log $T/www.log)"

# www_gets: the paths fetched from the static server, sorted, unique.
www_gets() { sed -nE 's|.*"GET /([^ ]+) HTTP.*" 200 .*|\1|p' "$T/www.log" | sed 's#/\./#/#g' | sort -u | paste -sd' '; }

# The project: the example as it is, plus the local index, locked against it.
PROJ=$T/proj
cp -a "$EXAMPLE" "$PROJ"
cat >>"$PROJ/pyproject.toml" <<EOF

[[tool.uv.index]]
name = "standins"
url = "$INDEX_URL"
default = true
EOF
require "uv lock (the example against the local index)" \
  env -C "$PROJ" XDG_CONFIG_HOME="$T/no-uv-config" UV_CACHE_DIR="$T/host-uv-cache" UV_PYTHON_DOWNLOADS=never "$UV_BIN" lock -q
export UV_PYTHON_DOWNLOADS_JSON_URL=$WWW_URL/python/downloads.json
unset UV_PYTHON_INSTALL_MIRROR UV_PYTHON_INSTALL_DIR

CTX=(--context "custom-setup=$PROJ/custom-setup")
ARGS=(--set "image.base=$BASE_REF" --cache-dir "$CACHE"
  --arg "APT_SOURCES=deb [trusted=yes] $WWW_URL/repo/ ./" --arg APT_PACKAGES=jq-standin --arg CMAKE_VERSION=
  --arg "NVIDIA_BUILD_ID=$BUILD_ID" --arg "NEMO_RL_COMMIT=$COMMIT")

# step_runs ERRFILE: N of "(… N step runs)" on the build's last stderr line.
# layer_digest REPORT NAME: the digest of the layer named NAME in a build report.
layer_digest() { report_get "$1" "[l[\"digest\"] for l in d[\"layers\"] if l[\"name\"] == \"$2\"][0]"; }

step_runs() { grep -v '^[[:space:]]*$' "$1" | tail -n 1 | sed -nE 's/.*[ (]([0-9]+) step runs?\).*/\1/p'; }

# The probe podman runs in the image: "KEY VALUE" lines.
PROBE=$(
  cat <<'SH'
echo "jq $(jq-standin 2>&1)"
for v in $VENVS; do
  echo "py $v $("$v/bin/python" -c 'import os, sys; print(sys.version.split()[0], sys.base_prefix, os.path.realpath(sys._base_executable))' 2>&1 | tr '\n' ' ')"
done
for m in $IMPORTS; do
  v=${m%%=*}; mod=${m#*=}
  echo "import $v $("$v/bin/python" -c "import $mod; print($mod.VALUE)" 2>&1 | tail -n 1)"
done
echo "path_python $(command -v python) $(python -c 'import sys; print(sys.version.split()[0])' 2>&1)"
echo "usr_python $(/usr/bin/python3 -c 'import sys; print(sys.version.split()[0])' 2>&1)"
echo "efa $(cat /etc/ld.so.conf.d/aws-efa.conf 2>&1 | paste -sd,)"
echo "custom $(cat /opt/custom-setup.done 2>/dev/null || echo none)"
echo "apptainer $(apptainer 2>/dev/null || echo none) $(singularity 2>/dev/null || echo none)"
echo "fingerprint $(head -n 1 /opt/nemo_rl_container_fingerprint 2>&1)"
echo "debs $(find /var/cache/apt -name '*.deb' | wc -l)"
echo "lists $(find /var/lib/apt/lists -name '*Packages*' | wc -l)"
echo "env $NVIDIA_BUILD_ID $NEMO_RL_COMMIT $UV_PYTHON_INSTALL_DIR"
echo "managed $(for d in /opt/python/cpython-3.11*-linux-x86_64-gnu; do [ -x "$d/bin/python3.11" ] && printf '%s ' "$d"; done)"
SH
)
probe_val() { sed -n "s/^$2 //p" "$1" | head -n 1; }
probe_venv() { sed -n "s|^$2 $3 ||p" "$1" | head -n 1 | sed 's/ $//'; }

# run_probe REF OUT VENVS...: pulls REF with podman and runs the probe.
run_probe() {
  local ref=$1 out=$2 imports=() v
  shift 2
  for v in "$@"; do
    for k in "${!WORKER_PATH[@]}"; do
      [[ ${WORKER_PATH[$k]} == "$v" ]] && imports+=("$v=${WORKER_MODULE[$k]}")
    done
  done
  imports+=("$MAIN_VENV=dev_tool")
  printf '%s\n' "$ref" >>"$T/.podman-images"
  if podman pull -q --tls-verify=false "$ref" >/dev/null 2>"$out.err" &&
    podman --runtime runc run --rm --network none -e "VENVS=$*" -e "IMPORTS=${imports[*]}" "$ref" \
      bash -c "$PROBE" >"$out" 2>>"$out.err"; then
    pass "podman pull + run $ref"
  else
    failed "podman pull + run $ref" "$(tail -n 10 "$out.err")"
  fi
  sed 's/^/    /' "$out"
}

# check_python_venvs LABEL OUT VENVS...: each venv runs 3.11 from /opt/python.
check_python_venvs() {
  local l=$1 f=$2 v got
  shift 2
  for v in "$@"; do
    got=$(probe_venv "$f" py "$v")
    if [[ $got =~ ^3\.11\.[0-9]+\ /opt/python/cpython-3\.11[^\ ]*\ /opt/python/ ]]; then
      pass "$l: $v/bin/python is 3.11 from /opt/python ($got)"
    else
      failed "$l: $v/bin/python is 3.11 from /opt/python (uv-managed, not /usr/bin/python3)" "got: $got"
    fi
  done
}

# ---------------------------------------------------------------- the build
section "dockless build examples/nemo-rl (uv.python = \"3.11\", steps, --context, --arg) --push"
ALL_VENVS=("${WORKER_PATH[vllm]}" "${WORKER_PATH[sglang]}" "${WORKER_PATH[mcore]}" "$MAIN_VENV")
check_build "dockless build $PROJ --tag $H/nemo-rl:latest --push" "$T/b1" "$PROJ" "${ARGS[@]}" "${CTX[@]}" \
  --tag "$H/nemo-rl:latest" --push --report "$T/r1.json"
((CHECK_OK)) || fail "the build failed; nothing else can be judged"
report_layers "$T/r1.json" | sed 's/^/    /'
check_eq "the apt step and uv python install fetched from the local server (and only that)" \
  "python/$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$PY_ARCHIVE") python/downloads.json repo/Packages.gz repo/Release repo/jq-standin_1.0_all.deb" \
  "$(www_gets)"
check_eq "steps that ran: system packages, custom setup, aws-efa, fingerprint (CMake left out)" 4 "$(step_runs "$T/b1.err")"
check_python "layer order: apt step, uv, the managed Python, uv cache, venvs, custom setup, aws-efa, source, fingerprint" "$T/r1.json" '
import re
names = [l["name"] for l in d["layers"]]
assert names[0] == "step system packages" and re.match(r"uv \d", names[1]) and re.match(r"python 3\.11", names[2]), names[:3]
assert names[-4:] == ["step custom setup", "step aws-efa ld.so.conf", "source /opt/nemo-rl", "step container fingerprint"], names[-4:]
mid = names[3:-4]
assert all(n.startswith("uv cache") for n in mid[:-4]) and all(n.startswith("venv ") for n in mid[-4:]), mid'

section "podman: the image as a user sees it"
run_probe "$H/nemo-rl:latest" "$T/p1.txt" "${ALL_VENVS[@]}"
P=$T/p1.txt
check_eq "jq-standin (the apt step's package) runs" "$JQ_LINE" "$(probe_val "$P" jq)"
check_python_venvs "full" "$P" "${ALL_VENVS[@]}"
for k in vllm sglang mcore; do
  check_eq "full: ${WORKER_PATH[$k]} imports ${WORKER_MODULE[$k]}" "${WORKER_MODULE[$k]}" "$(probe_venv "$P" import "${WORKER_PATH[$k]}")"
done
check_eq "full: the main venv imports dev_tool (group dev)" dev_tool "$(probe_venv "$P" import "$MAIN_VENV")"
check_contains "full: python on PATH is the main venv's, 3.11" "$(probe_val "$P" path_python)" "$MAIN_VENV/bin/python 3.11."
check_eq "full: the base's /usr/bin/python3 is still Debian's 3.11.2" 3.11.2 "$(probe_val "$P" usr_python)"
check_eq "full: /etc/ld.so.conf.d/aws-efa.conf lists the EFA lib dirs" "/opt/amazon/ofi-nccl/lib,/opt/amazon/efa/lib" "$(probe_val "$P" efa)"
check_eq "full: the custom setup ran (from --context custom-setup)" "custom setup: install_tools.sh" "$(probe_val "$P" custom)"
check_eq "full: the custom setup's apptainer and singularity run" "apptainer version 0.0-standin apptainer version 0.0-standin" "$(probe_val "$P" apptainer)"
check_contains "full: the fingerprint step (at source) ran: python 3.11" "$(probe_val "$P" fingerprint)" "python 3.11"
check_contains "full: ... the main venv's, whose base prefix is under /opt/python (the managed Python is there for steps)" "$(probe_val "$P" fingerprint)" " /opt/python/"
check_eq "full: no .deb under /var/cache/apt (cache mount)" 0 "$(probe_val "$P" debs)"
check_eq "full: no package lists under /var/lib/apt/lists (cache mount)" 0 "$(probe_val "$P" lists)"
check_eq "full: env NVIDIA_BUILD_ID, NEMO_RL_COMMIT from --arg; UV_PYTHON_INSTALL_DIR" "$BUILD_ID $COMMIT /opt/python" "$(probe_val "$P" env)"
check_contains "full: the managed Python is installed under /opt/python (cpython-3.11.2-linux-x86_64-gnu, bin/python3.11)" \
  "$(probe_val "$P" managed)" "/opt/python/cpython-3.11.2-linux-x86_64-gnu"

section "labels from args"
skopeo inspect --tls-verify=false --config "docker://$H/nemo-rl:latest" >"$T/c1.json" 2>"$T/c1.err" ||
  failed "skopeo inspect --config docker://$H/nemo-rl:latest" "$(cat "$T/c1.err")"
LBL_BUILD=$BUILD_ID LBL_COMMIT=$COMMIT check_python "labels: com.nvidia.build.id, com.nvidia.nemo-rl.commit from --arg; build.ref the default" "$T/c1.json" '
import os
labels = d["config"].get("Labels") or {}
want = {"com.nvidia.build.id": os.environ["LBL_BUILD"], "com.nvidia.nemo-rl.commit": os.environ["LBL_COMMIT"],
        "com.nvidia.build.ref": "<unknown>"}
bad = {k: labels.get(k) for k in want if labels.get(k) != want[k]}
assert not bad, "labels %r, expected %r" % (bad, want)'

# ---------------------------------------------------------------- rebuilds
section "rebuild: nothing changed"
check_build "the same build again" "$T/b2" "$PROJ" "${ARGS[@]}" "${CTX[@]}" --output "oci:$T/again:latest" --report "$T/r2.json"
check_eq "nothing changed: uv_runs is 0" 0 "$(report_get "$T/r2.json" 'd["uv_runs"]')"
check_eq "nothing changed: no step runs" 0 "$(step_runs "$T/b2.err")"

section "--arg CUSTOM_SETUP_FNAME= leaves the custom setup out (and needs no --context)"
check_build "build with --arg CUSTOM_SETUP_FNAME= and no --context custom-setup" "$T/b3" "$PROJ" "${ARGS[@]}" --arg CUSTOM_SETUP_FNAME= \
  --tag "$H/nemo-rl:no-custom" --push --report "$T/r3.json"
check_eq "no custom setup: no 'step custom setup' layer" "" "$(report_get "$T/r3.json" '" ".join(l["name"] for l in d["layers"] if "custom" in l["name"])')"
check_eq "no custom setup: uv_runs is 0 (the venvs come before the step)" 0 "$(report_get "$T/r3.json" 'd["uv_runs"]')"
run_probe "$H/nemo-rl:no-custom" "$T/p3.txt" "${ALL_VENVS[@]}"
check_eq "no custom setup: /opt/custom-setup.done is absent" none "$(probe_val "$T/p3.txt" custom)"
check_eq "no custom setup: no apptainer" "none none" "$(probe_val "$T/p3.txt" apptainer)"
check_eq "no custom setup: the aws-efa file is still there" "/opt/amazon/ofi-nccl/lib,/opt/amazon/efa/lib" "$(probe_val "$T/p3.txt" efa)"
check_python_venvs "no custom setup" "$T/p3.txt" "${ALL_VENVS[@]}"

section "--skip vllm (SKIP_VLLM_BUILD=1): no uv run"
SKIPPED_VENVS=("${WORKER_PATH[sglang]}" "${WORKER_PATH[mcore]}" "$MAIN_VENV")
check_build "build with --skip vllm" "$T/b4" "$PROJ" "${ARGS[@]}" "${CTX[@]}" --skip vllm \
  --tag "$H/nemo-rl:no-vllm" --push --report "$T/r4.json"
check_eq "--skip vllm: uv_runs is 0" 0 "$(report_get "$T/r4.json" 'd["uv_runs"]')"
check_eq "--skip vllm: the steps above the venvs rerun (custom setup, aws-efa, fingerprint), not the apt step" 3 "$(step_runs "$T/b4.err")"
check_digests_equal "--skip vllm: the apt step's layer is reused" "$(layer_digest "$T/r1.json" "step system packages")" \
  "$(layer_digest "$T/r4.json" "step system packages")"
check_eq "--skip vllm: no vllm venv layer" "" "$(report_get "$T/r4.json" '" ".join(l["name"] for l in d["layers"] if l["name"].startswith("venv ") and "Vllm" in l["name"])')"
run_probe "$H/nemo-rl:no-vllm" "$T/p4.txt" "${SKIPPED_VENVS[@]}"
check_python_venvs "--skip vllm" "$T/p4.txt" "${SKIPPED_VENVS[@]}"
check_eq "--skip vllm: the sglang worker imports only_sglang" only_sglang "$(probe_venv "$T/p4.txt" import "${WORKER_PATH[sglang]}")"
if podman --runtime runc run --rm --network none "$H/nemo-rl:no-vllm" test -e "${WORKER_PATH[vllm]}" 2>/dev/null; then
  failed "--skip vllm: ${WORKER_PATH[vllm]} is absent"
else
  pass "--skip vllm: ${WORKER_PATH[vllm]} is absent"
fi
check_eq "--skip vllm: jq-standin still runs" "$JQ_LINE" "$(probe_val "$T/p4.txt" jq)"
