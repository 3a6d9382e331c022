#!/usr/bin/env bash
# build_steps.sh's [[step]] build run by users that are not root (made here,
# removed at exit; the fixtures and podman stay root's):
# - a user with /etc/subuid and /etc/subgid ranges: every check of
#   build_steps.sh's spec (apt from a repository on 127.0.0.1, useradd with a
#   home, whiteouts, hard links, --context, secret, podman, umoci, rebuilds),
#   owners as the steps made them (alice's home, _apt's dir: no subordinate
#   ids in a layer; /etc/shadow rewritten by useradd keeps group shadow, 42,
#   from the base), no one-id warning, nothing of root's in its cache, and a
#   failed step that leaves _apt-owned files behind leaves no work dir;
#   root builds the same spec: every step layer lists the same (tar -tvf
#   --numeric-owner), and has the same digest but for apt's (its logs hold
#   the time); `dockless cache prune` as the user empties its cache (files
#   of subordinate ids included);
# - a user without ranges (one id mapped): a step that writes root's files
#   builds, with a warning; a step that needs another id (apt's _apt, a
#   useradd's home, a chown) fails with one line naming the step, the id and
#   the way out (subuid ranges; APT::Sandbox::User "root" for apt), and
#   leaves nothing in the cache; the apt step with that hint builds.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) == 0 ]] || fail "this test makes users: run it as root"
for tool in useradd userdel usermod setpriv newuidmap newgidmap; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done

# as_user NAME CMD...: CMD as NAME, its groups, HOME and nothing else of ours.
as_user() {
  local u=$1
  shift
  setpriv --reuid "$u" --regid "$u" --init-groups \
    env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="/home/$u" USER="$u" LOGNAME="$u" LC_ALL=C "$@"
}

# A range of 65536 ids past every range /etc/subuid and /etc/subgid hand out.
free_subid_start() {
  cat /etc/subuid /etc/subgid 2>/dev/null |
    awk -F: 'BEGIN { m = 200000 } NF == 3 && $2 + $3 > m { m = $2 + $3 } END { print m + 65536 }'
}

SUFFIX=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
U1=dlsteps$SUFFIX   # with ranges
U2=dlsolo$SUFFIX    # without
section "users: $U1 with /etc/subuid and /etc/subgid ranges, $U2 without"
# -K SUB_*_COUNT=0: useradd would hand out ranges of its own.
for u in "$U1" "$U2"; do
  require "useradd $u" useradd -m -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$u"
  at_exit userdel -r -f "$u"
done
START=$(free_subid_start)
RANGE=$START-$((START + 65535))
require "usermod --add-subuids $RANGE --add-subgids $RANGE $U1" usermod --add-subuids "$RANGE" --add-subgids "$RANGE" "$U1"
at_exit usermod --del-subuids "$RANGE" --del-subgids "$RANGE" "$U1"
check_eq "/etc/subuid and /etc/subgid: $U1 has $START:65536" "$U1:$START:65536 $U1:$START:65536" \
  "$(grep -h "^$U1:" /etc/subuid /etc/subgid | paste -sd' ')"
check_eq "/etc/subuid and /etc/subgid: $U2 has no range" "" "$(grep -h "^$U2:" /etc/subuid /etc/subgid || true)"
chmod 0755 "$T"  # the users reach their dirs below it

# ---------------------------------------------------------------- with ranges
W=$T/u1
mkdir -m 0755 "$W"
RUN_AS=(as_user "$U1")
source "$INTEG_DIR/build_steps_lib.sh"
steps_fixtures
chown -R "$U1:$U1" "$W"  # the base layout, project, context and secret are the user's
steps_shared_checks

section "as $U1: the build's own view"
check_eq "no 'one user id mapped' warning (the ranges were used)" "" "$(grep -i 'one user id' "$W/b1.err" || true)"
check_eq "nothing in $U1's cache dir is root's (the build ran as $U1)" "" "$(find "$CACHE" -uid 0 -print | head -n 5)"
check_eq "the files layer: etc/shadow keeps group shadow (gid 42) after useradd rewrote it" "0:42" \
  "$(awk '$1 == "etc/shadow" {print $2}' "$W/files.owners")"

