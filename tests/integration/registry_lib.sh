# Helpers shared by the registry_*.sh integration tests. Source it after
# lib.sh:
#
#     source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
#     source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
#
# It sources tests/registry/registry.sh, gives the test its own registry state
# root under the scratch dir, stops every registry it started on exit, and
# makes sure that neither dockless nor skopeo/podman pick up credentials from
# the machine (an empty containers auth file, an empty docker config dir).

export DOCKLESS_REGISTRY_STATE=$T/registries
# shellcheck source=../registry/registry.sh
source "$SOURCE_ROOT/tests/registry/registry.sh"
registry_cleanup_on_exit

mkdir -p "$T/no-creds/docker"
echo '{"auths": {}}' >"$T/no-creds/auth.json"
echo '{"auths": {}}' >"$T/no-creds/docker/config.json"
export REGISTRY_AUTH_FILE=$T/no-creds/auth.json
export DOCKER_CONFIG=$T/no-creds/docker
unset DOCKLESS_USERNAME DOCKLESS_PASSWORD

# Every dockless call gets its own cache dir unless the test passes one: a
# pull must really go to the registry (the fault tests depend on it).
# A new directory each call, also from "$(fresh_cache)": a counter bumped
# in that subshell never reached the caller, so every call gave one dir.
fresh_cache() {
  mkdir -p "$T/cache"
  mktemp -d "$T/cache/c.XXXXXX"
}

# start_registry KIND NAME [OPTS...]: starts a registry and evals its lines
# into the caller's shell (REGISTRY_HOST etc.). Stops the script if it cannot
# start: nothing after would mean anything.
start_registry() {
  local out
  out=$(registry_start "$@" 2>"$T/registry-start-$2.err") ||
    fail "registry.sh start $*" "$(tail -n 20 "$T/registry-start-$2.err")"
  eval "$out"
  echo "registry $2 ($1): $REGISTRY_URL"
}

# start_proxy NAME UPSTREAM_NAME: a fault proxy in front of UPSTREAM_NAME;
# evals PROXY_HOST, PROXY_RULES, PROXY_LOG ...
start_proxy() {
  local out
  out=$(registry_proxy "$@" 2>"$T/proxy-start-$1.err") ||
    fail "registry.sh proxy $*" "$(tail -n 20 "$T/proxy-start-$1.err")"
  eval "$out"
  echo "proxy $1 -> $2: $PROXY_URL"
}

# set_rules JSON: replaces the fault proxy's rules (it re-reads the file when
# its mtime changes; the counters restart). Waits a little so a second change
# within the same mtime tick is still seen.
set_rules() {
  sleep 0.05
  printf '%s\n' "$1" >"$PROXY_RULES.tmp"
  mv -f -- "$PROXY_RULES.tmp" "$PROXY_RULES"
  touch -d "@$(date +%s.%N)" -- "$PROXY_RULES"
}

# proxy_mark: prints the number of lines in the proxy log now; proxy_since N
# prints the lines after line N (the log of one step).
proxy_mark() { wc -l <"$PROXY_LOG" | tr -d ' '; }
proxy_since() { tail -n "+$(($1 + 1))" -- "$PROXY_LOG"; }
registry_log_mark() { wc -l <"$REGISTRY_LOG" | tr -d ' '; }
registry_log_since() { tail -n "+$(($1 + 1))" -- "$REGISTRY_LOG"; }

# dl PREFIX ARGS...: runs dockless ARGS, stdout in PREFIX.out, stderr in
# PREFIX.err, exit status in RC, wall time in seconds (float) in SECS.
dl() {
  local prefix=$1 t0 t1
  shift
  t0=$(date +%s.%N)
  run_capture "$prefix" "$DOCKLESS" "$@"
  t1=$(date +%s.%N)
  SECS=$(python3 -c "print('%.2f' % ($t1 - $t0))")
}

