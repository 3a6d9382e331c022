class VllmGenerationWorker:
    """Runs in /opt/ray_venvs/nemo_rl_example.models.generation.vllm.VllmGenerationWorker."""

    def backend(self):
        import only_vllm
        return only_vllm.VALUE