section "the same spec built by root: the same owners in every step layer"
# The spec as the rebuilds left it (step 2 edited, app.py v2): $W/r4.json.
RUN_AS=()
check_build "as root: dockless build $PROJ (own cache)" "$W/b-root" "$PROJ" --output "oci:$W/out-root:latest" \
  --report "$W/r-root.json" --cache-dir "$W/cache-root" "${COMMON[@]:2}"
RUN_AS=(as_user "$U1")
# layer_bytes_differ LAYOUT1 DIGEST1 LAYOUT2 DIGEST2: the names whose bytes
# differ between two layer blobs (or that only one has), sorted, on one line.
layer_bytes_differ() {
  python3 - "$@" <<'PY'
import hashlib, sys, tarfile
def files(layout, digest):
    out = {}
    with tarfile.open(layout + "/blobs/sha256/" + digest.split(":")[1]) as t:
        for e in t:
            data = t.extractfile(e).read() if e.isfile() else b""
            out[e.name.lstrip("./")] = hashlib.sha256(data).hexdigest()
    return out
a, b = files(sys.argv[1], sys.argv[2]), files(sys.argv[3], sys.argv[4])
print(" ".join(sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n))))
PY
}
# tar_list LAYOUT DIGEST: `tar -tvf --numeric-owner` of a layer blob.
tar_list() { tar --numeric-owner -tvf "$1/blobs/sha256/${2#sha256:}" 2>&1; }
for name in $(layer_names "$W/r4.json" | grep '^step ' | sed 's/ /%/g'); do
  name=${name//%/ }
  lu=$(layer_digest "$W/r4.json" "$name")
  lr=$(layer_digest "$W/r-root.json" "$name")
  tar_list "$W/out-src" "$lu" >"$W/list-user.txt"
  tar_list "$W/out-root" "$lr" >"$W/list-root.txt"
  check_eq "$name: tar -tvf --numeric-owner is the same as $U1's and as root's ($(wc -l <"$W/list-root.txt") entries)" "" \
    "$(diff "$W/list-root.txt" "$W/list-user.txt" | head -n 8)"
  if [[ $name == "step apt" ]]; then
    # apt and dpkg log the time of the run: two runs never make the same
    # bytes, whoever runs them. Every other file is the same.
    check_eq "$name: the files whose bytes differ as $U1 and as root are apt's and dpkg's logs (${lu:7:12} vs ${lr:7:12})" \
      "var/log/apt/history.log var/log/apt/term.log var/log/dpkg.log" \
      "$(layer_bytes_differ "$W/out-src" "$lu" "$W/out-root" "$lr")"
  else
    check_digests_equal "$name: the same layer digest as $U1 and as root" "$lr" "$lu"
  fi
done

section "as $U1: a base snapshot made without the ranges (an older dockless) is made again"
SNAP=$(find "$CACHE/snapshots" -mindepth 1 -maxdepth 1 -type d ! -name '.*' | head -n 1)
require "$U1's cache has a base snapshot" test -f "$SNAP.complete" -a -f "$SNAP/etc/shadow"
# What it was before: every file the user's, the stamp without the mark.
chgrp "$(id -g "$U1")" "$SNAP/etc/shadow"
printf 'complete\n' >"$SNAP.complete"
sed -i 's|^echo edited > /etc/edited$|&\necho again > /etc/again|' "$PROJ/dockless.toml"
check_build "as $U1: step 2 edited again" "$W/b6" "$PROJ" --output "oci:$W/out-again:latest" --report "$W/r6.json" "${COMMON[@]}"
check_eq "the snapshot's /etc/shadow is group shadow's subordinate gid again ($((START + 41)))" "$((START + 41))" \
  "$(stat -c %g "$SNAP/etc/shadow")"
check_eq "the new files layer: etc/shadow keeps gid 42" "0:42" \
  "$(layer_owners "$W/out-again" "$(layer_digest "$W/r6.json" "step files")" | awk '$1 == "etc/shadow" {print $2}')"

# A failing step after apt left _apt's 0700 dirs: they must go too. (A spec
# given with -f makes its dir the project: it goes in the project.)
sed -n '1,/^mounts = \[{ type = "cache"/p' "$PROJ/dockless.toml" >"$PROJ/fail.toml"
cat >>"$PROJ/fail.toml" <<'EOF'

[[step]]
name = "fails after apt"
run = "mkdir -p /var/lib/apt/lists/partial/x && chown -R _apt /var/lib/apt/lists/partial && chmod 0700 /var/lib/apt/lists/partial && echo giving up && exit 4"
EOF
chown "$U1:$U1" "$PROJ/fail.toml"
check_fails "as $U1: a step that fails after making _apt's 0700 dir" "$W/e-fail" 1 'fails after apt' 'exit code 4' -- \
  "$PROJ" -f "$PROJ/fail.toml" --output "oci:$W/o-fail:latest" "${COMMON[@]}"
check_no_work "after the failed step as $U1" "$CACHE"

section "as $U1: dockless cache prune removes what the steps left (subordinate ids' files)"
check_eq "sanity: $U1's cache holds files of subordinate ids (the base's shadow group, _apt's dirs)" 1 \
  "$(find "$CACHE" \( ! -uid "$(id -u "$U1")" -o ! -gid "$(id -g "$U1")" \) -print -quit | wc -l)"
if "${RUN_AS[@]}" "$DOCKLESS" cache prune --cache-dir "$CACHE" >"$W/prune.out" 2>"$W/prune.err"; then
  pass "as $U1: dockless cache prune --cache-dir $CACHE ($(tail -n 1 "$W/prune.out"))"
else
  failed "as $U1: dockless cache prune --cache-dir $CACHE" "$(tail -n 5 "$W/prune.err")"
fi
check_eq "after prune: no file left in $U1's cache but its lock" "" \
  "$(cd "$CACHE" && find . -mindepth 1 -not -name lock -not -name '*.lock' -not -type d -print | head -n 5)"
check_eq "after prune: no dir left under snapshots, layer-dirs, step-caches" "" \
  "$(cd "$CACHE" && find snapshots layer-dirs step-caches -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -n 5)"

# ---------------------------------------------------------------- one id
section "as $U2 (no ranges): one id mapped"
W2=$T/u2
C2=$W2/cache
mkdir -p "$W2/proj"
cp -a "$W/base" "$W2/base"
echo 'print("solo")' >"$W2/proj/app.py"
# solo_spec RUN...: a spec with one step per RUN line (steps "s1", "s2"...).
solo_spec() {
  local i=0 run
  printf '[image]\nbase = "oci:%s/base:py"\ncmd = ["bash"]\n\n[uv]\nuv-path = ""\n\n[source]\ndest = "/app"\n' "$W2"
  for run in "$@"; do
    i=$((i + 1))
    printf '\n[[step]]\nname = "s%d"\nrun = %s\n' "$i" "$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$run")"
  done
}
APT_LIST="echo 'deb [trusted=yes] http://127.0.0.1:$REPO_PORT/ ./' > /etc/apt/sources.list.d/local.list"
APT_OPTS="-o Dir::Etc::sourcelist=/etc/apt/sources.list.d/local.list -o Dir::Etc::sourceparts=-"
solo_spec "echo root-only > /opt/root-only && mkdir /opt/d && ln -s root-only /opt/link" >"$W2/proj/root.toml"
solo_spec "$APT_LIST && apt-get $APT_OPTS update" >"$W2/proj/apt.toml"
solo_spec "useradd -m -u 1234 alice" >"$W2/proj/home.toml"
solo_spec "echo ok > /opt/ok" "useradd -u 1235 bob && echo x > /opt/x && chown bob /opt/x" >"$W2/proj/chown.toml"
solo_spec "$APT_LIST && apt-get $APT_OPTS -o APT::Sandbox::User=root update && apt-get $APT_OPTS -o APT::Sandbox::User=root install -y --no-install-recommends jq-standin" >"$W2/proj/apt-root.toml"
chown -R "$U2:$U2" "$W2"
RUN_AS=(as_user "$U2")

