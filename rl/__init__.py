"""Reinforcement learning on top of trained policies: DSRL (SAC on a frozen policy's noise), DPPO (PPO on a copy's
denoising chain), GSPO / GRPO (group policy optimisation of a token policy); each on the run loop (diffpilot/run.py)."""
