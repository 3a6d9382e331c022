"""nemo_like: a NeMo-RL-shaped example project for dockless."""
__version__ = "0.1.0"