check_build "as $U2: a step that writes only root's files" "$W2/b-root" "$W2/proj" -f "$W2/proj/root.toml" \
  --output "oci:$W2/out-root:latest" --cache-dir "$C2"
check_contains "as $U2: a warning that only one id was mapped" "$(grep -i warning "$W2/b-root.err" || true)" "one user id mapped"
podman_run "oci:$W2/out-root:latest" bash -c 'echo "$(cat /opt/root-only) $(stat -c %u:%g /opt/d) $(readlink /opt/link)"' \
  >"$W2/p-root.txt" 2>"$W2/p-root.err" || failed "podman run oci:$W2/out-root:latest" "$(tail -n 5 "$W2/p-root.err")"
check_eq "podman: the step's file, root's dir and symlink are there" "root-only 0:0 root-only" "$(cat "$W2/p-root.txt")"

# cache_state: what a build records (layers, blobs, layer dirs), one a line.
cache_state() { (cd "$C2" && find layers blobs layer-dirs -mindepth 1 -maxdepth 2 2>/dev/null | sort); }
BEFORE=$(cache_state)
check_fails "as $U2: apt-get update (apt drops to _apt, uid 42)" "$W2/e-apt" 1 \
  'step "s1"' 'uid 42' '_apt' 'APT::Sandbox::User "root"' 'subuid' -- \
  "$W2/proj" -f "$W2/proj/apt.toml" --output "oci:$W2/o-apt:latest" --cache-dir "$C2"
