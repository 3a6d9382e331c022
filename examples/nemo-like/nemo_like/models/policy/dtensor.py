"""Training with the "dtensor" backend (stand-in: sniffio)."""


class DTensorPolicyWorker:
    """Runs in /opt/ray_venvs/nemo_like.models.policy.dtensor.DTensorPolicyWorker."""

    def backend(self):
        import sniffio

        return {"sniffio": sniffio.__version__}
