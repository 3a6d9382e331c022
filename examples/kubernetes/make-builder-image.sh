#!/usr/bin/env bash
# Makes the builder image the Kubernetes Job runs (examples/kubernetes/job.yaml):
# a root filesystem plus dockless, uv, git and CA certificates, with dockless
# as the entrypoint and a non-root user 1000 whose HOME is writable. No
# network: everything comes from this machine.
#
#     make-builder-image.sh ROOTFS --output oci:DIR[:TAG] [options]
#     make-builder-image.sh ROOTFS --output oci:DIR[:TAG] --push REF [registry options]
#
# ROOTFS   a root filesystem directory of a glibc distribution of the same
#          release as this machine (the build's shared libraries are copied
#          from here): e.g. the debootstrap fixture of the tests,
#          `bash scripts/fixtures/debian-rootfs.sh` (Debian 12 + python3).
#          It is copied, never modified.
#
# Options:
#   --output oci:DIR[:TAG]  where to write the image (required; TAG: builder)
#   --push REF              also push it to REF (dockless push)
#   --dockless PATH         the dockless binary (default: build/src/dockless of
#                           this checkout, else `dockless` on PATH)
#   --uv PATH               the uv to ship (default: `command -v uv`; the tests
#                           use the uv that scripts/setup.sh pins)
#   --no-strip              keep dockless's debug symbols
#   --authfile FILE, --ca-cert FILE, --insecure-registry HOST, --creds U:P
#                           passed to `dockless push`
#
# What goes in, besides ROOTFS:
#   /usr/local/bin/dockless, /usr/local/bin/uv
#   git (/usr/bin/git, /usr/lib/git-core, /usr/share/git-core) unless ROOTFS
#     has it: `dockless build --git` runs `git` (fetch, rev-parse, archive,
#     ls-tree, config --blob); `git fetch` of an https:// URL execs
#     git-core/git-remote-https, of a file:// URL git-upload-pack.
#   /usr/local/lib/dockless/*.so*: every shared library those programs need
#     (found with ldd) that ROOTFS lacks. Found through the loader's cache:
#     /etc/ld.so.conf.d/00-dockless.conf names the directory and `ldconfig -r`
#     rebuilds ROOTFS's /etc/ld.so.cache. Why not LD_LIBRARY_PATH in the image
#     environment: every process would inherit it (git's helpers need the
#     libraries too, so it could not be scoped to dockless), and a pod that
#     sets its own env: list or a shell that resets it would lose it; the
#     cache works for every process with no environment at all.
#   /etc/ssl/certs/ca-certificates.crt (this machine's bundle) unless ROOTFS
#     has one: libcurl (dockless's registry client and git-remote-https)
#     reads it by default. A private registry CA is added with --ca-cert.
#   user dockless, uid/gid 1000, HOME /home/dockless (owned by 1000).
#
# The image config: Entrypoint ["/usr/local/bin/dockless"], Cmd ["--help"],
# User 1000:1000, WorkingDir /home/dockless, HOME=/home/dockless, PATH.
# Prints the image's manifest digest on stdout (the one line); logs go to
# stderr. Must run as root: the copy keeps ROOTFS's owners (root-owned
# system files) and ldconfig -r chroots into the copy.
set -euo pipefail
export LC_ALL=C

log() { printf 'make-builder-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2; }

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
SOURCE_ROOT=$(cd -- "$HERE/../.." && pwd)

ROOTFS="" OUTPUT="" PUSH_REF="" DOCKLESS_BIN="" UV_BIN="" STRIP=1
PUSH_OPTS=()
while (($#)); do
  case $1 in
    --output) OUTPUT=${2:?--output oci:DIR[:TAG]}; shift 2 ;;
    --push) PUSH_REF=${2:?--push REF}; shift 2 ;;
    --dockless) DOCKLESS_BIN=${2:?--dockless PATH}; shift 2 ;;
    --uv) UV_BIN=${2:?--uv PATH}; shift 2 ;;
    --no-strip) STRIP=0; shift ;;
    --authfile | --ca-cert | --insecure-registry | --creds)
      PUSH_OPTS+=("$1" "${2:?$1 needs a value}")
      shift 2
      ;;
    -h | --help) usage ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *)
      [[ -z $ROOTFS ]] || die "one ROOTFS only (got '$ROOTFS' and '$1')"
      ROOTFS=$1
      shift
      ;;
  esac
