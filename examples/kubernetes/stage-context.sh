#!/usr/bin/env bash
# Collects the files the builder image needs from this machine into a build
# context directory for `dockless build -f examples/kubernetes/dockless.toml
# --context builder=CTX`. It only copies files; the install step of
# dockless.toml decides what goes into the image (it skips what the base
# already has).
#
#     stage-context.sh CTX [--dockless PATH] [--no-git]
#
# Prints dockless's version (for --arg VERSION=...) on stdout. CTX is made
# anew (emptied first). Layout:
#   CTX/bin/dockless     the binary (debug symbols stripped)
#   CTX/lib/*.so*        every shared library dockless and git link (ldd),
#                        glibc's own included: the step installs only those
#                        the base lacks
#   CTX/git/             /usr/bin/git, /usr/lib/git-core, /usr/share/git-core
#                        (git-remote-http is its own program, with libcurl-gnutls)
#   CTX/certs/ca-certificates.crt   this machine's CA bundle
#
# bin/ + lib/ is the layout of scripts/package.sh's tarball
# (dockless-VERSION-linux-x86_64.tar.gz: bin/dockless, lib/), so once that
# exists, stage_dockless below becomes one line:
#   tar -xzf dist/dockless-*-linux-x86_64.tar.gz -C "$CTX" --strip-components=1
# (git's libraries still come from ldd here).
set -euo pipefail
export LC_ALL=C

die() { printf 'stage-context: error: %s\n' "$*" >&2; exit 1; }

CTX="" DOCKLESS_BIN="" GIT=1
while (($#)); do
  case $1 in
    --dockless) DOCKLESS_BIN=${2:?--dockless PATH}; shift 2 ;;
    --no-git) GIT=0; shift ;;
    -*) die "unknown option '$1'" ;;
    *) [[ -z $CTX ]] || die "one CTX only"; CTX=$1; shift ;;
  esac
done
[[ -n $CTX ]] || die "usage: stage-context.sh CTX [--dockless PATH] [--no-git]"
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
if [[ -z $DOCKLESS_BIN ]]; then
  DOCKLESS_BIN=$HERE/../../build/src/dockless
  [[ -x $DOCKLESS_BIN ]] || DOCKLESS_BIN=$(command -v dockless) || die "no dockless: build it or pass --dockless"
fi
[[ -x $DOCKLESS_BIN ]] || die "$DOCKLESS_BIN is not executable"

rm -rf -- "$CTX"
mkdir -p -- "$CTX/bin" "$CTX/lib" "$CTX/certs"
ELFS=()   # host programs whose libraries go to CTX/lib

stage_dockless() {
  if command -v strip >/dev/null; then
    strip --strip-debug -o "$CTX/bin/dockless" -- "$DOCKLESS_BIN"
    touch -r "$DOCKLESS_BIN" -- "$CTX/bin/dockless"   # restaging the same files keeps the step's key
  else
    cp -p -- "$DOCKLESS_BIN" "$CTX/bin/dockless"
  fi
  chmod 0755 "$CTX/bin/dockless"
  ELFS+=("$DOCKLESS_BIN")
}
stage_dockless

if ((GIT)); then
  git=$(realpath -- "$(command -v git)") || die "no git on this machine (or pass --no-git)"
  exec_path=$(git --exec-path)
  mkdir -p -- "$CTX/git/usr/bin" "$CTX/git$(dirname -- "$exec_path")" "$CTX/git/usr/share"
  cp -a -- "$git" "$CTX/git/usr/bin/git"
  cp -a -T -- "$exec_path" "$CTX/git$exec_path"
  [[ ! -d /usr/share/git-core ]] || cp -a -T -- /usr/share/git-core "$CTX/git/usr/share/git-core"
  ELFS+=("$git")
  while IFS= read -r -d '' f; do
    [[ $(head -c 4 -- "$f" | od -An -c | tr -d ' ') == 177ELF ]] && ELFS+=("$f")
  done < <(find "$exec_path" -maxdepth 1 -type f -print0)
fi

# "libfoo.so.1 => /lib/.../libfoo.so.1 (0x...)"; the loader and the vdso have no path.
for f in "${ELFS[@]}"; do
  while read -r name arrow path _; do
    [[ $arrow == "=>" ]] || continue
    [[ $path != not ]] || die "ldd $f: $name not found on this machine"
    [[ -e $CTX/lib/$name ]] || cp -L -p -- "$path" "$CTX/lib/$name"
  done < <(ldd -- "$f")
done
chmod 0644 "$CTX"/lib/*

[[ ! -f /etc/ssl/certs/ca-certificates.crt ]] || cp -L -p -- /etc/ssl/certs/ca-certificates.crt "$CTX/certs/"
out=$("$DOCKLESS_BIN" --version)
printf '%s\n' "${out##* }"
