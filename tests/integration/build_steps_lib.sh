# The [[step]] build of build_steps.sh, shared with build_steps_nonroot.sh:
# its helpers, its fixtures (a base image, a flat apt repository on
# 127.0.0.1, a project with four steps, a --context dir, a secret) and the
# checks every build of that spec must pass (apt, useradd, whiteouts, hard
# links, --context, secret, labels; podman and umoci; rebuilds; --arg SETUP=).
# Source it after lib.sh. Before sourcing, a script may set
#   W       where the fixtures, cache and outputs go (default $T);
#   RUN_AS  a command prefix for `dockless build` (default none: as this user).
# Then: steps_fixtures; steps_shared_checks.

W=${W:-$T}
if [[ -z ${RUN_AS+x} ]]; then RUN_AS=(); fi

FIXTURES=$SOURCE_ROOT/tests/fixtures
CACHE=$W/cache
SECRET_VALUE=tok-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
SECRET_SHA=$(printf '%s' "$SECRET_VALUE" | sha256sum | cut -c1-64)
unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy

# ---------------------------------------------------------------- helpers

# build PREFIX ARGS...: `dockless build ARGS`, stdout/stderr in PREFIX.out/.err.
# Sets RC, DIGEST (stdout), LAST (the last stderr line), STEP_RUNS (from
# "(N uv runs, M step runs)" on that line; empty if absent), SECS.
build() {
  local prefix=$1 t0
  shift
  t0=$(date +%s.%N)
  RC=0
  "${RUN_AS[@]}" "$DOCKLESS" build "$@" >"$prefix.out" 2>"$prefix.err" || RC=$?
  SECS=$(python3 -c "print('%.1f' % ($(date +%s.%N) - $t0))")
  DIGEST=$(tr -d '\n' <"$prefix.out")
  LAST=$(grep -v '^[[:space:]]*$' "$prefix.err" | tail -n 1 || true)
  STEP_RUNS=$(sed -nE 's/.*[ (]([0-9]+) step runs?\).*/\1/p' <<<"$LAST")
}

# check_build DESC PREFIX ARGS...: the build exits 0 and prints a digest.
check_build() {
  local desc=$1 prefix=$2
  shift 2
  build "$prefix" "$@"
  if ((RC == 0)) && [[ $DIGEST =~ ^sha256:[0-9a-f]{64}$ ]]; then
    pass "$desc (${SECS}s; $LAST)"
  else
    failed "$desc" "command: dockless build $(_quote "$@")" "exit status $RC, stdout $(_show "$(head -c 300 "$prefix.out")")" \
      "stderr (tail):" "$(tail -n 25 "$prefix.err")"
  fi
}

