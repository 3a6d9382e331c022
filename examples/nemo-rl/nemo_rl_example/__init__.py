"""nemo_rl_example: the source tree of dockless's NeMo RL example."""
VALUE = "nemo_rl_example"
