# Helpers shared by the build_*.sh integration tests (`dockless build`).
# Source it after lib.sh and registry_lib.sh:
#
#     source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
#     source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
#     source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"
#
# What it gives:
#   build_setup            registry + base image pushed to it + index server + test project
#                          (sets ROOTFS, REGISTRY_HOST, BASE_REF, INDEX_URL, INDEX_LOG, PROJ)
#   start_index            make_wheels.py + index_server.py on 127.0.0.1 (INDEX_URL, INDEX_LOG)
#   push_base              dockless import + push of the debootstrap rootfs (BASE_REF)
#   make_test_project DIR  tests/fixtures/make_project.sh DIR $INDEX_URL
#   index_mark / index_wheel_gets_since N    wheel downloads in the index log
#   build_dl / check_build / check_build_fails   run `dockless build`
#   incheck LABEL REF KIND [VAR=VALUE...]    run the in-image checks with podman
#   the expectations of the test project: VENV_*, SOURCE_ABSENT, ...
#
# The fixtures are real: the debootstrap rootfs, Debian's docker-registry,
# uv (/usr/local/bin/uv), podman with runc, skopeo. Nothing leaves 127.0.0.1.

FIXTURES=$SOURCE_ROOT/tests/fixtures
UV_BIN=${DOCKLESS_TEST_UV:-/usr/local/bin/uv}

# Nothing from the user's environment may steer uv or dockless to another index.
unset UV_INDEX UV_INDEX_URL UV_DEFAULT_INDEX UV_EXTRA_INDEX_URL UV_FIND_LINKS UV_OFFLINE \
  UV_FROZEN UV_LOCKED UV_NO_CACHE UV_CACHE_DIR UV_PROJECT_ENVIRONMENT UV_PYTHON UV_LINK_MODE \
  HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy NO_PROXY no_proxy

# ---------------------------------------------------------------- the test project

# Worker venvs, in the order of dockless.toml, then main (the layer order).
VENV_NAMES=(app.workers.VllmWorker app.workers.SglangWorker app.workers.McoreWorker main)
declare -A VENV_PATH=(
  [app.workers.VllmWorker]=/opt/ray_venvs/app.workers.VllmWorker
  [app.workers.SglangWorker]=/opt/ray_venvs/app.workers.SglangWorker
  [app.workers.McoreWorker]=/opt/ray_venvs/app.workers.McoreWorker
  [main]=/opt/app_venv
)
declare -A VENV_TAG=(
  [app.workers.VllmWorker]=vllm [app.workers.SglangWorker]=sglang
  [app.workers.McoreWorker]=mcore [main]=
)
# The modules each venv must import; every other fixture module must fail.
declare -A VENV_HAS=(
  [app.workers.VllmWorker]="common_a common_b shared_vs only_vllm vllm_dep"
  [app.workers.SglangWorker]="common_a common_b shared_vs only_sglang"
  [app.workers.McoreWorker]="common_a common_b only_mcore"
  [main]="common_a common_b dev_tool"
)
ALL_MODULES="common_a common_b shared_vs vllm_dep only_vllm only_sglang only_mcore dev_tool cache_only late_add"
# Console scripts: VENV:SCRIPT:OUTPUT
VENV_SCRIPTS=("main:dev-tool:dev_tool" "app.workers.VllmWorker:only-vllm:only_vllm")
# extra -> a module it installs (for `uv sync --frozen --offline --extra X` in the image)
declare -A EXTRA_MODULE=([vllm]=only_vllm [sglang]=only_sglang [mcore]=only_mcore [extra_cache]=cache_only)
# Fixture packages (dist names) that each extra/group brings into the uv cache.
declare -A EXTRA_PACKAGES=(
  [vllm]="only_vllm vllm_dep shared_vs" [sglang]="only_sglang shared_vs" [mcore]="only_mcore"
  [extra_cache]="cache_only" [base]="common_a common_b" [dev]="dev_tool"
)
SRC_DEST=/opt/app
IMAGE_UV=/usr/local/bin/uv
IMAGE_CACHE=/root/.cache/uv
# Paths (relative to the project) the .dockerignore drops: the image must not
# have them; everything else of the project must be there, byte for byte.
SOURCE_ABSENT=(app.log build src/app/__pycache__ notes.tmp src/app/scratch.tmp
  docs/draft.md .tox secrets)