# check_fails DESC PREFIX STATUS REGEX... -- ARGS...: the build exits STATUS,
# prints nothing on stdout, no crash, its last stderr line starts with
# "dockless: error: " and matches every REGEX (extended, case-insensitive),
# and no work dir is left in the cache. Sets ERRLINE.
check_fails() {
  local desc=$1 prefix=$2 want=$3 res=() problems=() re left
  shift 3
  while (($#)) && [[ $1 != -- ]]; do
    res+=("$1")
    shift
  done
  shift
  build "$prefix" "$@"
  ERRLINE=$LAST
  ((RC == want)) || problems+=("exit status $RC, expected $want")
  [[ $ERRLINE == "dockless: error: "* ]] || problems+=("the last stderr line does not start with 'dockless: error: '")
  grep -Eiq 'terminate called|what\(\)|Aborted|Segmentation|core dumped|Sanitizer' "$prefix.err" &&
    problems+=("stderr shows a crash")
  [[ ! -s $prefix.out ]] || problems+=("stdout is not empty: $(head -c 300 "$prefix.out")")
  if ((${#problems[@]} == 0)); then
    pass "$desc: exit $want (${ERRLINE:0:240})"
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

# check_no_work DESC CACHE: nothing is left under CACHE/work.
check_no_work() {
  local left
  left=$(find "$2/work" -mindepth 1 -maxdepth 1 2>/dev/null || true)
  if [[ -z $left ]]; then
    pass "$1: no work dir left in $2/work"
  else
    failed "$1: no work dir left in $2/work" "$left"
  fi
}

# layer_digest REPORT NAME: the digest of the layer named NAME in a build report.
layer_digest() {
  python3 -c 'import json, sys
for l in json.load(open(sys.argv[1]))["layers"]:
    if l["name"] == sys.argv[2]:
        print(l["digest"])' "$1" "$2" 2>/dev/null || true
}

# layer_names REPORT: the layer names of a report, one a line.
layer_names() {
  python3 -c 'import json, sys; [print(l["name"]) for l in json.load(open(sys.argv[1]))["layers"]]' "$1" 2>/dev/null || true
}

# layer_entries LAYOUT DIGEST: the entry names of a layer blob (gzip or not).
layer_entries() {
  python3 - "$1" "$2" <<'PY'
import gzip, io, sys, tarfile
data = open(sys.argv[1] + "/blobs/sha256/" + sys.argv[2].split(":")[1], "rb").read()
if data[:2] == b"\x1f\x8b":
    data = gzip.decompress(data)
with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
    for e in t:
        print(e.name.lstrip("./") if e.name not in (".", "./") else ".")
PY
}

# layer_owners LAYOUT DIGEST: "NAME UID:GID" for each entry of a layer blob.
layer_owners() {
  python3 - "$1" "$2" <<'PY'
import gzip, io, sys, tarfile
data = open(sys.argv[1] + "/blobs/sha256/" + sys.argv[2].split(":")[1], "rb").read()
if data[:2] == b"\x1f\x8b":
    data = gzip.decompress(data)
with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
    for e in t:
        print(e.name.lstrip("./") or ".", "%d:%d" % (e.uid, e.gid))
PY
}

# manifest_layers LAYOUT TAG: the layer digests of TAG's manifest, one a line.
manifest_layers() {
  python3 - "$1" "$2" <<'PY'
import json, sys
layout, tag = sys.argv[1], sys.argv[2]
idx = json.load(open(layout + "/index.json"))
m = [m for m in idx["manifests"] if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag][0]
man = json.load(open(layout + "/blobs/sha256/" + m["digest"].split(":")[1]))
for l in man["layers"]:
    print(l["digest"])
PY
}

# find_bytes NEEDLE PATH...: every file under PATHs whose bytes (gunzipped
# when gzip) contain NEEDLE, one a line.
find_bytes() {
  python3 - "$@" <<'PY'
import gzip, os, sys
needle = sys.argv[1].encode()
def look(p):
    try:
        data = open(p, "rb").read()
    except OSError:
        return
    hit = needle in data
    if not hit and data[:2] == b"\x1f\x8b":
        try:
            hit = needle in gzip.decompress(data)
        except Exception:
            pass
    if hit:
        print(p)
for root in sys.argv[2:]:
    if os.path.isfile(root):
        look(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            if os.path.isfile(p) and not os.path.islink(p):
                look(p)
PY
}

# The in-image probe: one line per fact, KEY=VALUE.
PROBE='
echo "jq=$(jq-standin 2>&1)"
test -e /etc/issue && echo issue=present || echo issue=absent
echo "doc=$(ls -A /usr/share/doc | tr "\n" " ")"
echo "home=$(stat -c %U:%G:%u:%g /home/alice)"
echo "passwd=$(grep "^alice:" /etc/passwd | cut -d: -f1,3,6)"
echo "inodes=$(stat -c %i /opt/hl-a) $(stat -c %i /opt/hl-b)"
echo "custom=$(cat /opt/custom-ran 2>&1)"
echo "secret_step=$(cat /opt/secret-checked 2>&1)"
echo "debs=$(find /var/cache/apt -name "*.deb" | wc -l)"
echo "secrets_dir=$(ls -A /run/secrets 2>/dev/null | wc -l)"
echo "app=$(cat /app/app.py)"
'
# probe_val FILE KEY: the value of KEY in a probe's output.
probe_val() { sed -n "s/^$2=//p" "$1" | head -n 1; }

# check_probe LABEL FILE: the facts every build of the spec must show.
check_probe() {
  local l=$1 f=$2 ino
  check_eq "$l: jq-standin (installed by apt from the local repo) runs" "$JQ_LINE" "$(probe_val "$f" jq)"
  check_eq "$l: /etc/issue (removed by a step) is gone" absent "$(probe_val "$f" issue)"
  check_eq "$l: /usr/share/doc holds only the step's new file" "README " "$(probe_val "$f" doc)"
  check_eq "$l: /home/alice is owned by alice:alice, uid/gid 1234" "alice:alice:1234:1234" "$(probe_val "$f" home)"
  check_eq "$l: alice in /etc/passwd (uid 1234, home /home/alice)" "alice:1234:/home/alice" "$(probe_val "$f" passwd)"
  ino=($(probe_val "$f" inodes))
  if [[ ${#ino[@]} == 2 && ${ino[0]} == "${ino[1]}" ]]; then
    pass "$l: /opt/hl-a and /opt/hl-b share an inode (${ino[0]})"
  else
    failed "$l: /opt/hl-a and /opt/hl-b share an inode" "inodes: ${ino[*]:-none}"
  fi
  check_eq "$l: the --context script ran (its file is in the image)" "custom setup ran" "$(probe_val "$f" custom)"
  check_eq "$l: the secret step ran" "secret matched" "$(probe_val "$f" secret_step)"
  check_eq "$l: no .deb under /var/cache/apt (a cache mount)" 0 "$(probe_val "$f" debs)"
  check_eq "$l: nothing under /run/secrets" 0 "$(probe_val "$f" secrets_dir)"
}


# steps_fixtures: the base image, the apt repository server, the project,
# its spec and COMMON (the build arguments every build of it takes).
steps_fixtures() {
  echo "dockless: $DOCKLESS"
  echo "scratch: $T"
  section "fixtures: base image, apt repository on 127.0.0.1, project, context, secret"
  ROOTFS=$(fixture_rootfs) || fail "the debootstrap fixture is not available"
  require "dockless import $ROOTFS --output oci:$W/base:py" "$DOCKLESS" import "$ROOTFS" --output "oci:$W/base:py"
  JQ_LINE=$(python3 "$FIXTURES/make_apt_repo.py" "$W/repo") || fail "make_apt_repo.py $W/repo failed"
  require "the repository has a .deb, Packages and Release" test -s "$W/repo/jq-standin_1.0_all.deb" -a -s "$W/repo/Packages" -a -s "$W/repo/Release"

  # The repository server: a free port, retried if another process takes it first.
  for attempt in 1 2 3 4 5; do
    REPO_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    python3 -m http.server --bind 127.0.0.1 --directory "$W/repo" "$REPO_PORT" >"$W/repo.out" 2>"$W/repo.log" &
    REPO_PID=$!
    for ((i = 0; i < 50; i++)); do
      curl -fsS -o /dev/null "http://127.0.0.1:$REPO_PORT/Packages" 2>/dev/null && break
      kill -0 "$REPO_PID" 2>/dev/null || break
      sleep 0.1
    done
    if curl -fsS -o /dev/null "http://127.0.0.1:$REPO_PORT/Packages" 2>/dev/null; then
      at_exit kill "$REPO_PID"
      break
    fi
    kill "$REPO_PID" 2>/dev/null || true
    REPO_PID=
  done
  [[ -n $REPO_PID ]] || fail "python3 -m http.server did not start" "$(tail -n 5 "$W/repo.log")"
  echo "apt repository: http://127.0.0.1:$REPO_PORT/ (log $W/repo.log)"
  REPO_MARK=$(wc -l <"$W/repo.log")
  # repo_gets: the paths apt fetched from the repository since the server started.
  repo_gets() { tail -n "+$((REPO_MARK + 1))" "$W/repo.log" | sed -nE 's|.*"GET /(\./)?([^ ]*) HTTP.*" 200 .*|\2|p' | sort -u | paste -sd' '; }

  PROJ=$W/proj
  mkdir -p "$PROJ" "$W/ctx"
  echo 'print("v1")' >"$PROJ/app.py"
  echo 'echo "custom setup ran" > /opt/custom-ran' >"$W/ctx/setup.sh"
  printf '%s' "$SECRET_VALUE" >"$W/secret.txt"
  cat >"$PROJ/dockless.toml" <<EOF
[image]
base = "oci:$W/base:py"
cmd = ["bash"]
labels = { "org.example.commit" = "\${COMMIT}" }

[args]
COMMIT = "unknown"
SETUP = "setup.sh"

[uv]
uv-path = ""

[source]
dest = "/app"

[[step]]
name = "apt"
at = "base"
env = { DEBIAN_FRONTEND = "noninteractive" }
run = """
echo "deb [trusted=yes] http://127.0.0.1:$REPO_PORT/ ./" > /etc/apt/sources.list.d/local.list
apt-get -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/local.list -o Dir::Etc::sourceparts=- update
apt-get -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/local.list -o Dir::Etc::sourceparts=- install -y --no-install-recommends jq-standin
"""
mounts = [{ type = "cache", id = "apt", target = "/var/cache/apt", sharing = "locked" }]

[[step]]
name = "files"
run = """
rm /etc/issue
rm -rf /usr/share/doc && mkdir /usr/share/doc && echo new > /usr/share/doc/README
useradd -m -u 1234 alice
echo x > /opt/hl-a && ln /opt/hl-a /opt/hl-b
"""

[[step]]
name = "custom setup"
skip-if-empty = "SETUP"
run = "bash /tmp/custom/\${SETUP}"
mounts = [{ type = "bind", context = "custom", source = ".", target = "/tmp/custom" }]

[[step]]
name = "secret"
run = '''
if [ "\$(sha256sum < /run/secrets/tok | cut -c1-64)" != "$SECRET_SHA" ]; then
  echo "the token does not match"
  exit 3
fi
echo "secret matched" > /opt/secret-checked
'''
mounts = [{ type = "secret", id = "tok" }]
EOF
  COMMON=(--cache-dir "$CACHE" --arg COMMIT=abc123 --context "custom=$W/ctx" --secret "id=tok,src=$W/secret.txt")
}

# steps_shared_checks: the first build and every check of it, the rebuilds,
# --arg SETUP=.
steps_shared_checks() {
  # ---------------------------------------------------------------- first build
  section "dockless build: apt, useradd, whiteouts, hard links, --context, secret, labels"
  check_build "dockless build $PROJ (4 steps)" "$W/b1" "$PROJ" --output "oci:$W/out:latest" --report "$W/r1.json" "${COMMON[@]}"
  ((CHECK_OK)) || fail "the first build failed; nothing else can be judged"
  B1=$DIGEST
  check_eq "the first build ran 4 steps (\"$LAST\")" 4 "$STEP_RUNS"
  layer_names "$W/r1.json" | sed 's/^/    layer: /'
  check_eq "the apt step fetched the index and the .deb from the local repository" \
    "Packages.gz Release jq-standin_1.0_all.deb" "$(repo_gets)"
  check_eq "the .deb is in dockless's cache dir (\$CACHE/step-caches/*/archives/)" "jq-standin_1.0_all.deb" \
    "$(cd "$CACHE" && ls step-caches/*/archives/*.deb 2>/dev/null | xargs -r -n1 basename | sort -u | tr '\n' ' ' | sed 's/ $//')"
  check_no_work "after the first build" "$CACHE"

  section "podman: the image"
  podman_run "oci:$W/out:latest" bash -c "$PROBE" >"$W/p1.txt" 2>"$W/p1.err" ||
    failed "podman run oci:$W/out:latest" "$(tail -n 10 "$W/p1.err")"
  sed 's/^/    /' "$W/p1.txt"
  check_probe "podman" "$W/p1.txt"

  section "the layer tars: whiteout, opaque dir, no cache or secret mount contents"
  L_APT=$(layer_digest "$W/r1.json" "step apt")
  L_FILES=$(layer_digest "$W/r1.json" "step files")
  L_CUSTOM=$(layer_digest "$W/r1.json" "step custom setup")
  L_SECRET=$(layer_digest "$W/r1.json" "step secret")
  layer_entries "$W/out" "$L_FILES" >"$W/files.entries" 2>&1 || true
  check "the files layer has etc/.wh.issue" grep -qx 'etc/.wh.issue' "$W/files.entries"
  check "the files layer has usr/share/doc/.wh..wh..opq" grep -qx 'usr/share/doc/.wh..wh..opq' "$W/files.entries"
  check "the files layer has usr/share/doc/README" grep -qx 'usr/share/doc/README' "$W/files.entries"
  layer_entries "$W/out" "$L_APT" >"$W/apt.entries" 2>&1 || true
  check "the apt layer has usr/bin/jq-standin" grep -qx 'usr/bin/jq-standin' "$W/apt.entries"
  check_eq "the apt layer has nothing under var/cache/apt but the dir itself" "" \
    "$(grep -E '^var/cache/apt/.' "$W/apt.entries" || true)"
  layer_owners "$W/out" "$L_APT" >"$W/apt.owners" 2>&1 || true
  check_eq "the apt layer: var/lib/apt/lists/partial keeps _apt's uid 42 (apt chowned it)" "42:0" \
    "$(awk '$1 == "var/lib/apt/lists/partial" {print $2}' "$W/apt.owners")"
  layer_owners "$W/out" "$L_FILES" >"$W/files.owners" 2>&1 || true
  check_eq "the files layer: home/alice and home/alice/.bashrc are alice's (1234:1234), not root's" \
    "1234:1234 1234:1234" "$(awk '$1 == "home/alice" || $1 == "home/alice/.bashrc" {print $2}' "$W/files.owners" | paste -sd' ')"
  for l in $(layer_names "$W/r1.json" | grep '^step ' | while read -r n; do layer_digest "$W/r1.json" "$n"; done); do
    layer_owners "$W/out" "$l"
  done >"$W/steps.owners" 2>&1 || true
  check_eq "every step layer's owners are 0, 4 (adm: apt's term.log), 42 (_apt; shadow) or 1234 (alice): no host or subordinate ids" "" \
    "$(awk '{ split($2, id, ":"); for (i = 1; i <= 2; i++) if (id[i] != 0 && id[i] != 4 && id[i] != 42 && id[i] != 1234) print }' "$W/steps.owners" | head -n 5)"
  for l in "$L_CUSTOM" "$L_SECRET"; do
    layer_entries "$W/out" "$l"
  done >"$W/late.entries" 2>&1 || true
  check_eq "no layer of a later step has entries under tmp/custom or run/secrets" "" \
    "$(grep -E '^(tmp/custom|run/secrets)/.' "$W/late.entries" || true)"

  section "the secret is nowhere: blobs, report, build output, cache dir"
  check_eq "the secret's value is in no blob of $W/out (gunzipped)" "" "$(find_bytes "$SECRET_VALUE" "$W/out")"
  check_eq "the secret's value is not in the report or the build output" "" "$(find_bytes "$SECRET_VALUE" "$W/r1.json" "$W/b1.out" "$W/b1.err")"
  check_eq "the secret's value is nowhere in the cache dir" "" "$(find_bytes "$SECRET_VALUE" "$CACHE")"
  check "sanity: find_bytes finds the value in the secret file itself" test -n "$(find_bytes "$SECRET_VALUE" "$W/secret.txt")"

  section "labels from args"
  skopeo inspect --config "oci:$W/out:latest" >"$W/c1.json" 2>"$W/c1.err" || failed "skopeo inspect --config oci:$W/out:latest" "$(cat "$W/c1.err")"
  check_python "skopeo: label org.example.commit = abc123 (from --arg COMMIT=abc123)" "$W/c1.json" '
labels = d["config"].get("Labels") or {}
assert labels.get("org.example.commit") == "abc123", labels'

  section "umoci unpack agrees with podman"
  if umoci unpack --image "$W/out:latest" "$W/bundle" >"$W/umoci.out" 2>&1; then
    pass "umoci unpack --image $W/out:latest"
    R=$W/bundle/rootfs
    check "umoci: /etc/issue is gone" test ! -e "$R/etc/issue" -a ! -L "$R/etc/issue"
    check_eq "umoci: /usr/share/doc holds only README" "README" "$(ls -A "$R/usr/share/doc" | tr '\n' ' ' | sed 's/ $//')"
    check_eq "umoci: /home/alice is owned by 1234:1234 (alice in the image's passwd)" "1234:1234 alice:x:1234" \
      "$(stat -c %u:%g "$R/home/alice") $(grep '^alice:' "$R/etc/passwd" | cut -d: -f1-3)"
    check_eq "umoci: /opt/hl-a and /opt/hl-b share an inode" "$(stat -c %i "$R/opt/hl-a")" "$(stat -c %i "$R/opt/hl-b")"
    check "umoci: jq-standin is an executable file" test -x "$R/usr/bin/jq-standin"
    check_eq "umoci: no .deb under /var/cache/apt" "" "$(find "$R/var/cache/apt" -name '*.deb')"
  else
    failed "umoci unpack --image $W/out:latest" "$(tail -n 10 "$W/umoci.out")"
  fi

  # ---------------------------------------------------------------- rebuilds
  section "rebuilds: nothing changed, a step edited, a source edit"
  check_build "the same build again" "$W/b2" "$PROJ" --output "oci:$W/out:latest" --report "$W/r2.json" "${COMMON[@]}"
  check_eq "nothing changed: 0 step runs (\"$LAST\")" 0 "$STEP_RUNS"
  check_digests_equal "nothing changed: the same manifest digest" "$B1" "$DIGEST"

  sed -i 's|^echo x > /opt/hl-a && ln /opt/hl-a /opt/hl-b$|&\necho edited > /etc/edited|' "$PROJ/dockless.toml"
  require "the spec's step 2 was edited" grep -qx 'echo edited > /etc/edited' "$PROJ/dockless.toml"
  check_build "step 2 (files) edited" "$W/b3" "$PROJ" --output "oci:$W/out-edit:latest" --report "$W/r3.json" "${COMMON[@]}"
  check_eq "step 2 edited: steps 2, 3 and 4 run (\"$LAST\")" 3 "$STEP_RUNS"
  check_digests_equal "step 2 edited: step 1 (apt) keeps its layer digest" "$L_APT" "$(layer_digest "$W/r3.json" "step apt")"
  check_digests_differ "step 2 edited: step 2's layer changed" "$L_FILES" "$(layer_digest "$W/r3.json" "step files")"
  check_eq "step 2 edited: the manifest's first layers are the base's and step 1's" \
    "$(manifest_layers "$W/out" latest | head -n 2)" "$(manifest_layers "$W/out-edit" latest | head -n 2)"

  echo 'print("v2")' >"$PROJ/app.py"
  check_build "a source edit (app.py)" "$W/b4" "$PROJ" --output "oci:$W/out-src:latest" --report "$W/r4.json" "${COMMON[@]}"
  check_eq "source edit: 0 step runs (\"$LAST\")" 0 "$STEP_RUNS"
  check_eq "source edit: only the source layer changed" "source /app" \
    "$(python3 -c 'import json, sys
a = {l["name"]: l["digest"] for l in json.load(open(sys.argv[1]))["layers"]}
b = {l["name"]: l["digest"] for l in json.load(open(sys.argv[2]))["layers"]}
print(" ".join(sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n))))' "$W/r3.json" "$W/r4.json")"
  check_eq "source edit: the manifest has as many layers" "$(manifest_layers "$W/out-edit" latest | wc -l)" "$(manifest_layers "$W/out-src" latest | wc -l)"

  section "--arg SETUP= leaves the custom step out"
  check_build "build with --arg SETUP=" "$W/b5" "$PROJ" --output "oci:$W/out-skip:latest" --report "$W/r5.json" "${COMMON[@]}" --arg SETUP=
  check_eq "SETUP empty: no 'step custom setup' layer; the other steps' layers are there" \
    "step apt|step files|step secret|source /app" "$(layer_names "$W/r5.json" | paste -sd'|')"
  check_eq "SETUP empty: the build says nothing failed" "" "$(grep -Ei 'error|fail' "$W/b5.err" || true)"
  check_eq "SETUP empty: no /opt/custom-ran in any layer" "" \
    "$(for l in $(manifest_layers "$W/out-skip" latest | tail -n +2); do layer_entries "$W/out-skip" "$l"; done | grep -x 'opt/custom-ran' || true)"

}
