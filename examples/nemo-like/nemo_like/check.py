"""Checks an image built from this project: run it in the image as

    python3 -m nemo_like.check

For each worker venv (/opt/ray_venvs/<actor>), runs that venv's python and
calls the actor's backend(); prints one line per venv, and fails when a venv
that should be there is missing or cannot import its backend. Venvs left out
with `dockless build --skip TAG` are reported as "skipped".
"""
import importlib
import os
import subprocess
import sys

WORKERS = [
    "nemo_like.models.generation.vllm.VllmGenerationWorker",
    "nemo_like.models.generation.sglang.SglangGenerationWorker",
    "nemo_like.models.policy.megatron.MegatronPolicyWorker",
    "nemo_like.models.policy.dtensor.DTensorPolicyWorker",
]


def run_in_venv(fqn):
    module, cls = fqn.rsplit(".", 1)
    code = "import %s as m; print(m.%s().backend())" % (module, cls)
    py = os.path.join("/opt/ray_venvs", fqn, "bin", "python")
    if not os.path.exists(py):
        return "skipped (no %s)" % py, True
    r = subprocess.run([py, "-c", code], capture_output=True, text=True)
    if r.returncode != 0:
        return "FAILED: " + (r.stderr.strip().splitlines() or ["?"])[-1], False
    return r.stdout.strip(), True


def main():
    ok = True
    for fqn in WORKERS:
        line, good = run_in_venv(fqn)
        ok = ok and good
        print("%-60s %s" % (fqn, line))
    importlib.import_module("packaging.version")
    print("%-60s %s" % ("main venv (" + sys.prefix + ")", "packaging + typing_extensions ok"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
