#!/usr/bin/env python3
"""Writes the project of the scale benchmark (scripts/bench/scale.sh).

    make-scale-project.py DEST INDEX_URL LAYOUT_JSON CONTAINERFILE

DEST (new): pyproject.toml (every worker an extra), dockless.toml (a venv
per worker, NeMo RL's /opt/ray_venvs layout; worker w00 carries the tag
"vllm"), a source tree nemo_bench/ (~300 modules) and .dockerignore.
CONTAINERFILE: the buildah side, the same uv commands in one RUN (NeMo RL's
"everything in one layer"), SKIP_VLLM_BUILD=1 dropping worker w00.
LAYOUT_JSON: make-scale-index.py's layout.json. The caller runs `uv lock`.
"""
import json
import os
import random
import sys


def main(argv):
    if len(argv) != 5:
        print("usage: make-scale-project.py DEST INDEX_URL LAYOUT_JSON CONTAINERFILE", file=sys.stderr)
        return 2
    dest, index_url, layout_path, containerfile = argv[1], argv[2].rstrip("/"), argv[3], argv[4]
    lay = json.load(open(layout_path))
    os.makedirs(dest)
    os.chdir(dest)
    deps = ", ".join('"%s"' % d for d in lay["dependencies"])
    extras = "".join('%s = [%s]\n' % (e, ", ".join('"%s"' % p for p in pk)) for e, pk in sorted(lay["extras"].items()))
    open("pyproject.toml", "w").write(
        '[project]\nname = "nemo-scale"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
        "dependencies = [%s]\n\n[project.optional-dependencies]\n%s\n"
        '[dependency-groups]\ndev = ["bench-pytest"]\n\n[tool.uv]\npackage = false\n\n'
        '[[tool.uv.index]]\nname = "bench"\nurl = "%s"\ndefault = true\n' % (deps, extras, index_url))
    venvs = "".join(
        '\n[venv."%s"]\npath = "/opt/ray_venvs/nemo_bench.workers.%s"\nextras = ["%s"]\n'
        "tags = [\"%s\"]\nno-default-groups = true\n" % (w, w, w, "vllm" if w == "w00" else w)
        for w in lay["workers"])
    open("dockless.toml", "w").write(
        '[image]\nworkdir = "/opt/nemo-bench"\ncmd = ["bash"]\n\n'
        '[uv]\npython = "/usr/bin/python3"\ncache-dir = "/root/.cache/uv"\nlink-mode = "symlink"\n'
        'uv-path = "/usr/local/bin/uv"\n\n[cache]\nextras = ["automodel"]\n\n'
        '[source]\npath = "."\ndest = "/opt/nemo-bench"\n\n'
        '[venv.main]\npath = "/opt/nemo_bench_venv"\ngroups = ["dev"]\n' + venvs)
    open(".dockerignore", "w").write(".venv\n**/__pycache__\n")
    r = random.Random("dockless-scale-source")
    w = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(3, 9))) for _ in range(2000)]
    for p in ("algorithms", "data", "distributed", "models", "utils", "workers"):
        os.makedirs(os.path.join("nemo_bench", p))
        open(os.path.join("nemo_bench", p, "__init__.py"), "w").write("")
        for i in range(50):
            body = "".join("\n\ndef %s(%s):\n    return %d\n" % ("_".join(r.choices(w, k=2)), r.choice(w),
                                                                 r.randint(0, 999)) for _ in range(30))
            open(os.path.join("nemo_bench", p, "mod%02d.py" % i), "w").write('"""generated."""\n' + body)
    open("nemo_bench/__init__.py", "w").write('VALUE = "nemo_bench"\n')
    open("README.md", "w").write("# nemo-scale\n")

    runs = "".join(
        "    %svenv $w.%s --no-default-groups --extra %s;%s \\\n" % (
            'if [ "${SKIP_VLLM_BUILD}" != 1 ]; then ' if x == "w00" else "", x, x, " fi;" if x == "w00" else "")
        for x in lay["workers"])
    open(containerfile, "w").write(
        "# The buildah side of scripts/bench/scale.sh (written by make-scale-project.py).\n"
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY --from=tools uv /usr/local/bin/uv\n"
        "ENV UV_CACHE_DIR=/root/.cache/uv UV_LINK_MODE=symlink UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1 \\\n"
        "    UV_PROJECT_ENVIRONMENT=/opt/nemo_bench_venv\n"
        "WORKDIR /opt/nemo-bench\nCOPY pyproject.toml uv.lock ./\nARG SKIP_VLLM_BUILD=\n"
        "RUN set -eu; \\\n"
        "    venv() { p=$1; shift; uv venv --allow-existing --python /usr/bin/python3 \"$p\" && \\\n"
        "             UV_PROJECT_ENVIRONMENT=\"$p\" uv sync --frozen --no-install-project --python \"$p/bin/python\" \"$@\"; }; \\\n"
        "    w=/opt/ray_venvs/nemo_bench.workers; \\\n"
        "    venv /tmp/cache-warmup --no-default-groups --extra automodel; rm -rf /tmp/cache-warmup; \\\n"
        + runs +
        "    venv /opt/nemo_bench_venv --group dev\n"
        "COPY . /opt/nemo-bench\nCMD [\"bash\"]\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