# check_dl DESC PREFIX ARGS...: runs dockless (like dl) and counts one check:
# exit 0 and stdout is one sha256 digest. Sets DIGEST (stdout) and RC.
check_dl() {
  local desc=$1 prefix=$2
  shift 2
  dl "$prefix" "$@"
  DIGEST=$(tr -d '\n' <"$prefix.out" 2>/dev/null || true)
  if ((RC == 0)) && [[ $DIGEST =~ ^sha256:[0-9a-f]{64}$ ]]; then
    pass "$desc (${SECS}s)"
  else
    failed "$desc" "command: dockless $(_quote "$@")" "exit status $RC, stdout $(_show "$(head -c 300 "$prefix.out")")" \
      "stderr (tail):" "$(tail -n 25 "$prefix.err")"
  fi
}

# check_dl_error DESC PREFIX NEEDLES_REGEX... -- ARGS...: runs dockless ARGS
# (the caller passes -q so that no progress lines are written), and checks in
# one check: exit status 1, stdout empty, stderr exactly one line that starts
# with "dockless: error: ", no crash; and then one check per extended regex
# (case-insensitive) the line must match. Sets ERRLINE.
check_dl_error() {
  local desc=$1 prefix=$2 problems=() res=() err lines
  shift 2
  while (($#)) && [[ $1 != -- ]]; do
    res+=("$1")
    shift
  done
  shift
  dl "$prefix" "$@"
  err=$(cat -- "$prefix.err")
  ERRLINE=$err
  lines=$(printf '%s' "$err" | awk 'END { print NR }')
  ((RC == 1)) || problems+=("exit status $RC, expected 1")
  [[ -n $err ]] || problems+=("stderr is empty")
  [[ -z $err || $lines -eq 1 ]] || problems+=("stderr has $lines lines, expected 1")
  [[ $err == "dockless: error: "* ]] || problems+=("stderr does not start with 'dockless: error: '")
  if grep -Eiq 'terminate called|what\(\)|Aborted|Segmentation|core dumped|AddressSanitizer' <<<"$err"; then
    problems+=("stderr shows a crash")
  fi
  [[ ! -s $prefix.out ]] || problems+=("stdout is not empty: $(head -c 300 "$prefix.out")")
  if ((${#problems[@]} == 0)); then
    pass "$desc: exit 1, one error line (${err:0:160})"
  else
    failed "$desc: exit 1, one error line" "command: dockless $(_quote "$@")" "${problems[@]}" "stderr was:" "$(head -n 20 <<<"$err")"
  fi
  local re
  for re in "${res[@]}"; do
    if grep -Eiq -- "$re" <<<"$err"; then
      pass "$desc: the error matches /$re/"
    else
      failed "$desc: the error matches /$re/" "error line: $err"
    fi
  done
}

# check_not_in DESC FILE SECRET: SECRET does not appear in FILE.
check_not_in() {
  if [[ -z $3 ]]; then
    failed "$1" "empty secret given (test bug)"
  elif grep -qF -- "$3" "$2"; then
    failed "$1" "found in $2:" "$(grep -F -- "$3" "$2" | head -n 5)"
  else
    pass "$1"
  fi
}

# report_actions FILE DIRECTION: the sorted, unique "action" values of the
# report's blobs in DIRECTION (pull/push), space-separated.
report_actions() {
  python3 - "$1" "$2" <<'PY' 2>/dev/null || echo "<no report>"
import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join(sorted({b["action"] for b in d["blobs"] if b["direction"] == sys.argv[2]})))
PY
}

# remote_digest REF [SKOPEO OPTS...]: the manifest digest skopeo sees at
# docker://REF (empty on failure; the error in $T/skopeo-inspect.err).
remote_digest() {
  local ref=$1
  shift
  skopeo inspect --tls-verify=false "$@" "docker://$ref" 2>"$T/skopeo-inspect.err" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Digest"])' 2>/dev/null || true
}

# podman_pull_run REF [PODMAN PULL OPTS...]: pulls REF from a registry with
# podman (TLS verification off) and runs python3 -c 'print(42)' in it; prints
# the output. The image is removed when the script exits.
podman_pull_run() {
  local ref=$1
  shift
  printf '%s\n' "$ref" >>"$T/.podman-images"
  podman pull -q --tls-verify=false "$@" "$ref" >/dev/null || return 1
  podman --runtime runc run --rm --network none "$ref" python3 -c 'print(42)'
}

# check_podman_42 DESC REF [PODMAN PULL OPTS...]
check_podman_42() {
  local desc=$1 ref=$2 out
  shift 2
  out=$(podman_pull_run "$ref" "$@" 2>"$T/podman.err") || true
  if [[ $out == 42 ]]; then
    pass "$desc"
  else
    failed "$desc" "expected output 42, got $(_show "$out")" "$(tail -n 15 "$T/podman.err")"
  fi
}

# check_podman_oci_42 DESC OCI_REF: podman run of a local layout prints 42.
check_podman_oci_42() {
  local out
  out=$(podman_run "$2" python3 -c 'print(42)' 2>"$T/podman.err") || true
  if [[ $out == 42 ]]; then
    pass "$1"
  else
    failed "$1" "expected output 42, got $(_show "$out")" "$(tail -n 15 "$T/podman.err")"
  fi
}

# layout_blob_path LAYOUT DIGEST
layout_blob_path() { printf '%s/blobs/sha256/%s\n' "$1" "${2#sha256:}"; }

# manifest_layers LAYOUT TAG: the layer digests of TAG's manifest, one a line
# (TAG must name a manifest, not an index).
manifest_layers() {
  python3 - "$1" "$2" <<'PY'
import json, sys
layout, tag = sys.argv[1:]
blob = lambda d: json.load(open(layout + "/blobs/sha256/" + d.split(":")[1]))
idx = json.load(open(layout + "/index.json"))
for m in idx["manifests"]:
    if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag:
        for l in blob(m["digest"])["layers"]:
            print(l["digest"])
PY
}

# big_layer LAYOUT TAG: the digest of the largest layer of TAG's manifest.
big_layer() {
  python3 - "$1" "$2" <<'PY'
import json, sys
layout, tag = sys.argv[1:]
blob = lambda d: json.load(open(layout + "/blobs/sha256/" + d.split(":")[1]))
idx = json.load(open(layout + "/index.json"))
for m in idx["manifests"]:
    if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag:
        print(max(blob(m["digest"])["layers"], key=lambda l: l["size"])["digest"])
PY
}

# make_multilayer_image DIR TAG N BYTES [SEED]: writes (or adds TAG to) an OCI
# layout holding an image of N gzip layers, each with BYTES incompressible
# seeded bytes in /layerK.bin (reproducible). Prints the manifest digest.
make_multilayer_image() {
  python3 - "$@" <<'PY'
import gzip, hashlib, io, json, os, random, sys, tarfile
layout, tag, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
seed = int(sys.argv[5]) if len(sys.argv) > 5 else 1
os.makedirs(layout + "/blobs/sha256", exist_ok=True)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    p = layout + "/blobs/sha256/" + d
    if not os.path.exists(p):
        open(p + ".tmp", "wb").write(data)
        os.replace(p + ".tmp", p)
    return "sha256:" + d
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
rng = random.Random(seed)
layers, diffs = [], []
for k in range(n):
    data = rng.randbytes(size) if hasattr(rng, "randbytes") else bytes(rng.getrandbits(8) for _ in range(size))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as t:
        ti = tarfile.TarInfo("layer%d.bin" % k)
        ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
        t.addfile(ti, io.BytesIO(data))
    tb = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=1, filename="") as g:
        g.write(tb)
    gb = gz.getvalue()
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(gb), "size": len(gb)})
    diffs.append("sha256:" + hashlib.sha256(tb).hexdigest())
cfg = json.dumps({"architecture": arch, "os": "linux", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": diffs}}, sort_keys=True).encode()
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
                  "layers": layers}).encode()
md = put(man)
ipath = layout + "/index.json"
idx = json.load(open(ipath)) if os.path.exists(ipath) else {"schemaVersion": 2, "manifests": []}
idx["manifests"] = [m for m in idx["manifests"] if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") != tag]
idx["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(man),
                         "annotations": {"org.opencontainers.image.ref.name": tag}})
json.dump(idx, open(ipath, "w"))
open(layout + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
print(md)
PY
}
