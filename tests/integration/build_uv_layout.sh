#!/usr/bin/env bash
# uv's Docker layout (astral-sh/uv-docker-example): a packaged project
# ([project.scripts] hello = "hello:main", [build-system] uv_build, which uv
# builds itself: no backend from an index) in /app, its venv at /app/.venv,
# install-project = "editable", image cmd ["hello"]. podman runs `hello`
# and it prints the module's line. A source edit changes only the source
# layer (the editable project layer is a cache hit with the same digest,
# every other layer too) and podman prints the edited line. With
# install-project = true the entry point works too, and a source edit
# changes the project layer. The venv's own layer never holds the project.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

echo "dockless: $DOCKLESS"
echo "uv: $("$UV_BIN" --version)"
section "fixtures: registry, base image, package index, a uv-docker-example project"
start_registry plain reg
push_base
start_index
P=$T/uvproj
CACHE=$T/cache
UV_MINOR=$("$UV_BIN" --version | awk '{print $2}' | cut -d. -f1-2)
mkdir -p "$P/src/hello"
cat >"$P/pyproject.toml" <<EOF
[project]
name = "hello"
version = "0.1.0"
requires-python = ">=3.9"
dependencies = ["common_a"]

[project.scripts]
hello = "hello:main"

[build-system]
requires = ["uv_build>=$UV_MINOR,<1"]
build-backend = "uv_build"

[[tool.uv.index]]
name = "fixtures"
url = "$INDEX_URL"
default = true
EOF
cat >"$P/dockless.toml" <<'EOF'
[image]
cmd = ["hello"]
[uv]
python = "/usr/bin/python3"
[source]
path = "."
dest = "/app"
[venv.main]
path = "/app/.venv"
install-project = "editable"
EOF
set_line() {  # set_line TEXT: what `hello` prints
  printf 'import common_a\n\n\ndef main():\n    print("%s", common_a.VALUE)\n' "$1" >"$P/src/hello/__init__.py"
}
set_line "hello v1"
printf '.venv\n' >"$P/.dockerignore"
require "uv lock of the project" env -C "$P" XDG_CONFIG_HOME="$T/no-uv-config" UV_CACHE_DIR="$T/host-uv-cache" \
  UV_PYTHON_DOWNLOADS=never "$UV_BIN" lock -q

# build N: builds the project into oci:$T/oN:app with report $T/rN.json.
build() {
  check_build "build $1 ($2)" "$T/b$1" "$P" --set "image.base=$BASE_REF" --output "oci:$T/o$1:app" \
    --report "$T/r$1.json" --cache-dir "$CACHE"
  ((CHECK_OK)) || { tail -n 30 "$T/b$1.err"; fail "build $1 failed"; }
  report_layers "$T/r$1.json" | sed 's/^/    /'
}
# layer N NAME-PREFIX: "DIGEST CACHE" of the report's layer whose name starts so.
layer() {
  report_get "$T/r$1.json" '" ".join([(l["digest"] + " " + l["cache"]) for l in d["layers"] if l["name"].startswith("'"$2"'")])'
}
# pod N ARGS...: podman run of oci:$T/oN:app (its own progress lines dropped).
pod() {
  local n=$1
  shift
  podman_run "oci:$T/o$n:app" "$@" 2>"$T/pod.err" || cat "$T/pod.err"
}
# index_of N NAME-PREFIX: the manifest index of that layer (base layers first).
index_of() {
  report_get "$T/r$1.json" '[i for i, l in enumerate(d["layers"]) if l["name"].startswith("'"$2"'")][0] + '"$N"
}
N=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["rootfs"]["diff_ids"]))' "$T/base.config.json")
digests() { report_get "$T/r$1.json" '" ".join(l["digest"] for l in d["layers"])'; }

section "install-project = \"editable\": hello runs the source at /app"
build 1 editable
EDIT1=$(layer 1 "project in venv main (editable)")
check_ne "the report has the editable project layer" "" "$EDIT1"
check_eq "podman run (cmd hello) prints the module's line" "hello v1 common_a" \
  "$(pod 1)"