# Files re-included by "!" rules, the lock files, and src/app/debug.log (Docker's
# patterns are rooted: "*.log" matches top-level files only): must be there.
SOURCE_PRESENT=(important.log docs/keep.md pyproject.toml uv.lock dockless.toml .dockerignore
  src/app/__init__.py src/app/workers.py src/app/debug.log)

# ---------------------------------------------------------------- fixtures

# start_index: writes the wheels + simple index into $T/index and serves it.
# Sets INDEX_DIR, INDEX_PORT, INDEX_URL (…/simple), INDEX_LOG. Stopped at exit.
# INDEX_ARGS (an array, optional) goes to make_wheels.py: e.g.
# (--platform-wheels --uv-wheels /var/cache/dockless/fixtures/uv-wheels).
start_index() {
  INDEX_DIR=$T/index
  INDEX_LOG=$T/index.log
  python3 "$FIXTURES/make_wheels.py" "$INDEX_DIR" ${INDEX_ARGS[@]+"${INDEX_ARGS[@]}"} ||
    fail "make_wheels.py $INDEX_DIR"
  : >"$INDEX_LOG"
  timeout --foreground 3600 python3 "$FIXTURES/index_server.py" "$INDEX_DIR" \
    --port 0 --port-file "$T/index.port" --log "$INDEX_LOG" >"$T/index.out" 2>"$T/index.err" &
  INDEX_PID=$!
  at_exit kill "$INDEX_PID"
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -s $T/index.port ]] && break
    kill -0 "$INDEX_PID" 2>/dev/null || fail "index_server.py exited" "$(cat "$T/index.err")"
    sleep 0.1
  done
  [[ -s $T/index.port ]] || fail "index_server.py wrote no port file in 10 s" "$(cat "$T/index.err")"
  INDEX_PORT=$(tr -d '\n' <"$T/index.port")
  INDEX_URL=http://127.0.0.1:$INDEX_PORT/simple
  curl -fsS "$INDEX_URL/common-a/" >/dev/null || fail "the index does not answer at $INDEX_URL"
  echo "index: $INDEX_URL (log $INDEX_LOG)"
}

# index_mark: the number of lines in the index log now.
index_mark() { wc -l <"$INDEX_LOG" | tr -d ' '; }
# index_wheel_gets_since N: the wheel downloads logged after line N.
index_wheel_gets_since() { tail -n "+$(($1 + 1))" -- "$INDEX_LOG" | grep -E ' GET [^ ]*\.whl ' || true; }
# index_wheel_paths_since N: the distinct wheel paths downloaded after line
# N, sorted, space-separated ("/files/late_add-1.0.0-py3-none-any.whl").
index_wheel_paths_since() { index_wheel_gets_since "$1" | awk '{print $3}' | sort -u | tr '\n' ' ' | sed 's/ $//'; }

# push_base: imports the debootstrap rootfs and pushes it to the registry as
# $REGISTRY_HOST/debian-py:12 (BASE_REF; BASE_DIGEST its manifest digest).
push_base() {
  ROOTFS=$(fixture_rootfs) || fail "the debootstrap fixture is not available"
  require "dockless import $ROOTFS -> oci:$T/base:py" \
    "$DOCKLESS" import "$ROOTFS" --output "oci:$T/base:py" --cmd '["python3"]'
  BASE_REF=$REGISTRY_HOST/debian-py:12
  require "dockless push oci:$T/base:py $BASE_REF" \
    "$DOCKLESS" push "oci:$T/base:py" "$BASE_REF" --cache-dir "$T/import-cache"
  BASE_DIGEST=$(layout_manifest_digest "$T/base" py)
  skopeo inspect --config "oci:$T/base:py" >"$T/base.config.json"
  echo "base: $BASE_REF $BASE_DIGEST"
}

# make_test_project DIR: the hermetic project, locked against the index.
make_test_project() {
  require "make_project.sh $1" bash "$FIXTURES/make_project.sh" "$1" "$INDEX_URL"
}

