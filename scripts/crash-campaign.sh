#!/usr/bin/env bash
# The long crash-safety campaign: tests/integration/crash.sh with KILLS
# SIGKILLs per command (default 40) over one cache dir: cold and warm builds
# that push and --cache-to, cache prune, and pull, push and copy of a
# ~200 MiB image. Prints the table (kills, recoveries, invariant violations).
#
#     scripts/crash-campaign.sh [KILLS]        (CRASH_SEED=N replays a run)
#
# Needs what the integration tests need (scripts/setup.sh, the debootstrap
# fixture) and a built dockless (build/src/dockless, or $DOCKLESS).
set -euo pipefail
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
export CRASH_KILLS=${1:-40}
export DOCKLESS=${DOCKLESS:-$root/build/src/dockless}
export DOCKLESS_SOURCE_ROOT=$root
[[ -x $DOCKLESS ]] || { echo "crash-campaign: no dockless at $DOCKLESS (ninja -C build)" >&2; exit 1; }
exec bash "$root/tests/integration/crash.sh"
