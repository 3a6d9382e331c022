"""Training with the "mcore" backend (stand-in: pyparsing)."""


class MegatronPolicyWorker:
    """Runs in /opt/ray_venvs/nemo_like.models.policy.megatron.MegatronPolicyWorker."""

    def backend(self):
        import pyparsing

        return {"pyparsing": pyparsing.__version__}
