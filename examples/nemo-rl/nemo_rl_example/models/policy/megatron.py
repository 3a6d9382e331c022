class MegatronPolicyWorker:
    """Runs in /opt/ray_venvs/nemo_rl_example.models.policy.megatron.MegatronPolicyWorker."""

    def backend(self):
        import only_mcore
        return only_mcore.VALUE
