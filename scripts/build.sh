#!/usr/bin/env bash
# Configures (once) and builds dockless into build/ (or $1). Prints nothing
# but errors and ninja's progress.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build}"
shift || true
if [[ ! -f "$dir/build.ninja" ]]; then
  meson setup "$dir" "$@" >/dev/null
fi
ninja -C "$dir" >/dev/null
