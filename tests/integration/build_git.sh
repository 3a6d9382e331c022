#!/usr/bin/env bash
# dockless build --git URL --git-ref REF (the seed's NRL_GIT_REF and remote
# source): a local bare repository of the test project (file:// URL) with a
# tag v1, a branch "feature" and commits on main. For a tag, a branch, a full
# and an abbreviated commit, and no ref (the default branch): the image's
# /opt/app is that commit's tree with .dockerignore applied (compared with
# `git archive`, via podman), the labels and manifest annotations
# org.opencontainers.image.revision/source name the commit and the URL, and
# the report names the commit.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

build_setup
CACHE=$T/cache

section "a bare repository: main (3 commits, tag v1 on the first), feature (from v1)"
export GIT_AUTHOR_NAME=tester GIT_AUTHOR_EMAIL=tester@example.invalid
export GIT_COMMITTER_NAME=tester GIT_COMMITTER_EMAIL=tester@example.invalid
export GIT_CONFIG_GLOBAL=$T/gitconfig GIT_CONFIG_NOSYSTEM=1
: >"$GIT_CONFIG_GLOBAL"
W=$T/work
g() { git -C "$W" "$@"; }
require "git init + first commit" bash -c '
  set -e
  cp -a "$1" "$2"
  git -C "$2" init -q -b main
  git -C "$2" add -A
  GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z" git -C "$2" commit -q -m "v1: the project"
  git -C "$2" tag -a v1 -m "release v1"' _ "$PROJ" "$W"
C1=$(g rev-parse HEAD)
printf '\nVERSION = 2\n' >>"$W/src/app/__init__.py"
g commit -q -am "c2: version 2"
C2=$(g rev-parse HEAD)
printf 'def main_v3():\n    return 3\n' >"$W/src/app/v3.py"
g add -A
g commit -q -m "c3: v3 module"
C3=$(g rev-parse HEAD)
g checkout -q -b feature v1
printf 'FEATURE = True\n' >"$W/src/app/feature.py"
printf '\n# feature branch\n' >>"$W/src/app/workers.py"
g add -A
g commit -q -m "feature: a feature"
CF=$(g rev-parse HEAD)
g checkout -q main
require "git clone --bare" git clone -q --bare "$W" "$T/repo.git"
URL=file://$T/repo.git
echo "  v1=$C1 c2=$C2 main=$C3 feature=$CF"
echo "  url: $URL"

# gitbuild NAME EXPECTED_COMMIT DESC [--git-ref REF]: builds from the repo,
# checks the report, labels and annotations, and /opt/app against git archive.
gitbuild() {
  local name=$1 commit=$2 desc=$3
  shift 3
  section "$desc"
  check_build "dockless build --git $URL $*" "$T/b-$name" --git "$URL" "$@" \
    --set "image.base=$BASE_REF" --output "oci:$T/$name:app" --report "$T/$name.json" --cache-dir "$CACHE"
  ((CHECK_OK)) || return 0
  check_eq "$name: the report's git_commit" "$commit" "$(report_get "$T/$name.json" 'd.get("git_commit")')"
  if image_meta "$T/m-$name" "oci:$T/$name:app"; then
    check_python "$name: config labels org.opencontainers.image.revision/source" "$T/m-$name.config.json" '
labels = d["config"].get("Labels") or {}
assert labels.get("org.opencontainers.image.revision") == "'"$commit"'", labels
assert labels.get("org.opencontainers.image.source") == "'"$URL"'", labels'
    check_python "$name: manifest annotations org.opencontainers.image.revision/source" "$T/m-$name.manifest.json" '
a = d.get("annotations") or {}
assert a.get("org.opencontainers.image.revision") == "'"$commit"'", a
assert a.get("org.opencontainers.image.source") == "'"$URL"'", a'
  else
    failed "skopeo inspect oci:$T/$name:app" "$(cat "$T/m-$name.skopeo.err")"
  fi
  # The expected tree: git archive of the commit.
  rm -rf "$T/archive-$name"
  mkdir -p "$T/archive-$name"
  git -C "$T/repo.git" archive "$commit" | tar -x -C "$T/archive-$name"
  INCHECK_SRC_TREE=$T/archive-$name incheck "$name" "oci:$T/$name:app"
}

gitbuild tag "$C1" "--git-ref v1 (an annotated tag)" --git-ref v1
check "tag: /opt/app has no src/app/feature.py nor v3.py" bash -c '! grep -Eq " \./src/app/(feature|v3)\.py$" "$1"' _ "$T/tag.src"

gitbuild branch "$CF" "--git-ref feature (a branch)" --git-ref feature
check "branch: /opt/app has src/app/feature.py" grep -Eq ' \./src/app/feature\.py$' "$T/branch.src"

gitbuild commit "$C2" "--git-ref <full commit id> (no branch or tag points at it)" --git-ref "$C2"
check "commit: /opt/app/src/app/__init__.py is c2's" grep -Fq "$(git -C "$T/repo.git" show "$C2:src/app/__init__.py" | sha256sum | cut -d' ' -f1) ./src/app/__init__.py" "$T/commit.src"

section "--git-ref <abbreviated commit id>"
check_build "dockless build --git $URL --git-ref ${C2:0:10}" "$T/b-short" --git "$URL" --git-ref "${C2:0:10}" \
  --set "image.base=$BASE_REF" --output "oci:$T/short:app" --report "$T/short.json" --cache-dir "$CACHE"
check_eq "short: the report's git_commit is the full id" "$C2" "$(report_get "$T/short.json" 'd.get("git_commit")')"
check_digests_equal "short: same image as the full commit id" "$(layout_manifest_digest "$T/commit" app)" "$DIGEST"

gitbuild default "$C3" "no --git-ref: the default branch (main)"

section "a ref that does not exist"
check_build_fails "--git-ref nosuch" "$T/b-nosuch" 1 'nosuch' -- \
  --git "$URL" --git-ref nosuch --set "image.base=$BASE_REF" --output "oci:$T/nosuch:app" --cache-dir "$CACHE" -q
check "--git-ref nosuch wrote no output" test ! -e "$T/nosuch/index.json"
