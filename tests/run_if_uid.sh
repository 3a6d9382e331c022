#!/bin/bash
# Runs a unit-test command only as root (`root`) or only as another user
# (`nonroot`; as root it drops to `nobody` with setpriv, so CI, which runs as
# root, still runs those cases). Otherwise it exits 77, which meson reports
# as SKIP: a case that cannot run here shows up as skipped, never as a pass.
set -eu
want=$1
shift
uid=$(id -u)
if [ "$want" = root ] && [ "$uid" != 0 ]; then
  echo "skipped: these cases need root (chroot mode, mounts)"
  exit 77
fi
if [ "$want" = nonroot ] && [ "$uid" = 0 ]; then
  if command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups -- test -x "$1"; then
    exec setpriv --reuid=65534 --regid=65534 --clear-groups -- env HOME=/tmp TMPDIR=/tmp "$@"
  fi
  echo "skipped: these cases need a user other than root (root reads any file), and nobody cannot run $1"
  exit 77
fi
exec "$@"
