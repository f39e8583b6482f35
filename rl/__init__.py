"""Reinforcement learning on top of trained policies: DSRL (SAC on a frozen policy's noise), DPPO (PPO on a copy's
denoising chain), GSPO / GRPO (group policy optimisation of a token policy); each on the run loop (diffpilot/run.py).
Importing the package registers every algorithm (rl/registry.py)."""

from . import dppo, dsrl, gspo  # noqa: F401  (each registers its algorithm)
