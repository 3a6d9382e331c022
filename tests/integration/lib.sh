# Shared helpers for the integration tests. Source it first thing:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# A test script calls `check`-style helpers; each one counts as one check,
# prints "ok" or "FAIL" and carries on, so one run reports every failing check.
# `fail MSG` (and `require ...`) count a failure and stop the script: use them
# when the rest of the script cannot mean anything (e.g. the import failed).
# On exit the script prints "NAME: N passed, M failed" and exits non-zero if
# anything failed (or an unexpected command failed under set -e).
#
# Env: DOCKLESS (the binary; meson passes it), DOCKLESS_SOURCE_ROOT (optional),
# DOCKLESS_KEEP_SCRATCH=1 keeps the scratch dir for a post-mortem.

set -euo pipefail
set -E
shopt -s inherit_errexit 2>/dev/null || true
export LC_ALL=C

TEST_NAME=$(basename -- "$0" .sh)
INTEG_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
SOURCE_ROOT=${DOCKLESS_SOURCE_ROOT:-$(cd -- "$INTEG_DIR/../.." && pwd)}

if [[ -z ${DOCKLESS:-} ]]; then
  DOCKLESS=$SOURCE_ROOT/build/src/dockless
  echo "note: DOCKLESS not set, using $DOCKLESS" >&2
fi
if [[ ! -x $DOCKLESS ]]; then
  echo "$TEST_NAME: DOCKLESS=$DOCKLESS is not an executable" >&2
  echo "$TEST_NAME: 0 passed, 1 failed"
  exit 1
fi
export DOCKLESS

PASSED=0
FAILED=0
FAILED_CHECKS=()

# The scratch dir. Its path must be lowercase: podman names an image pulled
# from oci:DIR after DIR, and a reference with capitals is refused.
_scratch_base=${TMPDIR:-/tmp}
[[ $_scratch_base == *[!a-z0-9/._-]* ]] && _scratch_base=/tmp
T=$_scratch_base/dockless-it-$(printf '%s' "$TEST_NAME" | tr 'A-Z_' 'a-z-')-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
mkdir -m 0700 -- "$T"
export T

_AT_EXIT=()
# at_exit CMD [ARGS...]: run CMD when the script exits (last registered runs
# first), before the scratch dir is removed: unmount, chattr -i, stop servers.
# Call it from the script's own shell, not from a command substitution.
at_exit() {
  local q
  printf -v q '%q ' "$@"
  _AT_EXIT+=("$q")
}

