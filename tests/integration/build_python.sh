#!/usr/bin/env bash
# uv-managed Python (uv.python = "3.11"): dockless runs `uv python install`
# in its sandbox into /opt/python, a layer of its own between uv and the uv
# cache, and makes every venv over it. This machine cannot reach
# python-build-standalone's host, so the test makes a python-build-standalone-
# shaped archive of the base's own CPython 3.11.2 (tests/fixtures/
# make_python_dist.py) and serves it, with a downloads JSON, on 127.0.0.1
# (UV_PYTHON_DOWNLOADS_JSON_URL). Checked as a user would notice: in podman
# every venv's python is 3.11.2 from /opt/python (not /usr/bin/python3) and
# imports its package; uv in the image finds the same Python; a rebuild and a
# source edit install nothing; another mirror URL remakes the Python layer
# with the same bytes; chroot mode works; bad input is one clear line.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

echo "dockless: $DOCKLESS"
echo "uv: $("$UV_BIN" --version)"
section "fixtures: registry, base image, package index, a Python download server"
start_registry plain reg
push_base
# common_b (every venv's) carries 6 MiB that do not compress: its uv cache
# layer is large enough to stream to the registry as it is made (--push).
INDEX_ARGS=(--big-data common_b=6)
start_index
ROOTFS=$(fixture_rootfs)
PYDIST=$T/pydist
mkdir -p "$PYDIST"
timeout --foreground 3600 python3 "$FIXTURES/index_server.py" "$PYDIST" --port 0 --port-file "$T/py.port" \
  --log "$T/py.log" >"$T/py.out" 2>"$T/py.err" &
PY_PID=$!
at_exit kill "$PY_PID"
for ((i = 0; i < 100; i++)); do
  [[ -s $T/py.port ]] && break
  sleep 0.1
done
[[ -s $T/py.port ]] || fail "the Python download server wrote no port file" "$(cat "$T/py.err")"
PY_URL=http://127.0.0.1:$(tr -d '\n' <"$T/py.port")
require "make_python_dist.py" python3 "$FIXTURES/make_python_dist.py" "$ROOTFS" "$PYDIST" --url-base "$PY_URL/"
export UV_PYTHON_DOWNLOADS_JSON_URL=$PY_URL/downloads.json
curl -fsS "$UV_PYTHON_DOWNLOADS_JSON_URL" >/dev/null || fail "no downloads.json at $UV_PYTHON_DOWNLOADS_JSON_URL"

P=$T/proj
CACHE=$T/cache
mkdir -p "$P/app"
cat >"$P/pyproject.toml" <<PYPROJECT
[project]
name = "pyapp"
version = "0.1.0"
requires-python = ">=3.9"
dependencies = ["common_a"]

[project.optional-dependencies]
worker = ["common_b"]

[[tool.uv.index]]
name = "fixtures"
url = "$INDEX_URL"
default = true
PYPROJECT
cat >"$P/dockless.toml" <<'SPEC'
[uv]
python = "3.11"
[source]
path = "."
dest = "/app"
[venv.worker]
path = "/opt/venvs/worker"
extras = ["worker"]
[venv.main]
path = "/opt/venv"
SPEC
printf 'print("v1")\n' >"$P/app/main.py"
require "uv lock of the project" env -C "$P" XDG_CONFIG_HOME="$T/no-uv-config" UV_CACHE_DIR="$T/host-uv-cache" \
  UV_PYTHON_DOWNLOADS=never "$UV_BIN" lock -q

# build N ARGS...: builds into oci:$T/oN:app, report $T/rN.json.
build() {
  local n=$1
  shift
  check_build "build $n" "$T/b$n" "$P" --set "image.base=$BASE_REF" --output "oci:$T/o$n:app" \
    --report "$T/r$n.json" --cache-dir "$CACHE" "$@"
  ((CHECK_OK)) || {
    tail -n 30 "$T/b$n.err"
    fail "build $n failed"
  }
  report_layers "$T/r$n.json" | sed 's/^/    /'
}
# layer N NAME-PREFIX: "DIGEST CACHE" of the first layer so named.
layer() {
  report_get "$T/r$1.json" '" ".join([(l["digest"] + " " + l["cache"]) for l in d["layers"] if l["name"].startswith("'"$2"'")][:1])'
}
uv_runs() { report_get "$T/r$1.json" 'd["uv_runs"]'; }
pod() {  # pod N ARGS...
  local n=$1
  shift
  podman_run "oci:$T/o$n:app" "$@" 2>"$T/pod.err" || cat "$T/pod.err"
}
downloads() { grep -c 'install_only_stripped.tar.gz 200' "$T/py.log" || true; }

section "a cold build installs the Python once and makes both venvs over it"
build 1
check_eq "layer order: uv, python 3.11, the uv cache, the venvs, the source" \
  "uv|python 3.11|uv cache|venv worker|venv main|source /app" \
  "$(report_get "$T/r1.json" '"|".join(dict.fromkeys("uv cache" if l["name"].startswith("uv cache") else ("uv" if l["name"].startswith("uv ") else l["name"]) for l in d["layers"]))')"
