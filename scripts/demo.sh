#!/usr/bin/env bash
# The main job on its embedded default: install dependencies, build dockless,
# then build the NeMo-RL-shaped example (examples/nemo-like) on a
# debootstrapped Debian 12 + python3 base, push it to a local registry, build
# the `--skip vllm` variant, and run both images with podman. uv downloads the
# example's packages from PyPI on the first build; the later builds download
# nothing. See examples/nemo-like/demo.sh for the steps.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/build.sh build
DOCKLESS=$PWD/build/src/dockless exec bash examples/nemo-like/demo.sh
