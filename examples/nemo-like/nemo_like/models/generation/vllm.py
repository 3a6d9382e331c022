"""Inference with the "vllm" backend (stand-ins: six, idna, certifi)."""


class VllmGenerationWorker:
    """Runs in /opt/ray_venvs/nemo_like.models.generation.vllm.VllmGenerationWorker."""

    def backend(self):
        import certifi
        import idna
        import six

        return {"six": six.__version__, "idna": idna.__version__, "certifi": certifi.__version__}