_on_exit() {
  local rc=$? img i
  trap - EXIT ERR
  set +e
  for ((i = ${#_AT_EXIT[@]} - 1; i >= 0; i--)); do
    eval "${_AT_EXIT[i]}" >/dev/null 2>&1
  done
  if [[ -f $T/.podman-images ]]; then
    sort -u "$T/.podman-images" | while read -r img; do
      podman rmi -f -i "$img" >/dev/null 2>&1
    done
  fi
  if [[ $rc -ne 0 && $FAILED -eq 0 ]]; then
    # set -e stopped the script outside a check: count it.
    FAILED=$((FAILED + 1))
    FAILED_CHECKS+=("script aborted with exit $rc (see the error above)")
  fi
  if [[ ${DOCKLESS_KEEP_SCRATCH:-0} == 1 ]]; then
    echo "scratch kept: $T"
  else
    rm -rf --one-file-system -- "$T"
  fi
  echo
  if ((FAILED)); then
    echo "failed checks:"
    printf '  - %s\n' "${FAILED_CHECKS[@]}"
  fi
  echo "$TEST_NAME: $PASSED passed, $FAILED failed"
  ((FAILED == 0)) && exit 0
  exit 1
}
trap _on_exit EXIT
trap 'echo "error: \"$BASH_COMMAND\" failed (exit $?) at ${BASH_SOURCE[0]}:$LINENO" >&2' ERR

# ---------------------------------------------------------------- reporting

section() { printf '\n== %s\n' "$*"; }

pass() {
  PASSED=$((PASSED + 1))
  CHECK_OK=1
  printf '  ok    %s\n' "$1"
}

# failed DESC [DETAIL...]: count one failed check and print its details.
failed() {
  local desc=$1
  shift
  FAILED=$((FAILED + 1))
  CHECK_OK=0
  FAILED_CHECKS+=("$desc")
  printf '  FAIL  %s\n' "$desc"
  local line
  for line in "$@"; do
    printf '%s\n' "$line" | sed 's/^/        | /'
  done
}

# fail MSG...: a failed check that stops the script (the summary still prints).
fail() {
  failed "$@"
  exit 1
}

# ---------------------------------------------------------------- checks
# Every check_* counts one check and returns 0 whatever the outcome (so
# set -e never stops the script on a failed check); CHECK_OK is 1 after a
# passed check and 0 after a failed one: `check ... ; ((CHECK_OK)) || ...`.
CHECK_OK=1

# check DESC CMD [ARGS...]: passes when CMD exits 0. On failure prints the
# exit status and the tail of CMD's stdout+stderr.
check() {
  local desc=$1
  shift
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if ((rc == 0)); then
    pass "$desc"
  else
    failed "$desc" "command: $(_quote "$@")" "exit status $rc" "$(printf '%s\n' "$out" | tail -n 25)"
  fi
}

# require DESC CMD [ARGS...]: like check, but stops the script on failure.
require() {
  check "$@"
  ((CHECK_OK)) || exit 1
}

# check_eq DESC EXPECTED ACTUAL
check_eq() {
  if [[ $2 == "$3" ]]; then
    pass "$1"
  else
    failed "$1" "expected: $(_show "$2")" "actual:   $(_show "$3")"
  fi
}

# check_ne DESC A B: passes when A and B differ.
check_ne() {
  if [[ $2 != "$3" ]]; then
    pass "$1"
  else
    failed "$1" "both are: $(_show "$2")"
  fi
}

# check_digests_equal DESC A B / check_digests_differ DESC A B: compare two
# digests; both must be sha256:<64 hex> (an empty one, from a failed step,
# fails the check instead of comparing equal to another empty one).
check_digests_equal() { _check_digests "$1" "$2" "$3" eq; }
check_digests_differ() { _check_digests "$1" "$2" "$3" ne; }
_check_digests() {
  local re='^sha256:[0-9a-f]{64}$'
  if ! [[ $2 =~ $re && $3 =~ $re ]]; then
    failed "$1" "not two digests: $(_show "$2") and $(_show "$3")"
  elif [[ $4 == eq ]]; then
    check_eq "$1" "$2" "$3"
  else
    check_ne "$1" "$2" "$3"
  fi
}

# check_contains DESC HAYSTACK NEEDLE (fixed string)
check_contains() {
  if [[ $2 == *"$3"* ]]; then
    pass "$1"
  else
    failed "$1" "expected to contain: $(_show "$3")" "in: $(printf '%s' "$2" | head -c 2000)"
  fi
}

# check_python DESC FILE CODE: runs python3 CODE with the JSON in FILE loaded
# as `d` (and the raw text as `raw`); passes when CODE runs without an
# exception (use assert with a message).
check_python() {
  local desc=$1 file=$2 code=$3 out rc=0
  out=$(python3 -c '
import json, sys
raw = open(sys.argv[1], "rb").read()
d = json.loads(raw)
code = sys.argv[2]
try:
    exec(code, {"d": d, "raw": raw, "json": json})
except AssertionError as e:
    print("assertion failed:", e if str(e) else code)
    sys.exit(1)
' "$file" "$code" 2>&1) || rc=$?
  if ((rc == 0)); then
    pass "$desc"
  else
    failed "$desc" "$(printf '%s\n' "$out" | tail -n 20)"
  fi
}

# check_same_file DESC FILE_A FILE_B: byte-identical; prints a diff if not.
check_same_file() {
  if cmp -s -- "$2" "$3"; then
    pass "$1"
  else
    failed "$1" "$2 and $3 differ:" "$(diff -u -- "$2" "$3" | head -n 60 || true)"
  fi
}

_quote() { local s; printf -v s '%q ' "$@"; printf '%s' "${s% }"; }
_show() { printf '%q' "$1" | head -c 2000; }

# ---------------------------------------------------------------- runners

# run_capture OUT_PREFIX CMD [ARGS...]: runs CMD, stdout to OUT_PREFIX.out,
# stderr to OUT_PREFIX.err, exit status to the global RC. Never stops.
run_capture() {
  local prefix=$1
  shift
  RC=0
  "$@" >"$prefix.out" 2>"$prefix.err" || RC=$?
}

# podman_run OCI_REF CMD...: runs CMD in the image (runc, --rm); prints its
# stdout; the image podman stored is removed when the script exits. (Safe in
# a command substitution: the image name is recorded in a file, not a variable.)
podman_run() {
  local ref=$1
  shift
  local dir=${ref#oci:}
  dir=${dir%:*}
  printf 'localhost%s\n' "$dir" >>"$T/.podman-images"
  podman --runtime runc run --rm --network none "$ref" "$@"
}

# ---------------------------------------------------------------- fixtures

# fixture_rootfs: prints the cached debootstrap rootfs path (builds it the
# first time; that needs root and the Debian mirror). Use it as
#     ROOTFS=$(fixture_rootfs) || fail "the debootstrap fixture is not available"
fixture_rootfs() {
  local path
  if ! path=$(bash "$SOURCE_ROOT/scripts/fixtures/debian-rootfs.sh"); then
    echo "fixture: scripts/fixtures/debian-rootfs.sh failed" >&2
    return 1
  fi
  if [[ ! -d $path || ! -x $path/usr/bin/python3 ]]; then
    echo "fixture: '$path' is not a rootfs with python3" >&2
    return 1
  fi
  printf '%s\n' "$path"
}

# ---------------------------------------------------------------- trees

# tree_manifest DIR: one line per path under DIR (DIR itself is "."), sorted
# by path bytes: PATH TYPE MODE DETAIL, where TYPE is f/d/l/c/b/p/s, MODE the
# permission bits in octal with setuid/setgid/sticky ("-" for symlinks),
# DETAIL the sha256 of a regular file's contents, "-> TARGET" for a symlink,
# "MAJOR,MINOR" for a device. Owners, times and link counts are left out.
# Non-printable bytes in names are escaped, so every entry is one line.
tree_manifest() {
  python3 - "$1" <<'PY'
import hashlib, os, stat, sys

root = os.fsencode(sys.argv[1])

def esc(b):
    return "".join(chr(c) if 32 < c < 127 and c != 92 else "\\x%02x" % c for c in b)

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

rows = []
def entry(rel, full):
    st = os.lstat(full)
    m = st.st_mode
    perm = "%04o" % stat.S_IMODE(m)
    if stat.S_ISREG(m):
        row = (rel, "f", perm, sha256(full))
    elif stat.S_ISDIR(m):
        row = (rel, "d", perm, "")
    elif stat.S_ISLNK(m):
        row = (rel, "l", "-", "-> " + esc(os.readlink(full)))
    elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
        row = (rel, "c" if stat.S_ISCHR(m) else "b", perm,
               "%d,%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)))
    elif stat.S_ISFIFO(m):
        row = (rel, "p", perm, "")
    else:
        row = (rel, "s", perm, "")
    rows.append(row)

entry(b".", root)
for dirpath, dirnames, filenames in os.walk(root):
    for name in dirnames + filenames:
        full = os.path.join(dirpath, name)
        entry(b"./" + os.path.relpath(full, root), full)

rows.sort(key=lambda r: r[0])
out = sys.stdout
for rel, t, perm, detail in rows:
    out.write("%s %s %s%s\n" % (esc(rel), t, perm, (" " + detail) if detail else ""))
PY
}

# tree_owners DIR: "PATH UID:GID" for every path, sorted.
tree_owners() {
  (cd -- "$1" && find . -printf '%p %U:%G\n' | sort)
}

# hardlink_groups DIR: one line per set of paths under DIR that share an
# inode (regular files with a link count > 1, links within DIR only), each set
# sorted, the lines sorted.
hardlink_groups() {
  python3 - "$1" <<'PY'
import os, stat, sys
root = sys.argv[1]
groups = {}
for dirpath, dirnames, filenames in os.walk(root):
    for name in filenames:
        full = os.path.join(dirpath, name)
        st = os.lstat(full)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            groups.setdefault((st.st_dev, st.st_ino), []).append("./" + os.path.relpath(full, root))
lines = sorted(" ".join(sorted(g)) for g in groups.values() if len(g) > 1)
sys.stdout.write("".join(l + "\n" for l in lines))
PY
}

# check_same_tree DESC EXPECTED_DIR ACTUAL_DIR: tree_manifest of both must be
# equal; on failure prints the diff (- expected, + actual).
check_same_tree() {
  local desc=$1 a=$2 b=$3 name
  name=$(printf '%s' "$desc" | tr -c 'a-zA-Z0-9' '_' | head -c 40)
  tree_manifest "$a" >"$T/$name.expected.manifest"
  tree_manifest "$b" >"$T/$name.actual.manifest"
  if cmp -s "$T/$name.expected.manifest" "$T/$name.actual.manifest"; then
    pass "$desc ($(wc -l <"$T/$name.expected.manifest") paths)"
  else
    failed "$desc" "tree_manifest differs (- $a, + $b); $(diff "$T/$name.expected.manifest" "$T/$name.actual.manifest" | grep -c '^[<>]' || true) lines:" \
      "$(diff -U0 --label expected --label actual "$T/$name.expected.manifest" "$T/$name.actual.manifest" | head -n 80 || true)"
  fi
}

# ---------------------------------------------------------------- OCI layout

# layout_manifest_digest DIR TAG: the manifest digest index.json gives TAG
# (empty if none).
layout_manifest_digest() {
  python3 - "$1/index.json" "$2" <<'PY'
import json, sys
try:
    idx = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    sys.exit(0)
for m in idx.get("manifests", []):
    if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == sys.argv[2]:
        print(m["digest"])
        break
PY
}

# layout_tags DIR: every tag index.json claims, one a line (nothing if there
# is no index.json).
layout_tags() {
  [[ -f $1/index.json ]] || return 0
  python3 - "$1/index.json" <<'PY'
import json, sys
try:
    idx = json.load(open(sys.argv[1]))
except ValueError:
    print("<index.json is not valid JSON>")
    sys.exit(0)
for m in idx.get("manifests", []):
    t = (m.get("annotations") or {}).get("org.opencontainers.image.ref.name")
    if t is not None:
        print(t)
PY
}

# check_blobs_intact DESC LAYOUT: every file under LAYOUT/blobs/sha256 named
# like a digest has the sha256 its name says (a half-written blob never sits
# under a digest). Hidden files (a writer's temp files) are not blobs: they
# are counted in a note, not judged.
check_blobs_intact() {
  local bad temps
  temps=0
  [[ -d $2/blobs/sha256 ]] && temps=$(find "$2/blobs/sha256" -maxdepth 1 -name '.*' -type f | wc -l)
  ((temps == 0)) || echo "        (note: $temps hidden temp file(s) left in $2/blobs/sha256)"
  bad=$(python3 - "$2/blobs/sha256" <<'PY'
import hashlib, os, re, sys
d = sys.argv[1]
if os.path.isdir(d):
    for name in sorted(os.listdir(d)):
        if name.startswith("."):
            continue
        if not re.fullmatch("[0-9a-f]{64}", name):
            print("blobs/sha256/%s is not named like a sha256 digest" % name)
            continue
        h = hashlib.sha256()
        with open(os.path.join(d, name), "rb") as f:
            for c in iter(lambda: f.read(1 << 20), b""):
                h.update(c)
        if h.hexdigest() != name:
            print("blobs/sha256/%s has sha256 %s" % (name, h.hexdigest()))
PY
  ) || bad="cannot read $2/blobs/sha256"
  if [[ -z $bad ]]; then
    pass "$1"
  else
    failed "$1" "$bad"
  fi
}

# host_arch: the OCI architecture name of this machine.
host_arch() {
  case $(uname -m) in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    armv7l | armv6l) echo arm ;;
    i?86) echo 386 ;;
    ppc64le) echo ppc64le ;;
    s390x) echo s390x ;;
    riscv64) echo riscv64 ;;
    *) uname -m ;;
  esac
}