check_eq "uv runs: the Python install and two venvs" 3 "$(uv_runs 1)"
check_eq "the archive was downloaded once" 1 "$(downloads)"
# Independent environments run uv at the same time (bounded by --jobs):
# their uv runs overlap in the report's timestamps.
overlap='"%d %s" % (len(d["environments"]), "overlap" if max(x["start"] for x in d["environments"]) < min(x["end"] for x in d["environments"]) else "one after another")'
check_eq "the two environments were made at the same time" "2 overlap" "$(report_get "$T/r1.json" "$overlap" 2>&1)"

section "podman: every venv runs the managed Python"
for v in /opt/venv /opt/venvs/worker; do
  check_eq "$v: python 3.11.2 from /opt/python" "3.11.2 /opt/python/cpython-3.11-linux-x86_64-gnu" \
    "$(pod 1 "$v/bin/python" -c 'import sys, ssl, json, common_a; print(sys.version.split()[0], sys.base_prefix)')"
done
check_eq "the worker venv has its extra" "ok" "$(pod 1 /opt/venvs/worker/bin/python -c 'import common_b; print("ok")')"
check_contains "pyvenv.cfg's home is in /opt/python" "$(pod 1 cat /opt/venv/pyvenv.cfg)" "home = /opt/python/"
check_eq "image env: UV_PYTHON and UV_PYTHON_INSTALL_DIR" "3.11 /opt/python" \
  "$(pod 1 sh -c 'echo "$UV_PYTHON $UV_PYTHON_INSTALL_DIR"')"
check_contains "uv in the image finds the managed Python" \
  "$(pod 1 sh -c 'UV_PYTHON_DOWNLOADS=never uv python find')" "/opt/python/cpython-3.11"
check_eq "no uv bookkeeping in the layer (.lock, .temp, .cache)" "" \
  "$(pod 1 sh -c 'ls -A /opt/python | grep -E "^\.(lock|temp|cache)$" || true')"
check_eq "nothing written to ~/.local/bin (--no-bin)" "" "$(pod 1 sh -c 'ls /root/.local/bin 2>/dev/null || true')"

section "rebuilds: nothing changed, then a source edit: no uv run, the same Python layer"
build 2
check_eq "unchanged: 0 uv runs" 0 "$(uv_runs 2)"
check_eq "unchanged: the python layer is a hit" "$(layer 1 python | cut -d' ' -f1) hit" "$(layer 2 python)"
printf 'print("v2")\n' >"$P/app/main.py"
build 3
check_eq "source edit: 0 uv runs" 0 "$(uv_runs 3)"
check_eq "source edit: the python layer is a hit" "$(layer 1 python | cut -d' ' -f1) hit" "$(layer 3 python)"
check_eq "the archive is still downloaded only once" 1 "$(downloads)"

section "another downloads list (file://) is another key, and the same bytes"
UV_PYTHON_DOWNLOADS_JSON_URL=file://$PYDIST/downloads.json build 4
check_eq "file:// list: the python layer is built again, byte for byte the same" \
  "$(layer 1 python | cut -d' ' -f1) miss" "$(layer 4 python)"
check_eq "the main venv is remade over it, byte for byte the same" "$(layer 1 'venv main' | cut -d' ' -f1)" \
  "$(layer 4 'venv main' | cut -d' ' -f1)"

section "--jobs 1: one environment after the other"
CACHE=$T/cache-j1 build 6 --jobs 1
check_eq "--jobs 1: the two environments did not overlap" "2 one after another" \
  "$(report_get "$T/r6.json" "$overlap" 2>&1)"
check_eq "--jobs 1: the same venv layer as the parallel build" "$(layer 1 'venv main' | cut -d' ' -f1)" \
  "$(layer 6 'venv main' | cut -d' ' -f1)"

section "--push: uploads start while later layers are still being made"
CACHE=$T/cache-push build 7 --tag "$REGISTRY_HOST/pipe:1" --push
# An upload of one of the build's own layers (not the base's: those go
# first) started before its last layer was made (as for the environments
# above: from the report's timestamps, never an absolute time).
ahead='"ahead" if min([u["start"] for u in d["uploads"] if u["name"] in {l["name"] for l in d["layers"]}] or [1e9]) < max(l["made"] for l in d["layers"]) else "after: %s" % [(u["name"], round(u["start"], 2)) for u in d["uploads"]]'
check_eq "a layer's upload started before the last layer was made" "ahead" "$(report_get "$T/r7.json" "$ahead")"
check_eq "every layer of the image was pushed ahead (base layers included)" "yes" \
  "$(report_get "$T/r7.json" '"yes" if {l["digest"] for l in d["layers"]} <= {u["digest"] for u in d["uploads"]} and len(d["uploads"]) > len(d["layers"]) else d["uploads"]')"