# add_late_add_to_mcore [DIR]: the mcore extra of the project in DIR
# (default $PROJ) gains the late_add package; uv.lock is re-locked against
# the index (a lock change as a user makes one).
add_late_add_to_mcore() {
  local dir=${1:-$PROJ}
  python3 - "$dir/pyproject.toml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
old = 'mcore = ["only_mcore"]'
assert old in s, "pyproject.toml has no %r" % old
open(p, "w").write(s.replace(old, 'mcore = ["only_mcore", "late_add"]'))
PY
  require "uv lock after adding late_add to the mcore extra" \
    env -C "$dir" XDG_CONFIG_HOME="$T/no-uv-config" UV_CACHE_DIR="$T/host-uv-cache" UV_PYTHON_DOWNLOADS=never "$UV_BIN" lock -q
}

# expect_late_add_in_mcore: after add_late_add_to_mcore, the in-image
# checks expect late_add in the McoreWorker venv and in the shipped cache
# (the mcore extra syncs offline with it).
expect_late_add_in_mcore() {
  VENV_HAS[app.workers.McoreWorker]+=" late_add"
  EXTRA_MODULE[mcore]=late_add
  EXTRA_PACKAGES[mcore]+=" late_add"
}

# build_setup: everything a build test needs before its first build.
build_setup() {
  echo "dockless: $DOCKLESS"
  echo "uv: $("$UV_BIN" --version)"
  echo "scratch: $T"
  section "fixtures: registry, base image, package index, project"
  start_registry plain reg
  push_base
  start_index
  PROJ=$T/proj
  make_test_project "$PROJ"
}

# ---------------------------------------------------------------- running builds

# build_dl PREFIX ARGS...: runs `dockless build ARGS`, stdout/stderr in
# PREFIX.out/.err, exit status in RC, wall time in SECS.
build_dl() {
  local prefix=$1
  shift
  dl "$prefix" build "$@"
}

# check_build DESC PREFIX ARGS...: `dockless build ARGS` exits 0 and prints
# the manifest digest (one line on stdout). Sets DIGEST, RC, SECS.
check_build() {
  local desc=$1 prefix=$2
  shift 2
  check_dl "$desc" "$prefix" build "$@"
}