check_eq "as $U2: the failed apt step is one line (no quoted output after it)" 1 "$(grep -c '^dockless: error:' "$W2/e-apt.err")"
check_no_work "after the apt step as $U2" "$C2"
check_eq "after the apt step as $U2: nothing new in the cache's layers, blobs, layer dirs" "$BEFORE" "$(cache_state)"
check "after the apt step as $U2: no output written" test ! -e "$W2/o-apt/index.json"

check_fails "as $U2: useradd -m (a home that must be uid 1234's)" "$W2/e-home" 1 \
  'step "s1"' 'uid 1234' '/home/alice' 'subuid' -- \
  "$W2/proj" -f "$W2/proj/home.toml" --output "oci:$W2/o-home:latest" --cache-dir "$C2"
check_no_work "after the useradd step as $U2" "$C2"
check_eq "after the useradd step as $U2: nothing new in the cache" "$BEFORE" "$(cache_state)"

check_fails "as $U2: chown to a user the step added" "$W2/e-chown" 1 \
  'step "s2"' 'uid 1235' 'bob' 'chown' 'subuid' -- \
  "$W2/proj" -f "$W2/proj/chown.toml" --output "oci:$W2/o-chown:latest" --cache-dir "$C2"
check_no_work "after the chown step as $U2" "$C2"
check "after the chown step as $U2: no output written" test ! -e "$W2/o-chown/index.json"

check_build "as $U2: the apt step with the hint (-o APT::Sandbox::User=root)" "$W2/b-apt" "$W2/proj" -f "$W2/proj/apt-root.toml" \
  --output "oci:$W2/out-apt:latest" --cache-dir "$C2"
podman_run "oci:$W2/out-apt:latest" jq-standin >"$W2/p-apt.txt" 2>"$W2/p-apt.err" ||
  failed "podman run oci:$W2/out-apt:latest jq-standin" "$(tail -n 5 "$W2/p-apt.err")"
check_eq "podman: jq-standin (apt as $U2 with the hint) runs" "$JQ_LINE" "$(cat "$W2/p-apt.txt")"
check_eq "nothing in $U2's cache dir is root's" "" "$(find "$C2" -uid 0 -print | head -n 5)"
