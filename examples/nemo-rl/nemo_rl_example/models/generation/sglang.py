class SglangGenerationWorker:
    """Runs in /opt/ray_venvs/nemo_rl_example.models.generation.sglang.SglangGenerationWorker."""

    def backend(self):
        import only_sglang
        return only_sglang.VALUE
