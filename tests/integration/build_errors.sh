#!/usr/bin/env bash
# dockless build's errors: spec errors name the file, the line and the key
# (with the valid keys for an unknown one), a missing base, a venv extra the
# lock does not have (uv fails -> exit 1 naming the venv), no uv.lock, an
# unreachable base registry, and usage errors (no output, --push without
# --tag, a registry as --output) -> exit 2. Never a crash, never an output.
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/registry_lib.sh"
source "$(dirname -- "${BASH_SOURCE[0]}")/build_lib.sh"

build_setup
CACHE=$T/cache

# variant NAME: a copy of the project to break, at $T/NAME (echoed).
variant() {
  rm -rf "$T/$1"
  cp -a "$PROJ" "$T/$1"
  printf '%s\n' "$T/$1"
}

# no_output DESC DIR: the failed build left no image behind.
no_output() { check "$1: no output written" test ! -e "$2/index.json"; }

section "spec errors (no registry needed: the spec is read first)"
P=$(variant unknown-key)
printf '\n[venv.extra-venv]\npath = "/opt/extra"\nextra = ["vllm"]\n' >>"$P/dockless.toml"
LINE=$(grep -n '^extra = \["vllm"\]' "$P/dockless.toml" | cut -d: -f1)
check_build_fails "unknown key 'extra' in [venv.extra-venv]" "$T/e-unknown" 1 \
  "dockless\.toml:$LINE" '"?extra"?' 'valid keys' 'extras' 'groups' 'tags' -- \
  "$P" --set "image.base=$BASE_REF" --output "oci:$T/o-unknown:app" --cache-dir "$CACHE" -q
no_output "unknown key" "$T/o-unknown"

P=$(variant misspelt)
sed -i 's/^link-mode = "symlink"$/link_mode = "symlink"/' "$P/dockless.toml"
LINE=$(grep -n '^link_mode' "$P/dockless.toml" | cut -d: -f1)
check_build_fails "misspelt key 'link_mode' in [uv]" "$T/e-misspelt" 1 \
  "dockless\.toml:$LINE" 'link_mode' 'link-mode' -- \
  "$P" --set "image.base=$BASE_REF" --output "oci:$T/o-misspelt:app" --cache-dir "$CACHE" -q

P=$(variant bad-toml)
printf '\n[venv.broken\npath = "/opt/x"\n' >>"$P/dockless.toml"
LINE=$(grep -n '^\[venv.broken$' "$P/dockless.toml" | cut -d: -f1)
check_build_fails "a TOML syntax error" "$T/e-toml" 1 "dockless\.toml:$LINE" -- \
  "$P" --set "image.base=$BASE_REF" --output "oci:$T/o-toml:app" --cache-dir "$CACHE" -q

check_build_fails "no image.base (the file has none, no --set)" "$T/e-nobase" 1 'dockless\.toml' 'base' -- \
  "$PROJ" --output "oci:$T/o-nobase:app" --cache-dir "$CACHE" -q
no_output "no base" "$T/o-nobase"

check_build_fails "--set of an unknown key" "$T/e-setkey" 1 'nosuch' -- \
  "$PROJ" --set "image.base=$BASE_REF" --set "image.nosuch=1" --output "oci:$T/o-setkey:app" --cache-dir "$CACHE" -q

check_build_fails "a venv with a relative path" "$T/e-relpath" 1 'path' 'absolute' -- \
  "$PROJ" --set "image.base=$BASE_REF" --set 'venv.main.path=opt/venv' --output "oci:$T/o-relpath:app" --cache-dir "$CACHE" -q

section "usage errors: exit 2"
check_build_fails "no --output and no --tag" "$T/e-noout" 2 'output|tag' -- \
  "$PROJ" --set "image.base=$BASE_REF" --cache-dir "$CACHE" -q
check_build_fails "--push without --tag" "$T/e-pushnotag" 2 'tag' -- \
  "$PROJ" --set "image.base=$BASE_REF" --push --output "oci:$T/o-pushnotag:app" --cache-dir "$CACHE" -q
no_output "--push without --tag" "$T/o-pushnotag"
check_build_fails "--output with an unknown transport" "$T/e-transport" 2 'nosuch' -- \
  "$PROJ" --set "image.base=$BASE_REF" --output "nosuch:$T/x" --cache-dir "$CACHE" -q
check_build_fails "--output with a registry reference (that is --tag REF --push)" "$T/e-outreg" 2 'tag' -- \
  "$PROJ" --set "image.base=$BASE_REF" --output "$REGISTRY_HOST/app:1" --cache-dir "$CACHE" -q

section "no uv.lock"
P=$(variant nolock)
rm -f "$P/uv.lock"
check_build_fails "a project without uv.lock" "$T/e-nolock" 1 'uv\.lock' -- \
  "$P" --set "image.base=$BASE_REF" --output "oci:$T/o-nolock:app" --cache-dir "$CACHE" -q
no_output "no uv.lock" "$T/o-nolock"

section "a venv extra the lock does not have: uv fails"
P=$(variant badextra)
printf '\n[venv.broken-venv]\npath = "/opt/broken"\nextras = ["nosuchextra"]\n' >>"$P/dockless.toml"
check_build_fails "venv broken-venv with extras = [nosuchextra]" "$T/e-extra" 1 'broken-venv' -- \
  "$P" --set "image.base=$BASE_REF" --output "oci:$T/o-extra:app" --cache-dir "$CACHE" -q
uv_reason() { grep -v '^dockless: error: ' "$1" | grep -i 'nosuchextra' | head -n 3 || true; }
# With -q uv's lines are not shown: its reason is in dockless's one error line.
check_ne "-q: uv's reason (its message naming nosuchextra) is in the error line" "" \
  "$(grep '^dockless: error: venv broken-venv: .*error: Extra .nosuchextra. is not defined' "$T/e-extra.err" || true)"
echo "  stderr of that build with -q:"
sed 's/^/    | /' "$T/e-extra.err" | tail -n 8
check_build_fails "the same without -q" "$T/e-extra-v" 1 'broken-venv' -- \
  "$P" --set "image.base=$BASE_REF" --output "oci:$T/o-extra:app" --cache-dir "$CACHE"
check_ne "without -q: uv's reason (its message naming nosuchextra) reaches the user" "" "$(uv_reason "$T/e-extra-v.err")"
echo "  uv's lines without -q: $(uv_reason "$T/e-extra-v.err" | tr '\n' ' ')"
no_output "a failing uv" "$T/o-extra"
check "the failed build left no work directory in the cache dir" \
  bash -c '! compgen -G "$1/work/*" >/dev/null' _ "$CACHE"

section "the base registry is unreachable"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
check_build_fails "image.base on 127.0.0.1:$PORT (nothing listens)" "$T/e-unreach" 1 "127\.0\.0\.1:$PORT" -- \
  "$PROJ" --set "image.base=127.0.0.1:$PORT/nothing/here:1" --output "oci:$T/o-unreach:app" --cache-dir "$CACHE" -q
echo "  (took ${SECS}s)"
no_output "unreachable registry" "$T/o-unreach"

check_build_fails "image.base names a repository the registry lacks" "$T/e-unknownrepo" 1 'nosuchrepo' -- \
  "$PROJ" --set "image.base=$REGISTRY_HOST/nosuchrepo:1" --output "oci:$T/o-unknownrepo:app" --cache-dir "$CACHE" -q

section "after all these failures, a good build still works with the same cache"
check_build "dockless build $PROJ" "$T/good" "$PROJ" --set "image.base=$BASE_REF" \
  --output "oci:$T/o-good:app" --report "$T/good.json" --cache-dir "$CACHE"