# check_build_fails DESC PREFIX STATUS REGEX... -- ARGS...: `dockless build
# ARGS` exits STATUS, its last stderr line starts with "dockless: error: "
# and matches every REGEX (extended, case-insensitive), no crash, nothing on
# stdout. One check for the status/shape, one per REGEX. Sets ERRLINE.
check_build_fails() {
  local desc=$1 prefix=$2 want=$3 res=() problems=() re
  shift 3
  while (($#)) && [[ $1 != -- ]]; do
    res+=("$1")
    shift
  done
  shift
  build_dl "$prefix" "$@"
  ERRLINE=$(grep -v '^[[:space:]]*$' "$prefix.err" | tail -n 1 || true)
  ((RC == want)) || problems+=("exit status $RC, expected $want")
  [[ $ERRLINE == "dockless: error: "* ]] || problems+=("the last stderr line does not start with 'dockless: error: '")
  if grep -Eiq 'terminate called|what\(\)|Aborted|Segmentation|core dumped|AddressSanitizer' "$prefix.err"; then
    problems+=("stderr shows a crash")
  fi
  [[ ! -s $prefix.out ]] || problems+=("stdout is not empty: $(head -c 300 "$prefix.out")")
  if ((${#problems[@]} == 0)); then
    pass "$desc: exit $want (${ERRLINE:0:200})"
  else
    failed "$desc: exit $want with a 'dockless: error:' line" "command: dockless build $(_quote "$@")" \
      "${problems[@]}" "stderr (tail):" "$(tail -n 15 "$prefix.err")"
  fi
  for re in "${res[@]}"; do
    if grep -Eiq -- "$re" <<<"$ERRLINE"; then
      pass "$desc: the error matches /$re/"
    else
      failed "$desc: the error matches /$re/" "error line: $ERRLINE"
    fi
  done
}

# report_get FILE PYEXPR: evaluates PYEXPR with the report as `d`; prints it.
report_get() {
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); r = eval(sys.argv[2]); print(r if not isinstance(r, (list, dict)) else json.dumps(r))' "$1" "$2" 2>/dev/null || echo "<unreadable report $1>"
}

# report_layers FILE: "NAME CACHE DIGEST" per layer of a build report.
report_layers() {
  python3 - "$1" <<'PY' 2>/dev/null || echo "<unreadable report $1>"
import json, sys
d = json.load(open(sys.argv[1]))
for l in d.get("layers", []):
    print("%-50s %-4s %s %10s" % (l.get("name"), l.get("cache"), (l.get("digest") or "")[:19], l.get("size")))
PY
}

# ---------------------------------------------------------------- image metadata

# image_meta OUT TRANSPORT_REF: skopeo's raw manifest and config of an image
# (oci:DIR:TAG, docker://REF, docker-archive:FILE) into OUT.manifest.json and
# OUT.config.json. Returns non-zero when skopeo fails.
image_meta() {
  local out=$1 ref=$2 tls=()
  [[ $ref == docker://* ]] && tls=(--tls-verify=false)
  skopeo inspect "${tls[@]}" --raw "$ref" >"$out.manifest.json" 2>"$out.skopeo.err" &&
    skopeo inspect "${tls[@]}" --config "$ref" >"$out.config.json" 2>>"$out.skopeo.err"
}

# check_layer_order DESC OUT SKIPPED_VENVS...: the config at OUT.config.json
# starts with the base's diff_ids (from $T/base.config.json), then one history
# entry per layer in this order: "dockless: uv …", one or more "dockless: uv
# cache …", "dockless: venv NAME" for each worker venv in spec order (minus
# the skipped ones), "dockless: venv main", "dockless: source …".
check_layer_order() {
  local desc=$1 out=$2
  shift 2
  CLO_BASE=$T/base.config.json CLO_VENVS="${VENV_NAMES[*]}" CLO_SKIPPED="$*" check_python "$desc" "$out.config.json" '
import os, re
base = json.load(open(os.environ["CLO_BASE"]))
skipped = set(os.environ["CLO_SKIPPED"].split())
workers = [n for n in os.environ["CLO_VENVS"].split() if n != "main" and n not in skipped]
diff_ids = d["rootfs"]["diff_ids"]
hist = [h for h in d.get("history", []) if not h.get("empty_layer")]
bdiff = base["rootfs"]["diff_ids"]
assert len(hist) == len(diff_ids), "%d non-empty history entries for %d layers" % (len(hist), len(diff_ids))
assert diff_ids[:len(bdiff)] == bdiff, "the first layers are not the base layers as they are"
names = [h.get("created_by", "") for h in hist[len(bdiff):]]
pos = [0]
def take(pattern, what):
    i = pos[0]
    assert i < len(names) and re.search(pattern, names[i]), "layer %d after the base: expected %s, got %r; all: %r" % (i, what, names[i] if i < len(names) else None, names)
    pos[0] += 1
take(r"^dockless: uv (?!cache)", "the uv binary")
take(r"^dockless: uv cache", "a uv cache part")
while pos[0] < len(names) and re.search(r"^dockless: uv cache", names[pos[0]]):
    pos[0] += 1
for w in workers:
    take("^dockless: venv " + re.escape(w) + "$", "venv " + w)
take(r"^dockless: venv main$", "the main venv")
take(r"^dockless: source", "the source tree")
assert pos[0] == len(names), "unexpected layers at the end: %r" % names[pos[0]:]
'
}

# ---------------------------------------------------------------- in-image checks

# The script podman runs in the image (bash, no set -e). Reads CHK_* from the
# environment; prints "ok DESC", "FAIL DESC :: DETAIL", "SRC ..." (the
# source tree listing) and "CACHE PATH" (the uv cache listing) lines.
incheck_script() {
  cat <<'SCRIPT'
ok() { printf 'ok %s\n' "$*"; }
bad() { printf 'FAIL %s\n' "$*"; }
# First (before anything runs uv here): the source tree and the uv cache as
# shipped, for the host to judge.
if [[ -d $CHK_SRC ]]; then
  (cd "$CHK_SRC" && find . -printf '%y %p\n' | sort | while read -r t p; do
    if [[ $t == f ]]; then echo "SRC f $(sha256sum <"$p" | cut -d' ' -f1) $p"; else echo "SRC $t - $p"; fi
  done)
else
  bad "$CHK_SRC exists"
fi
[[ -d $CHK_CACHE ]] && (cd "$CHK_CACHE" && find . | sort | sed 's/^/CACHE /')
if [[ -d $CHK_CACHE ]]; then
  dangling=$(find "$CHK_CACHE" -xtype l 2>/dev/null | sort)
  [[ -z $dangling ]] && ok "every symlink in the shipped uv cache resolves" ||
    bad "every symlink in the shipped uv cache resolves :: $(printf '%s\n' "$dangling" | wc -l) dangling, e.g. $(printf '%s\n' "$dangling" | head -n 2 | while read -r l; do printf '%s -> %s; ' "$l" "$(readlink "$l")"; done)"
fi
IMPORT_PY='
import importlib, sys
venv, path = sys.argv[1], sys.argv[2]
good = sys.prefix == path
print(("ok " if good else "FAIL ") + "%s: sys.prefix is %s" % (venv, path) + ("" if good else " :: got " + sys.prefix))
for spec in sys.argv[3:]:
    want = not spec.startswith("!")
    m = spec.lstrip("!")
    try:
        mod = importlib.import_module(m)
        got = getattr(mod, "VALUE", None) == m
        detail = "imported VALUE=%r from %s" % (getattr(mod, "VALUE", None), getattr(mod, "__file__", "?"))
    except Exception as e:
        got, detail = False, "%s: %s" % (type(e).__name__, e)
    desc = "%s: import %s %s" % (venv, m, "works" if want else "fails")
    print(("ok " if got == want else "FAIL ") + desc + ("" if got == want else " :: " + detail))
'
# venvs: "NAME PATH MOD... !MOD..." per line
while read -r name path mods; do
  [[ -n $name ]] || continue
  if [[ ! -x $path/bin/python ]]; then
    bad "venv $name: $path/bin/python exists :: $(ls -la "$path" 2>&1 | head -n 5 | tr '\n' ' ')"
    continue
  fi
  # shellcheck disable=SC2086
  "$path/bin/python" -I -c "$IMPORT_PY" "$name" "$path" $mods 2>&1 | sed 's/^Traceback/FAIL venv '"$name"': python crashed :: Traceback/'
done <<<"$CHK_VENVS"
for p in $CHK_ABSENT_PATHS; do
  if [[ -e $p || -L $p ]]; then bad "$p is absent :: it exists"; else ok "$p is absent"; fi
done
# console scripts: "PATH:EXPECTED_OUTPUT"
for s in $CHK_SCRIPTS; do
  out=$("${s%%:*}" 2>&1)
  if [[ $out == "${s#*:}" ]]; then ok "console script ${s%%:*} runs"; else bad "console script ${s%%:*} runs :: $(printf '%s' "$out" | head -c 300)"; fi
done
if [[ -n ${CHK_MAIN:-} ]]; then
  got=$(command -v python3)
  [[ $got == "$CHK_MAIN/bin/python3" ]] && ok "python3 on PATH is $CHK_MAIN/bin/python3" || bad "python3 on PATH is $CHK_MAIN/bin/python3 :: got $got (PATH=$PATH)"
  got=$(python3 -c 'import sys; print(sys.prefix)' 2>&1)
  [[ $got == "$CHK_MAIN" ]] && ok "python3's sys.prefix is $CHK_MAIN" || bad "python3's sys.prefix is $CHK_MAIN :: got $got"
fi
got=$("$CHK_UV" --version 2>&1)
[[ $got == "$CHK_UV_VERSION" ]] && ok "$CHK_UV --version is $CHK_UV_VERSION" || bad "$CHK_UV --version is $CHK_UV_VERSION :: got $got"
[[ ${APP_IN_CONTAINER:-} == 1 ]] && ok "env APP_IN_CONTAINER=1" || bad "env APP_IN_CONTAINER=1 :: got '${APP_IN_CONTAINER:-}'"
# uv sync from the shipped cache, no network: "EXTRA:MODULE"
for s in $CHK_SYNC_OK $CHK_SYNC_FAIL; do
  x=${s%%:*} m=${s#*:}
  want=ok
  [[ " $CHK_SYNC_FAIL " == *" $s "* ]] && want=fail
  out=$(cd "$CHK_SRC" && UV_PROJECT_ENVIRONMENT=/tmp/check-venv-$x "$CHK_UV" sync --frozen --offline --extra "$x" 2>&1) && rc=0 || rc=$?
  if ((rc == 0)); then
    imp=$(/tmp/check-venv-$x/bin/python -I -c "import $m; print($m.VALUE)" 2>&1)
    [[ $imp == "$m" ]] || { rc=99; out="synced, but import $m: $imp"; }
  fi
  if [[ $want == ok ]]; then
    ((rc == 0)) && ok "uv sync --frozen --offline --extra $x works (and imports $m)" ||
      bad "uv sync --frozen --offline --extra $x works (and imports $m) :: exit $rc: $(printf '%s' "$out" | tail -n 4 | tr '\n' ' ')"
  else
    ((rc != 0)) && ok "uv sync --frozen --offline --extra $x fails (not in the shipped cache)" ||
      bad "uv sync --frozen --offline --extra $x fails (not in the shipped cache) :: it worked: $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')"
  fi
done
echo "END"
SCRIPT
}

# incheck LABEL IMAGE [SKIPPED_VENV...]: runs the in-image checks in IMAGE
# (something podman runs: a pulled/loaded name or oci:DIR:TAG) with
# --network none, for the test project's venvs minus the skipped ones. Counts
# every "ok"/"FAIL" line as a check prefixed with LABEL, then checks the
# source tree against the project ($PROJ, or $INCHECK_SRC_TREE) with the
# .dockerignore applied. Leaves $T/LABEL.cache (the uv cache listing).
# INCHECK_SYNC_FAIL: "EXTRA:MODULE ..." that must NOT sync offline.
incheck() {
  local label=$1 image=$2
  shift 2
  local -A skip=()
  local n venvs="" absent="" scripts="" sync_ok="" s mods m
  for n in "$@"; do skip[$n]=1; done
  for n in "${VENV_NAMES[@]}"; do
    if [[ -n ${skip[$n]:-} ]]; then
      absent+="${VENV_PATH[$n]} "
      continue
    fi
    mods=""
    for m in $ALL_MODULES; do
      if [[ " ${VENV_HAS[$n]} " == *" $m "* ]]; then mods+="$m "; else mods+="!$m "; fi
    done
    venvs+="$n ${VENV_PATH[$n]} $mods"$'\n'
  done
  for s in "${VENV_SCRIPTS[@]}"; do
    n=${s%%:*}
    [[ -n ${skip[$n]:-} ]] && continue
    s=${s#*:}
    scripts+="${VENV_PATH[$n]}/bin/${s%%:*}:${s#*:} "
  done
  for n in "${VENV_NAMES[@]}"; do
    [[ $n == main || -n ${skip[$n]:-} ]] && continue
    sync_ok+="${VENV_TAG[$n]}:${EXTRA_MODULE[${VENV_TAG[$n]}]} "
  done
  [[ -n ${INCHECK_NO_CACHE_EXTRA:-} ]] || sync_ok+="extra_cache:cache_only"
  local out=$T/incheck-$label.out
  if [[ $image != oci:* ]]; then printf '%s\n' "$image" >>"$T/.podman-images"; else
    local dir=${image#oci:}
    printf 'localhost%s\n' "${dir%:*}" >>"$T/.podman-images"
  fi
  podman --runtime runc run --rm --network none \
    -e CHK_VENVS="$venvs" -e CHK_ABSENT_PATHS="$absent" -e CHK_SCRIPTS="$scripts" \
    -e CHK_MAIN="$([[ -z ${skip[main]:-} ]] && echo "${VENV_PATH[main]}")" \
    -e CHK_UV="$IMAGE_UV" -e CHK_UV_VERSION="$("$UV_BIN" --version)" \
    -e CHK_SYNC_OK="$sync_ok" -e CHK_SYNC_FAIL="${INCHECK_SYNC_FAIL:-}" \
    -e CHK_SRC="$SRC_DEST" -e CHK_CACHE="$IMAGE_CACHE" \
    "$image" bash -c "$(incheck_script)" >"$out" 2>"$out.err" || true
  if ! grep -q '^END$' "$out"; then
    failed "$label: the in-image checks ran to the end (podman run $image)" "$(tail -n 20 "$out.err")" "$(tail -n 10 "$out")"
  fi
  local line
  while IFS= read -r line; do
    case $line in
      "ok "*) pass "$label: ${line#ok }" ;;
      "FAIL "*)
        line=${line#FAIL }
        failed "$label: ${line%% :: *}" "${line#* :: }"
        ;;
    esac
  done <"$out"
  grep '^CACHE ' "$out" | sed 's/^CACHE //' >"$T/$label.cache" || true
  grep '^SRC ' "$out" | sed 's/^SRC //' >"$T/$label.src" || true
  check_source_listing "$label: $SRC_DEST is the project with .dockerignore applied" \
    "${INCHECK_SRC_TREE:-$PROJ}" "$T/$label.src"
}

# expected_source_listing DIR: the listing incheck's script makes ("f SHA ./p",
# "d - ./p") of DIR minus SOURCE_ABSENT (and .git).
expected_source_listing() {
  python3 - "$1" "${SOURCE_ABSENT[@]}" .git <<'PY'
import hashlib, os, sys
root, absent = sys.argv[1], sys.argv[2:]
def dropped(rel):
    return any(rel == a or rel.startswith(a + "/") for a in absent)
rows = ["d - ."]
for dp, dns, fns in os.walk(root):
    for n in sorted(dns + fns):
        full = os.path.join(dp, n)
        rel = os.path.relpath(full, root)
        if dropped(rel):
            continue
        if os.path.islink(full):
            rows.append("l - ./" + rel)
        elif os.path.isdir(full):
            rows.append("d - ./" + rel)
        else:
            rows.append("f %s ./%s" % (hashlib.sha256(open(full, "rb").read()).hexdigest(), rel))
rows.sort(key=lambda r: r.split(" ", 2)[2])
print("\n".join(rows))
PY
}

# check_source_listing DESC PROJECT_DIR LISTING_FILE
check_source_listing() {
  local desc=$1 dir=$2 got=$3 p
  expected_source_listing "$dir" >"$got.expected"
  sort -k3 "$got" >"$got.sorted"
  if cmp -s "$got.expected" "$got.sorted"; then
    pass "$desc ($(wc -l <"$got.sorted") paths)"
  else
    failed "$desc" "- expected (project minus ignored), + in the image:" \
      "$(diff -U0 --label expected --label image "$got.expected" "$got.sorted" | grep -v '^@@' | head -n 40 || true)"
  fi
  local missing=() extra=()
  for p in "${SOURCE_PRESENT[@]}"; do grep -q " ./$p\$" "$got" || missing+=("$p"); done
  for p in "${SOURCE_ABSENT[@]}"; do grep -Eq " \./$p(/|\$)" "$got" && extra+=("$p"); done
  check_eq "$desc: re-included files and pyproject.toml/uv.lock are there" "" "${missing[*]}"
  check_eq "$desc: ignored paths are not there" "" "${extra[*]}"
}

# cache_packages LISTING: the fixture dist names with a dist-info in the uv
# cache listing (archive-v0/<id>/<name>-<ver>.dist-info), sorted, one line.
cache_packages() {
  grep -Eo '^\./archive-v0/[^/]+/[A-Za-z0-9_]+-[^/]+\.dist-info$' "$1" | sed -E 's#.*/([A-Za-z0-9_]+)-[^/]+\.dist-info$#\1#' | sort -u | tr '\n' ' ' | sed 's/ $//'
}

# cache_mentions LISTING NAME: paths of the cache listing that name the
# package NAME (either spelling, any bucket).
cache_mentions() {
  local re=${2//_/[-_]}
  grep -Ei "(^|/)$re([-_.]|/|\$)" "$1" || true
}

# sorted_words WORDS...: the words sorted, one line.
sorted_words() { printf '%s\n' "$@" | tr ' ' '\n' | grep -v '^$' | sort -u | tr '\n' ' ' | sed 's/ $//'; }

# explain_layer_diff REPORT_A LAYOUT_A REPORT_B LAYOUT_B: prints, for two
# builds of the same inputs, which layers differ (by name, from the reports)
# and for each differing layer the first differences of the tar entries
# (path, type, mode, uid/gid, size, mtime, link target, content sha256), read
# from the blobs of the two OCI layouts. Information for whoever fixes it.
explain_layer_diff() {
  python3 - "$@" <<'PY'
import difflib, gzip, hashlib, io, json, sys, tarfile
ra, la, rb, lb = sys.argv[1:5]
A = json.load(open(ra))["layers"]
B = json.load(open(rb))["layers"]
def entries(layout, digest):
    data = open(layout + "/blobs/sha256/" + digest.split(":")[1], "rb").read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
        for m in t:
            sha = ""
            if m.isfile():
                sha = hashlib.sha256(t.extractfile(m).read()).hexdigest()[:16]
            kind = "f" if m.isfile() else "d" if m.isdir() else "l" if m.issym() else "h" if m.islnk() else m.type.decode()
            out.append("%s %s %04o %d:%d %s:%s size=%d mtime=%d %s%s pax=%s" % (
                m.name, kind, m.mode, m.uid, m.gid, m.uname, m.gname, m.size, m.mtime,
                ("-> " + m.linkname + " ") if m.linkname else "", sha,
                sorted(k for k in m.pax_headers) if m.pax_headers else "-"))
    return out
names_a = [l["name"] for l in A]
names_b = [l["name"] for l in B]
if names_a != names_b:
    print("layer names differ:\n  A: %r\n  B: %r" % (names_a, names_b))
bmap = {l["name"]: l for l in B}
for l in A:
    o = bmap.get(l["name"])
    if o is None:
        continue
    same = l["digest"] == o["digest"]
    print("%-9s %-48s A %s  B %s  diff_id %s" % ("same" if same else "DIFFERENT", l["name"], l["digest"][7:19], o["digest"][7:19],
          "same" if l.get("diff_id") == o.get("diff_id") else "differs"))
    if same:
        continue
    try:
        ea, eb = entries(la, l["digest"]), entries(lb, o["digest"])
    except Exception as e:
        print("    (cannot read the layer tars: %s)" % e)
        continue
    d = [x for x in difflib.unified_diff(ea, eb, "A", "B", n=0, lineterm="") if not x.startswith("@@")]
    print("    %d entries in A, %d in B; first differences:" % (len(ea), len(eb)))
    for x in d[2:26]:
        print("      " + x)
    if len(d) > 26:
        print("      ... %d more lines" % (len(d) - 26))
PY
}

# layout_layer_paths LAYOUT TAG [SKIP_N]: every path in the layers of TAG's
# manifest after the first SKIP_N (default: the base's layer count), one a
# line ("LAYER_INDEX PATH"), read from the layer tars themselves.
layout_layer_paths() {
  python3 - "$1" "$2" "${3:-$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["rootfs"]["diff_ids"]))' "$T/base.config.json")}" <<'PY'
import gzip, io, json, sys, tarfile
layout, tag, skip = sys.argv[1], sys.argv[2], int(sys.argv[3])
blob = lambda d: open(layout + "/blobs/sha256/" + d.split(":")[1], "rb").read()
idx = json.load(open(layout + "/index.json"))
m = [m for m in idx["manifests"] if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag][0]
man = json.loads(blob(m["digest"]))
for i, l in enumerate(man["layers"]):
    if i < skip:
        continue
    data = blob(l["digest"])
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
        for e in t:
            print(i, "/" + e.name.lstrip("./").rstrip("/"))
PY
}

# uploaded_blobs_since MARK: the digests whose upload the registry completed
# (PUT …&digest=) after line MARK of $REGISTRY_LOG, and the mounts (201 to a
# POST …?mount=), as "upload DIGEST" / "mount DIGEST" lines.
uploaded_blobs_since() {
  registry_log_since "$1" | python3 -c '
import re, sys, urllib.parse
for line in sys.stdin:
    m = re.search(r"\"(PUT|POST) (/v2/[^ ]*) HTTP/[0-9.]+\" (\d+)", line)
    if not m:
        continue
    method, path, status = m.group(1), urllib.parse.unquote(m.group(2)), m.group(3)
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    if method == "PUT" and "/blobs/uploads/" in path and status == "201" and "digest" in q:
        print("upload", q["digest"][0])
    elif method == "POST" and "mount" in q and status == "201":
        print("mount", q["mount"][0])
'
}