done
[[ -n $ROOTFS ]] || usage
[[ -n $OUTPUT ]] || die "--output oci:DIR[:TAG] is required"
[[ $OUTPUT == oci:* ]] || die "--output must be oci:DIR[:TAG], got '$OUTPUT'"
[[ $(id -u) -eq 0 ]] || die "must run as root (the copy keeps the root filesystem's owners; ldconfig -r chroots)"
[[ -d $ROOTFS && -x $ROOTFS/bin/sh ]] || die "'$ROOTFS' is not a root filesystem directory (no /bin/sh)"
ROOTFS=$(realpath -- "$ROOTFS")
# OUTPUT without a tag gets "builder" (oci:DIR:TAG; DIR has no ':' here).
out_rest=${OUTPUT#oci:}
[[ $out_rest == *:* ]] || OUTPUT=oci:$out_rest:builder

if [[ -z $DOCKLESS_BIN ]]; then
  if [[ -x $SOURCE_ROOT/build/src/dockless ]]; then
    DOCKLESS_BIN=$SOURCE_ROOT/build/src/dockless
  else
    DOCKLESS_BIN=$(command -v dockless) || die "no dockless binary: build it (scripts/build.sh) or pass --dockless"
  fi
fi
[[ -x $DOCKLESS_BIN ]] || die "--dockless $DOCKLESS_BIN is not executable"
DOCKLESS_BIN=$(realpath -- "$DOCKLESS_BIN")
if [[ -z $UV_BIN ]]; then
  UV_BIN=$(command -v uv) || die "no uv on PATH (run scripts/setup.sh) and no --uv"
fi
UV_BIN=$(realpath -- "$UV_BIN")   # /usr/local/bin/uv is a symlink into a venv
[[ -x $UV_BIN ]] || die "uv $UV_BIN is not executable"
command -v ldd >/dev/null || die "ldd is not installed (libc-bin)"
command -v ldconfig >/dev/null || PATH=$PATH:/usr/sbin:/sbin
command -v ldconfig >/dev/null || die "ldconfig is not installed (libc-bin)"

is_elf() { [[ -f $1 && ! -L $1 && $(head -c 4 -- "$1" | od -An -c | tr -d ' ') == 177ELF ]]; }

# ---------------------------------------------------------------- the copy

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/dockless-builder.XXXXXX")
cleanup() { rm -rf --one-file-system -- "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
STAGE=$WORK/rootfs
log "copying $ROOTFS to $STAGE"
cp -a --reflink=auto -T -- "$ROOTFS" "$STAGE"

ADDED=()   # ELF files added to the image (host path), for the library scan

install -d -m 0755 "$STAGE/usr/local/bin"
if ((STRIP)) && command -v strip >/dev/null; then
  strip --strip-debug -o "$STAGE/usr/local/bin/dockless" -- "$DOCKLESS_BIN"
  chmod 0755 "$STAGE/usr/local/bin/dockless"
else
  install -m 0755 -- "$DOCKLESS_BIN" "$STAGE/usr/local/bin/dockless"
fi
ADDED+=("$DOCKLESS_BIN")
install -m 0755 -- "$UV_BIN" "$STAGE/usr/local/bin/uv"
ADDED+=("$UV_BIN")
log "added dockless $DOCKLESS_BIN and uv ($("$UV_BIN" --version))"

# git: the binary, its helpers (git-core: builtins are symlinks to git, the
# remote helpers are their own programs) and the templates `git init` copies.
if [[ -e $STAGE/usr/bin/git ]]; then
  log "the root filesystem has git: keeping it"
else
  GIT=$(command -v git) || die "the root filesystem has no git and this machine neither"
  GIT=$(realpath -- "$GIT")
  GIT_EXEC=$(git --exec-path)
  [[ -d $GIT_EXEC ]] || die "git --exec-path ($GIT_EXEC) is not a directory"
  install -m 0755 -- "$GIT" "$STAGE/usr/bin/git"
  ADDED+=("$GIT")
  mkdir -p -- "$STAGE$(dirname -- "$GIT_EXEC")"
  cp -a -T -- "$GIT_EXEC" "$STAGE$GIT_EXEC"
  while IFS= read -r -d '' f; do
    is_elf "$f" && ADDED+=("$f")
  done < <(find "$GIT_EXEC" -maxdepth 1 -type f -print0)
  for d in /usr/share/git-core; do
    [[ -d $d ]] && { mkdir -p -- "$STAGE$d"; cp -a -T -- "$d" "$STAGE$d"; }
  done
  log "added git ($(git --version)) and $GIT_EXEC"
fi

# ---------------------------------------------------------------- libraries

# A library is "there" when a file of that name is in one of the stage's
# library directories (a symlink counts: sonames are symlinks).
LIBDIRS=(lib usr/lib lib64 usr/lib64 usr/local/lib)
have_lib() {
  local d
  for d in "${LIBDIRS[@]}"; do
    [[ -d $STAGE/$d ]] || continue
    if find -L "$STAGE/$d" -maxdepth 2 -name "$1" -print -quit 2>/dev/null | grep -q .; then
      return 0
    fi
  done
  return 1
}

declare -A NEED=()   # soname -> host path
for f in "${ADDED[@]}"; do
  # "libfoo.so.1 => /lib/x86_64-linux-gnu/libfoo.so.1 (0x...)"; the loader
  # and vdso lines have no "=>" path and are the rootfs's own business.
  while read -r name arrow path _; do
    [[ $arrow == "=>" ]] || continue
    [[ $path == not ]] && die "ldd $f: $name not found on this machine either"
    NEED[$name]=$path
  done < <(ldd -- "$f" 2>/dev/null || true)
done
LIBDIR=/usr/local/lib/dockless
copied=()
for name in $(printf '%s\n' "${!NEED[@]}" | sort); do
  have_lib "$name" && continue
  install -d -m 0755 "$STAGE$LIBDIR"
  cp -L -- "${NEED[$name]}" "$STAGE$LIBDIR/$name"
  chmod 0644 "$STAGE$LIBDIR/$name"
  copied+=("$name")
done
if ((${#copied[@]})); then
  # 00-: before the distribution's own directories, though only sonames the
  # rootfs lacks are here, so nothing of the rootfs is shadowed.
  printf '# shared libraries of dockless/git that the base root filesystem lacks\n%s\n' "$LIBDIR" \
    >"$STAGE/etc/ld.so.conf.d/00-dockless.conf"
  log "copied ${#copied[@]} libraries the root filesystem lacks to $LIBDIR: ${copied[*]}"
fi
ldconfig -r "$STAGE"
# ldconfig's own speed-up cache records inode numbers and times: the image
# would differ on every run. ldconfig works without it.
rm -f -- "$STAGE/var/cache/ldconfig/aux-cache"

# ---------------------------------------------------------------- CA certificates

if [[ ! -s $STAGE/etc/ssl/certs/ca-certificates.crt ]]; then
  [[ -s /etc/ssl/certs/ca-certificates.crt ]] || die "no CA bundle: neither the root filesystem nor this machine has /etc/ssl/certs/ca-certificates.crt"
  install -d -m 0755 "$STAGE/etc/ssl/certs"
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$STAGE/etc/ssl/certs/ca-certificates.crt"
  log "added this machine's CA bundle ($(grep -c 'BEGIN CERTIFICATE' /etc/ssl/certs/ca-certificates.crt) certificates)"
fi

# ---------------------------------------------------------------- the user

if grep -q '^[^:]*:[^:]*:1000:' "$STAGE/etc/passwd"; then
  log "the root filesystem already has uid 1000: keeping it"
  HOME_DIR=$(awk -F: '$3 == 1000 { print $6; exit }' "$STAGE/etc/passwd")
else
  HOME_DIR=/home/dockless
  printf 'dockless:x:1000:1000:dockless builder:%s:/bin/sh\n' "$HOME_DIR" >>"$STAGE/etc/passwd"
  grep -q '^[^:]*:[^:]*:1000:' "$STAGE/etc/group" || printf 'dockless:x:1000:\n' >>"$STAGE/etc/group"
  [[ -f $STAGE/etc/shadow ]] && printf 'dockless:!:19000::::::\n' >>"$STAGE/etc/shadow"
fi
install -d -m 0755 -o 1000 -g 1000 "$STAGE$HOME_DIR"
install -d -m 0755 -o 1000 -g 1000 "$STAGE$HOME_DIR/.cache"

# ---------------------------------------------------------------- check it runs

# Every added program loads in the copy (its own loader and cache), and the
# three commands start. git opens /dev/null first thing, and the rootfs's
# /dev is empty (a runtime provides /dev): a /dev/null for the check only.
in_stage() { chroot "$STAGE" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin "$@" </dev/null; }
devnull_made=0
if [[ ! -e $STAGE/dev/null ]]; then
  mkdir -p -- "$STAGE/dev"
  mknod -m 0666 "$STAGE/dev/null" c 1 3 && devnull_made=1
fi
problems=()
for f in /usr/local/bin/dockless /usr/local/bin/uv /usr/bin/git $(cd "$STAGE" && find usr/lib/git-core -maxdepth 1 -type f -name 'git-remote-http*' 2>/dev/null | sed 's#^#/#'); do
  [[ -e $STAGE$f ]] || continue
  missing=$(in_stage ldd "$f" 2>&1 | grep 'not found' || true)
  [[ -z $missing ]] || problems+=("$f: $(echo "$missing" | tr -s ' \t\n' ' ')")
done
for cmd in "uv --version" "git --version" "dockless --version"; do
  # shellcheck disable=SC2086
  out=$(in_stage $cmd 2>&1) || problems+=("'$cmd' fails in the image: $out")
done
VERSION=${out##* }   # dockless's, from the copy in the image
((devnull_made)) && rm -f -- "$STAGE/dev/null"
((${#problems[@]} == 0)) || die "the image would not work: ${problems[*]} (is $ROOTFS the same release as this machine?)"

# ---------------------------------------------------------------- the image

log "importing $STAGE as $OUTPUT"
DIGEST=$("$DOCKLESS_BIN" import "$STAGE" --output "$OUTPUT" \
  --entrypoint '["/usr/local/bin/dockless"]' --cmd '["--help"]' \
  --user 1000:1000 --workdir "$HOME_DIR" \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env "HOME=$HOME_DIR" \
  --label org.opencontainers.image.title=dockless-builder \
  --label "org.opencontainers.image.version=$VERSION" \
  --label "org.opencontainers.image.description=dockless $VERSION, uv, git: rootless OCI image builds in a pod")
log "image $OUTPUT: $DIGEST"

if [[ -n $PUSH_REF ]]; then
  log "pushing $OUTPUT to $PUSH_REF"
  "$DOCKLESS_BIN" push "$OUTPUT" "$PUSH_REF" -q "${PUSH_OPTS[@]}" >/dev/null
fi
printf '%s\n' "$DIGEST"