check_eq "/app/.venv/bin/hello prints it too" "hello v1 common_a" \
  "$(pod 1 /app/.venv/bin/hello)"
layout_layer_paths "$T/o1" app >"$T/paths1" || fail "cannot read the layers of $T/o1"
check_eq "the project layer holds bin/hello, the .pth and the dist-info (no uv_cache.json)" \
  "/app/.venv/bin/hello hello-0.1.0.dist-info/RECORD hello.pth" \
  "$(awk -v n="$(index_of 1 project)" '$1 == n {print $2}' "$T/paths1" |
     grep -E '/bin/hello$|/hello\.pth$|dist-info/RECORD$|uv_cache\.json$' | sed -E 's#^/app/.venv/lib/python[^/]*/site-packages/##' | sort | tr '\n' ' ' | sed 's/ $//')"
check_eq "the project layer holds nothing outside the venv but its parent /app" "" \
  "$(awk -v n="$(index_of 1 project)" '$1 == n {print $2}' "$T/paths1" | grep -Ev '^/app(/\.venv(/.*)?)?$' || true)"
check_eq "the venv's own layer holds no project file" "" \
  "$(awk -v n="$(index_of 1 "venv main")" '$1 == n {print $2}' "$T/paths1" | grep -E 'hello' || true)"
check_eq "the source layer holds no venv file" "" \
  "$(awk -v n="$(index_of 1 source)" '$1 == n {print $2}' "$T/paths1" | grep -E '^/app/\.venv/' || true)"

section "a source edit: only the source layer changes"
set_line "hello v2"
build 2 "editable, source edited"
check_eq "the editable project layer: same digest, from the cache" "${EDIT1%% *} hit" \
  "$(layer 2 "project in venv main (editable)")"
check_eq "the report: 0 uv runs" "0" "$(report_get "$T/r2.json" 'd["uv_runs"]')"
check_eq "every layer but the source keeps its digest" "1" "$(python3 - "$(digests 1)" "$(digests 2)" <<'PY'
import sys
a, b = sys.argv[1].split(), sys.argv[2].split()
print(sum(x != y for x, y in zip(a, b)) if len(a) == len(b) else "layer count %d -> %d" % (len(a), len(b)))
PY
)"
check_ne "the source layer changed" "$(layer 1 source)" "$(layer 2 source)"
check_eq "podman prints the edited line" "hello v2 common_a" "$(pod 2)"

section "a pyproject edit (a second script) makes the project layer again"
sed -i 's/^hello = "hello:main"$/hello = "hello:main"\nhello-again = "hello:main"/' "$P/pyproject.toml"
require "uv lock after the pyproject edit" env -C "$P" XDG_CONFIG_HOME="$T/no-uv-config" \
  UV_CACHE_DIR="$T/host-uv-cache" UV_PYTHON_DOWNLOADS=never "$UV_BIN" lock -q
build 3 "editable, pyproject edited"
check_ne "the project layer is new" "${EDIT1%% *}" "$(layer 3 "project in venv main (editable)" | cut -d' ' -f1)"
check_eq "the new script runs" "hello v2 common_a" "$(pod 3 hello-again)"

section "install-project = true: the built project, keyed by the source"
sed -i 's/^install-project = "editable"$/install-project = true/' "$P/dockless.toml"
build 4 built
BUILT4=$(layer 4 "project in venv main")
check_ne "the report has the project layer" "" "$BUILT4"
check_eq "podman run (cmd hello) prints the module's line" "hello v2 common_a" "$(pod 4)"
check_eq "hello runs the installed copy, not /app" "/app/.venv/lib" "$(pod 4 \
  /app/.venv/bin/python -c 'import hello; print(hello.__file__[:14])')"
set_line "hello v3"
build 5 "built, source edited"
check_ne "a source edit makes the project layer again" "${BUILT4%% *}" "$(layer 5 "project in venv main" | cut -d' ' -f1)"
check_eq "podman prints the edited line" "hello v3 common_a" "$(pod 5)"