check_eq "the registry has the image the build made" "$(report_get "$T/r7.json" 'd["digest"]')" \
  "$(remote_digest "$REGISTRY_HOST/pipe:1")"
check_eq "the uv cache's large layer went to the registry as it was made (report: streamed)" "streamed" \
  "$(report_get "$T/r7.json" '"streamed" if any(u["streamed"] and u["name"].startswith("uv cache (") and [l for l in d["layers"] if l["digest"] == u["digest"] and l["size"] > 4 << 20] for u in d["uploads"]) else [(u["name"], u["streamed"]) for u in d["uploads"]]')"
check_podman_42 "podman pulls and runs the pushed image" "$REGISTRY_HOST/pipe:1"
check_eq "the streamed layer's 6 MiB payload reads back intact in the container" \
  "$(python3 -c 'import hashlib, sys, zipfile; print(hashlib.sha256(zipfile.ZipFile(sys.argv[1]).read("common_b/payload.bin")).hexdigest())' \
    "$INDEX_DIR/files/common_b-1.0.0-py3-none-any.whl")" \
  "$(podman --runtime runc run --rm --network none "$REGISTRY_HOST/pipe:1" /opt/venv/bin/python \
    -c 'import hashlib, common_b, os; print(hashlib.sha256(open(os.path.join(os.path.dirname(common_b.__file__), "payload.bin"), "rb").read()).hexdigest())' 2>&1 | tail -n 1)"
check_eq "its main venv runs (links into the uv cache resolve)" "3.11.2" \
  "$(podman --runtime runc run --rm --network none "$REGISTRY_HOST/pipe:1" /opt/venv/bin/python \
    -c 'import sys, common_a; print(sys.version.split()[0])' 2>&1 | tail -n 1)"
# An edit: the source layer goes into its upload session as it is made (a
# PATCH while it is compressed), committed once the build is past its checks.
printf 'print("v3")\n' >"$P/app/main.py"
EDIT_MARK=$(registry_log_mark)
CACHE=$T/cache-push build 8 --tag "$REGISTRY_HOST/pipe:1" --push
check "the edited source layer was streamed into its upload session (one PATCH)" \
  bash -c '[[ $(grep -c "\"PATCH /v2/pipe/blobs/uploads/" <<<"$1") == 1 ]]' _ "$(registry_log_since "$EDIT_MARK")"
check_eq "the registry has the edited image" "$(report_get "$T/r8.json" 'd["digest"]')" \
  "$(remote_digest "$REGISTRY_HOST/pipe:1")"
check_eq "podman runs the edited source from it" "v3" \
  "$(podman pull -q --tls-verify=false "$REGISTRY_HOST/pipe:1" >/dev/null 2>&1
     podman --runtime runc run --rm --network none "$REGISTRY_HOST/pipe:1" /opt/venv/bin/python /app/app/main.py 2>&1 |
       tail -n 1)"
start_proxy pipe reg
set_rules '[{"method": "PUT", "path": "/blobs/uploads/", "action": "status", "status": 400, "times": -1}]'
check_build_fails "an upload fails: the build fails" "$T/bad-push" 1 'pipe-fail|blob|upload' -- \
  "$P" --set "image.base=$BASE_REF" --tag "$PROXY_HOST/pipe-fail:1" --push --cache-dir "$T/cache-push"
check_eq "an upload fails: no manifest pushed" 404 \
  "$(curl -s -o /dev/null -w '%{http_code}' "$REGISTRY_URL/v2/pipe-fail/manifests/1")"

section "chroot mode"
CACHE=$T/cache-chroot build 5 --isolation chroot
check_eq "chroot: the same python layer" "$(layer 1 python | cut -d' ' -f1)" "$(layer 5 python | cut -d' ' -f1)"
check_eq "chroot: the main venv runs 3.11.2" "3.11.2" \
  "$(pod 5 /opt/venv/bin/python -c 'import sys, common_a; print(sys.version.split()[0])')"

section "bad input: one clear line, exit 1, nothing half-made"
check_build_fails "a Python no download list has" "$T/bad1" 1 'uv\.python = "3\.99"' 'python install' -- \
  "$P" --set "image.base=$BASE_REF" --set uv.python=3.99 --output "oci:$T/bad1:app" --cache-dir "$T/cache-bad"
check_eq "no python layer cached after it (uv's is whole and may be)" "" \
  "$(grep -l 'python' "$T/cache-bad"/layers/*.json 2>/dev/null | head -n 1)"
kill "$PY_PID"
wait "$PY_PID" 2>/dev/null || true
check_build_fails "the download server is down" "$T/bad2" 1 'uv\.python = "3\.11"' -- \
  "$P" --set "image.base=$BASE_REF" --output "oci:$T/bad2:app" --cache-dir "$T/cache-bad2"
check_build_fails "--isolation host cannot install a Python" "$T/bad3" 1 'isolation' 'uv-managed' -- \
  "$P" --set "image.base=$BASE_REF" --isolation host --output "oci:$T/bad3:app" --cache-dir "$T/cache-bad3"
