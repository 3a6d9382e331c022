"""Inference with the "sglang" backend (stand-ins: attrs, certifi)."""


class SglangGenerationWorker:
    """Runs in /opt/ray_venvs/nemo_like.models.generation.sglang.SglangGenerationWorker."""

    def backend(self):
        import attrs
        import certifi

        return {"attrs": attrs.__version__, "certifi": certifi.__version__}
