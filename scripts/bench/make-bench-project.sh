#!/usr/bin/env bash
# Writes the NeMo-RL-shaped project of the build benchmark and locks it.
#
#     make-bench-project.sh DEST INDEX_URL
#
# DEST must not exist (created). INDEX_URL: the simple index that
# make-bench-index.py wrote, served on loopback (http://127.0.0.1:PORT/simple);
# it is the project's only index, so uv.lock records its wheel URLs, and
# `uv lock` runs against it now (the server must be up).
#
#   dependencies        bench-torch, bench-ray, bench-transformers, 12 small utils   every env
#   extra vllm          bench-vllm (-> bench-xformers, bench-infer-common)           worker venv, tag vllm
#   extra sglang        bench-sglang (-> bench-infer-common, shared with vllm)       worker venv, tag sglang
#   extra mcore         bench-megatron (-> bench-transformer-engine)                 worker venv, tag mcore
#   extra automodel     bench-automodel                                              uv cache only, no venv
#   group dev           bench-pytest                                                 main venv
#
# Source: nemo_bench/ (~400 modules, ~3 MB), tests/, docs/, plus junk that
# .dockerignore drops (both dockless and buildah honour it).
#
# Env: UV (default /usr/local/bin/uv).
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: make-bench-project.sh DEST INDEX_URL" >&2; exit 2; }
DEST=$1
INDEX_URL=${2%/}
UV=${UV:-/usr/local/bin/uv}
[[ ! -e $DEST ]] || { echo "make-bench-project.sh: $DEST exists" >&2; exit 1; }
mkdir -p -- "$DEST"
cd -- "$DEST"

utils=$(for i in $(seq -w 0 11); do printf '"bench-util%s", ' "$i"; done)
cat >pyproject.toml <<EOF
[project]
name = "nemo-bench"
version = "0.1.0"
description = "dockless build benchmark: a NeMo-RL-shaped project"
requires-python = ">=3.9"
dependencies = ["bench-torch", "bench-ray", "bench-transformers", ${utils%, }]

[project.optional-dependencies]
vllm = ["bench-vllm"]
sglang = ["bench-sglang"]
mcore = ["bench-megatron"]
automodel = ["bench-automodel"]

[dependency-groups]
dev = ["bench-pytest"]

[tool.uv]
package = false

[[tool.uv.index]]
name = "bench"
url = "$INDEX_URL"
default = true
EOF

cat >dockless.toml <<'EOF'
# dockless build benchmark (scripts/bench/build.sh passes --set image.base=REG/debian-py:12).
[image]
workdir = "/opt/nemo-bench"
cmd = ["bash"]
env = { NEMO_BENCH_IN_CONTAINER = "1" }

[uv]
python = "/usr/bin/python3"
cache-dir = "/root/.cache/uv"
link-mode = "symlink"
uv-path = "/usr/local/bin/uv"

[cache]
extras = ["automodel"]

[source]
path = "."
dest = "/opt/nemo-bench"

[venv.main]
path = "/opt/nemo_bench_venv"
groups = ["dev"]

[venv."nemo_bench.models.generation.vllm.VllmGenerationWorker"]
path = "/opt/ray_venvs/nemo_bench.models.generation.vllm.VllmGenerationWorker"
extras = ["vllm"]
tags = ["vllm"]
no-default-groups = true

[venv."nemo_bench.models.generation.sglang.SglangGenerationWorker"]
path = "/opt/ray_venvs/nemo_bench.models.generation.sglang.SglangGenerationWorker"
extras = ["sglang"]
tags = ["sglang"]
no-default-groups = true

[venv."nemo_bench.models.policy.megatron.MegatronPolicyWorker"]
path = "/opt/ray_venvs/nemo_bench.models.policy.megatron.MegatronPolicyWorker"
extras = ["mcore"]
tags = ["mcore"]
no-default-groups = true
EOF

cat >.dockerignore <<'EOF'
.venv
**/__pycache__
*.log
results/
EOF

# The source tree: deterministic python modules.
python3 - <<'PY'
import os, random
r = random.Random("dockless-bench-source")
words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(3, 9))) for _ in range(3000)]
def module(n):
    out = ['"""nemo_bench module %d (generated)."""\n' % n]
    for _ in range(r.randint(8, 24)):
        name = "_".join(r.choices(words, k=2))
        out.append("\n\ndef %s(%s):\n" % (name, ", ".join(r.choices(words, k=3))))
        for _ in range(r.randint(3, 10)):
            a, b, c = r.choices(words, k=3)
            out.append("    %s = %s.%s(%d)\n" % (a, b, c, r.randint(0, 999)))
        out.append("    return %s\n" % r.choice(words))
    return "".join(out)
pkgs = ["algorithms", "data", "distributed", "environments", "evals", "experience",
        "models/generation", "models/policy", "models/megatron", "utils"]
n = 0
for p in pkgs:
    d = os.path.join("nemo_bench", p)
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "__init__.py"), "w").write("")
    for i in range(40):
        open(os.path.join(d, "mod%02d.py" % i), "w").write(module(n))
        n += 1
open("nemo_bench/__init__.py", "w").write('"""nemo_bench: the benchmark project."""\nVALUE = "nemo_bench"\n')
workers = {
    "models/generation/vllm.py": ("VllmGenerationWorker", "bench_vllm"),
    "models/generation/sglang.py": ("SglangGenerationWorker", "bench_sglang"),
    "models/policy/megatron.py": ("MegatronPolicyWorker", "bench_megatron"),
}
for path, (cls, mod) in workers.items():
    open(os.path.join("nemo_bench", path), "w").write(
        "class %s:\n    def run(self):\n        import %s\n        return %s.VALUE\n" % (cls, mod, mod))
os.makedirs("tests", exist_ok=True)
for i in range(30):
    open("tests/test_%02d.py" % i, "w").write(module(n)); n += 1
os.makedirs("docs", exist_ok=True)
for i in range(20):
    open("docs/page%02d.md" % i, "w").write("# page %d\n\n%s\n" % (i, " ".join(r.choices(words, k=2000))))
open("README.md", "w").write("# nemo-bench\n\nThe dockless build benchmark's project.\n")
# junk the .dockerignore drops
os.makedirs("results/run1", exist_ok=True)
open("results/run1/metrics.json", "w").write("{}\n" * 10000)
open("train.log", "w").write("log line\n" * 10000)
PY

# Lock against the index only: no user config, no index variables, a throwaway cache.
tmp_cache=$(mktemp -d)
cfg_home=$(mktemp -d)
trap 'rm -rf -- "$tmp_cache" "$cfg_home"' EXIT
unset UV_INDEX UV_INDEX_URL UV_DEFAULT_INDEX UV_EXTRA_INDEX_URL UV_FIND_LINKS UV_OFFLINE UV_FROZEN UV_LOCKED
UV_CACHE_DIR=$tmp_cache XDG_CONFIG_HOME=$cfg_home UV_PYTHON_DOWNLOADS=never "$UV" lock --quiet
grep -q "${INDEX_URL%/simple}" uv.lock || { echo "make-bench-project.sh: uv.lock does not name $INDEX_URL" >&2; exit 1; }
