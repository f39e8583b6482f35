"""Reinforcement learning on top of frozen or fine-tuned policies (DSRL, GSPO, DPPO); see the RL issues."""
